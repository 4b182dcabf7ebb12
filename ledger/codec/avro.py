"""The fastavro edge, and fastavro's records <-> ``ledger.model`` values.

``read`` is the one place outside bytes are read with fastavro: steps 1 to 4 of the package
docstring (``ledger/codec/__init__.py``); ``write`` the one place they are written.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.types import Schema

from ledger.codec.errors import EncodeError, TooLarge, UnsupportedVersion
from ledger.codec.shapes import header_problem
from ledger.errors import DecodeError
from ledger.model import (
    NO_METADATA,
    OPERATION_TYPES,
    AccountStatus,
    Block,
    BlockHeader,
    Confidential,
    Cosignature,
    Envelope,
    Evidence,
    Operation,
    Posting,
    Recipient,
    RegisterKey,
    RejectionRecord,
    Reverse,
    SealedTx,
    SetAccountMetadata,
    SetAccountPolicy,
    SetAccountStatus,
    Transfer,
    TxBody,
    UpdateKey,
)

_detail_chars_max: Final = 200
"""fastavro messages can quote whole schemas; an error detail stays one short line."""

_T = TypeVar("_T")


# ---- the fastavro edge ---------------------------------------------------------------------


def write(schema: Schema, record: object) -> bytes:
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


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > _detail_chars_max:
        text = text[: _detail_chars_max - 3] + "..."
    return text


def encode(schema: Schema, record: object, what: str) -> bytes:
    try:
        return write(schema, record)
    except Exception as exc:  # fastavro raises ValueError, TypeError, OverflowError, ...
        raise EncodeError(f"{what}: {describe(exc)}") from exc


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


def read(
    raw: bytes,
    schema: Schema,
    what: str,
    size_max: int,
    reader_schema: Schema | None = None,
    canonical_check: bool = True,
) -> dict[str, Any]:
    """Steps 1 to 4 of the package docstring; unions of records come back as (name, record)."""
    if len(raw) > size_max:
        raise TooLarge(f"{what}: {len(raw)} bytes, at most {size_max}")
    stream = io.BytesIO(raw)
    try:
        record = _read_record(stream, schema, None)
    except Exception as exc:  # hostile bytes: EOFError, IndexError, UnicodeDecodeError, ...
        raise DecodeError(f"{what}: not a valid Avro {what} ({describe(exc)})") from exc
    consumed = stream.tell()
    if consumed != len(raw):
        raise DecodeError(f"{what}: {len(raw) - consumed} trailing bytes after the record")
    if not isinstance(record, dict):
        raise DecodeError(f"{what}: not a record")
    if not canonical_check:
        return record if reader_schema is None else _resolve(raw, schema, reader_schema, what)
    try:
        canonical = write(schema, record) == raw
    except Exception as exc:
        raise DecodeError(f"{what}: cannot be re-encoded ({describe(exc)})") from exc
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
            f"{what}: uses a type this reader cannot resolve ({describe(exc)})"
        ) from exc
    except Exception as exc:
        raise DecodeError(f"{what}: cannot be resolved ({describe(exc)})") from exc
    return cast(dict[str, Any], resolved)


def convert(to_value: Callable[[dict[str, Any]], _T], record: dict[str, Any], what: str) -> _T:
    try:
        return to_value(record)
    except (KeyError, TypeError, ValueError) as exc:  # a resolved record the model cannot hold
        raise DecodeError(f"{what}: {describe(exc)}") from exc


def decoded(value: _T, problem: str | None) -> _T:
    if problem is not None:
        raise DecodeError(problem)
    return value


def encodable(problem: str | None) -> None:
    if problem is not None:
        raise EncodeError(problem)


# ---- record <-> value: fastavro's dicts, with unions of records as (full name, record) -------


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


_OPERATIONS_BY_NAME: Final[dict[str, type]] = {
    f"ledger.v1.{cls.__name__}": cls for cls in OPERATION_TYPES
}
_OPERATION_FIELDS: Final = {cls: _field_names(cls) for cls in OPERATION_TYPES}
_TX_BODY_FIELDS: Final = _field_names(TxBody)
ENVELOPE_FIELDS: Final = _field_names(Envelope)
HEADER_FIELDS: Final = _field_names(BlockHeader)
REJECTION_FIELDS: Final = _field_names(RejectionRecord)
COSIGNATURE_FIELDS: Final = _field_names(Cosignature)
EVIDENCE_FIELDS: Final = _field_names(Evidence)


def record_of(value: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(value, name) for name in names}


def _operation_record(op: Operation) -> tuple[str, dict[str, Any]]:
    names = _OPERATION_FIELDS.get(type(op))
    if names is None:
        raise EncodeError(f"TxBody.op: {type(op).__name__} is not an operation")
    record = record_of(op, names)
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
        return SetAccountMetadata(record["account"], frozen_metadata(record["metadata"]))
    if cls is SetAccountPolicy:
        return SetAccountPolicy(
            **{
                **record,
                "key_ids": tuple(record["key_ids"]),
                "counterparties": tuple(record["counterparties"]),
            }
        )
    return cast(Operation, cls(**record))


def tx_body_record(body: TxBody) -> dict[str, Any]:
    record = record_of(body, _TX_BODY_FIELDS)
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


def frozen_metadata(record: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(record) if record else NO_METADATA


def tx_body_from_record(record: dict[str, Any]) -> TxBody:
    op_name, op_record = record.pop("op")
    record["metadata"] = frozen_metadata(record.get("metadata") or {})
    record["confidential"] = _confidential_from_record(record.get("confidential"))
    return TxBody(op=_operation_from_record(op_name, op_record), **record)


def rejection_from_record(record: dict[str, Any]) -> RejectionRecord:
    return RejectionRecord(**record)


def header_from_record(record: dict[str, Any]) -> BlockHeader:
    header = BlockHeader(**record)
    return decoded(header, header_problem(header))


def block_from_record(record: dict[str, Any]) -> Block:
    return Block(
        header=BlockHeader(**record["header"]),
        transactions=tuple(SealedTx(**item) for item in record["transactions"]),
        seal=record["seal"],
    )
