"""The supervisor as a real process, on a data directory of its own, keeping small Python
programs running: it restarts a killed worker, gives up on one that cannot start, leaves a fenced
one and one stopped on purpose down, and keeps restarting while Kafka and PostgreSQL are down."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_ledger
from support.ports import free_port_block
from support.waiting import eventually_sync

from ledger.local import process
from ledger.local.stack import supervised_workers
from ledger.local.supervision import backoff_s, early_exit_count_max
from ledger.local.workers import hold, release, supervisor_files, worker_files
from ledger.settings import REPO_ROOT, Settings

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
CANNOT_START = [
    sys.executable,
    "-c",
    "import sys; print('witness: no such key file', flush=True); sys.exit(70)",
]
FENCED = [sys.executable, "-c", "import sys, time; time.sleep(0.2); sys.exit(75)"]

supervised_wait_s = 30.0
"""Far longer than three starts and the backoffs between them (1 s, 2 s)."""

unreachable = "127.0.0.1:1"
"""Nothing listens on port 1: a connection is refused at once."""


@dataclasses.dataclass(frozen=True)
class Supervised:
    """A running supervisor: the settings of its data directory, and its environment."""

    settings: Settings
    env: dict[str, str]

    def worker(self, name: str) -> dict[str, Any]:
        return supervised_workers(self.settings).get(name, {})

    def pid(self, name: str) -> int | None:
        return process.read_pid(worker_files(self.settings, name)[0])


@contextlib.contextmanager
def services_stand_in() -> Iterator[str]:
    """A TCP listener for Kafka and PostgreSQL: the supervisor only checks that they accept a
    connection (a port below the ephemeral range, ``support.ports``)."""
    port = free_port_block(1, Settings.from_env())
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def supervisor(
    data_dir: Path, commands: dict[str, list[str]], services: str
) -> Iterator[Supervised]:
    """``python -m ledger.local.supervisor`` on ``data_dir`` with ``commands``; afterwards it and
    every worker it left are stopped."""
    env = {
        "LEDGER_DATA_DIR": str(data_dir),
        "KAFKA_BOOTSTRAP_SERVERS": services,
        "LEDGER_DATABASE_URL": f"postgresql://nobody:nothing@{services}/nothing",
    }
    settings = dataclasses.replace(Settings.from_env(), data_dir=data_dir)
    files = supervisor_files(settings)
    files.commands.parent.mkdir(parents=True)
    files.commands.write_text(json.dumps(commands))
    command = [sys.executable, "-m", "ledger.local.supervisor", "--commands", str(files.commands)]
    process.start(command, files.pid, files.log, env={**os.environ, **env}, cwd=REPO_ROOT)
    try:
        yield Supervised(settings, env)
    finally:
        process.stop(files.pid, 10.0)
        process.stop_all(sorted(files.pid.parent.glob("*.pid")), 10.0)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    commands = {
        "sleeper": SLEEPER,
        "held": SLEEPER,
        "cannot-start": CANNOT_START,
        "sequence": FENCED,
    }
    with (
        services_stand_in() as services,
        supervisor(tmp_path_factory.mktemp("supervised"), commands, services) as running,
    ):
        yield running


def test_a_killed_worker_is_restarted_with_a_new_pid(supervised: Supervised) -> None:
    """kill -9 of a worker: the supervisor starts it again, and counts the restart."""
    pid = eventually_sync(
        lambda: supervised.pid("sleeper"), what="the supervisor started the sleeper"
    )
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    restarted = eventually_sync(
        lambda: supervised.worker("sleeper"),
        lambda worker: worker.get("state") == "running" and worker.get("pid") not in (None, pid),
        what="the sleeper runs again with another pid",
        timeout_s=supervised_wait_s,
    )
    assert restarted["restart_count"] == 1
    assert restarted["last_exit"] == "killed by SIGKILL"
    assert supervised.pid("sleeper") == restarted["pid"]


def test_a_worker_that_cannot_start_is_given_up(supervised: Supervised) -> None:
    """Three exits in a row at start: `ledger status` says it gave up, with the exit code and
    the worker's last log line, and no fourth start follows."""
    gave_up = eventually_sync(
        lambda: supervised.worker("cannot-start"),
        lambda worker: worker.get("state") == "gave-up",
        what="the supervisor gave up on cannot-start",
        timeout_s=supervised_wait_s,
    )
    assert gave_up["restart_count"] == early_exit_count_max - 1
    assert gave_up["last_exit_code"] == 70
    [line] = [
        line
        for line in run_ledger("status", env=supervised.env).stdout.splitlines()
        if line.startswith("cannot-start")
    ]
    assert line.split()[1:5] == ["gave-up", "-", "restarts", "2"], line
    assert "3 exits in a row" in line and "exit code 70" in line, line
    assert "witness: no such key file" in line, line
    # Another start would have come the next backoff after the last exit (4 s): none did.
    next_start_s = gave_up["started_at_ms"] / 1000 + backoff_s(early_exit_count_max) + 0.5
    eventually_sync(
        time.time, lambda now: now > next_start_s, what="past the next backoff", timeout_s=10
    )
    assert supervised.worker("cannot-start")["state"] == "gave-up"
    log = worker_files(supervised.settings, "cannot-start")[1].read_text()
    assert log.count("no such key file") == early_exit_count_max


def test_a_fenced_sequencer_is_not_restarted(supervised: Supervised) -> None:
    """Exit 75: left stopped with the reason, never started again."""
    fenced = eventually_sync(
        lambda: supervised.worker("sequence"),
        lambda worker: worker.get("state") == "stopped",
        what="the supervisor saw the sequencer exit",
        timeout_s=supervised_wait_s,
    )
    assert fenced["last_exit_code"] == 75 and "fenced" in fenced["reason"]
    next_start_s = fenced["started_at_ms"] / 1000 + backoff_s(1) + 0.5
    eventually_sync(
        time.time, lambda now: now > next_start_s, what="past the first backoff", timeout_s=10
    )
    assert supervised.worker("sequence")["restart_count"] == 0
    assert supervised.pid("sequence") is None


def test_a_worker_stopped_on_purpose_stays_down_until_handed_back(
    supervised: Supervised,
) -> None:
    """With its stop marker set, a killed worker is left down (`ledger status`: stopped, on
    purpose); once the marker is cleared the supervisor starts it again."""
    pid = eventually_sync(lambda: supervised.pid("held"), what="the supervisor started held")
    assert pid is not None
    hold(supervised.settings, "held", "a test keeps it down")
    os.kill(pid, signal.SIGKILL)
    killed_at_s = time.time()
    eventually_sync(
        lambda: supervised.worker("held"),
        lambda worker: worker.get("state") == "stopped" and worker.get("pid") is None,
        what="the supervisor saw held exit",
        timeout_s=supervised_wait_s,
    )
    [line] = [
        line
        for line in run_ledger("status", env=supervised.env).stdout.splitlines()
        if line.startswith("held ")
    ]
    assert line.split()[1:3] == ["stopped", "-"], line
    assert line.endswith("on purpose: a test keeps it down"), line
    next_start_s = killed_at_s + backoff_s(1) + 0.5
    eventually_sync(
        time.time, lambda now: now > next_start_s, what="past the first backoff", timeout_s=10
    )
    assert supervised.pid("held") is None
    release(supervised.settings, "held")
    restarted = eventually_sync(
        lambda: supervised.worker("held"),
        lambda worker: worker.get("state") == "running" and worker.get("pid") not in (None, pid),
        what="held runs again once handed back",
        timeout_s=supervised_wait_s,
    )
    assert supervised.pid("held") == restarted["pid"]


def test_exits_while_the_services_are_down_never_give_up(tmp_path: Path) -> None:
    """Kafka and PostgreSQL unreachable: a worker that exits at once is restarted again and
    again (after 1, 2, 4 s...), past the three exits that would otherwise give up."""
    commands = {"cannot-start": CANNOT_START}
    with supervisor(tmp_path, commands, unreachable) as running:
        worker = eventually_sync(
            lambda: running.worker("cannot-start"),
            lambda worker: (
                worker.get("restart_count", 0) >= early_exit_count_max
                or worker.get("state") == "gave-up"
            ),
            what="the supervisor restarted cannot-start three times",
            timeout_s=supervised_wait_s,
        )
        assert worker["state"] != "gave-up", worker
