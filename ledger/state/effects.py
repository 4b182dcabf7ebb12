"""What an accepted transaction (or the start of a block) changes, as small immutable values.

The projector writes PostgreSQL rows from these without re-deriving anything, and ``apply``
writes the state from them: every effect carries the values *after* the change. Effects of one
transaction are ordered: postings first, then balances, then the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.model import AccountStatus, Tx
from ledger.state.state import AccountPolicy, HoldStatus


@dataclass(frozen=True, slots=True)
class Posted:
    """One line of a money movement: ``amount`` minor units of ``asset``, negative = debit.

    Transfers post their own postings; a Capture posts payer -amount and payee +amount.
    The lines of one transaction sum to zero per asset.
    """

    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class BalanceChanged:
    """An account's balance and held amount after the change (available = balance - held)."""

    account: str
    asset: str
    balance: int
    held: int


@dataclass(frozen=True, slots=True)
class AccountOpened:
    """A new account, with balance 0 and held 0."""

    account: str
    asset: str
    max_balance: int | None
    allow_negative: bool


@dataclass(frozen=True, slots=True)
class AccountStatusChanged:
    account: str
    status: AccountStatus
    previous_status: AccountStatus


@dataclass(frozen=True, slots=True)
class AssetDefined:
    """A new asset; its issuer account arrives as an ``AccountOpened`` in the same effects."""

    asset: str
    scale: int
    issuer_account: str


@dataclass(frozen=True, slots=True)
class KeyRegistered:
    """A new key; ``roles`` and ``accounts`` are sorted."""

    key_id: str
    public_key: bytes
    roles: tuple[str, ...]
    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyRevoked:
    key_id: str
    revoked_at_ms: int


@dataclass(frozen=True, slots=True)
class KeyAccountsChanged:
    """``key_id`` owns ``accounts`` from now on."""

    key_id: str
    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HoldOpened:
    """A new hold named ``hold_id`` (the tx_id of its Hold transaction), reserved on the payer."""

    hold_id: bytes
    payer: str
    payee: str
    asset: str
    amount: int
    expires_at_ms: int
    creator_key_id: str


@dataclass(frozen=True, slots=True)
class HoldResolved:
    """A hold left OPEN: CAPTURED (``captured_amount`` moved, the rest released), VOIDED or
    EXPIRED (nothing moved)."""

    hold_id: bytes
    status: HoldStatus
    captured_amount: int


@dataclass(frozen=True, slots=True)
class Attested:
    """A document digest anchored by ``key_id``: proof that the document existed by then."""

    digest: bytes
    algorithm: str
    key_id: str


@dataclass(frozen=True, slots=True)
class FinalitySet:
    """The finality policy changed from ``previous`` to ``threshold`` witnesses."""

    threshold: int
    previous: int


@dataclass(frozen=True, slots=True)
class PolicySet:
    """``account``'s policy is now ``policy`` (None: removed, its owners' keys decide again)."""

    account: str
    policy: AccountPolicy | None


@dataclass(frozen=True, slots=True)
class IssuanceCapSet:
    """``asset``'s outstanding issuance may not exceed ``cap`` from now on (None: no cap)."""

    asset: str
    cap: int | None


@dataclass(frozen=True, slots=True)
class Reversed:
    """Part or all of the transfer at ``original_seq`` (``original_tx_id``) is undone;
    ``undone`` is (account, magnitude undone so far, this reversal included) for each account
    this reversal posts to, sorted."""

    original_seq: int
    original_tx_id: bytes
    undone: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SealerRotated:
    """Blocks after this transaction's block are sealed by ``successor`` instead of
    ``previous`` (public keys); the keys' own changes come as KeyRegistered and KeyRevoked."""

    previous: bytes
    successor: bytes


@dataclass(frozen=True, slots=True)
class AccountMetadataSet:
    """``account``'s metadata is now ``metadata`` (only the chain and the views keep it)."""

    account: str
    metadata: tuple[tuple[str, str], ...]


Effect = (
    Posted
    | BalanceChanged
    | AccountOpened
    | AccountStatusChanged
    | AssetDefined
    | KeyRegistered
    | KeyRevoked
    | KeyAccountsChanged
    | HoldOpened
    | HoldResolved
    | Attested
    | FinalitySet
    | PolicySet
    | IssuanceCapSet
    | Reversed
    | SealerRotated
    | AccountMetadataSet
)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The decision to accept ``tx`` at block time ``now_ms``, with everything it changes.

    ``revision`` is the state revision it was decided against: ``apply`` refuses it on any
    other, because its after-values would be stale.
    """

    tx: Tx
    now_ms: int
    effects: tuple[Effect, ...]
    revision: int
