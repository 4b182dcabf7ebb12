"""Compile ``ledger.native.MODULES`` with mypyc into ``ledger.native.BUILD_DIR`` (make install).

Does nothing when the manifest already matches the sources. Builds in a temporary directory and
moves the result in, the manifest last, so an interrupted build leaves the old one or none. A
failed build (no C compiler, say) is one line and exit 0: the sources run instead.
Run: ``.venv/bin/python infra/build_native.py [--force]``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ledger import native


def up_to_date() -> bool:
    try:
        manifest = json.loads(native.MANIFEST.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return bool(manifest == native.expected_manifest())


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


def main() -> int:
    if "--force" not in sys.argv and up_to_date():
        return 0
    started_s = time.monotonic()
    manifest = native.expected_manifest()  # before compiling: a source edited meanwhile is stale
    native.BUILD_DIR.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=native.BUILD_DIR.parent) as work:
        work_dir = Path(work)
        out_dir = work_dir / "out"
        try:
            compile_into(out_dir, work_dir)
        except (Exception, SystemExit) as exc:  # setuptools reports compiler errors by exiting
            print(f"native build failed, the sources will run instead: {exc}", file=sys.stderr)
            return 0
        (out_dir / native.MANIFEST.name).write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(native.BUILD_DIR, ignore_errors=True)
        out_dir.rename(native.BUILD_DIR)
    took_s = time.monotonic() - started_s
    print(f"compiled {len(native.MODULES)} hot-path modules with mypyc in {took_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
