"""infra/systemd: units systemd accepts, that run modules which exist, restart on failure
within the same limits as the local supervisor, and never restart a fenced sequencer."""

from __future__ import annotations

import configparser
import importlib.util
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.local import supervision
from ledger.settings import REPO_ROOT

UNITS_DIR = REPO_ROOT / "infra" / "systemd"
INSTALLED_PYTHON = "/opt/ledger/venv/bin/python"
INSTANCES = {
    "ledger-worker@.service": "project",
    "ledger-verify@.service": "1",
    "ledger-sequencer@.service": "main",
    "ledger-witness@.service": "witness-1",
}
"""An instance name for each template, to verify it as systemd would run it."""
SEQUENCER_UNITS = ("ledger-worker@.service", "ledger-sequencer@.service")
"""The units that run a sequencer (ledger-worker@sequence is one)."""


def services() -> list[Path]:
    return sorted(UNITS_DIR.glob("*.service"))


def parse(path: Path) -> configparser.ConfigParser:
    """A unit as INI: sections and keys as written, a repeated key an error."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(), source=str(path))
    return parser


def test_every_unit_parses_and_belongs_to_the_target() -> None:
    """Each service runs as the ledger user with the settings file, restarts on failure, gives up
    after 5 starts in 2 minutes (as the supervisor gives up after 5 exits in 2 minutes), and is
    part of ledger.target."""
    assert len(services()) >= 7
    target = parse(UNITS_DIR / "ledger.target")
    assert target["Install"]["WantedBy"] == "multi-user.target"
    for path in services():
        unit = parse(path)
        service = unit["Service"]
        assert service["User"] == service["Group"] == "ledger", path.name
        assert service["EnvironmentFile"] == "/etc/ledger/ledger.env", path.name
        assert service["Restart"] == "on-failure", path.name
        assert service["RestartSec"].endswith("s"), path.name
        assert int(unit["Unit"]["StartLimitBurst"]) == supervision.crash_count_max, path.name
        assert float(unit["Unit"]["StartLimitIntervalSec"]) == supervision.crash_window_s
        assert unit["Unit"]["PartOf"] == "ledger.target", path.name
        assert unit["Install"]["WantedBy"] == "ledger.target", path.name
        prevented = set(service["RestartPreventExitStatus"].split())
        assert {"2", "4"} <= prevented, path.name


def test_exec_start_runs_a_module_that_exists() -> None:
    """ExecStart is the installed interpreter with -m and a module of this project."""
    for path in services():
        command = shlex.split(parse(path)["Service"]["ExecStart"])
        assert command[:2] == [INSTALLED_PYTHON, "-m"], path.name
        assert importlib.util.find_spec(command[2]) is not None, (path.name, command[2])


def test_a_fenced_sequencer_is_never_restarted() -> None:
    """Exit 75 prevents a restart in every unit that runs a sequencer, and only there."""
    for path in services():
        prevented = parse(path)["Service"]["RestartPreventExitStatus"].split()
        fenced = str(supervision.EXIT_FENCED) in prevented
        assert fenced == (path.name in SEQUENCER_UNITS), path.name
    command = parse(UNITS_DIR / "ledger-sequencer@.service")["Service"]["ExecStart"]
    assert shlex.split(command)[2:] == ["streams.worker", "sequence", "%i"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say about any unit (with this interpreter in
    place of the installed one, whose path it checks)."""
    for path in [*services(), UNITS_DIR / "ledger.target"]:
        text = path.read_text().replace(INSTALLED_PYTHON, sys.executable)
        (tmp_path / path.name).write_text(text)
    names = [
        f"./{name.replace('@.', f'@{INSTANCES[name]}.')}" if name in INSTANCES else f"./{name}"
        for name in sorted(path.name for path in tmp_path.iterdir())
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
