"""``ledger balance`` and ``ledger tx`` read what the projector wrote to PostgreSQL."""

from __future__ import annotations

import json

import pytest
from support.cli import (
    assert_one_line_error,
    run_ledger,
    submit_transfer,
    unreachable_services_env,
)
from support.ledger_fixture import TestLedger, insufficient_amount
from support.waiting import eventually_sync

pytestmark = pytest.mark.services


def query_json(*args: str) -> dict[str, object]:
    """The JSON of ``ledger ARGS --json`` once it succeeds (the projector trails the chain)."""
    result = eventually_sync(
        lambda: run_ledger(*args, "--json"),
        lambda found: found.returncode == 0,
        what=f"ledger {' '.join(args)} --json succeeds",
        interval_s=0.5,
    )
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_balance_moves_with_a_sealed_transfer(test_ledger: TestLedger) -> None:
    """After a sealed transfer of 5, bob's balance in PostgreSQL is 5 higher."""
    before = query_json("balance", "bob")
    sealed = submit_transfer(test_ledger, 5)
    after = eventually_sync(
        lambda: query_json("balance", "bob"),
        lambda found: int(str(found["updated_height"])) >= int(str(sealed["height"])),
        what=f"bob's balance projected to the transfer's block {sealed['height']}",
        interval_s=0.5,
    )
    assert int(str(after["balance"])) >= int(str(before["balance"])) + 5
    assert after["available"] == int(str(after["balance"])) - int(str(after["held"]))
    assert after["asset"] == "USD" and after["status"] == "active"


def test_tx_shows_sealed_and_refused(test_ledger: TestLedger) -> None:
    """ledger tx names the block and seq of a sealed transfer, and the code of a refused one."""
    sealed = submit_transfer(test_ledger, 1)
    refused = submit_transfer(test_ledger, insufficient_amount)
    found = query_json("tx", str(sealed["tx_id"]))
    assert (found["status"], found["height"], found["seq"]) == (
        "sealed",
        sealed["height"],
        sealed["seq"],
    )
    found = query_json("tx", str(refused["tx_id"]))
    assert found["status"] == "refused"
    assert [r["code"] for r in found["rejections"]] == ["INSUFFICIENT_FUNDS"]  # type: ignore[attr-defined]
    text = run_ledger("tx", str(sealed["tx_id"]))
    assert text.returncode == 0 and text.stdout.startswith("sealed: ledger main, block ")


def test_unknown_names_and_unreachable_database_are_one_line() -> None:
    """An unknown account or tx exits 1, a malformed tx_id 2, no PostgreSQL 3: one line each."""
    assert "no account" in assert_one_line_error(run_ledger("balance", "no-such-account"), 1)
    assert "neither sealed nor refused" in assert_one_line_error(run_ledger("tx", "00" * 16), 1)
    assert_one_line_error(run_ledger("tx", "xyz"), 2)
    assert_one_line_error(run_ledger("balance", "bob", env=unreachable_services_env()), 3)
