"""Chunked replica snapshots (ledger.snapshots): exact round trips, refused sets, old format."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.snapshot_states import (
    FIXED_BLOCKS_OFFSET_NEXT,
    FIXED_SOURCE_OFFSET_END,
    expiry_base_ms,
    fixed_replica,
    replicas,
)

from ledger import limits
from ledger.errors import DecodeError
from ledger.replica import Replica, RestoredReplica, restore_snapshot, snapshot
from ledger.snapshots import (
    SnapshotChunk,
    SnapshotManifest,
    WholeSnapshot,
    cut,
    decode_message,
    manifest,
    restore_chunks,
    restore_manifest,
    snapshot_chunks,
)

FIXTURE = Path(__file__).parent / "fixtures" / "replica_snapshot.format1.state2.bin"
"""Written by the build before chunking (format 1 header, state snapshot version 2) from
``snapshot_states.fixed_replica()``; the snapshots already on ``ledger.snapshots`` look like it."""

property_settings = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
chunk_sizes = st.integers(1_200, 40_000)
"""Small enough for many chunks per snapshot, large enough for a header with a 64-character
ledger name of 4-byte characters."""
offsets = st.integers(0, 2**62)


def assert_same(
    restored: RestoredReplica, replica: Replica, source_end: int, blocks_next: int
) -> None:
    assert restored.replica.ledger == replica.ledger
    assert restored.replica.state == replica.state
    assert restored.replica.checkpoint == replica.checkpoint
    assert restored.replica.last_sealed_at_ms == replica.last_sealed_at_ms
    assert (restored.source_offset_end, restored.blocks_offset_next) == (source_end, blocks_next)


@property_settings
@given(
    replica=replicas(),
    chunk_bytes_max=chunk_sizes,
    source_end=offsets,
    blocks_next=offsets,
    shuffle=st.randoms(use_true_random=False),
)
def test_chunks_restore_exactly_in_any_order(
    replica: Replica,
    chunk_bytes_max: int,
    source_end: int,
    blocks_next: int,
    shuffle: random.Random,
) -> None:
    """Any replica cut at any chunk size restores to the same state, checkpoint, sealer and
    positions from its chunks in any order, and snapshots again to the same chunks
    (determinism). The sealer is the snapshot's own, not the one the reader starts trusting."""
    replica = dataclasses.replace(replica, trusted_sealer_key=b"s" * 32)
    chunks = snapshot_chunks(replica, source_end, blocks_next, chunk_bytes_max)
    assert all(len(chunk) <= chunk_bytes_max for chunk in chunks)
    shuffled = list(chunks)
    shuffle.shuffle(shuffled)
    restored = restore_chunks(shuffled, trusted_sealer_key=b"k" * 32)
    assert_same(restored, replica, source_end, blocks_next)
    assert restored.replica.trusted_sealer_key == b"s" * 32
    assert snapshot_chunks(restored.replica, source_end, blocks_next, chunk_bytes_max) == chunks


@st.composite
def chunked_pairs(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    """The chunks of two snapshots of the same ledger and height, one state field apart, cut
    at one chunk size into at least two chunks each."""
    replica = draw(replicas())
    seed = draw(st.binary(max_size=8))
    for number in range(150):  # enough bytes for two chunks, without drawing each one
        tx_id = hashlib.sha256(seed + number.to_bytes(4, "big")).digest()[:16]
        replica.state.recent_tx_ids[tx_id] = expiry_base_ms + number // 4
    chunk_bytes_max = draw(st.integers(1_200, 2_400))
    chunks = snapshot_chunks(replica, 1, 2, chunk_bytes_max)
    replica.state.tx_count = draw(
        st.integers(0, 2**62).filter(lambda n: n != replica.state.tx_count)
    )
    foreign = snapshot_chunks(replica, 1, 2, chunk_bytes_max)
    assert len(chunks) >= 2 and len(foreign) >= 2
    return chunks, foreign


@property_settings
@given(pair=chunked_pairs(), data=st.data())
def test_missing_duplicated_foreign_or_altered_chunks_are_refused(
    pair: tuple[list[bytes], list[bytes]], data: st.DataObject
) -> None:
    """A chunk set that lacks a chunk, repeats one, holds one of another snapshot of the same
    ledger and height, or has a flipped payload byte raises DecodeError."""
    chunks, foreign = pair
    index = data.draw(st.integers(0, min(len(chunks), len(foreign)) - 1))
    altered = bytearray(chunks[index])
    altered[-1] ^= 1
    broken_sets = {
        "missing": chunks[:index] + chunks[index + 1 :],
        "duplicated": [*chunks, chunks[index]],
        "foreign": chunks[:index] + [foreign[index]] + chunks[index + 1 :],
        "altered": chunks[:index] + [bytes(altered)] + chunks[index + 1 :],
        "empty": [],
    }
    for name, broken in broken_sets.items():
        with pytest.raises(DecodeError):
            restore_chunks(broken)
            pytest.fail(f"{name} chunk set restored")


def test_old_single_message_snapshot_still_restores() -> None:
    """A snapshot written whole by the previous build (format 1, state version 2) restores to
    the replica it was written from, directly and as a message of ledger.snapshots."""
    data = FIXTURE.read_bytes()
    expected = fixed_replica()
    assert json.loads(data[4 : 4 + int.from_bytes(data[:4], "big")])["format"] == 1
    assert_same(restore_snapshot(data), expected, FIXED_SOURCE_OFFSET_END, FIXED_BLOCKS_OFFSET_NEXT)
    message = decode_message(data)
    assert message == WholeSnapshot(expected.ledger, 6, data)


def test_new_snapshots_are_smaller_than_old_ones() -> None:
    """The same replica snapshots to fewer bytes now than in the old format (16 bytes and a
    share of an expiry run per tx_id, against 24)."""
    replica = fixed_replica()
    new = snapshot(replica, FIXED_SOURCE_OFFSET_END, FIXED_BLOCKS_OFFSET_NEXT)
    assert len(new) < len(FIXTURE.read_bytes()) - 50 * 6


def test_manifest_names_its_chunks_and_their_offsets() -> None:
    """A manifest decodes to the snapshot id and offsets it was built from, restores with its
    own chunks, and refuses chunks of another snapshot or too few of them."""
    replica = fixed_replica()
    chunks = snapshot_chunks(replica, 1, 2, 1_400)
    assert len(chunks) >= 2
    offsets = [100 + index for index in range(len(chunks))]
    entry = decode_message(manifest(chunks, offsets))
    assert isinstance(entry, SnapshotManifest)
    first = decode_message(chunks[0])
    assert isinstance(first, SnapshotChunk)
    assert entry.snapshot == first.snapshot and entry.chunk_offsets == tuple(offsets)
    assert_same(restore_manifest(entry, chunks), replica, 1, 2)
    replica.state.tx_count += 1
    other = snapshot_chunks(replica, 1, 2, 1_400)
    with pytest.raises(DecodeError):
        restore_manifest(entry, other[: len(chunks)])
    with pytest.raises(DecodeError):
        restore_manifest(entry, chunks[:-1])


def _framed(header: object, payload: bytes = b"") -> bytes:
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(4, "big") + encoded + payload


CHUNK_HEADER = {
    "format": 2,
    "kind": "chunk",
    "ledger": "main",
    "height": 3,
    "size_bytes": 10,
    "sha256": "00" * 32,
    "chunk_index": 0,
    "chunk_count": 2,
}


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00\x00\x00\x09not json!",
        b"\xff\xff\xff\xff{}",
        _framed([1, 2]),
        _framed({**CHUNK_HEADER, "format": 3}),
        _framed({**CHUNK_HEADER, "kind": "index"}),
        _framed({**CHUNK_HEADER, "chunk_index": 2}),
        _framed({**CHUNK_HEADER, "chunk_count": limits.snapshot_chunk_max_count + 1}),
        _framed({**CHUNK_HEADER, "height": True}),
        _framed({**CHUNK_HEADER, "sha256": "00"}),
        _framed({**CHUNK_HEADER, "kind": "manifest", "chunk_offsets": []}),
        _framed({**CHUNK_HEADER, "kind": "manifest", "chunk_offsets": [-1]}),
        _framed({**CHUNK_HEADER, "kind": "manifest", "chunk_offsets": [1]}, b"payload"),
        _framed({"format": 1, "ledger": 5, "height": 1}),
    ],
)
def test_messages_that_are_no_snapshot_part_are_refused(value: bytes) -> None:
    """decode_message raises DecodeError, and nothing else, for bytes that are not a chunk, a
    manifest or a whole snapshot."""
    with pytest.raises(DecodeError):
        decode_message(value)


def test_a_chunk_size_without_room_for_the_header_is_refused() -> None:
    """cut refuses a chunk size its own header does not fit in, instead of writing oversize."""
    with pytest.raises(ValueError):
        cut(b"data", "main", 0, 100)


def test_the_default_chunk_size_fits_a_kafka_message() -> None:
    """Chunks at the default size stay under the message limit with room for Kafka's framing."""
    replica = fixed_replica()
    for number in range(300_000):
        replica.state.recent_tx_ids[number.to_bytes(16, "big")] = number // 10
    chunks = snapshot_chunks(replica, 1, 2)
    assert len(chunks) == 2
    assert max(map(len, chunks)) <= limits.snapshot_chunk_bytes_max < limits.message_bytes_max
