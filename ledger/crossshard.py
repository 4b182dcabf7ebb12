"""Cross-shard transfers: money from an account on one shard to an account on another, atomic,
built only from the ledger's own signed operations. Pure: no I/O.

Each asset's issuer account is the clearing account on every shard (issuing is a transfer out of
it, so it may go negative): money leaves the source shard into its issuer account and enters the
destination shard from its issuer account, so for each asset the sum of all balances over all
shards is unchanged, and each step is a sealed, signed transaction anyone can audit.

1. The payer signs, on the source shard, a **Hold** of the amount for the asset's issuer account,
   whose memo names the destination: ``xshard:v1:<ledger>:<account>``. Its tx_id names the
   cross-shard transfer. Nothing moves yet; the payer's funds are reserved.
2. The coordinator (``streams.crossshard``, holding each shard's clearing key, which owns the
   issuer account) **Captures** the hold: the money is now in the source issuer account.
3. It **credits** the destination: a Transfer from the destination issuer account to the account,
   memo ``xshard:v1:from:<ledger>:<hold tx_id>``.
4. If the destination refuses the credit (no such account, another asset, frozen...), it
   **refunds** the payer on the source shard, a Transfer from the issuer account back to the payer.
   If the hold expires before step 2 (the coordinator was down too long), nothing moved, and the
   transfer is over.

Every step's tx_id is derived from the hold's (``step_tx_id``), so a step sent twice is refused
DUPLICATE, and the coordinator's whole progress is in the chains: it reads them to know what was
sealed, and it resumes after a crash from there. An auditor checks that each captured hold has
exactly one credit or one refund of its amount (``audit``).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ledger.model import Capture, Hold, Posting, Transfer, TxBody

MEMO_PREFIX: Final = "xshard:v1:"
CREDIT_MEMO_PREFIX: Final = "xshard:v1:from:"
REFUND_MEMO_PREFIX: Final = "xshard:v1:refund:"


class Step(enum.Enum):
    CAPTURE = "capture"
    CREDIT = "credit"
    REFUND = "refund"


class Outcome(enum.Enum):
    PENDING = "pending"
    """Held; the coordinator has work to do."""
    COMPLETED = "completed"
    """Captured on the source shard and credited on the destination: done on both sides."""
    REFUNDED = "refunded"
    """The destination refused: captured and given back on the source shard, done on neither."""
    EXPIRED = "expired"
    """The hold ran out before it was captured: nothing moved anywhere."""


@dataclass(frozen=True, slots=True)
class Destination:
    ledger: str
    account: str


def destination_memo(destination: Destination) -> str:
    return f"{MEMO_PREFIX}{destination.ledger}:{destination.account}"


def destination_of(body: TxBody) -> Destination | None:
    """The destination a cross-shard Hold names in its memo; None for any other transaction."""
    if not isinstance(body.op, Hold) or body.memo is None:
        return None
    if not body.memo.startswith(MEMO_PREFIX) or body.memo.startswith(CREDIT_MEMO_PREFIX):
        return None
    ledger, separator, account = body.memo[len(MEMO_PREFIX) :].partition(":")
    if not separator or not ledger or not account:
        return None
    return Destination(ledger, account)


def step_tx_id(hold_id: bytes, step: Step) -> bytes:
    """The tx_id of a step of the cross-shard transfer named by its hold's tx_id."""
    return hashlib.sha256(b"ledger.v1.xshard\x00" + step.value.encode() + hold_id).digest()[:16]


step_window_ms: Final = 30_000
"""Every copy of a step is valid in one of consecutive windows of this length, counted from the
block that sealed the hold: copies sent in one window share its exact validity."""


def step_window(hold_sealed_at_ms: int, now_ms: int, skew_ms: int) -> tuple[int, int] | None:
    """(created_at_ms, expires_at_ms) for a copy of a step sent at ``now_ms``, or None: wait.

    Why windows: a step's tx_id is fixed, and the sequencer refuses a second copy as DUPLICATE
    only while the first is remembered, until its expiry. Copies sent in the same window have
    the same expiry, so either the first is sealed and the others are DUPLICATE, or none is
    sealed before that expiry and all are EXPIRED. A copy of the next window is sent only once
    ``skew_ms`` more have passed, when no block can still be sealed at a time within the old
    window (block times do not go back, and clocks agree within ``skew_ms``): whoever sends it
    has read the chain, and knows the step was not sealed. So a step is sealed at most once,
    across coordinator crashes and restarts, for as long as it takes.
    """
    epoch = max(0, (now_ms - hold_sealed_at_ms) // step_window_ms)
    created_at_ms = hold_sealed_at_ms + epoch * step_window_ms
    if epoch and now_ms - created_at_ms < skew_ms:
        return None
    return created_at_ms, created_at_ms + step_window_ms


@dataclass(frozen=True, slots=True)
class CrossShard:
    """One cross-shard transfer, as its source Hold says."""

    hold_id: bytes
    source: str
    payer: str
    clearing_account: str
    asset: str
    amount: int
    expires_at_ms: int
    destination: Destination

    def capture(self) -> Capture:
        return Capture(self.hold_id)

    def credit(self, destination_clearing_account: str) -> Transfer:
        return Transfer(
            (
                Posting(destination_clearing_account, self.asset, -self.amount),
                Posting(self.destination.account, self.asset, self.amount),
            )
        )

    def refund(self) -> Transfer:
        return Transfer(
            (
                Posting(self.clearing_account, self.asset, -self.amount),
                Posting(self.payer, self.asset, self.amount),
            )
        )

    def credit_memo(self) -> str:
        return f"{CREDIT_MEMO_PREFIX}{self.source}:{self.hold_id.hex()}"


def cross_shard_of(body: TxBody, issuer_accounts: dict[str, str]) -> CrossShard | None:
    """The cross-shard transfer a sealed Hold starts: its payee is the asset's issuer account
    (``issuer_accounts``: asset -> issuer account on the source shard) and its memo names a
    destination. None for anything else."""
    destination = destination_of(body)
    op = body.op
    if destination is None or not isinstance(op, Hold):
        return None
    if issuer_accounts.get(op.asset) != op.payee:
        return None
    return CrossShard(
        hold_id=body.tx_id,
        source=body.ledger,
        payer=op.payer,
        clearing_account=op.payee,
        asset=op.asset,
        amount=op.amount,
        expires_at_ms=op.expires_at_ms,
        destination=destination,
    )


@dataclass
class Progress:
    """What the chains say of one cross-shard transfer; ``next_step`` says what to do."""

    transfer: CrossShard
    captured: bool = False
    capture_refused: bool = False
    credited: bool = False
    credit_refused: bool = False
    refunded: bool = False

    @property
    def outcome(self) -> Outcome:
        if self.captured and self.credited:
            return Outcome.COMPLETED
        if self.captured and self.refunded:
            return Outcome.REFUNDED
        if self.capture_refused and not self.captured:
            return Outcome.EXPIRED
        return Outcome.PENDING

    def next_step(self) -> Step | None:
        """The step to send now (sending it twice is harmless), or None when there is none."""
        if self.outcome is not Outcome.PENDING:
            return None
        if not self.captured:
            return Step.CAPTURE
        if self.credit_refused:
            return Step.REFUND
        return Step.CREDIT


@dataclass(frozen=True, slots=True)
class AuditFinding:
    hold_id: bytes
    problem: str


def audit(
    captured: dict[bytes, int],
    credited: dict[bytes, list[int]],
    refunded: dict[bytes, list[int]],
) -> list[AuditFinding]:
    """Each captured cross-shard hold (hold_id -> amount) has exactly one credit or one refund of
    its amount, and nothing is credited or refunded without a captured hold."""
    findings = []
    for hold_id, amount in captured.items():
        moves = credited.get(hold_id, []) + refunded.get(hold_id, [])
        if moves != [amount]:
            findings.append(AuditFinding(hold_id, f"captured {amount}, then moved {moves}"))
    for hold_id in set(credited) | set(refunded):
        if hold_id not in captured:
            findings.append(AuditFinding(hold_id, "credited or refunded without a captured hold"))
    return findings


def conservation(balances: Iterable[tuple[str, int]]) -> dict[str, int]:
    """The sum of all balances per asset over every shard (issuer accounts included): zero when
    no money was created or destroyed, whatever moved between shards."""
    totals: dict[str, int] = {}
    for asset, balance in balances:
        totals[asset] = totals.get(asset, 0) + balance
    return totals
