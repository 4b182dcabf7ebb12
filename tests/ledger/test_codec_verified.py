"""ledger.codec's fast paths: VerifiedBatch, the body head, and the hand-written envelope reader.

Each is checked against a reference: the batch against its own encoder, the body head against
the full body decoder, the envelope reader against fastavro plus the canonical re-encoding that
it replaced.
"""

from __future__ import annotations

import io

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec import TX_BODY, envelopes, int32, int64, tx_bodies

from ledger import codec, limits
from ledger.codec import TooLarge
from ledger.errors import DecodeError
from ledger.model import BodyHead, Envelope, TxBody, VerifiedBatch, VerifiedEntry


def varint(value: int) -> bytes:
    """The minimal Avro (zigzag) encoding of the long ``value``."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def read_varint(raw: bytes, position: int) -> tuple[int, int]:
    """The long at ``position`` and the position after it (any spelling, no checks)."""
    zigzag = shift = 0
    while position < len(raw):
        byte = raw[position]
        zigzag |= (byte & 0x7F) << shift
        position += 1
        shift += 7
        if byte < 0x80:
            break
    return (zigzag >> 1) ^ -(zigzag & 1), position


def overlong(encoded: bytes, extra: int = 1) -> bytes:
    """The same varint spelled with ``extra`` needless continuation bytes (never canonical)."""
    return encoded[:-1] + bytes([encoded[-1] | 0x80]) + b"\x80" * (extra - 1) + b"\x00"


def test_varint_helper_matches_fastavro() -> None:
    """The test's own varint writer agrees with fastavro, so crafted bytes mean what they say."""
    for value in (0, -1, 1, 63, -64, 64, 1_000, 2**31, limits.int64_max, limits.int64_min):
        stream = io.BytesIO()
        schemaless_writer(stream, {"type": "long"}, value)
        assert varint(value) == stream.getvalue()


# ---- VerifiedBatch -----------------------------------------------------------------------------

verified_batches = st.builds(
    VerifiedBatch,
    st.text(max_size=limits.identifier_chars_max),
    st.lists(st.builds(VerifiedEntry, int32, int64, st.binary(max_size=300)), max_size=20).map(
        tuple
    ),
)


@given(verified_batches)
def test_verified_batch_round_trip(batch: VerifiedBatch) -> None:
    """Any VerifiedBatch decodes to itself, entries and positions in order."""
    assert codec.decode_verified_batch(codec.encode_verified_batch(batch)) == batch


def test_verified_batch_exact_bytes() -> None:
    """A one-entry batch is the ledger string, an array block of one entry, and its end."""
    batch = VerifiedBatch("main", (VerifiedEntry(3, 64, b"\xee\xff"),))
    raw = codec.encode_verified_batch(batch)
    assert raw.hex() == "086d61696e" + "02" + "06" + "8001" + "04eeff" + "00"
    assert codec.decode_verified_batch(raw) == batch


def test_garbage_is_not_a_verified_batch() -> None:
    """Truncations, trailing bytes, invalid UTF-8, a negative length and oversize input raise
    DecodeError (TooLarge above message_bytes_max, before reading)."""
    raw = codec.encode_verified_batch(
        VerifiedBatch("main", (VerifiedEntry(0, 1, b"ab"), VerifiedEntry(2, 3, b"cd")))
    )
    for length in range(len(raw)):
        with pytest.raises(DecodeError):
            codec.decode_verified_batch(raw[:length])
    cases = [
        raw + b"\x00",
        b"\x08\xff\xfe\xfd\xfc\x00",  # ledger is not UTF-8
        b"\x01",  # ledger length -1
        b"\x08main\x02\x00\x02\x7f",  # envelope length -64
        b"\xff" * 20,
    ]
    for garbage in cases:
        with pytest.raises(DecodeError):
            codec.decode_verified_batch(garbage)
    with pytest.raises(TooLarge):
        codec.decode_verified_batch(b"\x00" * (limits.message_bytes_max + 1))


@given(st.binary(max_size=200))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_decode_as_a_batch_or_raise_decode_error(raw: bytes) -> None:
    """Nothing but DecodeError escapes decode_verified_batch, whatever the bytes."""
    try:
        batch = codec.decode_verified_batch(raw)
    except DecodeError:
        return
    assert isinstance(batch, VerifiedBatch)
    assert all(isinstance(entry.envelope, bytes) for entry in batch.entries)


# ---- decode_body_head --------------------------------------------------------------------------


def head_of(body: TxBody) -> BodyHead:
    return BodyHead(body.tx_id, body.ledger, body.created_at_ms, body.expires_at_ms)


@given(tx_bodies)
def test_body_head_agrees_with_the_full_decoder(body: TxBody) -> None:
    """On any valid body, the head reader returns exactly the full decoder's first four fields."""
    raw = codec.encode_tx_body(body)
    assert codec.decode_body_head(raw) == head_of(codec.decode_tx_body(raw)) == head_of(body)


@given(tx_bodies, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_body_head_never_refuses_what_the_full_decoder_accepts(
    body: TxBody, data: st.DataObject
) -> None:
    """After a random byte change, cut or insertion: whenever the full decoder still accepts the
    body, the head reader accepts it too and agrees (verify never refuses a valid transaction),
    and whatever it refuses is a DecodeError."""
    raw = codec.encode_tx_body(body)
    position = data.draw(st.integers(0, len(raw) - 1))
    byte = data.draw(st.integers(0, 255))
    for mutated in (
        raw[:position] + bytes([byte]) + raw[position + 1 :],
        raw[:position] + raw[position + 1 :],
        raw[:position] + bytes([byte]) + raw[position:],
    ):
        try:
            full = codec.decode_tx_body(mutated)
        except DecodeError:
            full = None
        try:
            head = codec.decode_body_head(mutated)
        except DecodeError:
            assert full is None, "the head reader refused a body the full decoder accepts"
            continue
        if full is not None:
            assert head == head_of(full)


def head_bytes(
    ledger: bytes, created: bytes = b"\xd0\x0f", expires: bytes = b"\x90\xb9\x07"
) -> bytes:
    """tx_id 0..15, a ledger given as raw string bytes (length prefixed), then two longs."""
    return bytes(range(16)) + varint(len(ledger)) + ledger + created + expires


def test_body_head_reads_only_the_head() -> None:
    """The fields after the head are not read: garbage there passes (the sequencer refuses it)."""
    raw = codec.encode_tx_body(TX_BODY)
    head = head_of(TX_BODY)
    assert raw.startswith(head_bytes(b"main"))
    assert codec.decode_body_head(head_bytes(b"main")) == head
    assert codec.decode_body_head(head_bytes(b"main") + b"\xff\xff garbage") == head
    with pytest.raises(DecodeError):
        codec.decode_tx_body(head_bytes(b"main") + b"\xff\xff garbage")


def test_body_head_refuses_a_truncated_head() -> None:
    """Every prefix of the head, from an empty body to one missing the last byte, raises."""
    raw = head_bytes(b"main")
    for length in range(len(raw)):
        with pytest.raises(DecodeError):
            codec.decode_body_head(raw[:length])


@pytest.mark.parametrize(
    "raw",
    [
        bytes(range(16)) + overlong(varint(4)) + b"main" + b"\xd0\x0f\x90\xb9\x07",
        head_bytes(b"main", created=overlong(b"\xd0\x0f")),
        head_bytes(b"main", expires=overlong(b"\x90\xb9\x07", extra=2)),
        head_bytes(b"main", created=overlong(b"\x00")),  # zero spelled 80 00
    ],
    ids=["ledger length", "created_at_ms", "expires_at_ms", "zero"],
)
def test_body_head_refuses_overlong_varints(raw: bytes) -> None:
    """A varint with needless continuation bytes is not canonical: DecodeError, as in the full
    decoder."""
    with pytest.raises(DecodeError, match="overlong"):
        codec.decode_body_head(raw)


def test_body_head_refuses_varints_beyond_a_long() -> None:
    """Eleven varint bytes, or ten that add up to 2**64 or more, are not a long."""
    for spelled in (b"\xff" * 10 + b"\x01", b"\xfe" + b"\xff" * 8 + b"\x03"):
        with pytest.raises(DecodeError):
            codec.decode_body_head(head_bytes(b"main", created=spelled))
    largest = b"\xff" * 9 + b"\x01"  # zigzag 2**64 - 1: the long -2**63
    assert codec.decode_body_head(head_bytes(b"main", created=largest)).created_at_ms == (
        limits.int64_min
    )


def test_body_head_refuses_ledger_names_the_full_decoder_refuses() -> None:
    """A ledger that is not UTF-8, runs past the body, has a negative length, or passes
    identifier_chars_max characters raises DecodeError; characters are counted, not bytes."""
    cases = [
        head_bytes(b"m\xffin"),
        head_bytes(b"\xc3"),  # a cut two-byte character
        bytes(range(16)) + varint(40) + b"main",
        bytes(range(16)) + varint(-1) + b"main",
        head_bytes(b"x" * (limits.identifier_chars_max + 1)),
        head_bytes("é".encode() * (limits.identifier_chars_max + 1)),
    ]
    for raw in cases:
        with pytest.raises(DecodeError):
            codec.decode_body_head(raw)
    widest = "é" * limits.identifier_chars_max
    assert codec.decode_body_head(head_bytes(widest.encode())).ledger == widest


def test_body_head_refuses_an_oversize_body_before_reading() -> None:
    """A body above envelope_bytes_max is TOO_LARGE, as in the full decoder."""
    with pytest.raises(TooLarge):
        codec.decode_body_head(head_bytes(b"main") + bytes(limits.envelope_bytes_max))


# ---- decode_envelope against fastavro ----------------------------------------------------------


def reference_envelope(raw: bytes) -> Envelope:
    """What decode_envelope did before it was written by hand: fastavro, the whole buffer
    consumed, the canonical re-encoding equal to the input, body_version an int32."""
    if len(raw) > limits.envelope_bytes_max:
        raise TooLarge("too large")
    stream = io.BytesIO(raw)
    try:
        record = schemaless_reader(stream, codec.ENVELOPE_SCHEMA, None)
    except Exception as exc:
        raise DecodeError(f"fastavro: {exc!r}") from exc
    if stream.tell() != len(raw):
        raise DecodeError("trailing bytes")
    assert isinstance(record, dict)
    rewritten = io.BytesIO()
    try:
        schemaless_writer(rewritten, codec.ENVELOPE_SCHEMA, record, strict=True)
    except Exception as exc:
        raise DecodeError(f"cannot re-encode: {exc!r}") from exc
    if rewritten.getvalue() != raw:
        raise DecodeError("not canonical")
    if not -(2**31) <= record["body_version"] < 2**31:
        raise DecodeError("body_version is not an int")
    return Envelope(**record)


def outcome(decode: object, raw: bytes) -> Envelope | type[DecodeError]:
    assert callable(decode)
    try:
        result = decode(raw)
    except TooLarge:
        return TooLarge
    except DecodeError:
        return DecodeError
    assert isinstance(result, Envelope)
    return result


def mutated(raw: bytes, data: st.DataObject) -> bytes:
    """``raw`` after one to three random edits, some aimed at the two varints."""
    version = codec.decode_envelope(raw).body_version
    head = varint(version)
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(
            st.sampled_from(
                [
                    "flip",
                    "set",
                    "insert",
                    "delete",
                    "truncate",
                    "append",
                    "overlong version",
                    "body length",
                ]
            )
        )
        position = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        byte = data.draw(st.integers(0, 255))
        if kind == "flip" and raw:
            raw = raw[:position] + bytes([raw[position] ^ (1 << byte % 8)]) + raw[position + 1 :]
        elif kind == "set" and raw:
            raw = raw[:position] + bytes([byte]) + raw[position + 1 :]
        elif kind == "insert":
            raw = raw[:position] + bytes([byte]) + raw[position:]
        elif kind == "delete":
            raw = raw[:position] + raw[position + 1 :]
        elif kind == "truncate":
            raw = raw[:position]
        elif kind == "append":
            raw = raw + data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "overlong version" and raw.startswith(head):
            raw = overlong(head, byte % 3 + 1) + raw[len(head) :]
        elif kind == "body length" and raw.startswith(head):
            body_length, end = read_varint(raw, len(head))
            length = data.draw(st.sampled_from([body_length + 1, body_length - 1, -1, 2**40]))
            spelled = data.draw(st.sampled_from([varint(length), overlong(varint(length))]))
            raw = head + spelled + raw[end:]
    return raw


@given(envelopes, st.data())
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_decode_envelope_accepts_exactly_what_fastavro_and_re_encoding_accept(
    envelope: Envelope, data: st.DataObject
) -> None:
    """On valid envelopes and random mutations of them, the hand-written reader and the fastavro
    reference accept the same bytes, return the same envelope, and refuse the same way."""
    raw = codec.encode_envelope(envelope)
    assert outcome(codec.decode_envelope, raw) == outcome(reference_envelope, raw) == envelope
    changed = mutated(raw, data)
    assert outcome(codec.decode_envelope, changed) == outcome(reference_envelope, changed)


@given(st.binary(max_size=200))
def test_decode_envelope_agrees_with_fastavro_on_random_bytes(raw: bytes) -> None:
    """Random bytes: same acceptance, same value (almost all are refused by both)."""
    assert outcome(codec.decode_envelope, raw) == outcome(reference_envelope, raw)


@pytest.mark.parametrize(
    "raw_hex",
    [
        "02" + "06010203" + "11" * 32 + "22" * 64,  # valid
        "8200" + "06010203" + "11" * 32 + "22" * 64,  # version 1 spelled overlong
        "02" + "8600" + "010203" + "11" * 32 + "22" * 64,  # body length overlong
        "02" + "05" + "010203" + "11" * 32 + "22" * 64,  # body length -3
        "8080808010" + "06010203" + "11" * 32 + "22" * 64,  # body_version 2**31
        "ffffffff0f" + "06010203" + "11" * 32 + "22" * 64,  # body_version -2**31
        "02" + "06010203" + "11" * 32 + "22" * 63,  # signature one byte short
        "02" + "00" + "11" * 32 + "22" * 64,  # empty body
        "",
    ],
)
def test_decode_envelope_agrees_with_fastavro_on_edge_cases(raw_hex: str) -> None:
    """Hand-picked edges of the two varints and the fixed fields decode the same both ways."""
    raw = bytes.fromhex(raw_hex)
    assert outcome(codec.decode_envelope, raw) == outcome(reference_envelope, raw)


def test_decode_envelope_refuses_oversize_input_first() -> None:
    """Above envelope_bytes_max both readers say TOO_LARGE, whatever the bytes hold."""
    raw = codec.encode_envelope(Envelope(bytes(limits.envelope_bytes_max), bytes(32), bytes(64)))
    assert outcome(codec.decode_envelope, raw) == outcome(reference_envelope, raw) == TooLarge
