"""The pure core stays pure: no module of ledger/ (outside the I/O adapters) imports I/O libraries."""

from __future__ import annotations

import ast
from pathlib import Path

from ledger.settings import REPO_ROOT

IO_LIBRARIES = frozenset({"faust", "aiokafka", "asyncpg", "aiohttp", "mode"})
ADAPTERS = ("client", "cli", "local", "__main__.py")
"""Parts of ledger/ that are adapters by design: the SDK, the command line, the local stack."""


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def core_modules() -> list[Path]:
    package = REPO_ROOT / "ledger"
    return [
        path
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).parts[0] not in ADAPTERS
    ]


def test_core_imports_no_io_library() -> None:
    """Every module of the core (state, merkle, codec, signing, blocks, proofs, replica, ...) is
    free of faust, aiokafka, asyncpg and aiohttp, so processors, clients and auditors share it."""
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_roots(path) & IO_LIBRARIES)
        for path in core_modules()
        if imported_roots(path) & IO_LIBRARIES
    }
    assert offenders == {}
    assert len(core_modules()) > 20


def test_core_imports_no_adapter() -> None:
    """The core does not reach into the adapters (which may do I/O) or the stream processors."""
    offenders = []
    for path in core_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[0] == "streams" or (
                    parts[0] == "ledger" and len(parts) > 1 and parts[1] in ADAPTERS
                ):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}: {node.module}")
    assert offenders == []
