"""``ledger bench-restart``: how long a killed sequencer and projector take to be back at work.

On the local stack (``ledger up``), with whatever history the ledger holds:

  1. count the history (sealed transactions of the demo ledger, from PostgreSQL);
  2. ``kill -9`` the sequencer and the projector, then start both again at t0;
  3. at t0, publish one transfer: the time from t0 until it is sealed is the sequencer's
     restart (snapshot restore, replay of the chain after it, fencing, the first block);
  4. the time from t0 until it is visible in PostgreSQL is the projector's restart on top.

Nothing is mocked: the workers are the real processes with their real state.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import asyncpg

from ledger.client.publisher import Publisher, Sealed
from ledger.errors import InfraError
from ledger.kafka.principals import PUBLISHER
from ledger.local import process
from ledger.local.stack import start_worker, worker_commands, worker_files
from ledger.settings import Settings
from ledger.tools.demo import ensure_demo_ledger, ensure_load_accounts
from ledger.tools.workload import transfers

restarted_roles = ("sequence", "project")
outcome_wait_s = 120.0
visible_poll_s = 0.05


async def run_restart_bench(settings: Settings) -> dict[str, Any]:
    demo = await ensure_demo_ledger(settings)
    accounts = await ensure_load_accounts(settings, demo, 1000)
    connection = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        history = await connection.fetchval(
            "SELECT coalesce(max(seq) + 1, 0) FROM ledger.transactions WHERE ledger = $1",
            demo.ledger,
        )
        [envelope] = transfers(accounts, 1, 1, [int(time.time() * 1000)], validity_ms=120_000)
        async with Publisher(
            settings.kafka(PUBLISHER), client_id="ledger-bench-restart"
        ) as publisher:
            await publisher.submit_and_wait(
                transfers(accounts, 1, 1, [int(time.time() * 1000)], validity_ms=60_000)
            )  # the outcome watcher is following before anything is killed
            _kill(settings)
            started = time.monotonic()
            _start(settings)
            [outcome] = await publisher.submit_and_wait([envelope], timeout_s=outcome_wait_s)
            sealed_s = time.monotonic() - started
        if not isinstance(outcome, Sealed):
            raise InfraError(f"the probe transfer was refused: {outcome}")
        while not await connection.fetchval(
            "SELECT count(*) FROM ledger.transactions WHERE ledger = $1 AND seq = $2",
            demo.ledger,
            outcome.seq,
        ):
            if time.monotonic() - started > outcome_wait_s:
                raise InfraError(f"not visible in PostgreSQL within {outcome_wait_s:.0f} s")
            await asyncio.sleep(visible_poll_s)
        visible_s = time.monotonic() - started
    finally:
        await connection.close()
    return {
        "history_transactions": history,
        "sequencer_restart_to_sealed_s": round(sealed_s, 2),
        "projector_restart_to_visible_s": round(visible_s, 2),
    }


def _kill(settings: Settings) -> None:
    for role in restarted_roles:
        pid = process.read_pid(worker_files(settings, role)[0])
        if pid is None:
            raise InfraError(f"the {role} worker is not running: run `ledger up` first")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)


def _start(settings: Settings) -> None:
    commands = worker_commands(settings)
    for role in restarted_roles:
        start_worker(settings, role, commands[role])
