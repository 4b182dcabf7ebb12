"""TxBody version 3 (a confidential part) and ConfidentialFields: exact bytes, the shape rules
that make MALFORMED_CONFIDENTIAL, and hostile bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from ledger import codec, limits, signing
from ledger.codec import EncodeError, MalformedConfidential
from ledger.confidential import make_confidential
from ledger.errors import DecodeError
from ledger.model import (
    Confidential,
    ConfidentialFields,
    Posting,
    Recipient,
    Transfer,
    TxBody,
)
from ledger.rejections import RejectionCode

KEY_ID = "0123456789abcdef" * 2
CONFIDENTIAL = Confidential(
    ephemeral_public_key=b"\x11" * 32,
    recipients=(Recipient(KEY_ID, b"\x22" * 48),),
    commitment=b"\x33" * 32,
    ciphertext=b"\x44" * codec.confidential_ciphertext_bytes_min,
)
CLEAR = TxBody(
    tx_id=bytes(range(16)),
    ledger="main",
    created_at_ms=1_000,
    expires_at_ms=61_000,
    op=Transfer((Posting("alice", "EUR", -100), Posting("bob", "EUR", 100))),
)
BODY = dataclasses.replace(CLEAR, confidential=CONFIDENTIAL)
SEALED = make_confidential(
    dataclasses.replace(CLEAR, memo="m", external_ref="r"), [signing.Signer.generate().public_key]
)


def test_version_3_bytes_are_version_1_bytes_and_the_appended_fields() -> None:
    """A v3 body is its clear body's v1 bytes, an empty metadata map, then the union branch and
    the confidential record: hand-checked, field by field."""
    expected = (
        codec.encode_tx_body(CLEAR).hex()
        + "00"  # metadata: an empty map
        + "02"  # confidential: union branch 1
        + "11" * 32  # ephemeral_public_key (fixed 32)
        + "02"  # recipients: one block of 1
        + "40"
        + KEY_ID.encode().hex()  # key_id: 32 characters (zigzag 64)
        + "22" * 48  # wrapped_key (fixed 48)
        + "00"  # end of the array
        + "33" * 32  # commitment (fixed 32)
        + "66"
        + "44" * 51  # ciphertext: 51 bytes (zigzag 102)
    )
    assert codec.body_version_of(BODY) == 3
    assert codec.encode_tx_body(BODY).hex() == expected
    assert codec.decode_tx_body(bytes.fromhex(expected), 3) == BODY


def test_the_head_and_operation_of_a_version_3_body_read_as_before() -> None:
    """The verify stage's head reader and operation_index work on v3 bodies unchanged."""
    raw = codec.encode_tx_body(BODY)
    head = codec.decode_body_head(raw, 3)
    assert (head.tx_id, head.ledger, head.expires_at_ms) == (BODY.tx_id, "main", 61_000)
    assert codec.operation_index(raw) == 5


def _raw(confidential: dict[str, Any], **clear: Any) -> bytes:
    """A v3 body written with fastavro alone, past every check of the codec."""
    record = {
        "tx_id": bytes(range(16)),
        "ledger": "main",
        "created_at_ms": 1_000,
        "expires_at_ms": 61_000,
        "op": (
            "ledger.v1.Transfer",
            {
                "postings": [
                    {"account": "alice", "asset": "EUR", "amount": -100},
                    {"account": "bob", "asset": "EUR", "amount": 100},
                ]
            },
        ),
        "memo": None,
        "external_ref": None,
        "metadata": {},
        **clear,
        "confidential": {
            "ephemeral_public_key": b"\x11" * 32,
            "recipients": [{"key_id": KEY_ID, "wrapped_key": b"\x22" * 48}],
            "commitment": b"\x33" * 32,
            "ciphertext": b"\x44" * 60,
            **confidential,
        },
    }
    stream = io.BytesIO()
    schemaless_writer(stream, codec.TX_BODY_SCHEMA, record, strict=True)
    return stream.getvalue()


def _recipient(key_id: str) -> dict[str, Any]:
    return {"key_id": key_id, "wrapped_key": b"\x22" * 48}


MALFORMED = {
    "no recipients": (_raw({"recipients": []}), "1 to 8"),
    "too many": (
        _raw({"recipients": [_recipient(f"{index:032x}") for index in range(9)]}),
        "1 to 8",
    ),
    "key named twice": (
        _raw({"recipients": [_recipient(KEY_ID), _recipient(KEY_ID)]}),
        "named twice",
    ),
    "uppercase key id": (_raw({"recipients": [_recipient(KEY_ID.upper())]}), "not a key id"),
    "short key id": (_raw({"recipients": [_recipient(KEY_ID[:31])]}), "not a key id"),
    "public key as key id": (_raw({"recipients": [_recipient("ab" * 32)]}), "not a key id"),
    "short ciphertext": (_raw({"ciphertext": b"\x44" * 50}), "at least 51"),
    "memo in the clear": (_raw({}, memo="rent"), "null and empty"),
    "reference in the clear": (_raw({}, external_ref="INV-1"), "null and empty"),
    "metadata in the clear": (_raw({}, metadata={"a": "b"}), "null and empty"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_confidential_part_is_malformed_confidential(name: str) -> None:
    """Each shape rule of the confidential part is refused MALFORMED_CONFIDENTIAL on decoding,
    and the same value is refused by the encoder."""
    raw, message = MALFORMED[name]
    with pytest.raises(MalformedConfidential, match=message) as caught:
        codec.decode_tx_body(raw, 3)
    assert codec.rejection_code_for(caught.value) is RejectionCode.MALFORMED_CONFIDENTIAL


def test_the_encoder_refuses_what_the_decoder_would() -> None:
    """A client learns before sending: bad recipients, a short ciphertext, a memo beside."""
    bad_bodies = [
        dataclasses.replace(BODY, confidential=dataclasses.replace(CONFIDENTIAL, recipients=())),
        dataclasses.replace(
            BODY,
            confidential=dataclasses.replace(CONFIDENTIAL, recipients=(Recipient("X", bytes(48)),)),
        ),
        dataclasses.replace(
            BODY, confidential=dataclasses.replace(CONFIDENTIAL, ciphertext=b"short")
        ),
        dataclasses.replace(BODY, memo="in the clear"),
    ]
    for body in bad_bodies:
        with pytest.raises(EncodeError):
            codec.encode_tx_body(body)
    wrong_size = dataclasses.replace(CONFIDENTIAL, commitment=b"\x33" * 31)
    with pytest.raises(EncodeError, match="TxBody"):
        codec.encode_tx_body(dataclasses.replace(BODY, confidential=wrong_size))


def test_other_problems_keep_their_code() -> None:
    """A body that is malformed apart from its confidential part is still MALFORMED, and it is
    judged first (MALFORMED precedes MALFORMED_CONFIDENTIAL)."""
    too_long = "x" * (limits.identifier_chars_max + 1)
    raw = _raw({"recipients": []}, ledger=too_long)
    with pytest.raises(DecodeError, match="TxBody.ledger") as caught:
        codec.decode_tx_body(raw, 3)
    assert codec.rejection_code_for(caught.value) is RejectionCode.MALFORMED


def test_a_non_canonical_confidential_part_is_malformed() -> None:
    """Recipients as a block with a byte size (count -1, 81 bytes), legal Avro that fastavro
    reads, are not the canonical encoding: MALFORMED."""
    item = "40" + KEY_ID.encode().hex() + "22" * 48
    raw = codec.encode_tx_body(BODY).hex()
    assert raw.count("02" + item + "00") == 1
    sized = raw.replace("02" + item + "00", "01" + "a201" + item + "00")
    with pytest.raises(DecodeError, match="canonical") as caught:
        codec.decode_tx_body(bytes.fromhex(sized), 3)
    assert codec.rejection_code_for(caught.value) is RejectionCode.MALFORMED


@given(st.data())
def test_mutated_version_3_bodies_decode_or_raise_decode_errors(data: st.DataObject) -> None:
    """A real v3 body with a byte changed, cut or inserted decodes or raises DecodeError."""
    raw = bytearray(codec.encode_tx_body(SEALED))
    position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=255))
    for mutated in (
        bytes(raw[:position]) + bytes([byte]) + bytes(raw[position + 1 :]),
        bytes(raw[:position]) + bytes(raw[position + 1 :]),
        bytes(raw[:position]) + bytes([byte]) + bytes(raw[position:]),
    ):
        with contextlib.suppress(DecodeError):
            codec.decode_tx_body(mutated, 3)


def test_confidential_fields_bytes_put_the_salt_first() -> None:
    """ConfidentialFields: salt (fixed 32), memo, external_ref, metadata; round trip."""
    fields = ConfidentialFields("hi", None, {"k": "v"})
    raw = codec.encode_confidential_fields(b"\x55" * 32, fields)
    assert raw.hex() == "55" * 32 + "02" + "04" + "6869" + "00" + "02" + "026b" + "0276" + "00"
    salt, decoded = codec.decode_confidential_fields(raw)
    assert (salt, decoded) == (b"\x55" * 32, fields)


def test_confidential_fields_keep_the_clear_fields_limits() -> None:
    """A memo, reference or metadata beyond the limits is refused inside as it is outside."""
    salt = bytes(32)
    for fields in (
        ConfidentialFields(memo="m" * (limits.memo_chars_max + 1)),
        ConfidentialFields(external_ref="r" * (limits.external_ref_chars_max + 1)),
        ConfidentialFields(metadata={"": "empty key"}),
    ):
        with pytest.raises(EncodeError, match="ConfidentialFields"):
            codec.encode_confidential_fields(salt, fields)
    too_long = "55" * 32 + "02" + "8204" + "6d" * 257 + "00" + "00"
    with pytest.raises(DecodeError, match="ConfidentialFields.memo"):
        codec.decode_confidential_fields(bytes.fromhex(too_long))
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode_confidential_fields(
            codec.encode_confidential_fields(salt, ConfidentialFields(memo="m")) + b"\x00"
        )
