"""The hand-read Transfer body agrees with fastavro plus the canonical check, byte for byte."""

from __future__ import annotations

import io

import pytest
from fastavro import schemaless_reader
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import codec
from ledger.errors import DecodeError
from ledger.model import Envelope, Posting, Transfer, TxBody
from tests.ledger.test_codec import identifier, int64, tx_bodies, tx_ids

transfer_bodies = st.builds(
    TxBody,
    tx_ids,
    identifier,
    int64,
    int64,
    st.builds(
        Transfer,
        st.lists(st.builds(Posting, identifier, identifier, int64), min_size=2, max_size=4).map(
            tuple
        ),
    ),
    st.none() | st.text(max_size=20),
    st.none() | st.text(max_size=20),
)


def general_path(raw: bytes) -> TxBody | type[DecodeError]:
    """What the fastavro path alone decides for ``raw``: a body, or DecodeError."""
    try:
        record = codec.read(raw, codec.TX_BODY_V1_SCHEMA, "TxBody", 4096)
        body = codec.convert(codec.tx_body_from_record, record, "TxBody")
    except DecodeError:
        return DecodeError
    return body


@given(tx_bodies)
def test_fast_path_reads_every_transfer_as_fastavro_does(body: TxBody) -> None:
    """Any encoded body: the fast path reads a Transfer to the same value and passes the rest on."""
    raw = codec.encode_tx_body(body)
    fast = codec.plain_transfer(raw)
    if body.kind == "Transfer":
        assert fast == body == general_path(raw)
    else:
        assert fast is None


@settings(max_examples=400)
@given(transfer_bodies, st.data())
def test_fast_path_accepts_no_bytes_the_general_path_refuses(
    body: TxBody, data: st.DataObject
) -> None:
    """Any mutation of a transfer (flipped, inserted, removed bytes): whatever the fast path
    accepts, the general path accepts with the same value."""
    raw = bytearray(codec.encode_tx_body(body))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or position == len(raw):
            raw.insert(position, data.draw(st.integers(0, 255)))
        elif action == "delete":
            del raw[position]
        else:
            raw[position] ^= 1 << data.draw(st.integers(0, 7))
    fast = codec.plain_transfer(bytes(raw))
    if fast is not None:
        assert general_path(bytes(raw)) == fast


@pytest.mark.parametrize(
    "tail",
    [
        bytes([0x80, 0x00]),  # overlong varint
        bytes([0x03]),  # union index 1 for memo but no string
    ],
)
def test_non_canonical_tails_are_left_to_the_general_path(tail: bytes) -> None:
    """Bytes fastavro would not write are never accepted by the fast path."""
    raw = b"\x00" * 16 + b"\x02a" + b"\x02\x02" + bytes([10]) + tail
    assert codec.plain_transfer(raw) is None


def test_fastavro_reference_reads_the_same_record() -> None:
    """The reference used above is fastavro itself, not the code under test."""
    raw = codec.encode_tx_body(
        TxBody(
            b"\x01" * 16,
            "main",
            1,
            2,
            Transfer((Posting("a", "EUR", -1), Posting("b", "EUR", 1))),
        )
    )
    record = schemaless_reader(
        io.BytesIO(raw), codec.TX_BODY_V1_SCHEMA, None, return_record_name=True
    )
    assert record["op"][0] == "ledger.v1.Transfer"
    assert codec.plain_transfer(raw) == general_path(raw)


def volume_by_decoding(body: TxBody) -> dict[bytes, int]:
    volume: dict[bytes, int] = {}
    if isinstance(body.op, Transfer):
        for posting in body.op.postings:
            if posting.amount > 0:
                asset = posting.asset.encode()
                volume[asset] = volume.get(asset, 0) + posting.amount
    return volume


@given(tx_bodies)
def test_transfer_volume_reads_what_the_decoder_reads(body: TxBody) -> None:
    """Any sealed body: a Transfer's positive amounts by asset, nothing for other operations,
    added to what the dict held; another body version is left to the general decoder."""
    envelope = codec.encode_envelope(Envelope(codec.encode_tx_body(body), bytes(32), bytes(64)))
    volume = {b"EUR": 5}
    assert codec.add_transfer_volume(envelope, volume)
    expected = volume_by_decoding(body)
    expected[b"EUR"] = expected.get(b"EUR", 0) + 5
    assert volume == expected
    later = codec.encode_envelope(Envelope(codec.encode_tx_body(body), bytes(32), bytes(64), 2))
    assert not codec.add_transfer_volume(later, volume)
