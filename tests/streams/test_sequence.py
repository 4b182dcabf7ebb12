"""streams.sequence.verified_message: both formats of ledger.verified, and poison messages."""

from __future__ import annotations

import os

import pytest

from ledger import codec, limits
from ledger.blocks import build_block
from ledger.model import Attest, RegisterKey, Role, VerifiedBatch, VerifiedEntry
from ledger.replica import Replica
from ledger.sealing import BlockCutter, SealedBlock, VerifiedMessage, seal_block
from ledger.settings import TOPIC_SUBMISSIONS, TOPIC_VERIFIED, VERIFIED_BATCH_HEADER
from ledger.signing import Signer, build_tx_body
from streams.sequence import verified_message

NOW_MS = 1_800_000_000_000
PARTITION = 2
"""The shard's partition of ledger.verified in these tests."""

ADMIN = Signer.generate()
SEALER = Signer.generate()


def attest(now_ms: int = NOW_MS) -> bytes:
    return ADMIN.sign(build_tx_body("main", Attest(os.urandom(32)), now_ms=now_ms))


def replica() -> Replica:
    """Ledger ``main`` after a genesis that registers the admin key (which may attest)."""
    genesis, _ = build_block(
        None,
        ledger="main",
        envelopes=[
            ADMIN.sign(
                build_tx_body(
                    "main", RegisterKey(ADMIN.public_key, (Role.ADMIN.value,), ()), now_ms=NOW_MS
                )
            )
        ],
        sealed_at_ms=NOW_MS,
        source_partition=PARTITION,
        source_offset_end=0,
        signing_key=SEALER,
    )
    shard = Replica("main", trusted_sealer_key=SEALER.public_key)
    shard.apply_block(genesis)
    return shard


def seal(*messages: VerifiedMessage) -> SealedBlock:
    """The messages cut as the sequencer cuts them, into one block, and sealed."""
    cutter = BlockCutter(source_offset_end=0)
    blocks = [block for message in messages for block in cutter.offer(message, now_s=0.0)]
    if (still_open := cutter.take_open()) is not None:
        blocks.append(still_open)
    [open_block] = blocks
    return seal_block(replica(), open_block, NOW_MS + 1_000, PARTITION, SEALER)


def test_a_batch_with_the_header_is_its_entries_at_their_submission_positions() -> None:
    """A VerifiedBatch message becomes its entries, in order, pointing at ledger.submissions,
    whatever other headers the message carries."""
    entries = (VerifiedEntry(0, 17, attest()), VerifiedEntry(5, 3, b"not an envelope"))
    raw = codec.encode_verified_batch(VerifiedBatch("main", entries))
    headers = [("trace", b"x"), VERIFIED_BATCH_HEADER]

    message = verified_message(PARTITION, 42, raw, headers)

    assert message == VerifiedMessage(
        offset=42,
        entries=entries,
        source_topic=TOPIC_SUBMISSIONS,
        size_bytes=sum(len(entry.envelope) for entry in entries),
    )
    sealed = seal(message)
    assert [tx.envelope for tx in sealed.block.transactions] == [entries[0].envelope]
    [rejection] = sealed.rejections
    assert (rejection.code, rejection.source_topic) == ("MALFORMED", TOPIC_SUBMISSIONS)
    assert (rejection.source_partition, rejection.source_offset) == (5, 3)
    assert sealed.block.header.source_offset_end == 43


def test_an_empty_batch_is_a_message_without_entries() -> None:
    """A batch of no envelopes still moves the checkpoint (an empty block if it is alone)."""
    raw = codec.encode_verified_batch(VerifiedBatch("main", ()))
    message = verified_message(PARTITION, 8, raw, [VERIFIED_BATCH_HEADER])
    assert message.entries == () and message.size_bytes == 0
    sealed = seal(message)
    assert sealed.block.transactions == () and sealed.rejections == ()
    assert sealed.block.header.source_offset_end == 9


@pytest.mark.parametrize("headers", [None, [], [("ledger.schema", b"ledger.v1.Envelope")]])
def test_a_message_without_the_header_is_one_legacy_envelope(
    headers: list[tuple[str, bytes]] | None,
) -> None:
    """The format before batches: the value is one envelope, and its position is its own
    ledger.verified partition and offset."""
    envelope = attest()
    message = verified_message(PARTITION, 7, envelope, headers)
    assert message == VerifiedMessage.of(
        7, (VerifiedEntry(PARTITION, 7, envelope),), TOPIC_VERIFIED
    )
    sealed = seal(message)
    assert [tx.envelope for tx in sealed.block.transactions] == [envelope]
    assert sealed.rejections == ()


def test_a_refused_legacy_envelope_names_its_ledger_verified_position() -> None:
    """A legacy envelope the sequencer refuses (here: expired at block time) is reported at the
    ledger.verified partition and offset it was read from."""
    stale = attest(now_ms=NOW_MS - 10 * 60_000)
    sealed = seal(verified_message(PARTITION, 11, stale, None))
    [rejection] = sealed.rejections
    assert (rejection.code, rejection.source_topic) == ("EXPIRED", TOPIC_VERIFIED)
    assert (rejection.source_partition, rejection.source_offset) == (PARTITION, 11)
    assert rejection.tx_id is not None and rejection.key_id == ADMIN.key_id


@pytest.mark.parametrize(
    "value",
    [b"\xff" * 40, b"", None, codec.encode_verified_batch(VerifiedBatch("main", ()))[:-1]],
    ids=["garbage", "empty", "tombstone", "truncated batch"],
)
def test_garbage_with_the_header_is_one_entry_refused_malformed(value: bytes | None) -> None:
    """Bytes that are not a batch never stall the partition: one entry that seals as a MALFORMED
    rejection naming the ledger.verified position, in an otherwise empty block."""
    message = verified_message(PARTITION, 99, value, [VERIFIED_BATCH_HEADER])
    assert message.source_topic == TOPIC_VERIFIED
    assert message.entries == (VerifiedEntry(PARTITION, 99, value or b""),)
    sealed = seal(message)
    assert sealed.block.transactions == ()
    [rejection] = sealed.rejections
    assert (rejection.code, rejection.stage, rejection.source_topic) == (
        "MALFORMED",
        "sequence",
        TOPIC_VERIFIED,
    )
    assert (rejection.source_partition, rejection.source_offset) == (PARTITION, 99)
    assert rejection.tx_id is None and rejection.height == 1
    assert sealed.block.header.source_offset_end == 100


def test_a_batch_without_the_header_is_read_as_an_envelope_and_refused() -> None:
    """Without the header a batch's bytes are taken as one legacy envelope, which they are not:
    MALFORMED at the ledger.verified position (the header is what tells the formats apart)."""
    raw = codec.encode_verified_batch(VerifiedBatch("main", (VerifiedEntry(0, 1, attest()),)))
    sealed = seal(verified_message(PARTITION, 5, raw, None))
    [rejection] = sealed.rejections
    assert (rejection.code, rejection.source_topic, rejection.source_offset) == (
        "MALFORMED",
        TOPIC_VERIFIED,
        5,
    )


def encodable(sealed: SealedBlock) -> None:
    """What the sequencer produces next: the block and each rejection, encoded."""
    codec.encode_block(sealed.block)
    for rejection in sealed.rejections:
        codec.encode_rejection(rejection)


def out_of_int32_partition() -> bytes:
    """A batch whose entry names submission partition 2**31 (the schema's int holds 2**31 - 1)."""
    entry = VerifiedEntry(0, 1, b"poison")
    raw = codec.encode_verified_batch(VerifiedBatch("main", (entry,)))
    assert raw.endswith(b"\x00\x02\x0cpoison\x00")  # partition 0, offset 1, envelope, array end
    zigzag_2_pow_31 = bytes.fromhex("8080808010")
    return raw[: -len(b"\x00\x02\x0cpoison\x00")] + zigzag_2_pow_31 + b"\x02\x0cpoison\x00"


def over_count_batch() -> bytes:
    """A batch of block_tx_max_count + 1 valid envelopes (the verify stage writes at most
    verified_batch_tx_max_count)."""
    entries = tuple(
        VerifiedEntry(0, offset, attest()) for offset in range(limits.block_tx_max_count + 1)
    )
    return codec.encode_verified_batch(VerifiedBatch("main", entries))


@pytest.mark.parametrize(
    "make_value", [out_of_int32_partition, over_count_batch], ids=["int32", "count"]
)
def test_no_message_with_the_header_makes_an_unencodable_block(make_value: object) -> None:
    """Whatever bytes carry the batch header, what the sequencer seals from them encodes: a
    batch outside its schema's ranges or its limits is refused like any other poison message."""
    assert callable(make_value)
    encodable(seal(verified_message(PARTITION, 0, make_value(), [VERIFIED_BATCH_HEADER])))
