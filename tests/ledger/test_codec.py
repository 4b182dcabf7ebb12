"""ledger.codec: exact bytes of every schema, round trips, and hostile bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import codec, limits, signing
from ledger.codec import EncodeError, TooLarge, UnsupportedVersion
from ledger.errors import DecodeError
from ledger.model import (
    AccountStatus,
    Attest,
    Block,
    BlockHeader,
    Capture,
    DefineAsset,
    Envelope,
    Hold,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    RejectionRecord,
    RevokeKey,
    SealedTx,
    SetAccountStatus,
    Transfer,
    TxBody,
    Void,
)
from ledger.rejections import RejectionCode

# ---- fixed values and their hand-checked bytes ------------------------------------------------
# Avro binary: int/long are zigzag varints (n -> 2n, -n -> 2n-1, 7 bits a byte, low group
# first); string/bytes are a long length then the bytes; fixed is the bytes; a union is the
# branch index as a long then the value; an array is a count, the items, then 0.

TX_BODY = TxBody(
    tx_id=bytes(range(16)),
    ledger="main",
    created_at_ms=1_000,
    expires_at_ms=61_000,
    op=Transfer(postings=(Posting("alice", "EUR", -100), Posting("bob", "EUR", 100))),
    memo="hi",
)
TX_BODY_HEX = "".join(
    [
        "000102030405060708090a0b0c0d0e0f",  # tx_id: fixed 16
        "086d61696e",  # ledger: length 4, "main"
        "d00f",  # created_at_ms 1000 -> zigzag 2000 = 0b1111_1010000
        "90b907",  # expires_at_ms 61000 -> zigzag 122000
        "0a",  # op: union branch 5 (Transfer)
        "04",  # postings: a block of 2 items
        "0a616c69636506455552c701",  # "alice", "EUR", -100 -> zigzag 199
        "06626f6206455552c801",  # "bob", "EUR", 100 -> zigzag 200
        "00",  # end of the array
        "02046869",  # memo: union branch 1 (string), length 2, "hi"
        "00",  # external_ref: union branch 0 (null)
    ]
)

ENVELOPE = Envelope(body=b"\x01\x02\x03", public_key=b"\x11" * 32, signature=b"\x22" * 64)
ENVELOPE_HEX = "02" + "06010203" + "11" * 32 + "22" * 64  # body_version 1, body, key, sig

HEADER = BlockHeader(
    ledger="main",
    height=7,
    prev_hash=b"\xaa" * 32,
    tx_root=b"\xbb" * 32,
    tx_count=1,
    first_seq=100,
    sealed_at_ms=1_000,
    blocks_root=b"\xcc" * 32,
    sealer_key=b"\xdd" * 32,
    source_partition=3,
    source_offset_end=64,
)
HEADER_HEX = "".join(
    [
        "086d61696e",  # ledger "main"
        "0e",  # height 7
        "aa" * 32 + "bb" * 32,  # prev_hash, tx_root
        "02",  # tx_count 1
        "c801",  # first_seq 100
        "d00f",  # sealed_at_ms 1000
        "cc" * 32 + "dd" * 32,  # blocks_root, sealer_key
        "06",  # source_partition 3
        "8001",  # source_offset_end 64 -> zigzag 128
    ]
)

BLOCK = Block(header=HEADER, transactions=(SealedTx(100, b"\xee\xff"),), seal=b"\x99" * 64)
BLOCK_HEX = HEADER_HEX + "02" + "c80104eeff" + "00" + "99" * 64  # 1 tx: seq, envelope

REJECTION = RejectionRecord(
    code="MALFORMED",
    detail="x",
    stage="verify",
    source_topic="t",
    source_partition=0,
    source_offset=5,
    rejected_at_ms=1_000,
    tx_id=bytes(range(16)),
)
REJECTION_HEX = "".join(
    [
        "02000102030405060708090a0b0c0d0e0f",  # tx_id: branch 1 (fixed)
        "00",  # ledger: null
        "124d414c464f524d4544",  # code "MALFORMED"
        "0278",  # detail "x"
        "0c766572696679",  # stage "verify"
        "00",  # key_id: null
        "0274",  # source_topic "t"
        "00",  # source_partition 0
        "0a",  # source_offset 5
        "d00f",  # rejected_at_ms 1000
        "00",  # height: null
        "00",  # external_ref: null
    ]
)

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]

EXACT_CASES: list[tuple[str, object, str, Encoder, Decoder]] = [
    ("TxBody", TX_BODY, TX_BODY_HEX, codec.encode_tx_body, codec.decode_tx_body),
    ("Envelope", ENVELOPE, ENVELOPE_HEX, codec.encode_envelope, codec.decode_envelope),
    ("BlockHeader", HEADER, HEADER_HEX, codec.encode_block_header, codec.decode_block_header),
    ("Block", BLOCK, BLOCK_HEX, codec.encode_block, codec.decode_block),
    ("Rejection", REJECTION, REJECTION_HEX, codec.encode_rejection, codec.decode_rejection),
]
DECODERS: list[Decoder] = [case[4] for case in EXACT_CASES]


@pytest.mark.parametrize(("name", "value", "hex_bytes", "encode", "decode"), EXACT_CASES)
def test_exact_bytes(
    name: str, value: object, hex_bytes: str, encode: Encoder, decode: Decoder
) -> None:
    """Each schema encodes a fixed value to hand-checked bytes and decodes them back."""
    assert encode(value).hex() == hex_bytes
    assert decode(bytes.fromhex(hex_bytes)) == value


def test_exact_bytes_of_an_enum_and_a_null_long() -> None:
    """SetAccountStatus writes the enum index; OpenAccount writes max_balance's null branch."""
    frozen = TxBody(b"\x00" * 16, "m", 0, 0, SetAccountStatus("a", AccountStatus.FROZEN))
    assert codec.encode_tx_body(frozen).hex() == "00" * 16 + "026d0000020261020000"
    opened = TxBody(b"\x00" * 16, "m", 0, 0, OpenAccount("a", "E"))
    assert codec.encode_tx_body(opened).hex() == "00" * 16 + "026d00000002610245000000"


def test_submission_decodes_envelope_and_body() -> None:
    """decode_submission returns the envelope with its exact body bytes and the decoded body."""
    body_bytes = codec.encode_tx_body(TX_BODY)
    envelope = Envelope(body=body_bytes, public_key=b"\x01" * 32, signature=b"\x02" * 64)
    decoded_envelope, decoded_body = codec.decode_submission(codec.encode_envelope(envelope))
    assert decoded_envelope == envelope
    assert decoded_envelope.body == body_bytes
    assert decoded_body == TX_BODY


# ---- round trips -----------------------------------------------------------------------------

int64 = st.integers(min_value=limits.int64_min, max_value=limits.int64_max)
int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
identifier = st.text(max_size=limits.identifier_chars_max)
tx_ids = st.binary(min_size=16, max_size=16)
keys32 = st.binary(min_size=32, max_size=32)

operations: st.SearchStrategy[Operation] = st.one_of(
    st.builds(OpenAccount, identifier, identifier, st.none() | int64),
    st.builds(SetAccountStatus, identifier, st.sampled_from(AccountStatus)),
    st.builds(DefineAsset, identifier, int32, identifier),
    st.builds(
        RegisterKey,
        keys32,
        st.lists(identifier, max_size=limits.roles_max_count).map(tuple),
        st.lists(identifier, max_size=8).map(tuple),
    ),
    st.builds(RevokeKey, identifier),
    st.builds(
        Transfer,
        st.lists(
            st.builds(Posting, identifier, identifier, int64),
            min_size=limits.postings_min_count,
            max_size=limits.postings_max_count,
        ).map(tuple),
    ),
    st.builds(Hold, identifier, identifier, identifier, int64, int64),
    st.builds(Capture, tx_ids, st.none() | int64),
    st.builds(Void, tx_ids),
    st.builds(Attest, keys32, identifier),
)
tx_bodies = st.builds(
    TxBody,
    tx_ids,
    identifier,
    int64,
    int64,
    operations,
    st.none() | st.text(max_size=limits.memo_chars_max),
    st.none() | st.text(max_size=limits.external_ref_chars_max),
)
envelopes = st.builds(
    Envelope,
    st.binary(max_size=512),
    keys32,
    st.binary(min_size=64, max_size=64),
    int32,
)
headers = st.builds(
    BlockHeader,
    identifier,
    int64,
    keys32,
    keys32,
    int32,
    int64,
    int64,
    keys32,
    keys32,
    int32,
    int64,
)
blocks = st.builds(
    Block,
    headers,
    st.lists(st.builds(SealedTx, int64, st.binary(max_size=64)), max_size=5).map(tuple),
    st.binary(min_size=64, max_size=64),
)
optional_text = st.none() | st.text(max_size=80)
rejections = st.builds(
    RejectionRecord,
    st.text(max_size=30),
    st.text(max_size=200),
    st.sampled_from(["verify", "sequence"]),
    st.text(max_size=30),
    int32,
    int64,
    int64,
    st.none() | tx_ids,
    optional_text,
    optional_text,
    st.none() | int64,
    optional_text,
)


@given(tx_bodies)
def test_tx_body_round_trip(body: TxBody) -> None:
    """Any TxBody within the limits decodes to itself."""
    assert codec.decode_tx_body(codec.encode_tx_body(body)) == body


@given(envelopes)
def test_envelope_round_trip(envelope: Envelope) -> None:
    """Any Envelope decodes to itself."""
    assert codec.decode_envelope(codec.encode_envelope(envelope)) == envelope


@given(headers)
def test_block_header_round_trip(header: BlockHeader) -> None:
    """Any BlockHeader decodes to itself."""
    assert codec.decode_block_header(codec.encode_block_header(header)) == header


@given(blocks)
def test_block_round_trip(block: Block) -> None:
    """Any Block decodes to itself, and its bytes begin with the bytes of its header."""
    raw = codec.encode_block(block)
    assert codec.decode_block(raw) == block
    assert raw.startswith(codec.encode_block_header(block.header))


@given(rejections)
def test_rejection_round_trip(rejection: RejectionRecord) -> None:
    """Any RejectionRecord decodes to itself."""
    assert codec.decode_rejection(codec.encode_rejection(rejection)) == rejection


# ---- hostile bytes ---------------------------------------------------------------------------


def _fails_cleanly(decode: Decoder, raw: bytes) -> None:
    """Decoding raw either succeeds or raises DecodeError; nothing else escapes."""
    with contextlib.suppress(DecodeError):
        decode(raw)


@pytest.mark.parametrize(("name", "value", "hex_bytes", "encode", "decode"), EXACT_CASES)
def test_every_truncation_is_a_decode_error(
    name: str, value: object, hex_bytes: str, encode: Encoder, decode: Decoder
) -> None:
    """Every proper prefix of a valid encoding raises DecodeError."""
    raw = bytes.fromhex(hex_bytes)
    for length in range(len(raw)):
        with pytest.raises(DecodeError):
            decode(raw[:length])


@pytest.mark.parametrize(("name", "value", "hex_bytes", "encode", "decode"), EXACT_CASES)
def test_trailing_bytes_are_a_decode_error(
    name: str, value: object, hex_bytes: str, encode: Encoder, decode: Decoder
) -> None:
    """A valid encoding followed by anything raises DecodeError naming the trailing bytes."""
    for garbage in (b"\x00", b"\x02a", b"\xff" * 7):
        with pytest.raises(DecodeError, match="trailing"):
            decode(bytes.fromhex(hex_bytes) + garbage)


def test_oversize_length_prefixes_are_decode_errors() -> None:
    """A string or bytes length beyond the buffer, huge, or negative raises DecodeError."""
    body_tail = ENVELOPE_HEX[len("0206010203") :]
    for length_hex in ("08", "ffffffffffffffff7f", "feffffffffffffffff01", "01", "0b"):
        with pytest.raises(DecodeError):
            codec.decode_envelope(bytes.fromhex("02" + length_hex + "010203" + body_tail))
    huge_ledger = "000102030405060708090a0b0c0d0e0f" + "feffffff0f"
    with pytest.raises(DecodeError):
        codec.decode_tx_body(bytes.fromhex(huge_ledger + "6d61696e" * 4))


def _with_op_index(index_hex: str) -> bytes:
    before = TX_BODY_HEX.index("0a040a616c696365")  # op branch 5, then the postings
    return bytes.fromhex(TX_BODY_HEX[:before] + index_hex + TX_BODY_HEX[before + 2 :])


@pytest.mark.parametrize("index_hex", ["14", "16", "7e", "feffffff0f", "01", "13"])
def test_wrong_union_index_is_a_decode_error(index_hex: str) -> None:
    """Union indexes past the end (10, 11, 63, 2**31-1) or negative (-1, -10) raise DecodeError."""
    with pytest.raises(DecodeError):
        codec.decode_tx_body(_with_op_index(index_hex))


def test_negative_enum_index_is_a_decode_error() -> None:
    """An enum index of -1, which fastavro alone would read as the last symbol, is refused."""
    frozen = TxBody(b"\x00" * 16, "m", 0, 0, SetAccountStatus("a", AccountStatus.CLOSED))
    raw = codec.encode_tx_body(frozen)
    assert raw[-3] == 0x04  # CLOSED, index 2
    with pytest.raises(DecodeError, match="canonical"):
        codec.decode_tx_body(raw[:-3] + b"\x01" + raw[-2:])


def test_overlong_varint_is_a_decode_error() -> None:
    """A long spelled with more bytes than needed (1000 as d08f00) is not the canonical form."""
    raw = bytes.fromhex(TX_BODY_HEX.replace("6d61696ed00f", "6d61696ed08f00", 1))
    with pytest.raises(DecodeError, match="canonical"):
        codec.decode_tx_body(raw)


def test_split_array_blocks_are_a_decode_error() -> None:
    """Postings written as two one-item blocks decode in fastavro but are not canonical."""
    one_by_one = TX_BODY_HEX.replace("040a616c696365", "020a616c696365", 1).replace(
        "c70106626f62", "c7010206626f62", 1
    )
    with pytest.raises(DecodeError, match="canonical"):
        codec.decode_tx_body(bytes.fromhex(one_by_one))


def test_int_beyond_32_bits_is_a_decode_error() -> None:
    """An Avro int field holding a value above 2**31-1 is refused, as Java would refuse it."""
    raw = bytes.fromhex("8080808010" + ENVELOPE_HEX[2:])  # body_version 2**31
    with pytest.raises(DecodeError, match="body_version"):
        codec.decode_envelope(raw)


def test_invalid_utf8_is_a_decode_error() -> None:
    """A string that is not UTF-8 raises DecodeError."""
    with pytest.raises(DecodeError):
        codec.decode_tx_body(bytes.fromhex(TX_BODY_HEX.replace("6d61696e", "6dff696e", 1)))


def test_too_large_is_refused_before_decoding() -> None:
    """An envelope above envelope_bytes_max raises TooLarge, even if it is garbage."""
    with pytest.raises(TooLarge):
        codec.decode_envelope(b"\xff" * (limits.envelope_bytes_max + 1))
    with pytest.raises(TooLarge):
        codec.decode_submission(b"\x00" * (limits.envelope_bytes_max + 1))
    with pytest.raises(TooLarge):
        codec.decode_block(b"\x00" * (limits.message_bytes_max + 1))


@given(st.binary(max_size=600))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_raise_only_decode_errors(raw: bytes) -> None:
    """Random bytes given to any decoder either decode or raise DecodeError."""
    for decode in [*DECODERS, codec.decode_submission]:
        _fails_cleanly(decode, raw)


@given(tx_bodies, st.data())
def test_mutated_bodies_raise_only_decode_errors(body: TxBody, data: st.DataObject) -> None:
    """A valid body with one byte changed, cut or inserted decodes or raises DecodeError."""
    raw = bytearray(codec.encode_tx_body(body))
    position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=255))
    mutations = [
        bytes(raw[:position]) + bytes([byte]) + bytes(raw[position + 1 :]),
        bytes(raw[:position]) + bytes(raw[position + 1 :]),
        bytes(raw[:position]) + bytes([byte]) + bytes(raw[position:]),
    ]
    for mutated in mutations:
        _fails_cleanly(codec.decode_tx_body, mutated)


# ---- field-level limits ----------------------------------------------------------------------


def _raw_body(**changes: Any) -> bytes:
    """TX_BODY's Avro record with ``changes``, written by fastavro with no codec checks."""
    record: dict[str, Any] = {
        "tx_id": TX_BODY.tx_id,
        "ledger": TX_BODY.ledger,
        "created_at_ms": TX_BODY.created_at_ms,
        "expires_at_ms": TX_BODY.expires_at_ms,
        "op": ("ledger.v1.Attest", {"digest": b"\x00" * 32, "algorithm": "sha256"}),
        "memo": None,
        "external_ref": None,
    }
    record.update(changes)
    stream = io.BytesIO()
    schemaless_writer(stream, codec.TX_BODY_V1_SCHEMA, record, strict=True)
    return stream.getvalue()


def _postings(count: int) -> tuple[str, dict[str, Any]]:
    posting = {"account": "a", "asset": "E", "amount": 1}
    return ("ledger.v1.Transfer", {"postings": [posting] * count})


def _register(roles: int, accounts: int) -> tuple[str, dict[str, Any]]:
    fields = {"public_key": b"\x00" * 32, "roles": ["admin"] * roles, "accounts": ["a"] * accounts}
    return ("ledger.v1.RegisterKey", fields)


OVER_LIMITS: list[tuple[dict[str, Any], str]] = [
    ({"ledger": "l" * (limits.identifier_chars_max + 1)}, "TxBody.ledger"),
    ({"memo": "m" * (limits.memo_chars_max + 1)}, "TxBody.memo"),
    ({"external_ref": "r" * (limits.external_ref_chars_max + 1)}, "TxBody.external_ref"),
    ({"op": _postings(limits.postings_min_count - 1)}, "Transfer.postings"),
    ({"op": _postings(limits.postings_max_count + 1)}, "Transfer.postings"),
    ({"op": _register(limits.roles_max_count + 1, 0)}, "RegisterKey.roles"),
    ({"op": _register(0, limits.owned_accounts_max_count + 1)}, "RegisterKey.accounts"),
    (
        {
            "op": (
                "ledger.v1.Hold",
                {"payer": "p", "payee": "q" * 65, "asset": "E", "amount": 1, "expires_at_ms": 0},
            )
        },
        "Hold.payee",
    ),
    (
        {
            "op": (
                "ledger.v1.Transfer",
                {
                    "postings": [
                        {"account": "a", "asset": "E", "amount": 1},
                        {"account": "a", "asset": "é" * 65, "amount": -1},
                    ]
                },
            )
        },
        r"Transfer.postings\[1\].asset",
    ),
    (
        {"op": ("ledger.v1.DefineAsset", {"asset": "E", "scale": 2**31, "issuer_account": "i"})},
        "DefineAsset.scale",
    ),
]


@pytest.mark.parametrize(("changes", "field"), OVER_LIMITS)
def test_fields_over_limits_are_decode_errors_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    """Strings, lists and ints outside the limits raise DecodeError naming the field."""
    raw = _raw_body(**changes)
    with pytest.raises(DecodeError, match=field):
        codec.decode_tx_body(raw)


def test_limits_are_inclusive() -> None:
    """Values exactly at each limit decode."""
    at_limit = _raw_body(
        ledger="l" * limits.identifier_chars_max,
        memo="m" * limits.memo_chars_max,
        external_ref="é" * limits.external_ref_chars_max,
        op=_register(limits.roles_max_count, limits.owned_accounts_max_count),
    )
    assert len(codec.decode_tx_body(at_limit).memo or "") == limits.memo_chars_max
    codec.decode_tx_body(_raw_body(op=_postings(limits.postings_max_count)))


def test_encoders_refuse_what_decoders_would_reject() -> None:
    """Encoding a value over a limit or off its schema raises EncodeError naming the problem."""
    with pytest.raises(EncodeError, match="TxBody.memo"):
        codec.encode_tx_body(TxBody(b"\x00" * 16, "m", 0, 0, Void(b"\x00" * 16), memo="m" * 257))
    with pytest.raises(EncodeError, match="Transfer.postings"):
        codec.encode_tx_body(TxBody(b"\x00" * 16, "m", 0, 0, Transfer(())))
    with pytest.raises(EncodeError):
        codec.encode_tx_body(TxBody(b"\x00" * 15, "m", 0, 0, Void(b"\x00" * 16)))
    with pytest.raises(EncodeError):
        codec.encode_tx_body(TxBody(b"\x00" * 16, "m", 2**63, 0, Void(b"\x00" * 16)))
    with pytest.raises(EncodeError, match="body_version"):
        codec.encode_envelope(Envelope(b"", b"\x00" * 32, b"\x00" * 64, body_version=2**31))
    with pytest.raises(EncodeError):
        codec.encode_envelope(Envelope(b"", b"\x00" * 31, b"\x00" * 64))


def _raw_block(transactions: list[dict[str, Any]]) -> bytes:
    """BLOCK's Avro record with ``transactions``, written by fastavro with no codec checks."""
    record = {"header": dataclasses.asdict(HEADER), "transactions": transactions}
    stream = io.BytesIO()
    schemaless_writer(stream, codec.BLOCK_SCHEMA, {**record, "seal": BLOCK.seal}, strict=True)
    return stream.getvalue()


def test_block_bounds() -> None:
    """A block with more than block_tx_max_count transactions, or an oversize envelope, fails."""
    crowded = [{"seq": 1, "envelope": b""}] * (limits.block_tx_max_count + 1)
    with pytest.raises(DecodeError, match="Block.transactions"):
        codec.decode_block(_raw_block(crowded))
    with pytest.raises(EncodeError, match="Block.transactions"):
        codec.encode_block(Block(HEADER, (SealedTx(1, b""),) * len(crowded), BLOCK.seal))
    fat = [{"seq": 1, "envelope": b"\x00" * (limits.envelope_bytes_max + 1)}]
    with pytest.raises(DecodeError, match=r"Block.transactions\[0\].envelope"):
        codec.decode_block(_raw_block(fat))
    full = [{"seq": 1, "envelope": b"\x00" * limits.envelope_bytes_max}]
    assert len(codec.decode_block(_raw_block(full)).transactions) == 1


# ---- versions and rejection codes ------------------------------------------------------------


def test_unknown_body_version_is_unsupported() -> None:
    """An envelope naming a body version nobody registered raises UnsupportedVersion."""
    envelope = Envelope(codec.encode_tx_body(TX_BODY), b"\x00" * 32, b"\x00" * 64, body_version=9)
    with pytest.raises(UnsupportedVersion, match="body_version: 9"):
        codec.decode_submission(codec.encode_envelope(envelope))


def test_rejection_codes_for_decode_errors() -> None:
    """Verify maps TooLarge, UnsupportedVersion and any other DecodeError to their codes."""
    assert codec.rejection_code_for(TooLarge("x")) is RejectionCode.TOO_LARGE
    assert codec.rejection_code_for(UnsupportedVersion("x")) is RejectionCode.UNSUPPORTED_VERSION
    assert codec.rejection_code_for(DecodeError("x")) is RejectionCode.MALFORMED


def test_codec_bench_reports_every_figure() -> None:
    """ledger.bench.codec.run() returns its five named figures, each positive; no timing asserted."""
    from ledger.tools.bench import codec as codec_bench

    figures = codec_bench.run()
    assert set(figures) == {
        "envelope_decode_per_second",
        "submission_decode_per_second",
        "submission_16_postings_decode_per_second",
        "signature_check_per_second",
        "decode_and_check_per_second",
    }
    assert all(0 < value < float("inf") for value in figures.values())


def test_operation_index_reads_the_op_branch_of_every_operation() -> None:
    """Read after the head only, the op union branch is each operation's place in
    OPERATION_TYPES, with or without memo and external_ref."""
    from ledger.model import (
        OPERATION_TYPES,
        AccountStatus,
        Attest,
        Capture,
        DefineAsset,
        Hold,
        OpenAccount,
        Posting,
        RegisterKey,
        Reverse,
        RevokeKey,
        RotateSealer,
        SetAccountMetadata,
        SetAccountPolicy,
        SetAccountStatus,
        SetFinality,
        SetIssuanceCap,
        Transfer,
        UpdateKey,
        Void,
    )

    operations = [
        OpenAccount("a", "USD", None),
        SetAccountStatus("a", AccountStatus.FROZEN),
        DefineAsset("USD", 2, "usd.issuer"),
        RegisterKey(bytes(32), ("witness",), ()),
        RevokeKey("0" * 32),
        Transfer((Posting("a", "USD", -1), Posting("b", "USD", 1))),
        Hold("a", "b", "USD", 1, 5),
        Capture(bytes(16), None),
        Void(bytes(16)),
        Attest(bytes(32)),
        SetFinality(2),
        SetAccountPolicy("a", ("0" * 32, "1" * 32), 1, 2, 1_000, None, ("b",)),
        UpdateKey("0" * 32, ("a",), bytes(32)),
        RotateSealer(bytes(32)),
        Reverse(b"envelope", b"header", bytes(64), 3, (bytes(32),), (Posting("b", "USD", -1),)),
        SetIssuanceCap("USD", 10**9),
        SetAccountMetadata("a", {"customer": "c-17"}),
    ]
    assert [type(op) for op in operations] == list(OPERATION_TYPES)
    for memo in (None, "a memo"):
        for metadata in ({}, {"batch": "2026-11-30"}):
            for op in operations:
                tx_body = signing.build_tx_body("a-ledger", op, memo=memo)
                tx_body = dataclasses.replace(tx_body, metadata=metadata)
                body = codec.encode_tx_body(tx_body)
                version = codec.body_version_of(tx_body)
                assert version == (2 if metadata else 1)
                assert codec.operation_index(body) == OPERATION_TYPES.index(type(op))
                assert codec.decode_tx_body(body, version) == tx_body
