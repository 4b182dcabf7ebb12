"""Typed values of the ledger: operations, transactions and their parts.

These mirror ``schemas/ledger.v1.TxBody.avsc`` one to one; ``ledger.codec`` converts between
them and Avro bytes. They are frozen so that a decided transaction cannot change under a block.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})
"""The metadata of a body or account that has none (shared: it cannot change)."""


class AccountStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"
    CLOSED = "CLOSED"


class Role(enum.Enum):
    """What a key may do beyond spending from the accounts it owns."""

    ADMIN = "admin"  # account, asset and key operations
    SEALER = "sealer"  # signs block seals
    WITNESS = "witness"  # co-signs blocks it verified and replayed (ledger.witnessing)
    OPERATOR = "operator"  # freezes and unfreezes accounts, nothing else beyond its accounts
    AUDITOR = "auditor"  # attests documents; owns no account and is in no policy: moves no money
    ISSUER = "issuer"  # issues an asset that has an issuance cap (SetIssuanceCap), within it


@dataclass(frozen=True, slots=True)
class OpenAccount:
    account: str
    asset: str
    max_balance: int | None = None


@dataclass(frozen=True, slots=True)
class SetAccountStatus:
    account: str
    status: AccountStatus


@dataclass(frozen=True, slots=True)
class DefineAsset:
    asset: str
    scale: int
    issuer_account: str


@dataclass(frozen=True, slots=True)
class RegisterKey:
    public_key: bytes
    roles: tuple[str, ...]
    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RevokeKey:
    key_id: str


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class Transfer:
    postings: tuple[Posting, ...]


@dataclass(frozen=True, slots=True)
class Hold:
    payer: str
    payee: str
    asset: str
    amount: int
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class Capture:
    hold_id: bytes
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class Void:
    hold_id: bytes


@dataclass(frozen=True, slots=True)
class Attest:
    digest: bytes
    algorithm: str = "sha256"


@dataclass(frozen=True, slots=True)
class SetFinality:
    """The ledger's finality policy: a block is final once ``threshold`` distinct registered
    witnesses co-signed it (or a later block). 0: no witnesses needed, final when sealed."""

    threshold: int


@dataclass(frozen=True, slots=True)
class SetAccountPolicy:
    """Who must sign to debit ``account``, and how much and to whom it may pay (admin only).

    ``threshold`` of the keys in ``key_ids`` must sign a transaction that debits the account
    (``high_threshold`` of them when it debits more than ``high_amount``: dual control for
    large payments); one debit may not exceed ``max_amount``; money debited from it may go only
    to ``counterparties`` (any account when empty). With a policy the named keys decide, not
    the keys that own the account. ``threshold`` 0 with no keys and no limits removes the policy.
    """

    account: str
    key_ids: tuple[str, ...]
    threshold: int
    high_threshold: int | None = None
    high_amount: int | None = None
    max_amount: int | None = None
    counterparties: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UpdateKey:
    """Change the accounts a key owns and, with ``successor``, hand the key over (admin only).

    ``accounts`` are what the key (or its successor) owns from now on. ``successor``: a new
    public key that takes over the key's roles, those accounts and its seats in account
    policies, while the old key is revoked, all in this one transaction; None: only the
    accounts change. The sealer's key is rotated by the sealer itself, not by this operation.
    """

    key_id: str
    accounts: tuple[str, ...]
    successor: bytes | None = None


@dataclass(frozen=True, slots=True)
class RotateSealer:
    """Hand block sealing to ``successor`` (a 32-byte public key).

    Signed by the current sealer and cosigned by the successor, which proves it holds the new
    key. The sequencer ends the block with it; every later block is sealed by the successor,
    which takes over the sealer role while the old key is revoked. Readers follow the rotation
    from the chain alone (``ledger.blocks.ChainVerifier``).
    """

    successor: bytes


@dataclass(frozen=True, slots=True)
class Reverse:
    """Undo an earlier sealed Transfer of this ledger, in full or in part.

    It carries the proof that the original was sealed here: ``original`` (its envelope, exactly
    as sealed), the header and seal of its block, its position and its audit path in that
    block's tx_root. So the state keeps no copy of past transfers, only how much of each
    reversed one is already undone. ``postings`` are the reversing postings, each of the opposite
    sign to the original's posting to the same account and no larger than what remains of it;
    empty: all that remains. Authorized like a transfer, by the accounts it debits.
    """

    original: bytes
    block_header: bytes
    seal: bytes
    tx_index: int
    audit_path: tuple[bytes, ...]
    postings: tuple[Posting, ...] = ()


@dataclass(frozen=True, slots=True)
class SetIssuanceCap:
    """Bound ``asset``'s outstanding issuance: how far its issuer account may go below zero
    (admin only). While a cap is set, only keys with the issuer role may issue (debit the issuer
    account). ``cap`` None removes it; an asset never capped issues as before."""

    asset: str
    cap: int | None


@dataclass(frozen=True, slots=True)
class SetAccountMetadata:
    """Replace an account's metadata (admin only); an account starts with the metadata of the
    transaction that opened it. Metadata decides nothing: it lives in the chain and the views."""

    account: str
    metadata: Mapping[str, str]


Operation = (
    OpenAccount
    | SetAccountStatus
    | DefineAsset
    | RegisterKey
    | RevokeKey
    | Transfer
    | Hold
    | Capture
    | Void
    | Attest
    | SetFinality
    | SetAccountPolicy
    | UpdateKey
    | RotateSealer
    | Reverse
    | SetIssuanceCap
    | SetAccountMetadata
)

OPERATION_TYPES: tuple[type, ...] = (
    OpenAccount,
    SetAccountStatus,
    DefineAsset,
    RegisterKey,
    RevokeKey,
    Transfer,
    Hold,
    Capture,
    Void,
    Attest,
    SetFinality,
    SetAccountPolicy,
    UpdateKey,
    RotateSealer,
    Reverse,
    SetIssuanceCap,
    SetAccountMetadata,
)
"""In the order of the Avro union: new operations go at the end."""


@dataclass(frozen=True, slots=True)
class ConfidentialFields:
    """What a confidential body hides: the fields it would otherwise carry in the clear."""

    memo: str | None = None
    external_ref: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=lambda: NO_METADATA)


@dataclass(frozen=True, slots=True)
class Recipient:
    """A key a confidential part is encrypted to: its ``key_id`` and its wrapped content key."""

    key_id: str
    wrapped_key: bytes


@dataclass(frozen=True, slots=True)
class Confidential:
    """``ConfidentialFields`` encrypted to ``recipients`` (``ledger.confidential``), with the
    commitment to their plaintext that the body's signature covers."""

    ephemeral_public_key: bytes
    recipients: tuple[Recipient, ...]
    commitment: bytes
    ciphertext: bytes

    def key_ids(self) -> tuple[str, ...]:
        """Who may read it, in the order it names them."""
        return tuple(recipient.key_id for recipient in self.recipients)


@dataclass(frozen=True, slots=True)
class TxBody:
    tx_id: bytes
    ledger: str
    created_at_ms: int
    expires_at_ms: int
    op: Operation
    memo: str | None = None
    external_ref: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=lambda: NO_METADATA)
    """Key/value strings for the author (``ledger.limits``); a body with any is version 2."""
    confidential: Confidential | None = None
    """memo, external_ref and metadata encrypted to named keys (then null and empty here); a
    body with it is version 3."""

    @property
    def kind(self) -> str:
        """The operation's name, as stored in PostgreSQL: ``Transfer``, ``Hold``, ..."""
        return type(self.op).__name__


@dataclass(frozen=True, slots=True)
class Cosigner:
    """A further signer of an envelope: its key and its signature over the same body bytes."""

    public_key: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """``ledger.v1.Envelope``, or ``ledger.v1.MultiSignedEnvelope`` when it has cosigners."""

    body: bytes
    public_key: bytes
    signature: bytes
    body_version: int = 1
    cosigners: tuple[Cosigner, ...] = ()

    def signers(self) -> tuple[tuple[bytes, bytes], ...]:
        """(public key, signature) of every signer, the submitting one first."""
        return ((self.public_key, self.signature),) + tuple(
            (cosigner.public_key, cosigner.signature) for cosigner in self.cosigners
        )


@dataclass(frozen=True, slots=True)
class Tx:
    """A transaction whose signature has been checked: what the state machine decides on."""

    body: TxBody
    public_key: bytes
    key_id: str
    envelope_bytes: bytes
    cosigners: tuple[tuple[str, bytes], ...] = ()
    """(key_id, public key) of the envelope's further signers, in envelope order."""


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """Mirrors ``ledger.v1.BlockHeader``; its Avro bytes are what the block hash covers."""

    ledger: str
    height: int
    prev_hash: bytes
    tx_root: bytes
    tx_count: int
    first_seq: int
    sealed_at_ms: int
    blocks_root: bytes
    sealer_key: bytes
    source_partition: int
    source_offset_end: int


@dataclass(frozen=True, slots=True)
class SealedTx:
    seq: int
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    transactions: tuple[SealedTx, ...]
    seal: bytes


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """Mirrors ``ledger.v1.Rejection``: one message on ``ledger.rejections``."""

    code: str
    detail: str
    stage: str
    source_topic: str
    source_partition: int
    source_offset: int
    rejected_at_ms: int
    tx_id: bytes | None = None
    ledger: str | None = None
    key_id: str | None = None
    height: int | None = None
    external_ref: str | None = None


@dataclass(frozen=True, slots=True)
class VerifiedEntry:
    """Mirrors ``ledger.v1.VerifiedEntry``: a verified envelope and where it was submitted."""

    source_partition: int
    source_offset: int
    envelope: bytes


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """Mirrors ``ledger.v1.VerifiedBatch``: one message on ``ledger.verified``."""

    ledger: str
    entries: tuple[VerifiedEntry, ...]


@dataclass(frozen=True, slots=True)
class BodyHead:
    """The leading fields of a TxBody: enough to route it and to refuse it as out of time."""

    tx_id: bytes
    ledger: str
    created_at_ms: int
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class Cosignature:
    """Mirrors ``ledger.v1.Cosignature``: a witness vouches for a block (``ledger.witnessing``)."""

    ledger: str
    height: int
    block_hash: bytes
    blocks_root: bytes
    witness_key: bytes
    signature: bytes
    signed_at_ms: int


@dataclass(frozen=True, slots=True)
class Evidence:
    """Mirrors ``ledger.v1.Evidence``: signed proof that the sealer misbehaved."""

    ledger: str
    height: int
    kind: str
    detail: str
    first: bytes
    second: bytes | None
    witness_key: bytes
    observed_at_ms: int
    signature: bytes = b""


def plain(value: Any, text_fields: Collection[str] = (), name: str = "") -> Any:
    """``value`` (an operation, a posting, any of this module's records) as JSON-ready data:
    bytes in hex, enums by value, records as objects, tuples as lists; integers of a field named
    in ``text_fields`` as strings (money, for readers whose numbers are doubles)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: plain(getattr(value, field.name), text_fields, field.name)
            for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(key): plain(item, text_fields, name) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [plain(item, text_fields, name) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and name in text_fields:
        return str(value)
    return value
