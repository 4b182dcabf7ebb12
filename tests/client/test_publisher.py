"""Publisher.submit_and_wait on the real pipeline: the outcome of an accepted and a refused tx."""

from __future__ import annotations

import pytest
from support.ledger_fixture import TestLedger, insufficient_amount

from ledger.client.publisher import Publisher, Refused, Sealed
from ledger.model import Posting, Transfer
from ledger.settings import Settings
from ledger.signing import build_tx_body

pytestmark = pytest.mark.services


def _transfer(ledger: TestLedger, payer: str, payee: str, amount: int) -> tuple[bytes, bytes]:
    op = Transfer((Posting(payer, ledger.asset, -amount), Posting(payee, ledger.asset, amount)))
    body = build_tx_body(ledger.ledger, op, external_ref="publisher-test")
    return body.tx_id, ledger.signer(payer).sign(body)


async def test_an_accepted_transfer_is_awaited_until_sealed(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """submit_and_wait returns Sealed with the block height and seq of the transaction."""
    tx_id, envelope = _transfer(test_ledger, test_ledger.alice, test_ledger.bob, 1)
    async with Publisher(settings.kafka_bootstrap_servers) as publisher:
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=60)
    assert isinstance(outcome, Sealed), outcome
    assert outcome.tx_id == tx_id and outcome.ledger == test_ledger.ledger
    assert outcome.height >= 1 and outcome.seq >= 0


async def test_a_refused_transfer_is_awaited_until_refused_with_its_code(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """Spending more than the balance comes back as Refused(INSUFFICIENT_FUNDS) from sequence."""
    tx_id, envelope = _transfer(
        test_ledger, test_ledger.bob, test_ledger.alice, insufficient_amount
    )
    async with Publisher(settings.kafka_bootstrap_servers) as publisher:
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=60)
    assert isinstance(outcome, Refused), outcome
    assert (outcome.tx_id, outcome.code, outcome.stage) == (tx_id, "INSUFFICIENT_FUNDS", "sequence")
    assert test_ledger.bob in outcome.detail


async def test_outcomes_of_a_mixed_batch_come_back_in_submission_order(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """One call, several transactions: each gets its own outcome, in the order given."""
    transfers = [
        _transfer(test_ledger, test_ledger.alice, test_ledger.bob, 2),
        _transfer(test_ledger, test_ledger.bob, test_ledger.alice, insufficient_amount),
        _transfer(test_ledger, test_ledger.bob, test_ledger.alice, 3),
    ]
    async with Publisher(settings.kafka_bootstrap_servers) as publisher:
        outcomes = await publisher.submit_and_wait([e for _, e in transfers], timeout_s=60)
    assert [o.tx_id for o in outcomes] == [tx_id for tx_id, _ in transfers]
    assert [type(o) for o in outcomes] == [Sealed, Refused, Sealed]
