"""Multi-signed envelopes: a plain Envelope's bytes then the cosigners, read by hand exactly as
fastavro reads a MultiSignedEnvelope (plus the canonical re-encoding and the signer rules)."""

from __future__ import annotations

import io

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec import envelopes
from test_codec_verified import mutated

from ledger import codec, limits
from ledger.codec import EncodeError
from ledger.errors import DecodeError
from ledger.model import Cosigner, Envelope

keys = st.binary(min_size=32, max_size=32)
signatures = st.binary(min_size=64, max_size=64)
multi_signed = st.builds(
    lambda envelope, cosigners: Envelope(
        envelope.body, envelope.public_key, envelope.signature, envelope.body_version, cosigners
    ),
    envelopes,
    st.lists(st.builds(Cosigner, keys, signatures), min_size=1, max_size=limits.cosigners_max_count)
    .filter(lambda items: len({item.public_key for item in items}) == len(items))
    .map(tuple),
).filter(lambda e: e.public_key not in {c.public_key for c in e.cosigners})


def reference(raw: bytes) -> Envelope:
    """fastavro with the writer schema the bytes name (plain when nothing follows the
    signature), the whole buffer consumed, the same bytes again when re-encoded."""
    if len(raw) > limits.envelope_bytes_max:
        raise codec.TooLarge("too large")
    for schema in (codec.ENVELOPE_SCHEMA, codec.MULTI_SIGNED_ENVELOPE_SCHEMA):
        stream = io.BytesIO(raw)
        try:
            record = schemaless_reader(stream, schema, None)
        except Exception:
            continue
        if stream.tell() != len(raw):
            continue
        assert isinstance(record, dict)
        rewritten = io.BytesIO()
        schemaless_writer(rewritten, schema, record, strict=True)
        if rewritten.getvalue() != raw or not -(2**31) <= record["body_version"] < 2**31:
            raise DecodeError("not canonical")
        cosigners = tuple(Cosigner(**item) for item in record.pop("cosigners", []))
        envelope = Envelope(**record, cosigners=cosigners)
        if schema is codec.MULTI_SIGNED_ENVELOPE_SCHEMA and not cosigners:
            raise DecodeError("an empty cosigner list spells a plain envelope a second way")
        if len(cosigners) > limits.cosigners_max_count:
            raise DecodeError("too many cosigners")
        signers = [envelope.public_key, *(item.public_key for item in cosigners)]
        if len(set(signers)) != len(signers):
            raise DecodeError("a key signs twice")
        return envelope
    raise DecodeError("neither schema reads these bytes")


def outcome(decode: object, raw: bytes) -> Envelope | type[DecodeError]:
    assert callable(decode)
    try:
        return decode(raw)  # type: ignore[no-any-return]
    except DecodeError:
        return DecodeError


@given(multi_signed, st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_multi_signed_envelopes_read_as_fastavro_reads_them(
    envelope: Envelope, data: st.DataObject
) -> None:
    raw = codec.encode_envelope(envelope)
    assert raw.startswith(
        codec.encode_envelope(
            Envelope(envelope.body, envelope.public_key, envelope.signature, envelope.body_version)
        )
    )
    assert outcome(codec.decode_envelope, raw) == outcome(reference, raw) == envelope
    changed = mutated(raw, data)
    assert outcome(codec.decode_envelope, changed) == outcome(reference, changed)


def test_signer_rules() -> None:
    """No key signs twice, at most cosigners_max_count cosigners, and an empty cosigner array
    is not a second spelling of a plain envelope."""
    plain = Envelope(b"\x01", b"\x11" * 32, b"\x22" * 64)
    twice = Envelope(
        plain.body, plain.public_key, plain.signature, 1, (Cosigner(b"\x11" * 32, b"\x33" * 64),)
    )
    with pytest.raises(EncodeError, match="signs twice"):
        codec.encode_envelope(twice)
    crowd = tuple(Cosigner(bytes([index]) * 32, b"\x33" * 64) for index in range(100, 108))
    with pytest.raises(EncodeError, match="at most"):
        codec.encode_envelope(Envelope(plain.body, plain.public_key, plain.signature, 1, crowd))
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode_envelope(codec.encode_envelope(plain) + b"\x00")
