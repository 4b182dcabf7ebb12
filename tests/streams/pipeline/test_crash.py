"""kill -9 of any worker at any moment loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time

import asyncpg
import pytest
from support.ledger_fixture import TestLedger

from ledger import codec
from ledger.client.publisher import Publisher
from ledger.kafka.principals import ADMIN
from ledger.local import process
from ledger.local.stack import start_worker, worker_commands, worker_files
from ledger.settings import Settings
from ledger.tools.demo import ensure_demo_ledger, ensure_load_accounts
from ledger.tools.workload import transfers

from .support import fetch_until, replay_chain

pytestmark = pytest.mark.services

transaction_count = 20_000
kills_per_role = 5
publish_chunk_count = 400
settle_wait_s = 300.0


async def kill_and_restart(settings: Settings, name: str, rng: random.Random) -> None:
    """SIGKILL one worker (no warning, no cleanup), then start it again a moment later."""
    pid = process.read_pid(worker_files(settings, name)[0])
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait_until, lambda: not process.pid_alive(pid), 10.0)
    await asyncio.sleep(rng.uniform(0.0, 0.5))
    await asyncio.to_thread(start_worker, settings, name, worker_commands(settings)[name])


async def killer(settings: Settings, rng: random.Random, stop: asyncio.Event) -> dict[str, int]:
    """Kill verify, sequence and project workers in turn at random moments until told to stop."""
    verify_workers = [name for name in worker_commands(settings) if name.startswith("verify")]
    kills = {"verify": 0, "sequence": 0, "project": 0}
    turn = 0
    while min(kills.values()) < kills_per_role or not stop.is_set():
        role = ("verify", "sequence", "project")[turn % 3]
        turn += 1
        name = rng.choice(verify_workers) if role == "verify" else role
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        await kill_and_restart(settings, name, rng)
        kills[role] += 1
        if stop.is_set() and min(kills.values()) >= kills_per_role:
            break
    return kills


def restart_stopped_workers(settings: Settings) -> None:
    """Start any worker the killer left dead (it may have been cancelled between kill and start)."""
    for name, command in worker_commands(settings).items():
        start_worker(settings, name, command)


async def test_kill_9_during_load(settings: Settings, test_ledger: TestLedger) -> None:
    """Under 20,000 transfers and repeated kill -9 of every worker, each accepted tx_id is sealed
    exactly once, the chain verifies without a fork, and PostgreSQL equals a replay of the chain."""
    demo = await ensure_demo_ledger(settings, test_ledger.ledger)
    accounts = await ensure_load_accounts(settings, demo, 200)
    created = int(time.time() * 1000)
    envelopes = transfers(
        accounts, transaction_count, 1, [created] * transaction_count, seed=created
    )
    tx_ids = {codec.decode_submission(envelope)[1].tx_id for envelope in envelopes}
    rng = random.Random(created)
    stop = asyncio.Event()
    killing = asyncio.create_task(killer(settings, rng, stop))
    try:
        async with Publisher(settings.kafka(ADMIN)) as publisher:
            for start in range(0, transaction_count, publish_chunk_count):
                await publisher.submit_many(envelopes[start : start + publish_chunk_count])
                await asyncio.sleep(0.4)
    except BaseException:
        # The killer must not outlive this test: it would go on killing under later tests.
        killing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await killing
        restart_stopped_workers(settings)
        raise
    stop.set()
    kills = await killing
    assert min(kills.values()) >= kills_per_role, kills

    # Every transfer is funded, so every one must end up sealed (some copies refused as DUPLICATE).
    await fetch_until(
        settings,
        "SELECT count(*) AS sealed FROM ledger.transactions WHERE ledger = 'main' AND tx_id = ANY($1::bytea[])",
        list(tx_ids),
        done=lambda rows: rows[0]["sealed"] >= transaction_count,
        timeout_s=settle_wait_s,
    )
    replica, chain_tx_ids = await replay_chain(settings, "main")  # verifies every block
    ours = [tx_id for tx_id in chain_tx_ids if tx_id in tx_ids]
    assert len(ours) == transaction_count and set(ours) == tx_ids, "lost or duplicated transactions"
    assert len(chain_tx_ids) == len(set(chain_tx_ids)), "a tx_id sealed twice"
    await assert_postgres_equals_replay(settings)


async def assert_postgres_equals_replay(settings: Settings) -> None:
    """Blocks, transactions and balances in PostgreSQL are those of a replay to the same height.

    Other clients may still be writing, so the comparison is at the projector's tracked height:
    rows updated later are checked through balance_at at that height.
    """
    connection = await asyncpg.connect(settings.database_url)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            height = await connection.fetchval(
                "SELECT position FROM ledger.tracking WHERE processor = 'project' AND stream = 'blocks:main'"
            )
            blocks = await connection.fetchrow(
                "SELECT count(*) AS count, max(height) AS top, sum(tx_count) AS sealed "
                "FROM ledger.blocks WHERE ledger = 'main'"
            )
            projected = await connection.fetchval(
                "SELECT count(*) FROM ledger.transactions WHERE ledger = 'main'"
            )
            rows = await connection.fetch(
                "SELECT account, balance, held, updated_height, "
                "analytics.balance_at('main', account, $1) AS balance_then "
                "FROM ledger.balances WHERE ledger = 'main'",
                height,
            )
    finally:
        await connection.close()
    replica, chain_tx_ids = await replay_chain(settings, "main", until_height=height)
    assert replica.checkpoint is not None and replica.checkpoint.height == height
    assert blocks["top"] == height and blocks["count"] == height + 1
    assert projected == blocks["sealed"] == len(chain_tx_ids)
    replayed = {
        name: (account.balance, account.held) for name, account in replica.state.accounts.items()
    }
    in_postgres = {
        row["account"]: (row["balance"], row["held"])
        if row["updated_height"] <= height
        else (row["balance_then"], replayed.get(row["account"], (0, 0))[1])
        for row in rows
        if row["updated_height"] <= height or row["balance_then"] is not None
    }
    assert in_postgres == replayed
