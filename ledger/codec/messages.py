"""The ledger's own messages beside submissions: block headers and blocks, rejections, verified
batches, cosignatures and evidence."""

from __future__ import annotations

from typing import Final

from ledger import limits
from ledger.codec.avro import (
    COSIGNATURE_FIELDS,
    EVIDENCE_FIELDS,
    HEADER_FIELDS,
    REJECTION_FIELDS,
    block_from_record,
    convert,
    decoded,
    describe,
    encodable,
    encode,
    header_from_record,
    read,
    record_of,
    rejection_from_record,
)
from ledger.codec.schemas import (
    BLOCK_HEADER_SCHEMA,
    BLOCK_SCHEMA,
    COSIGNATURE_SCHEMA,
    EVIDENCE_SCHEMA,
    REJECTION_SCHEMA,
    VERIFIED_BATCH_SCHEMA,
)
from ledger.codec.shapes import block_problem, count_outside, header_problem, not_int32, too_long
from ledger.errors import DecodeError
from ledger.model import (
    Block,
    BlockHeader,
    Cosignature,
    Evidence,
    RejectionRecord,
    VerifiedBatch,
    VerifiedEntry,
)

EVIDENCE_KINDS: Final = ("EQUIVOCATION", "NOT_EXTENDING", "REPLAY_REFUSED")
"""``Evidence.kind`` values (``ledger.witnessing.EvidenceKind``)."""

cosignature_bytes_max: Final = 1_024
"""A cosignature is about 200 bytes; anything much larger is refused before decoding."""


def encode_block_header(header: BlockHeader) -> bytes:
    """The canonical Avro bytes of ``header``: what the block hash covers."""
    encodable(header_problem(header))
    return encode(BLOCK_HEADER_SCHEMA, record_of(header, HEADER_FIELDS), "BlockHeader")


def decode_block_header(raw: bytes) -> BlockHeader:
    """The BlockHeader in ``raw``."""
    record = read(raw, BLOCK_HEADER_SCHEMA, "BlockHeader", limits.message_bytes_max)
    return convert(header_from_record, record, "BlockHeader")


def encode_block(block: Block) -> bytes:
    """The canonical Avro bytes of ``block``: one message on ``ledger.blocks``."""
    encodable(block_problem(block))
    record = {
        "header": record_of(block.header, HEADER_FIELDS),
        "transactions": [{"seq": tx.seq, "envelope": tx.envelope} for tx in block.transactions],
        "seal": block.seal,
    }
    return encode(BLOCK_SCHEMA, record, "Block")


def decode_block(raw: bytes, *, canonical_check: bool = True) -> Block:
    """The Block in ``raw``; its envelopes stay the exact bytes that were sealed.

    ``canonical_check=False`` is for the ledger's own processes replaying their chain (sequencer,
    projector, the dashboard's chain check): what they derive cannot depend on the spelling, because the block hash is taken
    over this build's re-encoding of the header, the seal is checked over that hash, and
    ``tx_root`` over the exact envelope bytes. Auditors and the SDK keep the check.
    """
    record = read(
        raw, BLOCK_SCHEMA, "Block", limits.message_bytes_max, canonical_check=canonical_check
    )
    block = convert(block_from_record, record, "Block")
    return decoded(block, block_problem(block))


def encode_rejection(rejection: RejectionRecord) -> bytes:
    """The canonical Avro bytes of ``rejection``: one message on ``ledger.rejections``."""
    encodable(not_int32("Rejection.source_partition", rejection.source_partition))
    return encode(REJECTION_SCHEMA, record_of(rejection, REJECTION_FIELDS), "Rejection")


def decode_rejection(raw: bytes) -> RejectionRecord:
    """The RejectionRecord in ``raw``."""
    record = read(raw, REJECTION_SCHEMA, "Rejection", limits.message_bytes_max)
    rejection = convert(rejection_from_record, record, "Rejection")
    return decoded(rejection, not_int32("Rejection.source_partition", rejection.source_partition))


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
    return encode(VERIFIED_BATCH_SCHEMA, record, "VerifiedBatch")


def decode_verified_batch(raw: bytes) -> VerifiedBatch:
    """The VerifiedBatch in ``raw``.

    No canonical re-encoding: the batch is the verify stage's own framing, never sealed or
    signed, and every envelope inside is decoded canonically again by the sequencer.
    """
    record = read(
        raw, VERIFIED_BATCH_SCHEMA, "VerifiedBatch", limits.message_bytes_max, canonical_check=False
    )
    try:
        entries = tuple(
            VerifiedEntry(entry["source_partition"], entry["source_offset"], entry["envelope"])
            for entry in record["entries"]
        )
    except (KeyError, TypeError) as exc:
        raise DecodeError(f"VerifiedBatch: {describe(exc)}") from exc
    batch = VerifiedBatch(record["ledger"], entries)
    return decoded(batch, _verified_batch_problem(batch))


def _verified_batch_problem(batch: VerifiedBatch) -> str | None:
    """What would make a block or a rejection of this batch unencodable: refused up front, so
    a bad message on ledger.verified is one MALFORMED rejection, never a stalled shard."""
    problem = count_outside(
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
        if problem := not_int32(
            f"VerifiedBatch.entries[{index}].source_partition", entry.source_partition
        ):
            return problem
    if size_bytes > limits.verified_batch_bytes_max:
        return f"VerifiedBatch: {size_bytes} bytes of envelopes, at most {limits.verified_batch_bytes_max}"
    return None


def encode_cosignature(cosignature: Cosignature) -> bytes:
    """The canonical Avro bytes of ``cosignature``: one message on ``ledger.cosignatures``."""
    return encode(COSIGNATURE_SCHEMA, record_of(cosignature, COSIGNATURE_FIELDS), "Cosignature")


def decode_cosignature(raw: bytes) -> Cosignature:
    """The Cosignature in ``raw`` (canonical bytes only); its signature is not checked here."""
    record = read(raw, COSIGNATURE_SCHEMA, "Cosignature", cosignature_bytes_max)
    cosignature = convert(lambda fields: Cosignature(**fields), record, "Cosignature")
    if len(cosignature.ledger) > limits.identifier_chars_max:
        raise DecodeError(
            too_long("Cosignature.ledger", cosignature.ledger, limits.identifier_chars_max)
        )
    return cosignature


def encode_evidence(evidence: Evidence) -> bytes:
    """The canonical Avro bytes of ``evidence``: one message on ``ledger.evidence``."""
    return encode(EVIDENCE_SCHEMA, record_of(evidence, EVIDENCE_FIELDS), "Evidence")


def decode_evidence(raw: bytes) -> Evidence:
    """The Evidence in ``raw`` (canonical bytes only); its signature is not checked here."""
    record = read(raw, EVIDENCE_SCHEMA, "Evidence", limits.message_bytes_max)
    evidence = convert(lambda fields: Evidence(**fields), record, "Evidence")
    if len(evidence.ledger) > limits.identifier_chars_max:
        raise DecodeError(too_long("Evidence.ledger", evidence.ledger, limits.identifier_chars_max))
    if evidence.kind not in EVIDENCE_KINDS:
        raise DecodeError(f"Evidence.kind {evidence.kind[:40]!r} is not one of {EVIDENCE_KINDS}")
    return evidence
