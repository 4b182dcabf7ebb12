"""ledger up/down/status: idempotent, stop exactly what they started, fail in one clear line."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from support.cli import assert_one_line_error, run_ledger
from support.stacks import isolated_stack

from ledger.local import process
from ledger.local.postgres import cluster_directory
from ledger.settings import Settings

pytestmark = pytest.mark.services


@pytest.fixture()
def isolated_env(settings: Settings) -> Iterator[dict[str, str]]:
    """A second stack with its own data directory and ports, so the shared one is untouched."""
    with isolated_stack("test-isolated-stack", settings) as env:
        yield env


async def test_postgres_round_trip(settings: Settings) -> None:
    """asyncpg writes and reads back a row on the project's PostgreSQL."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("CREATE TEMP TABLE probe (id int PRIMARY KEY, note text)")
        await connection.copy_records_to_table("probe", records=[(1, "ledger"), (2, "ok")])
        rows = await connection.fetch("SELECT id, note FROM probe ORDER BY id")
    finally:
        await connection.close()
    assert [tuple(row) for row in rows] == [(1, "ledger"), (2, "ok")]


def test_second_up_is_a_no_op(settings: Settings) -> None:
    """With the stack running, `ledger up` starts nothing and says so."""
    before = {line.split()[0]: line.split()[2] for line in run_ledger("status").stdout.splitlines()}
    result = run_ledger("up")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "already running"
    after = {line.split()[0]: line.split()[2] for line in run_ledger("status").stdout.splitlines()}
    assert before == after


def test_down_stops_everything_it_started(isolated_env: dict[str, str]) -> None:
    """up then down on a separate stack leaves none of its processes running; a second up
    starts a supervisor that is missing; down stops the supervisor first, so that it restarts
    nothing down stops."""
    assert run_ledger("up", env=isolated_env).returncode == 0
    supervisor_pid_file = Path(isolated_env["LEDGER_DATA_DIR"]) / "workers" / "supervisor.pid"
    assert process.stop(supervisor_pid_file, 10.0)
    again = run_ledger("up", env=isolated_env)  # the workers run: only the supervisor is missing
    assert again.stdout.strip() == "started: supervisor", (again.stdout, again.stderr)
    status = run_ledger("status", "--json", env=isolated_env).stdout
    pids = [component["pid"] for component in json.loads(status).values()]
    assert all(pids) and "supervisor" in json.loads(status)
    result = run_ledger("down", env=isolated_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stopped: supervisor, "), result.stdout
    assert "postgres" in result.stdout and "kafka" in result.stdout
    assert not any(process.pid_alive(pid) for pid in pids)
    assert run_ledger("down", env=isolated_env).stdout.strip() == "nothing was running"


def test_busy_port_is_one_clear_line(isolated_env: dict[str, str]) -> None:
    """A port taken by another program stops `up` with the port, the cause and the setting."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", int(isolated_env["LEDGER_KAFKA_PORT"])))
        squatter.listen()
        result = run_ledger("up", env=isolated_env)
    line = assert_one_line_error(result, 3)
    assert isolated_env["LEDGER_KAFKA_PORT"] in line, line
    assert "LEDGER_KAFKA_PORT" in line, line


def test_missing_java_is_one_clear_line(isolated_env: dict[str, str]) -> None:
    """Without java on PATH, `up` says so and how to fix it."""
    path = os.pathsep.join(
        directory
        for directory in os.environ["PATH"].split(os.pathsep)
        if not (Path(directory) / "java").exists()
    )
    result = run_ledger("up", env={**isolated_env, "PATH": path})
    line = assert_one_line_error(result, 3)
    assert "java" in line, line
    assert "install" in line, line


def test_unreachable_broker_is_one_clear_line_within_bounds(settings: Settings) -> None:
    """A KAFKA_BOOTSTRAP_SERVERS that answers nothing fails `up` after a bounded wait."""
    result = run_ledger("up", env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, timeout_s=60)
    line = assert_one_line_error(result, 3)
    assert "127.0.0.1:1" in line, line
    assert "did not become ready" in line, line


def test_stale_pid_file_is_ignored(isolated_env: dict[str, str]) -> None:
    """A pid file naming a dead process does not stop `up`, and is replaced."""
    node_dir = Path(isolated_env["LEDGER_DATA_DIR"]) / "kafka" / "cluster" / "node-1"
    node_dir.mkdir(parents=True)
    (node_dir / "kafka.pid").write_text("999999\n")
    assert run_ledger("up", env=isolated_env).returncode == 0
    pid = process.read_pid(node_dir / "kafka.pid")
    assert pid is not None and pid != 999999


def test_half_initialised_postgres_directory_is_one_clear_line(
    isolated_env: dict[str, str],
) -> None:
    """A PostgreSQL data directory with stray files and no cluster is reported, not clobbered."""
    data = cluster_directory(Path(isolated_env["LEDGER_DATA_DIR"]) / "postgres") / "data"
    data.mkdir(parents=True)
    (data / "stray").write_text("x")
    result = run_ledger("up", env=isolated_env)
    line = assert_one_line_error(result, 3)
    assert str(data) in line, line
    assert "remove it" in line, line
    assert (data / "stray").exists()
