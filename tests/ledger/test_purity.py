"""The layers of the tree, and the pure core's purity.

From the bottom up: the core (``ledger/*.py``, ``ledger/state``, ``ledger/merkle``), the Kafka
edge (``ledger/kafka``), the SDK (``ledger/client``), the processors (``streams``), the local
stack (``ledger/local``), tooling (``ledger/tools``) and the command line (``ledger/cli``). A
module imports its own layer and the ones below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ledger.settings import REPO_ROOT

IO_LIBRARIES = frozenset({"faust", "aiokafka", "asyncpg", "aiohttp", "mode"})
LAYERS = (
    "core",
    "ledger.kafka",
    "ledger.client",
    "streams",
    "ledger.local",
    "ledger.tools",
    "ledger.cli",
)


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to; None outside the project."""
    parts = module.split(".")
    if parts[0] == "streams":
        return "streams"
    if parts[0] != "ledger":
        return None
    if parts[1:2] == ["__main__"]:
        return "ledger.cli"  # `python -m ledger` is the command line
    candidate = ".".join(parts[:2])
    return candidate if candidate in LAYERS else "core"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)


def project_modules() -> list[Path]:
    return sorted((REPO_ROOT / "ledger").rglob("*.py")) + sorted(
        (REPO_ROOT / "streams").rglob("*.py")
    )


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def core_modules() -> list[Path]:
    return [path for path in project_modules() if layer_of(module_name(path)) == "core"]


def test_core_imports_no_io_library() -> None:
    """Every module of the core (state, merkle, codec, signing, blocks, proofs, replica, sealing,
    ...) is free of faust, aiokafka, asyncpg and aiohttp, so processors, clients and auditors
    share it."""
    offenders = {
        module_name(path): sorted({name.split(".")[0] for name in imports(path)} & IO_LIBRARIES)
        for path in core_modules()
        if {name.split(".")[0] for name in imports(path)} & IO_LIBRARIES
    }
    assert offenders == {}
    assert len(core_modules()) > 20


def test_no_import_runs_up_the_layers() -> None:
    """Core < Kafka edge < SDK < processors < local stack < tooling < command line."""
    offenders = []
    for path in project_modules():
        own = LAYERS.index(layer_of(module_name(path)) or "core")
        for name in imports(path):
            layer = layer_of(name)
            # `from ledger import codec` names the package ledger and its module codec
            if layer is not None and LAYERS.index(layer) > own and name != "ledger":
                offenders.append(f"{module_name(path)} imports {name} ({layer})")
    assert offenders == []


def test_every_layer_is_populated() -> None:
    """The layer map names real packages: a rename does not silently empty a layer."""
    found = {layer_of(module_name(path)) for path in project_modules()}
    assert found == set(LAYERS)
