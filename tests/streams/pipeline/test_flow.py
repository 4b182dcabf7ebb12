"""A signed transaction's way through verify, sequence and project, and its duplicates."""

from __future__ import annotations

import pytest
from support.ledger_fixture import TestLedger

from ledger.client.publisher import Refused, Sealed
from ledger.model import Posting, Transfer
from ledger.settings import Settings
from ledger.signing import build_tx_body

from .support import fetch_until, replay_chain, submit_and_wait

pytestmark = pytest.mark.services


def transfer(test_ledger: TestLedger, amount: int, **body: object) -> bytes:
    postings = (Posting("alice", "USD", -amount), Posting("bob", "USD", amount))
    return test_ledger.signer("alice").sign(build_tx_body("main", Transfer(postings), **body))  # type: ignore[arg-type]


async def test_transfer_reaches_a_balance_row_and_a_verified_block(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """A signed transfer is sealed, its block verifies, and PostgreSQL shows the new balances."""
    envelope = transfer(test_ledger, 7, external_ref="flow-1")
    [outcome] = await submit_and_wait(settings, [envelope])
    assert isinstance(outcome, Sealed), outcome
    rows = await fetch_until(
        settings,
        "SELECT t.height, b.balance, b.updated_seq FROM ledger.transactions t "
        "JOIN ledger.balances b ON b.ledger = t.ledger AND b.account = 'bob' "
        "WHERE t.ledger = 'main' AND t.tx_id = $1",
        outcome.tx_id,
    )
    assert rows[0]["height"] == outcome.height
    assert rows[0]["updated_seq"] >= outcome.seq
    replica, _ = await replay_chain(settings, "main")
    assert replica.checkpoint is not None and replica.checkpoint.height >= outcome.height
    assert replica.state.accounts["bob"].balance >= rows[0]["balance"]


async def test_a_transaction_submitted_twice_is_sealed_once(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """The second copy of the same envelope is refused as DUPLICATE; the chain holds one."""
    envelope = transfer(test_ledger, 3)
    [first] = await submit_and_wait(settings, [envelope])
    [second] = await submit_and_wait(settings, [envelope])
    assert isinstance(first, Sealed)
    assert isinstance(second, Refused) and second.code == "DUPLICATE"
    _, tx_ids = await replay_chain(settings, "main")
    assert tx_ids.count(first.tx_id) == 1
    rows = await fetch_until(
        settings,
        "SELECT code FROM ledger.rejections WHERE tx_id = $1",
        first.tx_id,
    )
    assert [row["code"] for row in rows] == ["DUPLICATE"]
