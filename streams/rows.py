"""The PostgreSQL rows of replayed blocks and of rejections: pure, so it is tested without a database.

Rows of one batch are gathered here and written by ``streams.project`` in one transaction:
inserts first (COPY), then upserts and updates whose last value in the batch wins.

Each table has a row type below whose fields *are* its columns, in order: ``Table.columns``
is the field names, and COPY and every statement take their column list from it, so a row and
its column list cannot drift apart. Instants are ``PostgresInstant`` ints, not ``datetime``: a
datetime cost about 0.7 µs to build and 0.6 µs to encode, per value, five values a transfer.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NewType, assert_never

from ledger.model import RejectionRecord, Reverse
from ledger.replica import AppliedBlock
from ledger.state import (
    AccountMetadataSet,
    AccountOpened,
    AccountPolicy,
    AccountStatusChanged,
    AssetDefined,
    Attested,
    BalanceChanged,
    Effect,
    FinalitySet,
    HoldOpened,
    HoldResolved,
    IssuanceCapSet,
    KeyAccountsChanged,
    KeyRegistered,
    KeyRevoked,
    PolicySet,
    Posted,
    Reversed,
    SealerRotated,
)

PROCESSOR = "project"
"""The ``processor`` of this projector's tracking rows."""

PostgresInstant = NewType("PostgresInstant", int)
"""A timestamptz as PostgreSQL sends it in binary: microseconds since 2000-01-01T00:00:00Z.
``streams.project.prepare`` makes the projector's connection exchange timestamptz this way."""

postgres_epoch_ms = 946_684_800_000
"""2000-01-01T00:00:00Z in Unix milliseconds: where PostgreSQL counts timestamptz from."""


def instant(epoch_ms: int) -> PostgresInstant:
    """The PostgresInstant of a ledger time (milliseconds since the Unix epoch)."""
    return PostgresInstant((epoch_ms - postgres_epoch_ms) * 1000)


# ---- one row type per table: fields in column order ------------------------------------------


class BlockRow(NamedTuple):
    """A row of ``ledger.blocks``."""

    ledger: str
    height: int
    hash: bytes
    prev_hash: bytes
    tx_root: bytes
    blocks_root: bytes
    tx_count: int
    first_seq: int
    sealed_at: PostgresInstant
    sealer_key: bytes
    source_partition: int
    source_offset_end: int
    size_bytes: int
    seal: bytes


class TransactionRow(NamedTuple):
    """A row of ``ledger.transactions``."""

    ledger: str
    seq: int
    tx_id: bytes
    height: int
    index_in_block: int
    kind: str
    key_id: str
    created_at: PostgresInstant
    expires_at: PostgresInstant
    sealed_at: PostgresInstant
    external_ref: str | None
    memo: str | None
    envelope: bytes
    metadata: str | None
    """The body's metadata as JSON text (jsonb); None when it has none."""
    cosigners: list[str] | None
    reverses: int | None
    """A Reverse's original: its seq."""
    confidential_to: list[str] | None
    """The key_ids a confidential body's memo, external_ref and metadata are encrypted to (then
    NULL here); None when it has none."""


class PostingRow(NamedTuple):
    """A row of ``ledger.postings``: ``posting_index`` numbers the lines of one transaction."""

    ledger: str
    seq: int
    posting_index: int
    account: str
    asset: str
    amount: int
    height: int
    sealed_at: PostgresInstant


class AttestationRow(NamedTuple):
    """A row of ``ledger.attestations``."""

    ledger: str
    digest: bytes
    algorithm: str
    seq: int
    tx_id: bytes
    key_id: str
    height: int
    sealed_at: PostgresInstant


class AccountRow(NamedTuple):
    """A row of ``ledger.accounts``, as opened."""

    ledger: str
    account: str
    asset: str
    status: str
    max_balance: int | None
    allow_negative: bool
    opened_height: int
    opened_seq: int


class AssetRow(NamedTuple):
    """A row of ``ledger.assets``."""

    ledger: str
    asset: str
    scale: int
    issuer_account: str
    defined_height: int
    defined_seq: int


class KeyRow(NamedTuple):
    """A row of ``ledger.keys``, as registered."""

    ledger: str
    key_id: str
    public_key: bytes
    roles: list[str]
    accounts: list[str]
    registered_height: int
    registered_seq: int
    revoked_height: int | None


class HoldRow(NamedTuple):
    """A row of ``ledger.holds``, as opened."""

    ledger: str
    hold_id: bytes
    payer: str
    payee: str
    asset: str
    amount: int
    captured_amount: int | None
    status: str
    expires_at: PostgresInstant
    created_seq: int
    resolved_seq: int | None
    resolved_height: int | None


class RejectionRow(NamedTuple):
    """A row of ``ledger.rejections`` (its ``id`` is the table's own)."""

    tx_id: bytes | None
    ledger: str | None
    code: str
    detail: str
    stage: str
    key_id: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    rejected_at: PostgresInstant
    height: int | None
    external_ref: str | None


class BalanceRow(NamedTuple):
    """A row of ``ledger.balances`` (``available`` is generated by PostgreSQL)."""

    ledger: str
    account: str
    asset: str
    balance: int
    held: int
    updated_height: int
    updated_seq: int


class AccountMetadataRow(NamedTuple):
    """The ``metadata`` of a row of ``ledger.accounts`` (JSON text)."""

    ledger: str
    account: str
    metadata: str


class IssuanceCapRow(NamedTuple):
    """The ``issuance_cap`` of a row of ``ledger.assets``."""

    ledger: str
    asset: str
    issuance_cap: int | None


class AccountStatusRow(NamedTuple):
    """A new ``status`` of a row of ``ledger.accounts``."""

    ledger: str
    account: str
    status: str


class KeyRevocationRow(NamedTuple):
    """The ``revoked_height`` of a row of ``ledger.keys``."""

    ledger: str
    key_id: str
    revoked_height: int


class KeyAccountsRow(NamedTuple):
    """The ``accounts`` of a row of ``ledger.keys`` after an UpdateKey."""

    ledger: str
    key_id: str
    accounts: list[str]


class HoldResolutionRow(NamedTuple):
    """How a row of ``ledger.holds`` was resolved."""

    ledger: str
    hold_id: bytes
    status: str
    captured_amount: int
    resolved_seq: int
    resolved_height: int


class FinalityPolicyRow(NamedTuple):
    """A row of ``ledger.finality_policies``: the ledger's SetFinality in force."""

    ledger: str
    threshold: int
    set_height: int


class AccountPolicyRow(NamedTuple):
    """A row of ``ledger.account_policies``: an account's SetAccountPolicy in force (threshold 0
    and no keys once removed)."""

    ledger: str
    account: str
    key_ids: list[str]
    threshold: int
    high_threshold: int | None
    high_amount: int | None
    max_amount: int | None
    counterparties: list[str]
    set_height: int
    set_seq: int


def policy_row(
    ledger: str, account: str, policy: AccountPolicy | None, height: int, seq: int
) -> AccountPolicyRow:
    if policy is None:  # removed: the row stays, with nothing required
        return AccountPolicyRow(ledger, account, [], 0, None, None, None, [], height, seq)
    return AccountPolicyRow(
        ledger,
        account,
        sorted(policy.key_ids),
        policy.threshold,
        policy.high_threshold,
        policy.high_amount,
        policy.max_amount,
        sorted(policy.counterparties),
        height,
        seq,
    )


class SnapshotRow(NamedTuple):
    """A row of ``ledger.replica_snapshots`` (``taken_at`` is the writing transaction's time)."""

    ledger: str
    height: int
    snapshot: bytes


class TrackingRow(NamedTuple):
    """A row of ``ledger.tracking`` (``updated_at`` is the writing transaction's time)."""

    processor: str
    stream: str
    position: int


@dataclass(frozen=True, slots=True)
class Table:
    """Where rows of ``row_type`` go: table ``ledger.<name>``, matched on ``key`` when it is an
    upsert or an update (inserted rows need no key)."""

    name: str
    row_type: Any  # a NamedTuple class: mypy has no type for "any NamedTuple class"
    key: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The row type's fields as column names, in field order: the order of every value."""
        fields: tuple[str, ...] = self.row_type._fields
        return fields

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns an upsert or an update sets: all but the key."""
        return tuple(name for name in self.columns if name not in self.key)

    def __post_init__(self) -> None:
        assert set(self.key) <= set(self.columns), f"{self.name}: key {self.key} not in columns"


BLOCKS = Table("blocks", BlockRow)
TRANSACTIONS = Table("transactions", TransactionRow)
POSTINGS = Table("postings", PostingRow)
ATTESTATIONS = Table("attestations", AttestationRow)
ACCOUNTS = Table("accounts", AccountRow)
ASSETS = Table("assets", AssetRow)
KEYS = Table("keys", KeyRow)
HOLDS = Table("holds", HoldRow)
REJECTIONS = Table(
    "rejections", RejectionRow, key=("source_topic", "source_partition", "source_offset")
)
BALANCES = Table("balances", BalanceRow, key=("ledger", "account"))
ACCOUNT_STATUSES = Table("accounts", AccountStatusRow, key=("ledger", "account"))
KEY_REVOCATIONS = Table("keys", KeyRevocationRow, key=("ledger", "key_id"))
KEY_ACCOUNTS = Table("keys", KeyAccountsRow, key=("ledger", "key_id"))
ACCOUNT_METADATA = Table("accounts", AccountMetadataRow, key=("ledger", "account"))
ISSUANCE_CAPS = Table("assets", IssuanceCapRow, key=("ledger", "asset"))
HOLD_RESOLUTIONS = Table("holds", HoldResolutionRow, key=("ledger", "hold_id"))
SNAPSHOTS = Table("replica_snapshots", SnapshotRow, key=("ledger",))
FINALITY_POLICIES = Table("finality_policies", FinalityPolicyRow, key=("ledger",))
ACCOUNT_POLICIES = Table("account_policies", AccountPolicyRow, key=("ledger", "account"))
TRACKING = Table("tracking", TrackingRow, key=("processor", "stream"))


def _reversed(effects: tuple[Effect, ...]) -> int:
    """The original's seq of a Reverse, from its effects."""
    return next(effect.original_seq for effect in effects if isinstance(effect, Reversed))


# ---- the rows of one batch -------------------------------------------------------------------


@dataclass
class Rows:
    """Everything one batch writes. Insert lists are in chain order; dicts keep the last value."""

    blocks: list[BlockRow] = field(default_factory=list)
    transactions: list[TransactionRow] = field(default_factory=list)
    postings: list[PostingRow] = field(default_factory=list)
    attestations: list[AttestationRow] = field(default_factory=list)
    accounts: list[AccountRow] = field(default_factory=list)
    assets: list[AssetRow] = field(default_factory=list)
    keys: list[KeyRow] = field(default_factory=list)
    holds: list[HoldRow] = field(default_factory=list)
    rejections: list[RejectionRow] = field(default_factory=list)
    balances: dict[tuple[str, str], BalanceRow] = field(default_factory=dict)
    account_statuses: dict[tuple[str, str], AccountStatusRow] = field(default_factory=dict)
    key_revocations: dict[tuple[str, str], KeyRevocationRow] = field(default_factory=dict)
    key_accounts: dict[tuple[str, str], KeyAccountsRow] = field(default_factory=dict)
    hold_resolutions: dict[tuple[str, bytes], HoldResolutionRow] = field(default_factory=dict)
    tracking: dict[tuple[str, str], TrackingRow] = field(default_factory=dict)
    snapshots: dict[str, SnapshotRow] = field(default_factory=dict)
    finality_policies: dict[str, FinalityPolicyRow] = field(default_factory=dict)
    account_policies: dict[tuple[str, str], AccountPolicyRow] = field(default_factory=dict)
    account_metadata: dict[tuple[str, str], AccountMetadataRow] = field(default_factory=dict)
    issuance_caps: dict[tuple[str, str], IssuanceCapRow] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.blocks) + len(self.rejections)

    def inserts(self) -> tuple[tuple[Table, Collection[Any]], ...]:
        """The insert-only tables and their rows, parents before children."""
        return (
            (BLOCKS, self.blocks),
            (TRANSACTIONS, self.transactions),
            (POSTINGS, self.postings),
            (ATTESTATIONS, self.attestations),
            (ACCOUNTS, self.accounts),
            (ASSETS, self.assets),
            (KEYS, self.keys),
            (HOLDS, self.holds),
        )

    def changes(self) -> tuple[tuple[Table, Collection[Any]], ...]:
        """The tables whose rows may meet one already there (upserts, updates, rejections that
        are inserted once however often delivered) and those rows; tracking last."""
        return (
            (BALANCES, self.balances.values()),
            (HOLD_RESOLUTIONS, self.hold_resolutions.values()),
            (ACCOUNT_STATUSES, self.account_statuses.values()),
            (KEY_REVOCATIONS, self.key_revocations.values()),
            (KEY_ACCOUNTS, self.key_accounts.values()),
            (FINALITY_POLICIES, self.finality_policies.values()),
            (ACCOUNT_POLICIES, self.account_policies.values()),
            (ACCOUNT_METADATA, self.account_metadata.values()),
            (ISSUANCE_CAPS, self.issuance_caps.values()),
            (REJECTIONS, self.rejections),
            (SNAPSHOTS, self.snapshots.values()),
            (TRACKING, self.tracking.values()),
        )

    def add_block(self, applied: AppliedBlock, size_bytes: int) -> None:
        """The rows of one replayed block; the loop over transactions is the projector's hot path,
        so postings and balances (nearly every effect) are handled inline."""
        block = applied.block
        header = block.header
        ledger, height = header.ledger, header.height
        sealed_at = instant(header.sealed_at_ms)
        self.blocks.append(
            BlockRow(
                ledger,
                height,
                applied.block_hash,
                header.prev_hash,
                header.tx_root,
                header.blocks_root,
                header.tx_count,
                header.first_seq,
                sealed_at,
                header.sealer_key,
                header.source_partition,
                header.source_offset_end,
                size_bytes,
                block.seal,
            )
        )
        # Expiry at the block's start is attributed to the block's first seq position.
        for effect in applied.expiry_effects:
            self._add_effect(ledger, height, header.first_seq, sealed_at, None, effect)
        transactions, postings, balances = self.transactions, self.postings, self.balances
        for item in applied.transactions:
            tx = item.accepted.tx
            body = tx.body
            seq = item.seq
            metadata = body.metadata
            transactions.append(
                TransactionRow(
                    ledger,
                    seq,
                    body.tx_id,
                    height,
                    item.index_in_block,
                    body.kind,
                    tx.key_id,
                    instant(body.created_at_ms),
                    instant(body.expires_at_ms),
                    sealed_at,
                    body.external_ref,
                    body.memo,
                    tx.envelope_bytes,
                    json.dumps(dict(metadata), sort_keys=True) if metadata else None,
                    [key_id for key_id, _ in tx.cosigners] if tx.cosigners else None,
                    _reversed(item.accepted.effects) if type(body.op) is Reverse else None,
                    list(body.confidential.key_ids()) if body.confidential else None,
                )
            )
            posting_index = 0
            for effect in item.accepted.effects:
                if isinstance(effect, Posted):
                    postings.append(
                        PostingRow(
                            ledger,
                            seq,
                            posting_index,
                            effect.account,
                            effect.asset,
                            effect.amount,
                            height,
                            sealed_at,
                        )
                    )
                    posting_index += 1
                elif isinstance(effect, BalanceChanged):
                    balances[(ledger, effect.account)] = BalanceRow(
                        ledger,
                        effect.account,
                        effect.asset,
                        effect.balance,
                        effect.held,
                        height,
                        seq,
                    )
                else:
                    self._add_effect(ledger, height, seq, sealed_at, body.tx_id, effect)
        self.tracking[(PROCESSOR, f"blocks:{ledger}")] = TrackingRow(
            PROCESSOR, f"blocks:{ledger}", height
        )

    def _add_effect(
        self,
        ledger: str,
        height: int,
        seq: int,
        sealed_at: PostgresInstant,
        tx_id: bytes | None,
        effect: Effect,
    ) -> None:
        match effect:
            case BalanceChanged(account, asset, balance, held):
                self.balances[(ledger, account)] = BalanceRow(
                    ledger, account, asset, balance, held, height, seq
                )
            case AccountOpened(account, asset, max_balance, allow_negative):
                self.accounts.append(
                    AccountRow(
                        ledger, account, asset, "active", max_balance, allow_negative, height, seq
                    )
                )
                # Every account has a balance row from its opening; later changes overwrite it.
                self.balances.setdefault(
                    (ledger, account), BalanceRow(ledger, account, asset, 0, 0, height, seq)
                )
            case AccountStatusChanged(account, status, _):
                self.account_statuses[(ledger, account)] = AccountStatusRow(
                    ledger, account, status.value.lower()
                )
            case AssetDefined(asset, scale, issuer_account):
                self.assets.append(AssetRow(ledger, asset, scale, issuer_account, height, seq))
            case KeyRegistered(key_id, public_key, roles, accounts):
                self.keys.append(
                    KeyRow(
                        ledger, key_id, public_key, list(roles), list(accounts), height, seq, None
                    )
                )
            case KeyRevoked(key_id, _):
                self.key_revocations[(ledger, key_id)] = KeyRevocationRow(ledger, key_id, height)
            case KeyAccountsChanged(key_id, accounts):
                self.key_accounts[(ledger, key_id)] = KeyAccountsRow(ledger, key_id, list(accounts))
            case HoldOpened(hold_id, payer, payee, asset, amount, expires_at_ms, _):
                self.holds.append(
                    HoldRow(
                        ledger,
                        hold_id,
                        payer,
                        payee,
                        asset,
                        amount,
                        None,
                        "open",
                        instant(expires_at_ms),
                        seq,
                        None,
                        None,
                    )
                )
            case HoldResolved(hold_id, status, captured_amount):
                self.hold_resolutions[(ledger, hold_id)] = HoldResolutionRow(
                    ledger, hold_id, status.value.lower(), captured_amount, seq, height
                )
            case Attested(digest, algorithm, key_id):
                assert tx_id is not None
                self.attestations.append(
                    AttestationRow(ledger, digest, algorithm, seq, tx_id, key_id, height, sealed_at)
                )
            case FinalitySet(threshold, _):
                self.finality_policies[ledger] = FinalityPolicyRow(ledger, threshold, height)
            case PolicySet(account, policy):
                self.account_policies[(ledger, account)] = policy_row(
                    ledger, account, policy, height, seq
                )
            case AccountMetadataSet(account, metadata):
                self.account_metadata[(ledger, account)] = AccountMetadataRow(
                    ledger, account, json.dumps(dict(metadata), sort_keys=True)
                )
            case IssuanceCapSet(asset, cap):
                self.issuance_caps[(ledger, asset)] = IssuanceCapRow(ledger, asset, cap)
            case Reversed() | SealerRotated():
                pass  # the transaction row links a reversal; keys carry a rotation
            case Posted():
                raise AssertionError("postings are numbered by the caller")
            case _:
                assert_never(effect)

    def add_rejection(self, partition: int, offset: int, rejection: RejectionRecord) -> None:
        self.rejections.append(
            RejectionRow(
                rejection.tx_id,
                rejection.ledger,
                rejection.code,
                rejection.detail,
                rejection.stage,
                rejection.key_id,
                rejection.source_topic,
                rejection.source_partition,
                rejection.source_offset,
                instant(rejection.rejected_at_ms),
                rejection.height,
                rejection.external_ref,
            )
        )
        stream = f"rejections:{partition}"
        self.tracking[(PROCESSOR, stream)] = TrackingRow(PROCESSOR, stream, offset + 1)
