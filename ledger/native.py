"""Compiled copies of the hot-path modules (mypyc), used only while they match their sources.

Why: decoding a transfer body, replaying a block and building one cost about a third less
compiled (BENCHMARKS.md, issue 8), and every sealed transaction is decoded by the sequencer, the
projector and the stats worker. The sources stay plain, type-checked Python: ``make install``
(``infra/build_native.py``) compiles ``MODULES`` into ``BUILD_DIR`` and writes a manifest with the
SHA-256 of each source last. At import, ``ledger`` puts the compiled copies ahead of the sources
only if every hash still matches, so an edited module runs as source until the next build:
never a stale binary. ``LEDGER_NATIVE=0`` turns them off (to compare, or to debug).

A wheel install has no build directory and runs the sources; so does a machine without a C
compiler (the build says so and goes on). ``status()`` says which it is; ``ledger bench``
records it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Final

MODULES: Final = (
    "ledger.codec.avro",
    "ledger.codec.bodies",
    "ledger.codec.envelopes",
    "ledger.codec.transfer",
    "ledger.blocks",
    "ledger.replica",
    "ledger.sealing",
)
"""Compiled together as one group. Chosen by measurement: the state machine's modules and
``ledger.model`` ran slower compiled (their dataclasses are read from interpreted code)."""

SOURCE_ROOT: Final = Path(__file__).resolve().parent.parent
BUILD_DIR: Final = SOURCE_ROOT / ".build" / "native"
MANIFEST: Final = BUILD_DIR / "manifest.json"


def source_path(module: str) -> Path:
    return SOURCE_ROOT.joinpath(*module.split(".")).with_suffix(".py")


def source_hashes() -> dict[str, str]:
    return {
        module: hashlib.sha256(source_path(module).read_bytes()).hexdigest() for module in MODULES
    }


def build_tag() -> str:
    """What a compiled copy depends on besides its source: the interpreter's ABI."""
    return f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"


def expected_manifest() -> dict[str, object]:
    """The manifest of a build of the sources as they are now."""
    return {"build_tag": build_tag(), "sources": source_hashes()}


def _manifest_problem() -> str | None:
    """Why the compiled copies cannot be used now, or None when they can."""
    if os.environ.get("LEDGER_NATIVE", "1") == "0":
        return "turned off (LEDGER_NATIVE=0)"
    try:
        manifest = json.loads(MANIFEST.read_text("utf-8"))
    except FileNotFoundError:
        return "not built (make install builds them)"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest {MANIFEST}: {exc}"
    if not isinstance(manifest, dict):
        return f"unreadable manifest {MANIFEST}: not a JSON object"
    if manifest.get("build_tag") != build_tag():
        return f"built for {manifest.get('build_tag')}, this interpreter is {build_tag()}"
    if manifest.get("sources") != source_hashes():
        return "sources changed since the build (make install rebuilds them)"
    return None


_problem: Final = _manifest_problem()


def status() -> str:
    """One line for people and benchmarks: compiled or source, and why."""
    if _problem is None:
        return f"compiled ({len(MODULES)} modules, mypyc)"
    return f"source: {_problem}"


def active() -> bool:
    return _problem is None


def package_path(package: str, path: list[str]) -> list[str]:
    """A package's ``__path__``, with its compiled copies first when they are usable.

    Every package that holds a module of ``MODULES`` assigns its ``__path__`` through this,
    before importing any of its modules.
    """
    if _problem is not None:
        return path
    build_root = str(BUILD_DIR)
    if build_root not in sys.path:
        sys.path.append(build_root)  # the group's shared runtime is a top-level module
    return [str(BUILD_DIR.joinpath(*package.split("."))), *path]
