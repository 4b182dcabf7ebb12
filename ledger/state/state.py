"""The data the state machine decides on: accounts, assets, keys, holds and the replay window.

Everything is a plain dict of small mutable slots dataclasses, because the sequencer decides
and applies a hundred thousand transactions per second on one core: no copies, no indirection.
Only ``apply`` and ``begin_block`` (``ledger.state.apply``) write to a ``State``.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
from dataclasses import dataclass

from ledger.errors import LedgerError
from ledger.limits import int64_min
from ledger.model import AccountStatus
from ledger.state.expiry import TxExpiry


class StateError(LedgerError):
    """The state machine was driven wrongly (time went backwards, a stale decision was applied).

    Never a rejection: these are bugs of the caller, and continuing would fork the chain.
    """


class HoldStatus(enum.Enum):
    OPEN = "OPEN"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    """An account's signing policy (``ledger.model.SetAccountPolicy``), as the state keeps it."""

    key_ids: frozenset[str]
    threshold: int
    high_threshold: int | None = None
    high_amount: int | None = None
    max_amount: int | None = None
    counterparties: frozenset[str] = frozenset()

    def required(self, debit: int) -> int:
        """Policy keys that must sign a debit of ``debit`` (a positive amount)."""
        if (
            self.high_amount is not None
            and self.high_threshold is not None
            and debit > self.high_amount
        ):
            return self.high_threshold
        return self.threshold


@dataclass(slots=True)
class Account:
    """One account: it holds exactly one asset.

    ``held`` is the sum of the open holds it pays; ``available = balance - held``. Only an
    asset's issuer account has ``allow_negative`` (issuing is a transfer out of it).
    """

    asset: str
    status: AccountStatus
    max_balance: int | None
    allow_negative: bool
    balance: int = 0
    held: int = 0
    policy: AccountPolicy | None = None
    """Who must sign its debits, and its limits; None: any key that owns it."""

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(slots=True)
class Asset:
    scale: int
    issuer_account: str
    issuance_cap: int | None = None
    """How far the issuer account may go below zero; None: no cap (``SetIssuanceCap``)."""


@dataclass(slots=True)
class Key:
    """A registered public key. Revocation is permanent and takes effect at once: the key signs
    nothing after the transaction that revoked it (so nothing after that block either)."""

    public_key: bytes
    roles: frozenset[str]
    accounts: frozenset[str]
    revoked_at_ms: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ms is not None


@dataclass(slots=True)
class HoldRecord:
    """A hold, named by the tx_id of the ``Hold`` transaction that opened it.

    Resolved holds are kept (status other than OPEN) so that a late Capture or Void gets
    HOLD_ALREADY_RESOLVED or HOLD_EXPIRED rather than HOLD_NOT_FOUND on every replica, and so that
    a hold id is never reused. ``captured_amount`` is what a capture moved (0 otherwise).
    """

    payer: str
    payee: str
    asset: str
    amount: int
    expires_at_ms: int
    creator_key_id: str
    status: HoldStatus = HoldStatus.OPEN
    captured_amount: int = 0


def key_id_of(public_key: bytes) -> str:
    """Lowercase hex of the first 16 bytes of SHA-256(public_key) (design section 3)."""
    return hashlib.sha256(public_key).digest()[:16].hex()


class State:
    """The whole mutable state of one ledger shard.

    Equality compares the data (what a snapshot holds); the two expiry indexes are derived
    from it and ``revision`` is a guard against stale decisions, so neither takes part.
    """

    __slots__ = (
        "accounts",
        "assets",
        "keys",
        "holds",
        "recent_tx_ids",
        "now_ms",
        "tx_count",
        "finality_threshold",
        "reversed",
        "revision",
        "tx_expiry",
        "hold_expiry_heap",
    )

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.assets: dict[str, Asset] = {}
        self.keys: dict[str, Key] = {}
        self.holds: dict[bytes, HoldRecord] = {}
        self.recent_tx_ids: dict[bytes, int] = {}
        """tx_id -> expires_at_ms of every accepted transaction still inside its window."""
        self.now_ms: int = int64_min
        """The time of the latest block begun; block times never go backwards."""
        self.tx_count: int = 0
        """Transactions accepted and applied since genesis."""
        self.finality_threshold: int = 0
        """Distinct registered witnesses that must co-sign a block for it to be final (0: none)."""
        self.reversed: dict[int, dict[str, int]] = {}
        """seq of a reversed Transfer -> account -> how much of its posting to that account is
        undone so far (a magnitude). Only reversed transfers are here: a Reverse carries the
        proof of its original, so the state keeps no copy of past transfers."""
        self.revision: int = 0
        """Bumped by every mutation; an ``Accepted`` is valid only for the revision it saw."""
        self.tx_expiry = TxExpiry()
        """``recent_tx_ids`` by expiry time, to forget them in order."""
        self.hold_expiry_heap: list[tuple[int, bytes]] = []
        """(expires_at_ms, hold_id) of holds opened; resolved entries are skipped when popped."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return (
            self.accounts == other.accounts
            and self.assets == other.assets
            and self.keys == other.keys
            and self.holds == other.holds
            and self.recent_tx_ids == other.recent_tx_ids
            and self.now_ms == other.now_ms
            and self.tx_count == other.tx_count
            and self.finality_threshold == other.finality_threshold
            and self.reversed == other.reversed
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"State(accounts={len(self.accounts)}, assets={len(self.assets)}, "
            f"keys={len(self.keys)}, holds={len(self.holds)}, "
            f"recent_tx_ids={len(self.recent_tx_ids)}, now_ms={self.now_ms}, "
            f"tx_count={self.tx_count})"
        )

    def rebuild_indexes(self) -> None:
        """Recompute the expiry indexes from the data (after a restore)."""
        self.tx_expiry = TxExpiry.of(self.recent_tx_ids)
        self.hold_expiry_heap = sorted(
            (hold.expires_at_ms, hold_id)
            for hold_id, hold in self.holds.items()
            if hold.status is HoldStatus.OPEN
        )
        heapq.heapify(self.hold_expiry_heap)

    def held_by_open_holds(self, account: str) -> int:
        """Sum of the open holds that ``account`` pays: always equal to its ``held`` (O(holds))."""
        return sum(
            hold.amount
            for hold in self.holds.values()
            if hold.payer == account and hold.status is HoldStatus.OPEN
        )

    def active_admin_count(self) -> int:
        """Unrevoked keys with the admin role (O(keys): only key revocations ask)."""
        return self.active_count_with_role("admin")

    def active_count_with_role(self, role: str) -> int:
        """Unrevoked keys with ``role`` (O(keys): only admin operations ask)."""
        return sum(1 for key in self.keys.values() if not key.revoked and role in key.roles)

    def sealer_keys(self) -> dict[str, Key]:
        """Every key that holds or held the sealer role, by key_id (O(keys): rare callers)."""
        return {key_id: key for key_id, key in self.keys.items() if "sealer" in key.roles}

    def witness_keys(self) -> frozenset[bytes]:
        """Public keys of the unrevoked witnesses: whose cosignatures count toward finality."""
        return frozenset(
            key.public_key
            for key in self.keys.values()
            if not key.revoked and "witness" in key.roles
        )
