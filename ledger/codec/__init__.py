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

The modules, bottom up: ``errors``; ``shapes`` (step 5); ``schemas`` (the parsed schemas and the
TxBody versions); ``avro`` (steps 1 to 4, and records <-> values); ``transfer`` (the hot path's
plain Transfer body, read by hand); ``bodies``, ``envelopes`` and ``messages`` (the public
encoders and decoders). Callers import from ``ledger.codec`` only.
"""

from __future__ import annotations

from ledger import native

__path__ = native.package_path(__name__, __path__)  # compiled copies first (ledger.native)

from ledger.codec.avro import convert, read, tx_body_from_record, tx_body_record, write
from ledger.codec.bodies import (
    body_version_of,
    decode_body_head,
    decode_confidential_fields,
    decode_tx_body,
    encode_confidential_fields,
    encode_tx_body,
    operation_index,
)
from ledger.codec.envelopes import (
    decode_envelope,
    decode_submission,
    encode_envelope,
    submission_record,
)
from ledger.codec.errors import (
    EncodeError,
    MalformedConfidential,
    TooLarge,
    UnknownSchemaId,
    UnsupportedVersion,
    rejection_code_for,
)
from ledger.codec.messages import (
    EVIDENCE_KINDS,
    cosignature_bytes_max,
    decode_block,
    decode_block_header,
    decode_cosignature,
    decode_evidence,
    decode_rejection,
    decode_verified_batch,
    encode_block,
    encode_block_header,
    encode_cosignature,
    encode_evidence,
    encode_rejection,
    encode_verified_batch,
)
from ledger.codec.schemas import (
    BASE_BODY_VERSION,
    BLOCK_HEADER_SCHEMA,
    BLOCK_SCHEMA,
    BODY_SCHEMAS,
    CONFIDENTIAL_FIELDS_SCHEMA,
    COSIGNATURE_SCHEMA,
    CURRENT_BODY_VERSION,
    ENVELOPE_SCHEMA,
    EVIDENCE_SCHEMA,
    METADATA_BODY_VERSION,
    MULTI_SIGNED_ENVELOPE_SCHEMA,
    REJECTION_SCHEMA,
    TX_BODY_SCHEMA,
    TX_BODY_V1_SCHEMA,
    TX_BODY_V2_SCHEMA,
    VERIFIED_BATCH_SCHEMA,
    BodySchemaRegistry,
    body_schema_json,
    register_body_schema,
    schema_json,
)
from ledger.codec.shapes import (
    confidential_ciphertext_bytes_min,
    confidential_problem,
    metadata_problem,
    shape_problem,
)
from ledger.codec.transfer import add_transfer_volume, plain_transfer

__all__ = [
    # errors
    "EncodeError",
    "MalformedConfidential",
    "TooLarge",
    "UnknownSchemaId",
    "UnsupportedVersion",
    "rejection_code_for",
    # schemas and TxBody versions
    "BASE_BODY_VERSION",
    "BLOCK_HEADER_SCHEMA",
    "BLOCK_SCHEMA",
    "BODY_SCHEMAS",
    "CONFIDENTIAL_FIELDS_SCHEMA",
    "COSIGNATURE_SCHEMA",
    "CURRENT_BODY_VERSION",
    "ENVELOPE_SCHEMA",
    "EVIDENCE_SCHEMA",
    "METADATA_BODY_VERSION",
    "MULTI_SIGNED_ENVELOPE_SCHEMA",
    "REJECTION_SCHEMA",
    "TX_BODY_SCHEMA",
    "TX_BODY_V1_SCHEMA",
    "TX_BODY_V2_SCHEMA",
    "VERIFIED_BATCH_SCHEMA",
    "BodySchemaRegistry",
    "body_schema_json",
    "register_body_schema",
    "schema_json",
    # shape checks
    "confidential_ciphertext_bytes_min",
    "confidential_problem",
    "metadata_problem",
    "shape_problem",
    # bodies
    "body_version_of",
    "decode_body_head",
    "decode_confidential_fields",
    "decode_tx_body",
    "encode_confidential_fields",
    "encode_tx_body",
    "operation_index",
    "add_transfer_volume",
    # envelopes
    "decode_envelope",
    "decode_submission",
    "encode_envelope",
    "submission_record",
    # blocks, rejections, verified batches, cosignatures, evidence
    "EVIDENCE_KINDS",
    "cosignature_bytes_max",
    "decode_block",
    "decode_block_header",
    "decode_cosignature",
    "decode_evidence",
    "decode_rejection",
    "decode_verified_batch",
    "encode_block",
    "encode_block_header",
    "encode_cosignature",
    "encode_evidence",
    "encode_rejection",
    "encode_verified_batch",
    # internals the tests reach: the fast path against fastavro's, bytes the encoder refuses
    "convert",
    "plain_transfer",
    "read",
    "tx_body_from_record",
    "tx_body_record",
    "write",
]
