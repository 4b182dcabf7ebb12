"""``ledger reconcile`` matches a CSV statement against what the ledger sealed."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.cli import run_ledger
from support.ledger_fixture import TestLedger
from support.waiting import eventually_sync

from ledger.client.publisher import Publisher, Sealed
from ledger.kafka.principals import ADMIN
from ledger.model import Posting, Transfer
from ledger.settings import Settings
from ledger.signing import build_tx_body

pytestmark = pytest.mark.services


def test_statement_against_the_ledger(
    settings: Settings, test_ledger: TestLedger, tmp_path: Path
) -> None:
    """A matching line, a wrong amount and an unknown reference are told apart; with a period,
    a sealed payment the statement forgot shows up too. Exit 1 unless everything matches."""
    tag = os.urandom(4).hex()
    alice = test_ledger.signer("alice")

    def pay(reference: str, amount: int) -> bytes:
        postings = (Posting("alice", "USD", -amount), Posting("bob", "USD", amount))
        return alice.sign(
            build_tx_body("main", Transfer(postings), external_ref=f"{reference}-{tag}")
        )

    async def publish() -> None:
        async with Publisher(settings.kafka(ADMIN)) as publisher:
            outcomes = await publisher.submit_and_wait([pay("A", 11), pay("B", 22), pay("C", 33)])
        assert all(isinstance(outcome, Sealed) for outcome in outcomes)

    since = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    asyncio.run(publish())
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "external_ref,account,amount,asset\n"
        f"A-{tag},bob,11,USD\nB-{tag},bob,20,USD\nZ-{tag},bob,5,USD\n"
    )
    result = eventually_sync(  # the projector trails the chain by a moment
        lambda: run_ledger("reconcile", str(statement), "--json"),
        lambda found: json.loads(found.stdout)["counts"]["matched"] == 1,
        what="reconcile matches the statement's line A",
        interval_s=0.5,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert [item["external_ref"] for item in report["matched"]] == [f"A-{tag}"]
    assert [item["ledger_amount"] for item in report["amount_mismatch"]] == [22]
    assert [item["external_ref"] for item in report["missing_in_ledger"]] == [f"Z-{tag}"]
    with_period = json.loads(
        run_ledger("reconcile", str(statement), "--since", since, "--json").stdout
    )
    assert f"C-{tag}" in [item["external_ref"] for item in with_period["missing_in_statement"]]

    clean = tmp_path / "clean.csv"
    clean.write_text(f"external_ref,account,amount\nA-{tag},bob,11\nA-{tag},alice,-11\n")
    result = run_ledger("reconcile", str(clean))
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("matched 2, amount mismatch 0")
