"""The wheel installs anywhere: built from this tree, installed into a fresh virtual environment
outside the repository, its command line works without the source tree (schemas are package
data), and an old proof still verifies with it."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from ledger.settings import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "ledger" / "fixtures"
IMPORT_TO_DISTRIBUTION = {"nacl": "pynacl", "faust": "faust-streaming"}
SOURCES = ("pyproject.toml", "README.md", "ledger", "streams", "schemas")
IGNORED = shutil.ignore_patterns("__pycache__")
install_wait_s = 600


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=install_wait_s
    )
    assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh virtual environment holding only the wheel and its deps."""
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy: an in-tree build leaves build/ behind, whose stale files (of modules
    # since deleted) a later build would ship.
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, symlinks=True, ignore=IGNORED)
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root), str(source)],
        root,
    )
    [wheel] = root.glob("kafka_ledger-*.whl")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    _run([str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)], root)
    return bin_dir


def test_installed_package_is_not_the_source_tree(installed: Path) -> None:
    """What runs is the installed copy, with its schemas and the dashboard's page files."""
    result = _run(
        [
            str(installed / "python"),
            "-c",
            "import ledger.codec, importlib.resources as r;"
            "print(ledger.codec.__file__);"
            "print(sorted(p.name for p in r.files('ledger').joinpath('schemas').iterdir()"
            " if p.name.endswith('.avsc'))"
            " + sorted(p.name for p in r.files('streams.dashboard').joinpath('static').iterdir()))",
        ],
        installed,
    )
    module_file, shipped = result.stdout.splitlines()
    assert not module_file.startswith(str(REPO_ROOT))
    assert "ledger.v1.Envelope.avsc" in shipped
    assert "ledger.v1.VerifiedBatch.avsc" in shipped
    assert "dashboard.js" in shipped and "index.html" in shipped  # the dashboard page


def test_installed_command_line_works(installed: Path) -> None:
    """`ledger --help`, `ledger bench-core --json` and the offline `verify-proof` of a proof
    stored when the proof format was first released."""
    assert "verify-proof" in _run([str(installed / "ledger"), "--help"], installed).stdout
    assert '"codec"' in _run([str(installed / "ledger"), "bench-core", "--json"], installed).stdout
    sealer_key = (FIXTURES / "proof.v1.sealer-key").read_text().strip()
    result = _run(
        [
            str(installed / "ledger"),
            "verify-proof",
            str(FIXTURES / "proof.v1.json"),
            "--sealer-key",
            sealer_key,
            "--json",
        ],
        installed,
    )
    assert '"tx_id": "db2866d4b4fc6f47974a966aab2170bc"' in result.stdout


def test_every_imported_library_is_declared() -> None:
    """A library imported by ledger/ or streams/ is a declared dependency, not a passenger of
    another one (click and aiohttp once arrived only through faust-streaming)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
        for requirement in project["dependencies"]
    }
    imported = set()
    for package in ("ledger", "streams"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"ledger", "streams"}
    undeclared = {
        name for name in third_party if IMPORT_TO_DISTRIBUTION.get(name, name) not in declared
    }
    assert undeclared == set()
