"""The running stack under its supervisor: a worker killed with kill -9 comes back by itself,
and `ledger stop` keeps one down until `ledger start`."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.cli import assert_one_line_error, run_ledger
from support.waiting import eventually_sync

from ledger.local import process
from ledger.local.stack import worker_commands
from ledger.local.supervision import backoff_s
from ledger.local.workers import release, start_worker
from ledger.settings import Settings

pytestmark = pytest.mark.services

WORKER = "finality"
"""A worker whose restart costs little (no chain replay) and disturbs no other test."""

restart_wait_s = 15.0
"""The supervisor notices an exit within 0.25 s and restarts after 1 s: a few seconds at most."""


def component(name: str) -> dict[str, Any]:
    """``ledger status --json``'s entry for one component."""
    result = run_ledger("status", "--json")
    assert result.returncode == 0, result.stderr
    entry: dict[str, Any] = json.loads(result.stdout)[name]
    return entry


def status_line(name: str) -> str:
    [line] = [line for line in run_ledger("status").stdout.splitlines() if line.split()[0] == name]
    return line


@pytest.fixture()
def worker_back_afterwards(settings: Settings) -> Iterator[str]:
    """The worker this test kills or stops runs again afterwards, whatever happened."""
    try:
        yield WORKER
    finally:
        release(settings, WORKER)
        start_worker(settings, WORKER, worker_commands(settings)[WORKER])


def test_a_worker_killed_with_kill_9_comes_back(worker_back_afterwards: str) -> None:
    """kill -9 of a worker: `ledger status` shows it running again with a new pid within
    seconds, its restarts one more."""
    before = eventually_sync(
        lambda: component(WORKER), lambda entry: entry["running"], what=f"{WORKER} runs"
    )
    assert component("supervisor")["running"], "ledger up starts the supervisor"
    os.kill(before["pid"], signal.SIGKILL)
    after = eventually_sync(
        lambda: component(WORKER),
        lambda entry: entry["running"] and entry["pid"] != before["pid"],
        what=f"{WORKER} runs again with another pid",
        timeout_s=restart_wait_s,
    )
    assert after["restart_count"] == before["restart_count"] + 1, (before, after)
    line = status_line(WORKER)
    assert f"pid {after['pid']}" in line and f"restarts {after['restart_count']}" in line, line


def test_ledger_stop_keeps_a_worker_down_until_ledger_start(worker_back_afterwards: str) -> None:
    """`ledger stop` stops the worker and the supervisor leaves it down, saying why; `ledger
    start` hands it back and it runs again."""
    pid = eventually_sync(
        lambda: component(WORKER), lambda entry: entry["running"], what=f"{WORKER} runs"
    )["pid"]
    stopped = run_ledger("stop", WORKER, "--reason", "test_supervised_stack")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopped {WORKER}"
    assert not process.pid_alive(pid)
    stopped_at_s = time.time()
    # The supervisor would have restarted a worker that merely exited by now.
    eventually_sync(
        time.time,
        lambda now: now > stopped_at_s + backoff_s(1) + 1.0,
        what="past the first backoff",
        timeout_s=10,
    )
    entry = component(WORKER)
    assert not entry["running"] and entry["state"] == "stopped", entry
    assert entry["detail"].startswith("on purpose: test_supervised_stack ("), entry
    assert "on purpose: test_supervised_stack" in status_line(WORKER)

    started = run_ledger("start", WORKER)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"started {WORKER}"
    entry = component(WORKER)
    assert entry["running"] and entry["pid"] != pid and entry["detail"] == "", entry
    again = run_ledger("start", WORKER)
    assert again.stdout.strip() == f"{WORKER} already runs"


def test_stop_and_start_name_a_worker_that_exists() -> None:
    """An unknown worker name is one line and exit 4, for both commands."""
    for command in ("stop", "start"):
        line = assert_one_line_error(run_ledger(command, "no-such-worker"), 4)
        assert "no-such-worker" in line and "ledger status" in line, line
