"""The cross-shard protocol's pure rules: which Hold starts a cross-shard transfer, each step's
fixed tx_id, what to do next from what the chains say, and the audit."""

from __future__ import annotations

import pytest

from ledger.crossshard import (
    AuditFinding,
    CrossShard,
    Destination,
    Outcome,
    Progress,
    Step,
    audit,
    conservation,
    cross_shard_of,
    destination_memo,
    destination_of,
    step_tx_id,
    step_window,
    step_window_ms,
)
from ledger.model import Attest, Hold, Transfer, TxBody

ISSUERS = {"USD": "usd.issuer"}
HOLD_ID = bytes(range(16))


def hold_body(memo: str | None, payee: str = "usd.issuer") -> TxBody:
    return TxBody(
        HOLD_ID, "main", 1_000, 2_000, Hold("alice", payee, "USD", 25, 600_000), memo=memo
    )


def transfer() -> CrossShard:
    found = cross_shard_of(hold_body(destination_memo(Destination("east", "bob"))), ISSUERS)
    assert found is not None
    return found


def test_only_a_hold_for_the_issuer_naming_a_destination_starts_one() -> None:
    """The memo names the destination; the payee must be the asset's issuer account; anything
    else (another payee, no memo, a malformed memo, another operation) is not cross-shard."""
    assert transfer() == CrossShard(
        HOLD_ID, "main", "alice", "usd.issuer", "USD", 25, 600_000, Destination("east", "bob")
    )
    memo = destination_memo(Destination("east", "bob"))
    assert cross_shard_of(hold_body(memo, payee="bob"), ISSUERS) is None
    assert cross_shard_of(hold_body(None), ISSUERS) is None
    for bad in ("xshard:v1:east", "xshard:v1::bob", "xshard:v1:east:", "xshard:v1:from:main:ab"):
        assert destination_of(hold_body(bad)) is None, bad
    attest = TxBody(HOLD_ID, "main", 1_000, 2_000, Attest(bytes(32)), memo=memo)
    assert destination_of(attest) is None


def test_account_names_may_hold_colons() -> None:
    """Everything after the ledger is the account."""
    assert destination_of(hold_body("xshard:v1:east:desk:7")) == Destination("east", "desk:7")


def test_each_step_has_its_own_fixed_tx_id() -> None:
    """Derived from the hold's tx_id: three distinct 16-byte ids, the same every time."""
    ids = {step_tx_id(HOLD_ID, step) for step in Step}
    assert len(ids) == 3 and all(len(tx_id) == 16 for tx_id in ids)
    assert step_tx_id(HOLD_ID, Step.CREDIT) == step_tx_id(HOLD_ID, Step.CREDIT)
    assert step_tx_id(bytes(16), Step.CREDIT) != step_tx_id(HOLD_ID, Step.CREDIT)


def test_the_steps_move_the_right_money() -> None:
    """The credit moves the amount from the destination's issuer account to the account, the
    refund from the source's issuer account back to the payer."""
    credit = transfer().credit("usd.issuer.east")
    refund = transfer().refund()
    assert isinstance(credit, Transfer) and isinstance(refund, Transfer)
    assert [(p.account, p.amount) for p in credit.postings] == [
        ("usd.issuer.east", -25),
        ("bob", 25),
    ]
    assert [(p.account, p.amount) for p in refund.postings] == [("usd.issuer", -25), ("alice", 25)]


@pytest.mark.parametrize(
    ("facts", "step", "outcome"),
    [
        ({}, Step.CAPTURE, Outcome.PENDING),
        ({"captured": True}, Step.CREDIT, Outcome.PENDING),
        ({"captured": True, "credited": True}, None, Outcome.COMPLETED),
        ({"captured": True, "credit_refused": True}, Step.REFUND, Outcome.PENDING),
        ({"captured": True, "credit_refused": True, "refunded": True}, None, Outcome.REFUNDED),
        ({"capture_refused": True}, None, Outcome.EXPIRED),
        ({"credit_refused": True}, Step.CAPTURE, Outcome.PENDING),
    ],
)
def test_next_step_follows_the_chains(
    facts: dict[str, bool], step: Step | None, outcome: Outcome
) -> None:
    """Capture first; then credit, or refund once the destination refused; nothing after an
    end. A destination known to refuse still captures first (then refunds)."""
    progress = Progress(transfer(), **facts)
    assert progress.next_step() is step and progress.outcome is outcome


def test_audit_finds_every_broken_transfer() -> None:
    """One credit or one refund of the captured amount passes; two, none, another amount, or a
    credit without a capture is a finding."""
    a, b, c, d, e = (bytes([n]) * 16 for n in range(5))
    captured = {a: 5, b: 5, c: 5, d: 5}
    credited = {a: [5], b: [5, 5], d: [4], e: [3]}
    refunded = {b: [5]}
    findings = {finding.hold_id: finding.problem for finding in audit(captured, credited, refunded)}
    assert set(findings) == {b, c, d, e}
    assert audit({a: 5}, {a: [5]}, {}) == []
    assert audit({a: 5}, {}, {a: [5]}) == []
    assert isinstance(audit({a: 5}, {}, {})[0], AuditFinding)


def test_conservation_sums_every_asset_over_all_shards() -> None:
    """Issuer accounts included, every asset's total is zero when nothing was created."""
    totals = conservation([("USD", -100), ("USD", 70), ("USD", 30), ("EUR", -5), ("EUR", 5)])
    assert totals == {"USD": 0, "EUR": 0}


def test_copies_of_a_step_share_their_window_and_a_new_window_waits_out_the_skew() -> None:
    """Sent any time in one window, a step's copies have the same validity; the next window's
    first copy waits until no block can still be sealed inside the old one."""
    base, window, skew = 1_000_000, step_window_ms, 5_000
    assert step_window(base, base + 10, skew) == (base, base + window)
    assert step_window(base, base + window - 1, skew) == (base, base + window)
    assert step_window(base, base + window + skew - 1, skew) is None
    assert step_window(base, base + window + skew, skew) == (base + window, base + 2 * window)
    assert step_window(base, base - 50, skew) == (base, base + window)  # a clock a bit behind
