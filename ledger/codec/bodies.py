"""TxBody bytes: the whole body in the version it needs, its confidential fields, and its head
read without decoding the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ledger import limits
from ledger.codec.avro import (
    convert,
    decoded,
    describe,
    encodable,
    encode,
    frozen_metadata,
    read,
    tx_body_from_record,
    tx_body_record,
)
from ledger.codec.errors import MalformedConfidential, TooLarge
from ledger.codec.schemas import (
    BASE_BODY_VERSION,
    BODY_SCHEMAS,
    CONFIDENTIAL_FIELDS_SCHEMA,
    CURRENT_BODY_VERSION,
    METADATA_BODY_VERSION,
    TX_BODY_SCHEMA,
    TX_BODY_V1_SCHEMA,
    TX_BODY_V2_SCHEMA,
    BodySchemaRegistry,
)
from ledger.codec.shapes import confidential_problem, free_fields_problem, shape_problem, too_long
from ledger.codec.transfer import plain_transfer
from ledger.errors import DecodeError
from ledger.model import BodyHead, ConfidentialFields, TxBody


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
    encodable(shape_problem(body))
    encodable(confidential_problem(body))
    record = tx_body_record(body)
    version = body_version_of(body)
    if version < CURRENT_BODY_VERSION:
        del record["confidential"]
    if version < METADATA_BODY_VERSION:
        del record["metadata"]
    return encode(_BODY_WRITERS[version], record, "TxBody")


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
        transfer = plain_transfer(raw)
        if transfer is not None:
            return decoded(transfer, shape_problem(transfer))
    reader = registry.reader_schema if registry.needs_resolution(writer) else None
    record = read(raw, writer, "TxBody", limits.envelope_bytes_max, reader, canonical_check)
    body = convert(tx_body_from_record, record, "TxBody")
    body = decoded(body, shape_problem(body))
    if problem := confidential_problem(body):
        raise MalformedConfidential(problem)
    return body


def encode_confidential_fields(salt: bytes, fields: ConfidentialFields) -> bytes:
    """The canonical Avro bytes of a ``ConfidentialFields`` record: ``salt``, then ``fields``.
    What a confidential part encrypts and commits to (``ledger.confidential``)."""
    encodable(free_fields_problem("ConfidentialFields", *_free_fields(fields)))
    record = {
        "salt": salt,
        "memo": fields.memo,
        "external_ref": fields.external_ref,
        "metadata": dict(fields.metadata),
    }
    return encode(CONFIDENTIAL_FIELDS_SCHEMA, record, "ConfidentialFields")


def decode_confidential_fields(raw: bytes) -> tuple[bytes, ConfidentialFields]:
    """The salt and the fields of the ``ConfidentialFields`` bytes ``raw`` (canonical only)."""
    record = read(raw, CONFIDENTIAL_FIELDS_SCHEMA, "ConfidentialFields", limits.envelope_bytes_max)
    fields = ConfidentialFields(
        record["memo"], record["external_ref"], frozen_metadata(record["metadata"])
    )
    problem = free_fields_problem("ConfidentialFields", *_free_fields(fields))
    return record["salt"], decoded(fields, problem)


def _free_fields(fields: ConfidentialFields) -> tuple[str | None, str | None, Mapping[str, str]]:
    return fields.memo, fields.external_ref, fields.metadata


# ---- the body's head, without decoding the rest ---------------------------------------------


def read_long(raw: bytes, position: int, what: str) -> tuple[int, int]:
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
    length, position = read_long(raw, 16, "TxBody.ledger")
    end = position + length
    if length < 0 or end > len(raw):
        raise DecodeError("TxBody: ledger name runs past the body")
    try:
        ledger = raw[position:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"TxBody: ledger is not UTF-8 ({describe(exc)})") from exc
    if len(ledger) > limits.identifier_chars_max:
        raise DecodeError(too_long("TxBody.ledger", ledger, limits.identifier_chars_max))
    created_at_ms, position = read_long(raw, end, "TxBody.created_at_ms")
    expires_at_ms, _ = read_long(raw, position, "TxBody.expires_at_ms")
    return BodyHead(tx_id, ledger, created_at_ms, expires_at_ms)


def operation_index(raw: bytes) -> int:
    """The ``op`` union branch of a TxBody of any version so far (``OPERATION_TYPES`` order), read
    after its head without decoding the rest: for readers that want only a few kinds. The body
    is trusted to be well formed (it was sealed); DecodeError if it runs short."""
    length, position = read_long(raw, 16, "TxBody.ledger")
    _, position = read_long(raw, position + length, "TxBody.created_at_ms")
    _, position = read_long(raw, position, "TxBody.expires_at_ms")
    index, _ = read_long(raw, position, "TxBody.op")
    return index
