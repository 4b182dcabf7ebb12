"""Envelopes, read by hand: the signed wrapper of every submission, with or without cosigners."""

from __future__ import annotations

import dataclasses
from typing import Final

from ledger import limits
from ledger.codec.avro import ENVELOPE_FIELDS, encodable, encode
from ledger.codec.bodies import decode_tx_body, read_long
from ledger.codec.errors import TooLarge
from ledger.codec.schemas import ENVELOPE_SCHEMA, MULTI_SIGNED_ENVELOPE_SCHEMA, BodySchemaRegistry
from ledger.codec.shapes import not_int32
from ledger.errors import DecodeError
from ledger.model import Cosigner, Envelope, TxBody


def encode_envelope(envelope: Envelope) -> bytes:
    """The canonical Avro bytes of ``envelope``: a submission's Kafka message value.

    Without cosigners it is a ``ledger.v1.Envelope``, byte for byte what every envelope was
    before multi-signature; with them, a ``ledger.v1.MultiSignedEnvelope`` (the same fields,
    then the cosigners).
    """
    encodable(not_int32("Envelope.body_version", envelope.body_version))
    encodable(_signers_problem(envelope))
    record = {name: getattr(envelope, name) for name in ENVELOPE_FIELDS if name != "cosigners"}
    if not envelope.cosigners:
        return encode(ENVELOPE_SCHEMA, record, "Envelope")
    record["cosigners"] = [
        {"public_key": cosigner.public_key, "signature": cosigner.signature}
        for cosigner in envelope.cosigners
    ]
    return encode(MULTI_SIGNED_ENVELOPE_SCHEMA, record, "MultiSignedEnvelope")


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
    version, position = read_long(raw, 0, "Envelope.body_version")
    if problem := not_int32("Envelope.body_version", version):
        raise DecodeError(problem)
    length, position = read_long(raw, position, "Envelope.body")
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
        count, position = read_long(raw, position, "MultiSignedEnvelope.cosigners")
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
        _, position = read_long(raw, 0, "Envelope.body_version")
        length, position = read_long(raw, position, "Envelope.body")
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
