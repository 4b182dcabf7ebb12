"""The coordinator's reading of the chains, without services: the shards are read side by side
in no order, so what it learns must not depend on which shard it read first."""

from __future__ import annotations

from ledger.crossshard import Destination, Outcome, Step, destination_memo, step_tx_id
from ledger.model import Capture, DefineAsset, Hold, Posting, Transfer, TxBody
from ledger.settings import Settings
from streams.crossshard import Coordinator

HOLD_ID = bytes(range(16))
SEALED_AT_MS = 1_800_000_000_000


def coordinator() -> Coordinator:
    settings = Settings.from_env()
    settings = settings.__class__(**{**vars(settings), "shards": ("main", "east")})
    found = Coordinator(settings, lambda ledger, asset: None)
    for ledger in ("main", "east"):
        body = TxBody(bytes(16), ledger, 0, 1, DefineAsset("USD", 2, "usd.issuer"))
        found.on_sealed(ledger, body, SEALED_AT_MS)
    return found


def hold() -> TxBody:
    op = Hold("alice", "usd.issuer", "USD", 25, SEALED_AT_MS + 600_000)
    memo = destination_memo(Destination("east", "bob"))
    return TxBody(HOLD_ID, "main", SEALED_AT_MS, SEALED_AT_MS + 60_000, op, memo=memo)


def capture() -> TxBody:
    tx_id = step_tx_id(HOLD_ID, Step.CAPTURE)
    return TxBody(tx_id, "main", SEALED_AT_MS, SEALED_AT_MS + 1, Capture(HOLD_ID))


def credit(account: str = "bob", amount: int = 25) -> TxBody:
    op = Transfer((Posting("usd.issuer", "USD", -amount), Posting(account, "USD", amount)))
    memo = f"xshard:v1:from:main:{HOLD_ID.hex()}"
    return TxBody(
        step_tx_id(HOLD_ID, Step.CREDIT), "east", SEALED_AT_MS, SEALED_AT_MS + 1, op, memo=memo
    )


def test_steps_read_before_their_hold_still_count() -> None:
    """East's credit and main's capture read before main's hold: once the hold is read, the
    transfer is complete and nothing is sent again (a resend after the window would seal twice)."""
    found = coordinator()
    found.on_sealed("east", credit(), SEALED_AT_MS + 900)
    found.on_sealed("main", capture(), SEALED_AT_MS + 500)
    found.on_sealed("main", hold(), SEALED_AT_MS)
    assert found.progress[HOLD_ID].outcome is Outcome.COMPLETED
    assert found.due(SEALED_AT_MS + 120_000) == []


def test_a_foreign_transaction_under_the_credit_id_does_not_count_as_the_credit() -> None:
    """Someone's own transfer sealed under the credit's tx_id moved nothing of this transfer:
    it is not taken for the credit, and the payer is refunded instead."""
    found = coordinator()
    found.on_sealed("main", hold(), SEALED_AT_MS)
    found.on_sealed("main", capture(), SEALED_AT_MS + 500)
    found.on_sealed("east", credit(account="mallory", amount=1), SEALED_AT_MS + 900)
    progress = found.progress[HOLD_ID]
    assert not progress.credited and progress.next_step() is Step.REFUND
