"""Shape checks: what the schemas cannot express (string lengths, list counts, 32-bit ints).

Each check returns the first problem as a sentence naming the field, or None. Decoders raise
``DecodeError`` with it, encoders ``EncodeError``: a client learns before sending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ledger import limits
from ledger.model import (
    Attest,
    Block,
    BlockHeader,
    DefineAsset,
    Hold,
    OpenAccount,
    Posting,
    RegisterKey,
    Reverse,
    RevokeKey,
    SetAccountMetadata,
    SetAccountPolicy,
    SetAccountStatus,
    SetFinality,
    SetIssuanceCap,
    Transfer,
    TxBody,
    UpdateKey,
)

_hash_bytes: Final = 32
"""SHA-256 digests: Merkle nodes."""

int32_min: Final = -(2**31)
int32_max: Final = 2**31 - 1


def too_long(field: str, value: str, chars_max: int) -> str:
    return f"{field}: {len(value)} characters, at most {chars_max}"


def count_outside(field: str, count: int, count_min: int, count_max: int) -> str | None:
    if count_min <= count <= count_max:
        return None
    return f"{field}: {count} items, expected {count_min} to {count_max}"


def not_int32(field: str, value: int) -> str | None:
    if int32_min <= value <= int32_max:
        return None
    return f"{field}: {value} does not fit an Avro int"


_IDENTIFIER_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    OpenAccount: ("account", "asset"),
    SetAccountStatus: ("account",),
    DefineAsset: ("asset", "issuer_account"),
    RevokeKey: ("key_id",),
    Hold: ("payer", "payee", "asset"),
    Attest: ("algorithm",),
    SetAccountPolicy: ("account",),
    UpdateKey: ("key_id",),
    SetIssuanceCap: ("asset",),
    SetAccountMetadata: ("account",),
}
"""String fields of each operation that name something: at most identifier_chars_max each."""


def shape_problem(body: TxBody) -> str | None:
    """The first field of ``body`` outside the limits, as a sentence naming it; None if it fits.
    A confidential part is judged by ``confidential_problem``."""
    identifier_max = limits.identifier_chars_max
    if len(body.ledger) > identifier_max:
        return too_long("TxBody.ledger", body.ledger, identifier_max)
    if problem := free_fields_problem("TxBody", body.memo, body.external_ref, body.metadata):
        return problem
    op = body.op
    kind = type(op).__name__
    for name in _IDENTIFIER_FIELDS.get(type(op), ()):
        value = getattr(op, name)
        if len(value) > identifier_max:
            return too_long(f"{kind}.{name}", value, identifier_max)
    if isinstance(op, Transfer):
        return _postings_problem("Transfer.postings", op.postings, limits.postings_min_count)
    elif isinstance(op, RegisterKey):
        return _names_problem("RegisterKey.roles", op.roles, limits.roles_max_count) or (
            _names_problem("RegisterKey.accounts", op.accounts, limits.owned_accounts_max_count)
        )
    elif isinstance(op, DefineAsset):
        return not_int32("DefineAsset.scale", op.scale)
    elif isinstance(op, SetFinality):
        return not_int32("SetFinality.threshold", op.threshold)
    elif isinstance(op, UpdateKey):
        return _names_problem("UpdateKey.accounts", op.accounts, limits.owned_accounts_max_count)
    elif isinstance(op, Reverse):
        return _reverse_problem(op)
    elif isinstance(op, SetAccountMetadata):
        return metadata_problem("SetAccountMetadata.metadata", op.metadata)
    elif isinstance(op, SetAccountPolicy):
        return (
            _names_problem("SetAccountPolicy.key_ids", op.key_ids, limits.policy_keys_max_count)
            or _names_problem(
                "SetAccountPolicy.counterparties",
                op.counterparties,
                limits.policy_counterparties_max_count,
            )
            or _policy_numbers_problem(op)
        )
    return None


def free_fields_problem(
    record: str, memo: str | None, external_ref: str | None, metadata: Mapping[str, str]
) -> str | None:
    """memo, external_ref or metadata beyond their limits, in the clear or confidential."""
    if memo is not None and len(memo) > limits.memo_chars_max:
        return too_long(f"{record}.memo", memo, limits.memo_chars_max)
    if external_ref is not None and len(external_ref) > limits.external_ref_chars_max:
        return too_long(f"{record}.external_ref", external_ref, limits.external_ref_chars_max)
    if metadata and (problem := metadata_problem(f"{record}.metadata", metadata)):
        return problem
    return None


_key_id_chars: Final = 32
"""A key_id: lowercase hex of 16 bytes."""

_lowercase_hex: Final = frozenset("0123456789abcdef")

_aead_tag_bytes: Final = 16
"""ChaCha20-Poly1305's tag, at the end of every ciphertext."""

confidential_ciphertext_bytes_min: Final = 32 + 1 + 1 + 1 + _aead_tag_bytes
"""The smallest ConfidentialFields (its salt, a null memo and reference, no metadata) and a tag."""


def confidential_problem(body: TxBody) -> str | None:
    """What is out of shape in ``body``'s confidential part (``MALFORMED_CONFIDENTIAL``), as a
    sentence; None when it has none or it is in shape. Read from the body alone: nothing is
    decrypted, and whether a recipient's key is registered is not the ledger's concern."""
    confidential = body.confidential
    if confidential is None:
        return None
    if body.memo is not None or body.external_ref is not None or body.metadata:
        return (
            "TxBody: memo, external_ref and metadata must be null and empty beside a "
            "confidential part (they go inside it)"
        )
    recipients = confidential.recipients
    if problem := count_outside(
        "Confidential.recipients", len(recipients), 1, limits.confidential_recipients_max_count
    ):
        return problem
    named: set[str] = set()
    for index, recipient in enumerate(recipients):
        key_id = recipient.key_id
        if len(key_id) != _key_id_chars or not _lowercase_hex.issuperset(key_id):
            return (
                f"Confidential.recipients[{index}].key_id: {key_id[:40]!r} is not a key id "
                f"({_key_id_chars} lowercase hex digits)"
            )
        if key_id in named:
            return f"Confidential.recipients: key {key_id} is named twice"
        named.add(key_id)
    if len(confidential.ciphertext) < confidential_ciphertext_bytes_min:
        return (
            f"Confidential.ciphertext: {len(confidential.ciphertext)} bytes, at least "
            f"{confidential_ciphertext_bytes_min} (the smallest plaintext and its tag)"
        )
    return None


def metadata_problem(field: str, metadata: Mapping[str, str]) -> str | None:
    """Metadata with too many entries, or a key or value too long."""
    if problem := count_outside(field, len(metadata), 0, limits.metadata_entries_max_count):
        return problem
    for key, value in metadata.items():
        if not key or len(key) > limits.metadata_key_chars_max:
            return (
                f"{field}: key {key[:20]!r} is empty or longer than {limits.metadata_key_chars_max}"
            )
        if len(value) > limits.metadata_value_chars_max:
            return too_long(f"{field}[{key!r}]", value, limits.metadata_value_chars_max)
    return None


def _postings_problem(field: str, postings: tuple[Posting, ...], count_min: int) -> str | None:
    if problem := count_outside(field, len(postings), count_min, limits.postings_max_count):
        return problem
    identifier_max = limits.identifier_chars_max
    for index, posting in enumerate(postings):
        if len(posting.account) > identifier_max:
            return too_long(f"{field}[{index}].account", posting.account, identifier_max)
        if len(posting.asset) > identifier_max:
            return too_long(f"{field}[{index}].asset", posting.asset, identifier_max)
    return None


def _reverse_problem(op: Reverse) -> str | None:
    if problem := count_outside(
        "Reverse.audit_path", len(op.audit_path), 0, limits.audit_path_max_count
    ) or _postings_problem("Reverse.postings", op.postings, 0):
        return problem
    if any(len(node) != _hash_bytes for node in op.audit_path):
        return f"Reverse.audit_path: every node is {_hash_bytes} bytes"
    return not_int32("Reverse.tx_index", op.tx_index)


def _names_problem(field: str, names: tuple[str, ...], count_max: int) -> str | None:
    """A list of identifiers longer than ``count_max``, or one of them too long."""
    if problem := count_outside(field, len(names), 0, count_max):
        return problem
    for index, value in enumerate(names):
        if len(value) > limits.identifier_chars_max:
            return too_long(f"{field}[{index}]", value, limits.identifier_chars_max)
    return None


def _policy_numbers_problem(op: SetAccountPolicy) -> str | None:
    if problem := not_int32("SetAccountPolicy.threshold", op.threshold):
        return problem
    if op.high_threshold is None:
        return None
    return not_int32("SetAccountPolicy.high_threshold", op.high_threshold)


def header_problem(header: BlockHeader) -> str | None:
    if len(header.ledger) > limits.identifier_chars_max:
        return too_long("BlockHeader.ledger", header.ledger, limits.identifier_chars_max)
    return not_int32("BlockHeader.tx_count", header.tx_count) or not_int32(
        "BlockHeader.source_partition", header.source_partition
    )


def block_problem(block: Block) -> str | None:
    problem = header_problem(block.header) or count_outside(
        "Block.transactions", len(block.transactions), 0, limits.block_tx_max_count
    )
    if problem:
        return problem
    for index, tx in enumerate(block.transactions):
        if len(tx.envelope) > limits.envelope_bytes_max:
            return (
                f"Block.transactions[{index}].envelope: {len(tx.envelope)} bytes, "
                f"at most {limits.envelope_bytes_max}"
            )
    return None
