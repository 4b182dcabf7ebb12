"""Starting a worker: under its start lock, processes racing to start it start one between them;
its stop marker keeps everyone from starting it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.waiting import eventually_sync

from ledger.local import process
from ledger.local.workers import hold, release, start_worker, stop_reason, worker_files
from ledger.settings import REPO_ROOT, Settings

racer_count = 4

RACER = """
import dataclasses, sys, time
from pathlib import Path
from ledger.local.workers import start_worker
from ledger.settings import Settings

data_dir, index, token = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
settings = dataclasses.replace(Settings.from_env(), data_dir=data_dir)
command = [sys.executable, "-c", f"import time; time.sleep(600)  # {token}"]
(data_dir / f"ready-{index}").touch()
deadline = time.monotonic() + 30
while not (data_dir / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.0005)
print("started" if start_worker(settings, "racer", command) else "not started")
"""
"""Imports first, then waits on a file, so that every racer calls start_worker within a
millisecond or so of the others: well inside the time a start takes (fork, exec, pid file)."""


@pytest.fixture()
def settings_here(tmp_path: Path) -> Iterator[Settings]:
    """Settings whose data directory is this test's; its workers are stopped afterwards."""
    settings = dataclasses.replace(Settings.from_env(), data_dir=tmp_path)
    try:
        yield settings
    finally:
        process.stop_all(sorted((tmp_path / "workers").glob("*.pid")), 10.0)


def processes_with(token: str) -> list[int]:
    """Pids of the live processes whose command line holds ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in command_line and process.pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_racing_starts_start_one_process(settings_here: Settings, tmp_path: Path) -> None:
    """Four processes start the same worker at the same moment: one starts it, three find it
    running, and one such process exists."""
    token = f"racer-{tmp_path.name}"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(index), token],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(racer_count)
    ]
    try:
        eventually_sync(
            lambda: len(list(tmp_path.glob("ready-*"))),
            lambda ready: ready == racer_count,
            what="every racer is ready",
        )
        (tmp_path / "go").touch()
        answers = sorted(racer.communicate(timeout=30)[0].strip() for racer in racers)
    finally:
        for racer in racers:
            racer.kill()
    assert answers == ["not started"] * (racer_count - 1) + ["started"]
    running = eventually_sync(
        lambda: processes_with(token), what="the worker's process", interval_s=0.05
    )
    assert running == [process.read_pid(worker_files(settings_here, "racer")[0])]


def test_a_stop_marker_keeps_a_worker_from_starting(settings_here: Settings) -> None:
    """While its stop marker is set start_worker starts nothing; once cleared it starts it."""
    command = [sys.executable, "-c", "import time; time.sleep(600)"]
    hold(settings_here, "kept", "kept down by a test")
    assert stop_reason(settings_here, "kept") == "kept down by a test"
    assert start_worker(settings_here, "kept", command) is None
    assert process.read_pid(worker_files(settings_here, "kept")[0]) is None
    assert release(settings_here, "kept") and stop_reason(settings_here, "kept") is None
    child = start_worker(settings_here, "kept", command)
    assert child is not None
    assert process.read_pid(worker_files(settings_here, "kept")[0]) == child.pid
    assert start_worker(settings_here, "kept", command) is None
