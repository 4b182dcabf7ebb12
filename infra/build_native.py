"""The compiled hot path (make install): two builds, each skipped while its manifest matches.

1. ``ledger.native.MODULES`` compiled with mypyc into ``ledger.native.BUILD_DIR``;
2. ``native/ed25519`` (Rust) built with cargo into ``ledger.ed25519.BUILD_DIR``.

Each builds in a temporary directory and moves the result in, the manifest last, so an
interrupted build leaves the old one or none. A failed build (no compiler, say) is one line and
exit 0: the sources, or libsodium, run instead.
Run: ``.venv/bin/python infra/build_native.py [--force]``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledger import ed25519, native

sparse_index_cargo_version = (1, 68)
"""Older cargo (Debian 12 has 1.65) reads crates.io's index from github.com unless asked for the
sparse index, which it knows only as an unstable option."""


def up_to_date(manifest_path: Path, expected: dict[str, object]) -> bool:
    if "--force" in sys.argv:
        return False
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return bool(manifest == expected)


def install(out_dir: Path, build_dir: Path, manifest: dict[str, object]) -> None:
    """Make ``out_dir`` the build at ``build_dir``, its manifest written last."""
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(build_dir, ignore_errors=True)
    out_dir.rename(build_dir)


def compile_into(out_dir: Path, work_dir: Path) -> None:
    """The extension modules of the group, laid out by package under ``out_dir``."""
    from mypyc.build import mypycify
    from setuptools import setup

    sources = [
        str(native.source_path(module).relative_to(native.SOURCE_ROOT)) for module in native.MODULES
    ]
    extensions = mypycify(sources, opt_level="3", target_dir=str(work_dir / "c"))
    # Away from the project's pyproject.toml, which describes the package, not this extension.
    os.chdir(work_dir)
    try:
        setup(
            name="ledger-native",
            ext_modules=extensions,
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                str(out_dir),
                "--build-temp",
                str(work_dir / "objects"),
            ],
        )
    finally:
        os.chdir(native.SOURCE_ROOT)


def build_modules() -> None:
    manifest = native.expected_manifest()  # before compiling: a source edited meanwhile is stale
    if up_to_date(native.MANIFEST, manifest):
        return
    started_s = time.monotonic()
    native.BUILD_DIR.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=native.BUILD_DIR.parent) as work:
        work_dir = Path(work)
        out_dir = work_dir / "out"
        try:
            compile_into(out_dir, work_dir)
        except (Exception, SystemExit) as exc:  # setuptools reports compiler errors by exiting
            print(f"native build failed, the sources will run instead: {exc}", file=sys.stderr)
            return
        install(out_dir, native.BUILD_DIR, manifest)
    took_s = time.monotonic() - started_s
    print(f"compiled {len(native.MODULES)} hot-path modules with mypyc in {took_s:.0f} s")


def find_cargo() -> str | None:
    found = shutil.which("cargo")
    rustup_cargo = Path.home() / ".cargo" / "bin" / "cargo"
    if found is None and rustup_cargo.exists():
        found = str(rustup_cargo)
    return found


def cargo_command(cargo: str) -> tuple[list[str], dict[str, str]]:
    """``cargo build`` of the crate for this machine's CPU, and its environment."""
    command = [cargo, "build", "--release", "--locked", "--quiet"]
    command += ["--manifest-path", str(ed25519.CRATE_DIR / "Cargo.toml")]
    command += ["--target-dir", str(ed25519.BUILD_DIR.parent / "cargo")]
    env = {
        **os.environ,
        # Built where it runs (make install), so it may use every instruction of this CPU:
        # a sixth faster here than the generic x86-64 build.
        "RUSTFLAGS": "-C target-cpu=native",
        "CARGO_REGISTRIES_CRATES_IO_PROTOCOL": "sparse",
    }
    version = subprocess.run([cargo, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+)\.(\d+)", version)
    if found and (int(found[1]), int(found[2])) < sparse_index_cargo_version:
        command.insert(1, "-Zsparse-registry")
        env["RUSTC_BOOTSTRAP"] = "1"
    return command, env


def build_ed25519() -> None:
    manifest = ed25519.expected_manifest()
    if up_to_date(ed25519.MANIFEST, manifest):
        return
    cargo = find_cargo()
    if cargo is None:
        print("no cargo: libsodium will check every signature (slower)", file=sys.stderr)
        return
    started_s = time.monotonic()
    command, env = cargo_command(cargo)
    built = subprocess.run(command, env=env, capture_output=True, text=True)
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"ed25519 build failed, libsodium will check signatures: {last}", file=sys.stderr)
        return
    library = ed25519.BUILD_DIR.parent / "cargo" / "release" / ed25519.LIBRARY.name
    with tempfile.TemporaryDirectory(dir=ed25519.BUILD_DIR.parent) as work:
        out_dir = Path(work) / "out"
        out_dir.mkdir()
        shutil.copy2(library, out_dir / ed25519.LIBRARY.name)
        install(out_dir, ed25519.BUILD_DIR, manifest)
    took_s = time.monotonic() - started_s
    print(f"built the Ed25519 checks (native/ed25519) with cargo in {took_s:.0f} s")


def main() -> int:
    build_modules()
    build_ed25519()
    return 0


if __name__ == "__main__":
    sys.exit(main())
