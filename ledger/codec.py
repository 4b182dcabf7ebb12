"""Avro binary <-> ``ledger.model`` values: the one edge where outside bytes become values.

Schemas are parsed once, at import, from ``schemas/ledger.v1.*.avsc`` (package data of the wheel:
``ledger/schemas`` links there). Every decoder:

1. refuses input above its size bound before reading a byte (``TooLarge``);
2. reads with fastavro, translating anything it raises into ``DecodeError``;
3. requires the whole buffer to be consumed (no trailing bytes);
4. requires the bytes to be the canonical encoding of what they decoded to, by re-encoding:
   fastavro accepts negative union and enum indexes (Python indexing from the end), overlong
   varints and split array blocks; a Java or Go reader may read such bytes differently or not
   at all, and a block is forever, so the ledger accepts exactly one spelling per value;
5. checks what the schema cannot express (string lengths, list counts, 32-bit ints).

Hostile bytes therefore raise ``DecodeError`` (or a subclass) and nothing else. Encoders run
the same shape checks and raise ``EncodeError``, so a client learns before sending.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable, Mapping
from importlib.resources import files
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.types import Schema

from ledger import limits
from ledger.errors import DecodeError, LedgerError
from ledger.model import (
    NO_METADATA,
    OPERATION_TYPES,
    AccountStatus,
    Attest,
    Block,
    BlockHeader,
    BodyHead,
    Confidential,
    ConfidentialFields,
    Cosignature,
    Cosigner,
    DefineAsset,
    Envelope,
    Evidence,
    Hold,
    OpenAccount,
    Operation,
    Posting,
    Recipient,
    RegisterKey,
    RejectionRecord,
    Reverse,
    RevokeKey,
    SealedTx,
    SetAccountMetadata,
    SetAccountPolicy,
    SetAccountStatus,
    SetFinality,
    SetIssuanceCap,
    Transfer,
    TxBody,
    UpdateKey,
    VerifiedBatch,
    VerifiedEntry,
)
from ledger.rejections import RejectionCode

BASE_BODY_VERSION: Final = 1
"""TxBody without ``metadata`` and ``confidential``: what this build writes for a body that has
neither, byte for byte what every body was before metadata, and what the hot path reads by hand."""

METADATA_BODY_VERSION: Final = 2
"""TxBody with ``metadata``, without ``confidential``: written for a body that has metadata in
the clear, byte for byte what such bodies were before confidential fields."""

CURRENT_BODY_VERSION: Final = 3
"""TxBody with ``confidential``: written only for a body that has a confidential part; the shape
every version is read into."""

_BODY_VERSION_LAST_FIELDS: Final = {
    BASE_BODY_VERSION: "external_ref",
    METADATA_BODY_VERSION: "metadata",
    CURRENT_BODY_VERSION: "confidential",
}
"""Each body version is the schema file cut after this field: a version only appends fields."""

_detail_chars_max: Final = 200
"""fastavro messages can quote whole schemas; an error detail stays one short line."""

EVIDENCE_KINDS: Final = ("EQUIVOCATION", "NOT_EXTENDING", "REPLAY_REFUSED")
"""``Evidence.kind`` values (``ledger.witnessing.EvidenceKind``)."""

cosignature_bytes_max: Final = 1_024
"""A cosignature is about 200 bytes; anything much larger is refused before decoding."""

_hash_bytes: Final = 32
"""SHA-256 digests: Merkle nodes."""

_int32_min: Final = -(2**31)
_int32_max: Final = 2**31 - 1

_T = TypeVar("_T")


class TooLarge(DecodeError):
    """Input above its size bound, refused before decoding: ``TOO_LARGE``."""


class UnsupportedVersion(DecodeError):
    """A body_version this build does not know, or a type it cannot resolve."""


class MalformedConfidential(DecodeError):
    """A body whose confidential part is out of shape: ``MALFORMED_CONFIDENTIAL``."""


class UnknownSchemaId(DecodeError):
    """A value framed (Confluent wire format) with a registry id that names none of the schemas
    its topic carries: ``UNKNOWN_SCHEMA``."""

    def __init__(self, schema_id: int, expected: str) -> None:
        super().__init__(f"schema id {schema_id} names no {expected} schema in the registry")
        self.schema_id = schema_id


class EncodeError(LedgerError, ValueError):
    """A value that does not fit its schema or the limits: it would be rejected if sent."""


def rejection_code_for(error: DecodeError) -> RejectionCode:
    """The rejection code the verify stage reports for a decode failure."""
    if isinstance(error, TooLarge):
        return RejectionCode.TOO_LARGE
    if isinstance(error, UnsupportedVersion):
        return RejectionCode.UNSUPPORTED_VERSION
    if isinstance(error, MalformedConfidential):
        return RejectionCode.MALFORMED_CONFIDENTIAL
    if isinstance(error, UnknownSchemaId):
        return RejectionCode.UNKNOWN_SCHEMA
    return RejectionCode.MALFORMED


def schema_json(name: str) -> dict[str, Any]:
    """``schemas/ledger.v1.{name}.avsc``, shipped in the package (``ledger/schemas`` links there)."""
    text = files("ledger").joinpath("schemas", f"ledger.v1.{name}.avsc").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def _load(name: str, named: dict[str, Any] | None = None) -> Schema:
    """Parse one schema; ``named`` holds the named types of the schemas it refers to."""
    return parse_schema(schema_json(name), named_schemas=named if named is not None else {})


TX_BODY_SCHEMA: Final = _load("TxBody")


def body_schema_json(version: int) -> dict[str, Any]:
    """The JSON schema of TxBody ``version`` (1, 2 or 3): the schema file cut after that
    version's last field. Another language's producer derives its versions the same way."""
    schema = schema_json("TxBody")
    names = [field["name"] for field in schema["fields"]]
    assert names[-1] == _BODY_VERSION_LAST_FIELDS[CURRENT_BODY_VERSION], "a field after v3's"
    end = names.index(_BODY_VERSION_LAST_FIELDS[version]) + 1
    return {**schema, "fields": schema["fields"][:end]}


TX_BODY_V1_SCHEMA: Final = parse_schema(body_schema_json(BASE_BODY_VERSION), named_schemas={})
TX_BODY_V2_SCHEMA: Final = parse_schema(body_schema_json(METADATA_BODY_VERSION), named_schemas={})
CONFIDENTIAL_FIELDS_SCHEMA: Final = _load("ConfidentialFields")
ENVELOPE_SCHEMA: Final = _load("Envelope")
MULTI_SIGNED_ENVELOPE_SCHEMA: Final = _load("MultiSignedEnvelope")
_block_types: dict[str, Any] = {}
BLOCK_HEADER_SCHEMA: Final = _load("BlockHeader", _block_types)
BLOCK_SCHEMA: Final = _load("Block", _block_types)
REJECTION_SCHEMA: Final = _load("Rejection")
VERIFIED_BATCH_SCHEMA: Final = _load("VerifiedBatch")
COSIGNATURE_SCHEMA: Final = _load("Cosignature")
EVIDENCE_SCHEMA: Final = _load("Evidence")


class BodySchemaRegistry:
    """TxBody writer schemas by ``Envelope.body_version``, and the reader schema they resolve to.

    A body is read with the writer schema its envelope names, resolved to this build's reader
    schema (Avro schema resolution: fields the reader lacks are skipped, fields the writer lacks
    take the reader's default, an operation the reader lacks is UNSUPPORTED_VERSION).
    """

    def __init__(
        self, reader_schema: Schema = TX_BODY_SCHEMA, reader_version: int = CURRENT_BODY_VERSION
    ) -> None:
        self.reader_schema: Final = reader_schema
        self.reader_version: Final = reader_version
        self._writer_schemas: dict[int, Schema] = {reader_version: reader_schema}
        self._prefixes: tuple[Schema, ...] = (reader_schema,)
        if reader_schema is TX_BODY_SCHEMA:
            self._writer_schemas[BASE_BODY_VERSION] = TX_BODY_V1_SCHEMA
            self._writer_schemas[METADATA_BODY_VERSION] = TX_BODY_V2_SCHEMA
            self._prefixes = (reader_schema, TX_BODY_V1_SCHEMA, TX_BODY_V2_SCHEMA)
        self._head_versions: dict[int, bool] = {}

    def register(self, version: int, schema: Mapping[str, Any]) -> None:
        """Make bodies of ``version`` readable; ``schema`` is the JSON schema that wrote them."""
        if not _int32_min <= version <= _int32_max:
            raise ValueError(f"TxBody version {version} does not fit an Avro int")
        if version in self._writer_schemas:
            raise ValueError(f"TxBody version {version} is already registered")
        # Its own name table: a v2 schema reuses v1's names for different shapes.
        self._writer_schemas[version] = parse_schema(dict(schema), named_schemas={})

    def writer_schema(self, version: int) -> Schema:
        """The schema bodies of ``version`` were written with; UnsupportedVersion if unknown."""
        schema = self._writer_schemas.get(version)
        if schema is None:
            known = ", ".join(str(known) for known in self.versions())
            raise UnsupportedVersion(
                f"Envelope.body_version: {version} is not supported (known: {known})"
            )
        return schema

    def needs_resolution(self, writer: Schema) -> bool:
        """Whether bodies written with ``writer`` must be resolved to the reader schema: not when
        it is the reader schema cut after one of its fields (versions 1 and 2 of this build),
        whose records convert as they are (a second fastavro read costs as much as the first)."""
        return all(writer is not prefix for prefix in self._prefixes)

    def starts_with_head(self, version: int) -> bool:
        """Whether bodies of ``version`` begin with the four fields ``decode_body_head`` reads."""
        known = self._head_versions.get(version)
        if known is None:
            known = self._head_versions[version] = _starts_with_head(self.writer_schema(version))
        return known

    def versions(self) -> tuple[int, ...]:
        """The body versions this registry reads, ascending."""
        return tuple(sorted(self._writer_schemas))


BODY_SCHEMAS: Final = BodySchemaRegistry()
"""The registry decoders use unless given another one."""


def register_body_schema(
    version: int, schema: Mapping[str, Any], registry: BodySchemaRegistry = BODY_SCHEMAS
) -> None:
    """Make TxBody bytes written with ``schema`` readable when an envelope names ``version``."""
    registry.register(version, schema)


# ---- the fastavro edge ---------------------------------------------------------------------


def _write(schema: Schema, record: object) -> bytes:
    stream = io.BytesIO()
    schemaless_writer(
        stream,
        schema,
        record,
        strict=True,
        strict_allow_default=False,
        disable_tuple_notation=False,
    )
    return stream.getvalue()


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > _detail_chars_max:
        text = text[: _detail_chars_max - 3] + "..."
    return text


def _encode(schema: Schema, record: object, what: str) -> bytes:
    try:
        return _write(schema, record)
    except Exception as exc:  # fastavro raises ValueError, TypeError, OverflowError, ...
        raise EncodeError(f"{what}: {_describe(exc)}") from exc


def _read_record(stream: io.BytesIO, writer: Schema, reader: Schema | None) -> Any:
    return schemaless_reader(
        stream,
        writer,
        reader,
        return_record_name=True,
        return_record_name_override=False,
        handle_unicode_errors="strict",
        return_named_type=False,
        return_named_type_override=False,
    )


def _read(
    raw: bytes,
    schema: Schema,
    what: str,
    size_max: int,
    reader_schema: Schema | None = None,
    canonical_check: bool = True,
) -> dict[str, Any]:
    """Steps 1 to 4 of the module docstring; unions of records come back as (name, record)."""
    if len(raw) > size_max:
        raise TooLarge(f"{what}: {len(raw)} bytes, at most {size_max}")
    stream = io.BytesIO(raw)
    try:
        record = _read_record(stream, schema, None)
    except Exception as exc:  # hostile bytes: EOFError, IndexError, UnicodeDecodeError, ...
        raise DecodeError(f"{what}: not a valid Avro {what} ({_describe(exc)})") from exc
    consumed = stream.tell()
    if consumed != len(raw):
        raise DecodeError(f"{what}: {len(raw) - consumed} trailing bytes after the record")
    if not isinstance(record, dict):
        raise DecodeError(f"{what}: not a record")
    if not canonical_check:
        return record if reader_schema is None else _resolve(raw, schema, reader_schema, what)
    try:
        canonical = _write(schema, record) == raw
    except Exception as exc:
        raise DecodeError(f"{what}: cannot be re-encoded ({_describe(exc)})") from exc
    if not canonical:
        raise DecodeError(
            f"{what}: not the canonical Avro encoding of its value "
            "(minimal varints, non-negative union and enum indexes, arrays in one block)"
        )
    if reader_schema is None:
        return record
    return _resolve(raw, schema, reader_schema, what)


def _resolve(raw: bytes, schema: Schema, reader_schema: Schema, what: str) -> dict[str, Any]:
    """Another version's writer schema: read again, resolved to this build's reader schema."""
    try:
        resolved = _read_record(io.BytesIO(raw), schema, reader_schema)
    except SchemaResolutionError as exc:
        raise UnsupportedVersion(
            f"{what}: uses a type this reader cannot resolve ({_describe(exc)})"
        ) from exc
    except Exception as exc:
        raise DecodeError(f"{what}: cannot be resolved ({_describe(exc)})") from exc
    return cast(dict[str, Any], resolved)


def _convert(convert: Callable[[dict[str, Any]], _T], record: dict[str, Any], what: str) -> _T:
    try:
        return convert(record)
    except (KeyError, TypeError, ValueError) as exc:  # a resolved record the model cannot hold
        raise DecodeError(f"{what}: {_describe(exc)}") from exc


def _decoded(value: _T, problem: str | None) -> _T:
    if problem is not None:
        raise DecodeError(problem)
    return value


def _encodable(problem: str | None) -> None:
    if problem is not None:
        raise EncodeError(problem)


# ---- shape checks: what the schema cannot express ------------------------------------------


def _too_long(field: str, value: str, chars_max: int) -> str:
    return f"{field}: {len(value)} characters, at most {chars_max}"


def _count_outside(field: str, count: int, count_min: int, count_max: int) -> str | None:
    if count_min <= count <= count_max:
        return None
    return f"{field}: {count} items, expected {count_min} to {count_max}"


def _not_int32(field: str, value: int) -> str | None:
    if _int32_min <= value <= _int32_max:
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
        return _too_long("TxBody.ledger", body.ledger, identifier_max)
    if problem := _free_fields_problem("TxBody", body.memo, body.external_ref, body.metadata):
        return problem
    op = body.op
    kind = type(op).__name__
    for name in _IDENTIFIER_FIELDS.get(type(op), ()):
        value = getattr(op, name)
        if len(value) > identifier_max:
            return _too_long(f"{kind}.{name}", value, identifier_max)
    if isinstance(op, Transfer):
        return _postings_problem("Transfer.postings", op.postings, limits.postings_min_count)
    elif isinstance(op, RegisterKey):
        return _names_problem("RegisterKey.roles", op.roles, limits.roles_max_count) or (
            _names_problem("RegisterKey.accounts", op.accounts, limits.owned_accounts_max_count)
        )
    elif isinstance(op, DefineAsset):
        return _not_int32("DefineAsset.scale", op.scale)
    elif isinstance(op, SetFinality):
        return _not_int32("SetFinality.threshold", op.threshold)
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


def _free_fields_problem(
    record: str, memo: str | None, external_ref: str | None, metadata: Mapping[str, str]
) -> str | None:
    """memo, external_ref or metadata beyond their limits, in the clear or confidential."""
    if memo is not None and len(memo) > limits.memo_chars_max:
        return _too_long(f"{record}.memo", memo, limits.memo_chars_max)
    if external_ref is not None and len(external_ref) > limits.external_ref_chars_max:
        return _too_long(f"{record}.external_ref", external_ref, limits.external_ref_chars_max)
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
    if problem := _count_outside(
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
    if problem := _count_outside(field, len(metadata), 0, limits.metadata_entries_max_count):
        return problem
    for key, value in metadata.items():
        if not key or len(key) > limits.metadata_key_chars_max:
            return (
                f"{field}: key {key[:20]!r} is empty or longer than {limits.metadata_key_chars_max}"
            )
        if len(value) > limits.metadata_value_chars_max:
            return _too_long(f"{field}[{key!r}]", value, limits.metadata_value_chars_max)
    return None


def _postings_problem(field: str, postings: tuple[Posting, ...], count_min: int) -> str | None:
    if problem := _count_outside(field, len(postings), count_min, limits.postings_max_count):
        return problem
    identifier_max = limits.identifier_chars_max
    for index, posting in enumerate(postings):
        if len(posting.account) > identifier_max:
            return _too_long(f"{field}[{index}].account", posting.account, identifier_max)
        if len(posting.asset) > identifier_max:
            return _too_long(f"{field}[{index}].asset", posting.asset, identifier_max)
    return None


def _reverse_problem(op: Reverse) -> str | None:
    if problem := _count_outside(
        "Reverse.audit_path", len(op.audit_path), 0, limits.audit_path_max_count
    ) or _postings_problem("Reverse.postings", op.postings, 0):
        return problem
    if any(len(node) != _hash_bytes for node in op.audit_path):
        return f"Reverse.audit_path: every node is {_hash_bytes} bytes"
    return _not_int32("Reverse.tx_index", op.tx_index)


def _names_problem(field: str, names: tuple[str, ...], count_max: int) -> str | None:
    """A list of identifiers longer than ``count_max``, or one of them too long."""
    if problem := _count_outside(field, len(names), 0, count_max):
        return problem
    for index, value in enumerate(names):
        if len(value) > limits.identifier_chars_max:
            return _too_long(f"{field}[{index}]", value, limits.identifier_chars_max)
    return None


def _policy_numbers_problem(op: SetAccountPolicy) -> str | None:
    if problem := _not_int32("SetAccountPolicy.threshold", op.threshold):
        return problem
    if op.high_threshold is None:
        return None
    return _not_int32("SetAccountPolicy.high_threshold", op.high_threshold)


def _header_problem(header: BlockHeader) -> str | None:
    if len(header.ledger) > limits.identifier_chars_max:
        return _too_long("BlockHeader.ledger", header.ledger, limits.identifier_chars_max)
    return _not_int32("BlockHeader.tx_count", header.tx_count) or _not_int32(
        "BlockHeader.source_partition", header.source_partition
    )


def _block_problem(block: Block) -> str | None:
    problem = _header_problem(block.header) or _count_outside(
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


# ---- record <-> value: fastavro's dicts, with unions of records as (full name, record) -------


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


_OPERATIONS_BY_NAME: Final[dict[str, type]] = {
    f"ledger.v1.{cls.__name__}": cls for cls in OPERATION_TYPES
}
_OPERATION_FIELDS: Final = {cls: _field_names(cls) for cls in OPERATION_TYPES}
_TX_BODY_FIELDS: Final = _field_names(TxBody)
_ENVELOPE_FIELDS: Final = _field_names(Envelope)
_HEADER_FIELDS: Final = _field_names(BlockHeader)
_REJECTION_FIELDS: Final = _field_names(RejectionRecord)
_COSIGNATURE_FIELDS: Final = _field_names(Cosignature)
_EVIDENCE_FIELDS: Final = _field_names(Evidence)


def _record(value: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(value, name) for name in names}


def _operation_record(op: Operation) -> tuple[str, dict[str, Any]]:
    names = _OPERATION_FIELDS.get(type(op))
    if names is None:
        raise EncodeError(f"TxBody.op: {type(op).__name__} is not an operation")
    record = _record(op, names)
    if isinstance(op, Transfer):
        record["postings"] = [
            {"account": p.account, "asset": p.asset, "amount": p.amount} for p in op.postings
        ]
    elif isinstance(op, SetAccountStatus):
        record["status"] = op.status.value
    elif isinstance(op, SetAccountPolicy):
        record["key_ids"] = list(op.key_ids)
        record["counterparties"] = list(op.counterparties)
    elif isinstance(op, UpdateKey):
        record["accounts"] = list(op.accounts)
    elif isinstance(op, Reverse):
        record["audit_path"] = list(op.audit_path)
        record["postings"] = [
            {"account": p.account, "asset": p.asset, "amount": p.amount} for p in op.postings
        ]
    elif isinstance(op, SetAccountMetadata):
        record["metadata"] = dict(op.metadata)
    return f"ledger.v1.{type(op).__name__}", record


def _operation_from_record(name: str, record: dict[str, Any]) -> Operation:
    cls = _OPERATIONS_BY_NAME.get(name)
    if cls is None:
        raise UnsupportedVersion(f"TxBody.op: {name} is not an operation of this reader")
    if cls is Transfer:
        return Transfer(postings=tuple(Posting(**posting) for posting in record["postings"]))
    if cls is RegisterKey:
        return RegisterKey(
            public_key=record["public_key"],
            roles=tuple(record["roles"]),
            accounts=tuple(record["accounts"]),
        )
    if cls is SetAccountStatus:
        return SetAccountStatus(account=record["account"], status=AccountStatus(record["status"]))
    if cls is UpdateKey:
        return UpdateKey(record["key_id"], tuple(record["accounts"]), record["successor"])
    if cls is Reverse:
        return Reverse(
            **{
                **record,
                "audit_path": tuple(record["audit_path"]),
                "postings": tuple(Posting(**posting) for posting in record["postings"]),
            }
        )
    if cls is SetAccountMetadata:
        return SetAccountMetadata(record["account"], _metadata(record["metadata"]))
    if cls is SetAccountPolicy:
        return SetAccountPolicy(
            **{
                **record,
                "key_ids": tuple(record["key_ids"]),
                "counterparties": tuple(record["counterparties"]),
            }
        )
    return cast(Operation, cls(**record))


def _tx_body_record(body: TxBody) -> dict[str, Any]:
    record = _record(body, _TX_BODY_FIELDS)
    record["op"] = _operation_record(body.op)
    record["metadata"] = dict(body.metadata)
    record["confidential"] = _confidential_record(body.confidential)
    return record


def _confidential_record(confidential: Confidential | None) -> dict[str, Any] | None:
    if confidential is None:
        return None
    return {
        "ephemeral_public_key": confidential.ephemeral_public_key,
        "recipients": [
            {"key_id": recipient.key_id, "wrapped_key": recipient.wrapped_key}
            for recipient in confidential.recipients
        ],
        "commitment": confidential.commitment,
        "ciphertext": confidential.ciphertext,
    }


def _confidential_from_record(value: tuple[str, dict[str, Any]] | None) -> Confidential | None:
    """``value`` as fastavro reads a union of null and a record: None or (name, record)."""
    if value is None:
        return None
    _, record = value
    return Confidential(
        record["ephemeral_public_key"],
        tuple(Recipient(**recipient) for recipient in record["recipients"]),
        record["commitment"],
        record["ciphertext"],
    )


def _metadata(record: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(record) if record else NO_METADATA


def _tx_body_from_record(record: dict[str, Any]) -> TxBody:
    op_name, op_record = record.pop("op")
    record["metadata"] = _metadata(record.get("metadata") or {})
    record["confidential"] = _confidential_from_record(record.get("confidential"))
    return TxBody(op=_operation_from_record(op_name, op_record), **record)


def _rejection_from_record(record: dict[str, Any]) -> RejectionRecord:
    return RejectionRecord(**record)


def _header_from_record(record: dict[str, Any]) -> BlockHeader:
    header = BlockHeader(**record)
    return _decoded(header, _header_problem(header))


def _block_from_record(record: dict[str, Any]) -> Block:
    return Block(
        header=BlockHeader(**record["header"]),
        transactions=tuple(SealedTx(**item) for item in record["transactions"]),
        seal=record["seal"],
    )


# ---- public encoders and decoders ----------------------------------------------------------


def body_version_of(body: TxBody) -> int:
    """The version ``encode_tx_body`` writes ``body`` with: 3 with a confidential part, else 2
    with metadata, else 1."""
    if body.confidential is not None:
        return CURRENT_BODY_VERSION
    return METADATA_BODY_VERSION if body.metadata else BASE_BODY_VERSION


_BODY_WRITERS: Final = {
    BASE_BODY_VERSION: TX_BODY_V1_SCHEMA,
    METADATA_BODY_VERSION: TX_BODY_V2_SCHEMA,
    CURRENT_BODY_VERSION: TX_BODY_SCHEMA,
}


def encode_tx_body(body: TxBody) -> bytes:
    """The canonical Avro bytes of ``body``, with the schema of ``body_version_of(body)``."""
    _encodable(shape_problem(body))
    _encodable(confidential_problem(body))
    record = _tx_body_record(body)
    version = body_version_of(body)
    if version < CURRENT_BODY_VERSION:
        del record["confidential"]
    if version < METADATA_BODY_VERSION:
        del record["metadata"]
    return _encode(_BODY_WRITERS[version], record, "TxBody")


def decode_tx_body(
    raw: bytes,
    body_version: int = BASE_BODY_VERSION,
    *,
    registry: BodySchemaRegistry | None = None,
    canonical_check: bool = True,
) -> TxBody:
    """The TxBody in ``raw``, written with the schema of ``body_version``."""
    registry = BODY_SCHEMAS if registry is None else registry
    writer = registry.writer_schema(body_version)
    if writer is TX_BODY_V1_SCHEMA and len(raw) <= limits.envelope_bytes_max:
        transfer = _plain_transfer(raw)
        if transfer is not None:
            return _decoded(transfer, shape_problem(transfer))
    reader = registry.reader_schema if registry.needs_resolution(writer) else None
    record = _read(raw, writer, "TxBody", limits.envelope_bytes_max, reader, canonical_check)
    body = _convert(_tx_body_from_record, record, "TxBody")
    body = _decoded(body, shape_problem(body))
    if problem := confidential_problem(body):
        raise MalformedConfidential(problem)
    return body


def encode_confidential_fields(salt: bytes, fields: ConfidentialFields) -> bytes:
    """The canonical Avro bytes of a ``ConfidentialFields`` record: ``salt``, then ``fields``.
    What a confidential part encrypts and commits to (``ledger.confidential``)."""
    _encodable(_free_fields_problem("ConfidentialFields", *_free_fields(fields)))
    record = {
        "salt": salt,
        "memo": fields.memo,
        "external_ref": fields.external_ref,
        "metadata": dict(fields.metadata),
    }
    return _encode(CONFIDENTIAL_FIELDS_SCHEMA, record, "ConfidentialFields")


def decode_confidential_fields(raw: bytes) -> tuple[bytes, ConfidentialFields]:
    """The salt and the fields of the ``ConfidentialFields`` bytes ``raw`` (canonical only)."""
    record = _read(raw, CONFIDENTIAL_FIELDS_SCHEMA, "ConfidentialFields", limits.envelope_bytes_max)
    fields = ConfidentialFields(
        record["memo"], record["external_ref"], _metadata(record["metadata"])
    )
    problem = _free_fields_problem("ConfidentialFields", *_free_fields(fields))
    return record["salt"], _decoded(fields, problem)


def _free_fields(fields: ConfidentialFields) -> tuple[str | None, str | None, Mapping[str, str]]:
    return fields.memo, fields.external_ref, fields.metadata


def encode_envelope(envelope: Envelope) -> bytes:
    """The canonical Avro bytes of ``envelope``: a submission's Kafka message value.

    Without cosigners it is a ``ledger.v1.Envelope``, byte for byte what every envelope was
    before multi-signature; with them, a ``ledger.v1.MultiSignedEnvelope`` (the same fields,
    then the cosigners).
    """
    _encodable(_not_int32("Envelope.body_version", envelope.body_version))
    _encodable(_signers_problem(envelope))
    record = {name: getattr(envelope, name) for name in _ENVELOPE_FIELDS if name != "cosigners"}
    if not envelope.cosigners:
        return _encode(ENVELOPE_SCHEMA, record, "Envelope")
    record["cosigners"] = [
        {"public_key": cosigner.public_key, "signature": cosigner.signature}
        for cosigner in envelope.cosigners
    ]
    return _encode(MULTI_SIGNED_ENVELOPE_SCHEMA, record, "MultiSignedEnvelope")


def _signers_problem(envelope: Envelope) -> str | None:
    if len(envelope.cosigners) > limits.cosigners_max_count:
        return (
            f"MultiSignedEnvelope.cosigners: {len(envelope.cosigners)}, "
            f"at most {limits.cosigners_max_count}"
        )
    keys = [envelope.public_key, *(cosigner.public_key for cosigner in envelope.cosigners)]
    if len(set(keys)) != len(keys):
        return "MultiSignedEnvelope: a key signs twice"
    return None


_public_key_bytes: Final = 32
_signature_bytes: Final = 64


def decode_envelope(raw: bytes) -> Envelope:
    """The Envelope in ``raw``; its body stays bytes (``decode_submission`` reads both).

    Read by hand rather than by fastavro: every stage reads every envelope, and the layout is
    fixed (int, bytes, fixed 32, fixed 64). Minimal varints and an exact length make the
    accepted bytes canonical by construction, so no re-encoding is needed (5x faster). Bytes
    after the signature make it a ``MultiSignedEnvelope``: its cosigners follow, as one array
    block of one or more (key, signature) pairs.
    """
    if len(raw) > limits.envelope_bytes_max:
        raise TooLarge(f"Envelope: {len(raw)} bytes, at most {limits.envelope_bytes_max}")
    version, position = _read_long(raw, 0, "Envelope.body_version")
    if problem := _not_int32("Envelope.body_version", version):
        raise DecodeError(problem)
    length, position = _read_long(raw, position, "Envelope.body")
    body_end = position + length
    extra = len(raw) - (body_end + _public_key_bytes + _signature_bytes)
    if length < 0 or extra < 0:
        raise DecodeError(
            f"Envelope: {len(raw)} bytes do not hold a {length}-byte body, a key and a signature"
        )
    key_end = body_end + _public_key_bytes
    signature_end = key_end + _signature_bytes
    envelope = Envelope(
        raw[position:body_end], raw[body_end:key_end], raw[key_end:signature_end], version
    )
    if not extra:
        return envelope
    envelope = dataclasses.replace(envelope, cosigners=_read_cosigners(raw, signature_end))
    if problem := _signers_problem(envelope):
        raise DecodeError(problem)
    return envelope


_cosigner_bytes: Final = _public_key_bytes + _signature_bytes


def _read_cosigners(raw: bytes, position: int) -> tuple[Cosigner, ...]:
    not_cosigners = DecodeError(
        "Envelope: trailing bytes after the signature that are no cosigners (an envelope "
        "without cosigners ends after its signature; cosigners are one array block)"
    )
    try:
        count, position = _read_long(raw, position, "MultiSignedEnvelope.cosigners")
    except DecodeError as exc:
        raise not_cosigners from exc
    if count < 1:  # an empty array would spell a plain Envelope a second way
        raise not_cosigners
    if count > limits.cosigners_max_count:
        raise DecodeError(
            f"MultiSignedEnvelope.cosigners: {count}, at most {limits.cosigners_max_count}"
        )
    end = position + count * _cosigner_bytes
    if end + 1 != len(raw) or raw[end] != 0:
        raise DecodeError(
            f"MultiSignedEnvelope: the trailing bytes after the signature are not {count} "
            "cosigners in one array block and nothing more"
        )
    return tuple(
        Cosigner(
            raw[start : start + _public_key_bytes],
            raw[start + _public_key_bytes : start + _cosigner_bytes],
        )
        for start in range(position, end, _cosigner_bytes)
    )


def submission_record(raw: bytes) -> str:
    """``Envelope`` or ``MultiSignedEnvelope``: which record ``raw`` is, told by its length
    (cosigners follow the signature); ``Envelope`` for bytes that are neither."""
    try:
        _, position = _read_long(raw, 0, "Envelope.body_version")
        length, position = _read_long(raw, position, "Envelope.body")
    except DecodeError:
        return "Envelope"
    plain = position + length + _public_key_bytes + _signature_bytes
    return "MultiSignedEnvelope" if len(raw) > plain else "Envelope"


def decode_submission(
    raw: bytes, *, registry: BodySchemaRegistry | None = None, checked: bool = False
) -> tuple[Envelope, TxBody]:
    """Envelope and body of one submission; the signature is not checked.

    ``checked=True`` is for bytes that already passed this function at the verify stage (read
    back from ``ledger.verified`` or a block): it skips the canonical re-encoding, which is a
    third of the decoding cost and proves nothing new about the same bytes.
    """
    envelope = decode_envelope(raw)
    body = decode_tx_body(
        envelope.body, envelope.body_version, registry=registry, canonical_check=not checked
    )
    return envelope, body


def encode_block_header(header: BlockHeader) -> bytes:
    """The canonical Avro bytes of ``header``: what the block hash covers."""
    _encodable(_header_problem(header))
    return _encode(BLOCK_HEADER_SCHEMA, _record(header, _HEADER_FIELDS), "BlockHeader")


def decode_block_header(raw: bytes) -> BlockHeader:
    """The BlockHeader in ``raw``."""
    record = _read(raw, BLOCK_HEADER_SCHEMA, "BlockHeader", limits.message_bytes_max)
    return _convert(_header_from_record, record, "BlockHeader")


def encode_block(block: Block) -> bytes:
    """The canonical Avro bytes of ``block``: one message on ``ledger.blocks``."""
    _encodable(_block_problem(block))
    record = {
        "header": _record(block.header, _HEADER_FIELDS),
        "transactions": [{"seq": tx.seq, "envelope": tx.envelope} for tx in block.transactions],
        "seal": block.seal,
    }
    return _encode(BLOCK_SCHEMA, record, "Block")


def decode_block(raw: bytes, *, canonical_check: bool = True) -> Block:
    """The Block in ``raw``; its envelopes stay the exact bytes that were sealed.

    ``canonical_check=False`` is for the ledger's own processes replaying their chain (sequencer,
    projector): what they derive cannot depend on the spelling, because the block hash is taken
    over this build's re-encoding of the header, the seal is checked over that hash, and
    ``tx_root`` over the exact envelope bytes. Auditors and the SDK keep the check.
    """
    record = _read(
        raw, BLOCK_SCHEMA, "Block", limits.message_bytes_max, canonical_check=canonical_check
    )
    block = _convert(_block_from_record, record, "Block")
    return _decoded(block, _block_problem(block))


def encode_rejection(rejection: RejectionRecord) -> bytes:
    """The canonical Avro bytes of ``rejection``: one message on ``ledger.rejections``."""
    _encodable(_not_int32("Rejection.source_partition", rejection.source_partition))
    return _encode(REJECTION_SCHEMA, _record(rejection, _REJECTION_FIELDS), "Rejection")


def decode_rejection(raw: bytes) -> RejectionRecord:
    """The RejectionRecord in ``raw``."""
    record = _read(raw, REJECTION_SCHEMA, "Rejection", limits.message_bytes_max)
    rejection = _convert(_rejection_from_record, record, "Rejection")
    return _decoded(rejection, _not_int32("Rejection.source_partition", rejection.source_partition))


def encode_verified_batch(batch: VerifiedBatch) -> bytes:
    """The Avro bytes of ``batch``: one message on ``ledger.verified``."""
    record = {
        "ledger": batch.ledger,
        "entries": [
            {
                "source_partition": entry.source_partition,
                "source_offset": entry.source_offset,
                "envelope": entry.envelope,
            }
            for entry in batch.entries
        ],
    }
    return _encode(VERIFIED_BATCH_SCHEMA, record, "VerifiedBatch")


def decode_verified_batch(raw: bytes) -> VerifiedBatch:
    """The VerifiedBatch in ``raw``.

    No canonical re-encoding: the batch is the verify stage's own framing, never sealed or
    signed, and every envelope inside is decoded canonically again by the sequencer.
    """
    record = _read(
        raw, VERIFIED_BATCH_SCHEMA, "VerifiedBatch", limits.message_bytes_max, canonical_check=False
    )
    try:
        entries = tuple(
            VerifiedEntry(entry["source_partition"], entry["source_offset"], entry["envelope"])
            for entry in record["entries"]
        )
    except (KeyError, TypeError) as exc:
        raise DecodeError(f"VerifiedBatch: {_describe(exc)}") from exc
    batch = VerifiedBatch(record["ledger"], entries)
    return _decoded(batch, _verified_batch_problem(batch))


def _verified_batch_problem(batch: VerifiedBatch) -> str | None:
    """What would make a block or a rejection of this batch unencodable: refused up front, so
    a bad message on ledger.verified is one MALFORMED rejection, never a stalled shard."""
    problem = _count_outside(
        "VerifiedBatch.entries", len(batch.entries), 0, limits.verified_batch_tx_max_count
    )
    if problem:
        return problem
    size_bytes = 0
    for index, entry in enumerate(batch.entries):
        if len(entry.envelope) > limits.envelope_bytes_max:
            return (
                f"VerifiedBatch.entries[{index}].envelope: {len(entry.envelope)} bytes, "
                f"at most {limits.envelope_bytes_max}"
            )
        size_bytes += len(entry.envelope)
        if problem := _not_int32(
            f"VerifiedBatch.entries[{index}].source_partition", entry.source_partition
        ):
            return problem
    if size_bytes > limits.verified_batch_bytes_max:
        return f"VerifiedBatch: {size_bytes} bytes of envelopes, at most {limits.verified_batch_bytes_max}"
    return None


# ---- the body's head, without decoding the rest ---------------------------------------------

_HEAD_FIELDS: Final = (
    ("tx_id", {"type": "fixed", "name": "ledger.v1.TxId", "size": 16}),
    ("ledger", "string"),
    ("created_at_ms", "long"),
    ("expires_at_ms", "long"),
)


def _starts_with_head(schema: Schema) -> bool:
    fields = cast(dict[str, Any], schema).get("fields", [])
    if len(fields) < len(_HEAD_FIELDS):
        return False
    for field, (name, kind) in zip(fields, _HEAD_FIELDS, strict=False):
        if field["name"] != name:
            return False
        if isinstance(kind, dict):
            written = field["type"]
            if not isinstance(written, dict) or written.get("size") != kind["size"]:
                return False
        elif field["type"] != kind:
            return False
    return True


def _read_long(raw: bytes, position: int, what: str) -> tuple[int, int]:
    """The Avro long (zigzag varint) at ``position``: (value, next position).

    Only the minimal encoding is accepted (no trailing 0x00 continuation), as fastavro's
    output, and at most 10 bytes.
    """
    result = shift = 0
    for index in range(position, min(position + 10, len(raw))):
        byte = raw[index]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and index > position:
                raise DecodeError(f"{what}: overlong varint (not the canonical encoding)")
            if result >= 1 << 64:
                raise DecodeError(f"{what}: varint does not fit a long")
            return (result >> 1) ^ -(result & 1), index + 1
        shift += 7
    raise DecodeError(f"{what}: truncated varint")


def decode_body_head(
    raw: bytes,
    body_version: int = BASE_BODY_VERSION,
    *,
    registry: BodySchemaRegistry | None = None,
) -> BodyHead:
    """tx_id, ledger and validity window of a body, reading only its first fields.

    The verify stage routes and refuses out-of-time transactions with this (a few µs instead of
    a full decode); the sequencer decodes the whole body, canonically, exactly once. A writer
    schema that does not start with these four fields is decoded whole instead.
    """
    registry = BODY_SCHEMAS if registry is None else registry
    if len(raw) > limits.envelope_bytes_max:
        raise TooLarge(f"TxBody: {len(raw)} bytes, at most {limits.envelope_bytes_max}")
    if not registry.starts_with_head(body_version):
        body = decode_tx_body(raw, body_version, registry=registry)
        return BodyHead(body.tx_id, body.ledger, body.created_at_ms, body.expires_at_ms)
    if len(raw) < 16:
        raise DecodeError("TxBody: shorter than its tx_id")
    tx_id = raw[:16]
    length, position = _read_long(raw, 16, "TxBody.ledger")
    end = position + length
    if length < 0 or end > len(raw):
        raise DecodeError("TxBody: ledger name runs past the body")
    try:
        ledger = raw[position:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"TxBody: ledger is not UTF-8 ({_describe(exc)})") from exc
    if len(ledger) > limits.identifier_chars_max:
        raise DecodeError(_too_long("TxBody.ledger", ledger, limits.identifier_chars_max))
    created_at_ms, position = _read_long(raw, end, "TxBody.created_at_ms")
    expires_at_ms, _ = _read_long(raw, position, "TxBody.expires_at_ms")
    return BodyHead(tx_id, ledger, created_at_ms, expires_at_ms)


def operation_index(raw: bytes) -> int:
    """The ``op`` union branch of a TxBody of any version so far (``OPERATION_TYPES`` order), read
    after its head without decoding the rest: for readers that want only a few kinds. The body
    is trusted to be well formed (it was sealed); DecodeError if it runs short."""
    length, position = _read_long(raw, 16, "TxBody.ledger")
    _, position = _read_long(raw, position + length, "TxBody.created_at_ms")
    _, position = _read_long(raw, position, "TxBody.expires_at_ms")
    index, _ = _read_long(raw, position, "TxBody.op")
    return index


# ---- the fast path of the hot path: a plain Transfer body, read by hand ---------------------

_TRANSFER_BRANCH: Final = 10
"""Zigzag varint of the Transfer branch (index 5) of the TxBody.op union."""


def _plain_transfer(raw: bytes) -> TxBody | None:
    """The TxBody of ``raw`` when it is the canonical encoding of a Transfer, else None.

    Payments are almost all transfers, and fastavro plus the canonical re-encoding costs about
    22 µs a body here, most of the sequencer's time. This reads the one layout by hand and
    accepts only bytes fastavro would write for the value it reads (minimal varints, union
    indexes 0 or 1, the postings in one array block, strict UTF-8, nothing left over); on any
    other input it returns None and the general path decides, with its own error.
    """
    try:
        return _read_transfer(raw)
    except (_NotPlain, IndexError, UnicodeDecodeError):
        return None


class _NotPlain(Exception):
    """The bytes leave the plain-transfer layout: let the general decoder judge them."""


def _varint(raw: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    index = position
    while True:
        byte = raw[index]
        result |= (byte & 0x7F) << shift
        index += 1
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise _NotPlain
    if (byte == 0 and index - position > 1) or result >= 1 << 64:
        raise _NotPlain
    return (result >> 1) ^ -(result & 1), index


def _string(raw: bytes, position: int) -> tuple[str, int]:
    length, position = _varint(raw, position)
    end = position + length
    if length < 0 or end > len(raw):
        raise _NotPlain
    return raw[position:end].decode("utf-8"), end


def _optional_string(raw: bytes, position: int) -> tuple[str | None, int]:
    branch, position = _varint(raw, position)
    if branch == 0:
        return None, position
    if branch != 1:
        raise _NotPlain
    return _string(raw, position)


def _read_transfer(raw: bytes) -> TxBody:
    if len(raw) < 16:
        raise _NotPlain
    ledger, position = _string(raw, 16)
    created_at_ms, position = _varint(raw, position)
    expires_at_ms, position = _varint(raw, position)
    if raw[position] != _TRANSFER_BRANCH:
        raise _NotPlain
    count, position = _varint(raw, position + 1)
    if count <= 0:
        raise _NotPlain
    postings = []
    for _ in range(count):
        account, position = _string(raw, position)
        asset, position = _string(raw, position)
        amount, position = _varint(raw, position)
        postings.append(Posting(account, asset, amount))
    if raw[position] != 0:
        raise _NotPlain  # a second array block: fastavro would write one
    memo, position = _optional_string(raw, position + 1)
    external_ref, position = _optional_string(raw, position)
    if position != len(raw):
        raise _NotPlain
    return TxBody(
        raw[:16],
        ledger,
        created_at_ms,
        expires_at_ms,
        Transfer(tuple(postings)),
        memo,
        external_ref,
        NO_METADATA,
    )


def add_transfer_volume(envelope: bytes, volume: dict[bytes, int]) -> bool:
    """Add a sealed Transfer's positive posting amounts to ``volume`` (asset as UTF-8 bytes).

    For readers of sealed envelopes that want only the money moved (the stats worker): it skips
    what it does not need and builds no objects, about a fifth of ``decode_submission``'s cost.
    True when it read the envelope (any other operation adds nothing); False when the bytes are
    not the current body version's layout, and the general decoder must judge them.
    """
    try:
        version, position = _varint(envelope, 0)
        if version != BASE_BODY_VERSION:
            return False
        length, position = _varint(envelope, position)
        body_end = position + length
        ledger_length, position = _varint(envelope, position + 16)  # after the tx_id
        _, position = _varint(envelope, position + ledger_length)  # created_at_ms
        _, position = _varint(envelope, position)  # expires_at_ms
        if envelope[position] != _TRANSFER_BRANCH:
            return True
        count, position = _varint(envelope, position + 1)
        moved = []
        for _ in range(count):
            account_length, position = _varint(envelope, position)
            asset_length, asset_start = _varint(envelope, position + account_length)
            position = asset_start + asset_length
            amount, position = _varint(envelope, position)
            if amount > 0:
                moved.append((envelope[asset_start : asset_start + asset_length], amount))
        if position > body_end:
            return False
    except (_NotPlain, IndexError):
        return False
    for asset, amount in moved:
        volume[asset] = volume.get(asset, 0) + amount
    return True


def encode_cosignature(cosignature: Cosignature) -> bytes:
    """The canonical Avro bytes of ``cosignature``: one message on ``ledger.cosignatures``."""
    return _encode(COSIGNATURE_SCHEMA, _record(cosignature, _COSIGNATURE_FIELDS), "Cosignature")


def decode_cosignature(raw: bytes) -> Cosignature:
    """The Cosignature in ``raw`` (canonical bytes only); its signature is not checked here."""
    record = _read(raw, COSIGNATURE_SCHEMA, "Cosignature", cosignature_bytes_max)
    cosignature = _convert(lambda fields: Cosignature(**fields), record, "Cosignature")
    if len(cosignature.ledger) > limits.identifier_chars_max:
        raise DecodeError(
            _too_long("Cosignature.ledger", cosignature.ledger, limits.identifier_chars_max)
        )
    return cosignature


def encode_evidence(evidence: Evidence) -> bytes:
    """The canonical Avro bytes of ``evidence``: one message on ``ledger.evidence``."""
    return _encode(EVIDENCE_SCHEMA, _record(evidence, _EVIDENCE_FIELDS), "Evidence")


def decode_evidence(raw: bytes) -> Evidence:
    """The Evidence in ``raw`` (canonical bytes only); its signature is not checked here."""
    record = _read(raw, EVIDENCE_SCHEMA, "Evidence", limits.message_bytes_max)
    evidence = _convert(lambda fields: Evidence(**fields), record, "Evidence")
    if len(evidence.ledger) > limits.identifier_chars_max:
        raise DecodeError(
            _too_long("Evidence.ledger", evidence.ledger, limits.identifier_chars_max)
        )
    if evidence.kind not in EVIDENCE_KINDS:
        raise DecodeError(f"Evidence.kind {evidence.kind[:40]!r} is not one of {EVIDENCE_KINDS}")
    return evidence
