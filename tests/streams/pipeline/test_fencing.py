"""A second sequencer for the same shard fences the first: the chain never forks."""

from __future__ import annotations

import asyncio
import sys

import pytest
from support.ledger_fixture import TestLedger

from ledger.client.publisher import Sealed
from ledger.local import process
from ledger.local.stack import start_worker, stop_worker, worker_commands, worker_files
from ledger.local.workers import hold, release
from ledger.model import Posting, Transfer
from ledger.settings import Settings
from ledger.signing import build_tx_body

from .support import replay_chain, submit_and_wait

pytestmark = pytest.mark.services


def transfers(test_ledger: TestLedger, count: int) -> list[bytes]:
    alice = test_ledger.signer("alice")
    postings = (Posting("alice", "USD", -1), Posting("bob", "USD", 1))
    return [alice.sign(build_tx_body("main", Transfer(postings))) for _ in range(count)]


async def test_two_sequencers_for_one_shard(settings: Settings, test_ledger: TestLedger) -> None:
    """The newer sequencer takes over, the older one stops at its next commit, no height forks."""
    first_pid = process.read_pid(worker_files(settings, "sequence")[0])
    assert first_pid is not None, "the stack's sequencer is not running"
    # Fenced on purpose: the supervisor must not bring it back to fence the standby in turn.
    await asyncio.to_thread(hold, settings, "sequence", "test_fencing: fenced on purpose")
    [before] = await submit_and_wait(settings, transfers(test_ledger, 1))
    assert isinstance(before, Sealed)
    second = "sequence-standby"
    command = [sys.executable, "-m", "streams.worker", "sequence"]
    try:
        await asyncio.to_thread(start_worker, settings, second, command)
        # Both now read ledger.verified; only the newer may commit. Keep traffic flowing.
        outcomes = []
        for _ in range(10):
            outcomes += await submit_and_wait(settings, transfers(test_ledger, 20))
            if not process.pid_alive(first_pid):
                break
        assert all(isinstance(outcome, Sealed) for outcome in outcomes)
        assert await asyncio.to_thread(
            process.wait_until, lambda: not process.pid_alive(first_pid), 30.0
        ), "the fenced sequencer did not stop"
        log = worker_files(settings, "sequence")[1].read_text(errors="replace")
        assert "fenced by a newer sequencer" in log
        replica, tx_ids = await replay_chain(settings, "main")  # raises on a fork or a gap
        assert len(tx_ids) == len(set(tx_ids))
        sealed_ids = {outcome.tx_id for outcome in outcomes if isinstance(outcome, Sealed)}
        assert sealed_ids <= set(tx_ids)
    finally:
        stop_worker(settings, second)
        release(settings, "sequence")
        await asyncio.to_thread(
            start_worker, settings, "sequence", worker_commands(settings)["sequence"]
        )
    [after] = await submit_and_wait(settings, transfers(test_ledger, 1))
    assert isinstance(after, Sealed) and after.height > before.height
