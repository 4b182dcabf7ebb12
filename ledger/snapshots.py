"""A replica snapshot of any size as Kafka-sized chunks, and back: pure, no I/O.

Why: a snapshot (``ledger.replica.snapshot``) holds the whole replay window, about 10 MB at
10,000 tx/s and 60 s validity and more with longer windows, but a Kafka message holds at most
``limits.message_bytes_max``. ``snapshot_chunks`` cuts the snapshot's bytes into messages of at
most ``chunk_bytes_max`` bytes; ``restore_chunks`` puts them together again.

Every message on ``ledger.snapshots`` starts like a format 1 snapshot: 4 bytes big-endian giving
the length of a JSON header, the header, then a payload. The header's ``format`` says what it is:

- format 1: a whole snapshot in one message (what builds before chunking wrote; still read);
- format 2, kind ``chunk``: one slice of a snapshot's bytes. The header names its snapshot (ledger,
  height, size and SHA-256 of the whole), its ``chunk_index`` and the ``chunk_count``, so a set
  that is missing a chunk, repeats one or mixes two snapshots is refused (``DecodeError``);
- format 2, kind ``manifest``: no payload; the same snapshot id and the Kafka offsets of its
  chunks, written last, so a reader finds the newest complete snapshot from one message.

``streams.snapshots`` does the Kafka side (keys, transactions, reading back).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import limits
from ledger.errors import DecodeError
from ledger.replica import (
    Replica,
    RestoredReplica,
    restore_snapshot,
    snapshot,
    snapshot_format_version,
)

chunked_format_version = 2
"""Format of chunk and manifest messages (a whole snapshot in one message is format 1)."""
assert chunked_format_version != snapshot_format_version

_length_prefix_bytes = 4


@dataclass(frozen=True, slots=True)
class SnapshotId:
    """Which snapshot a chunk or manifest belongs to: equal ids mean equal snapshot bytes."""

    ledger: str
    height: int
    size_bytes: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    snapshot: SnapshotId
    chunk_index: int
    chunk_count: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SnapshotManifest:
    """The entry point of a chunked snapshot: where its chunks are, in index order."""

    snapshot: SnapshotId
    chunk_offsets: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WholeSnapshot:
    """A format 1 message: the snapshot bytes themselves (``restore_snapshot`` reads them)."""

    ledger: str
    height: int
    data: bytes


SnapshotMessage = SnapshotChunk | SnapshotManifest | WholeSnapshot


def snapshot_chunks(
    replica: Replica,
    source_offset_end: int,
    blocks_offset_next: int,
    chunk_bytes_max: int = limits.snapshot_chunk_bytes_max,
) -> list[bytes]:
    """``replica``'s snapshot (``ledger.replica.snapshot``) as messages of <= chunk_bytes_max."""
    data = snapshot(replica, source_offset_end, blocks_offset_next)
    assert replica.checkpoint is not None  # snapshot() refuses a replica before genesis
    return cut(data, replica.ledger, replica.checkpoint.height, chunk_bytes_max)


def cut(data: bytes, ledger: str, height: int, chunk_bytes_max: int) -> list[bytes]:
    """The chunk messages of the snapshot ``data`` of ``ledger`` at ``height``; at least one."""
    snapshot_id = SnapshotId(ledger, height, len(data), hashlib.sha256(data).digest())
    # Index and count never have more digits than the largest count allowed.
    largest = limits.snapshot_chunk_max_count
    payload_bytes = chunk_bytes_max - len(_framed(_chunk_header(snapshot_id, largest, largest)))
    if payload_bytes < 1:
        raise ValueError(f"chunk_bytes_max {chunk_bytes_max} leaves no room after the header")
    chunk_count = max(1, -(-len(data) // payload_bytes))
    if chunk_count > limits.snapshot_chunk_max_count:
        raise ValueError(f"a snapshot of {len(data)} bytes needs {chunk_count} chunks")
    chunks = [
        _framed(
            _chunk_header(snapshot_id, index, chunk_count),
            data[index * payload_bytes : (index + 1) * payload_bytes],
        )
        for index in range(chunk_count)
    ]
    assert all(len(chunk) <= chunk_bytes_max for chunk in chunks)
    return chunks


def restore_chunks(
    chunks: Sequence[bytes], trusted_sealer_key: bytes | None = None
) -> RestoredReplica:
    """The replica of ``snapshot_chunks``' messages, in any order; DecodeError unless they are
    exactly the chunks of one snapshot and that snapshot decodes."""
    parts = [_decoded_chunk(chunk) for chunk in chunks]
    if not parts:
        raise DecodeError("no snapshot chunks")
    snapshot_id, chunk_count = parts[0].snapshot, parts[0].chunk_count
    if any(part.snapshot != snapshot_id or part.chunk_count != chunk_count for part in parts):
        raise DecodeError("snapshot chunks of different snapshots")
    indexes = sorted(part.chunk_index for part in parts)
    if indexes != list(range(chunk_count)):
        raise DecodeError(f"snapshot chunks {indexes} are not 0..{chunk_count - 1} once each")
    data = b"".join(part.payload for part in sorted(parts, key=lambda part: part.chunk_index))
    if len(data) != snapshot_id.size_bytes or hashlib.sha256(data).digest() != snapshot_id.sha256:
        raise DecodeError("snapshot chunks do not add up to the snapshot they name")
    restored = restore_snapshot(data, trusted_sealer_key)
    _check_names(restored, snapshot_id.ledger, snapshot_id.height)
    return restored


def manifest(chunks: Sequence[bytes], chunk_offsets: Sequence[int]) -> bytes:
    """The manifest message of ``chunks`` (from ``snapshot_chunks``), which were written at
    ``chunk_offsets`` (in index order)."""
    parts = [_decoded_chunk(chunk) for chunk in chunks]
    if len(parts) != len(chunk_offsets) or not parts:
        raise ValueError("one offset per chunk, and at least one chunk")
    if [part.chunk_index for part in parts] != list(range(parts[0].chunk_count)):
        raise ValueError("chunks must be complete and in index order")
    header = {
        **_id_fields(parts[0].snapshot),
        "kind": "manifest",
        "chunk_offsets": list(chunk_offsets),
    }
    return _framed(header)


def restore_manifest(
    entry: SnapshotManifest, chunks: Sequence[bytes], trusted_sealer_key: bytes | None = None
) -> RestoredReplica:
    """``restore_chunks`` of the chunks read at ``entry``'s offsets, which must be its own."""
    if len(chunks) != len(entry.chunk_offsets):
        raise DecodeError(f"{len(chunks)} chunks for a manifest of {len(entry.chunk_offsets)}")
    if chunks and _decoded_chunk(chunks[0]).snapshot != entry.snapshot:
        raise DecodeError("the chunks at the manifest's offsets belong to another snapshot")
    return restore_chunks(chunks, trusted_sealer_key)


def decode_message(value: bytes) -> SnapshotMessage:
    """What one ``ledger.snapshots`` message is; DecodeError when it is none of them. A chunk's
    payload and a whole snapshot's state are not decoded here (``restore_*`` do that)."""
    header, payload = _unframed(value)
    try:
        if header["format"] == snapshot_format_version:
            return WholeSnapshot(
                _typed(header["ledger"], str), _typed(header["height"], int), value
            )
        if header["format"] != chunked_format_version:
            raise DecodeError(f"snapshot message format {header['format']} is not known")
        snapshot_id = _id_from(header)
        if header["kind"] == "chunk":
            return _chunk_from(header, snapshot_id, payload)
        if header["kind"] == "manifest" and not payload:
            return _manifest_from(header, snapshot_id)
        raise DecodeError(f"snapshot message kind {header['kind']!r} is not known")
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"not a snapshot message: {exc!r}") from exc


def _chunk_header(snapshot_id: SnapshotId, chunk_index: int, chunk_count: int) -> dict[str, Any]:
    return {
        **_id_fields(snapshot_id),
        "kind": "chunk",
        "chunk_index": chunk_index,
        "chunk_count": chunk_count,
    }


def _id_fields(snapshot_id: SnapshotId) -> dict[str, Any]:
    return {
        "format": chunked_format_version,
        "ledger": snapshot_id.ledger,
        "height": snapshot_id.height,
        "size_bytes": snapshot_id.size_bytes,
        "sha256": snapshot_id.sha256.hex(),
    }


def _framed(header: dict[str, Any], payload: bytes = b"") -> bytes:
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return len(encoded).to_bytes(_length_prefix_bytes, "big") + encoded + payload


def _unframed(value: bytes) -> tuple[dict[str, Any], bytes]:
    header_size = int.from_bytes(value[:_length_prefix_bytes], "big")
    end = _length_prefix_bytes + header_size
    if len(value) < end:
        raise DecodeError("snapshot message shorter than its header")
    try:
        header = json.loads(value[_length_prefix_bytes:end])
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"snapshot message header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise DecodeError("snapshot message header is not a JSON object")
    return header, value[end:]


def _id_from(header: dict[str, Any]) -> SnapshotId:
    snapshot_id = SnapshotId(
        _typed(header["ledger"], str),
        _typed(header["height"], int),
        _typed(header["size_bytes"], int),
        bytes.fromhex(_typed(header["sha256"], str)),
    )
    if snapshot_id.height < 0 or snapshot_id.size_bytes < 0 or len(snapshot_id.sha256) != 32:
        raise DecodeError("snapshot id out of range")
    return snapshot_id


def _chunk_from(header: dict[str, Any], snapshot_id: SnapshotId, payload: bytes) -> SnapshotChunk:
    chunk_index = _typed(header["chunk_index"], int)
    chunk_count = _typed(header["chunk_count"], int)
    if not 0 <= chunk_index < chunk_count <= limits.snapshot_chunk_max_count:
        raise DecodeError(f"snapshot chunk {chunk_index} of {chunk_count} is out of range")
    return SnapshotChunk(snapshot_id, chunk_index, chunk_count, payload)


def _manifest_from(header: dict[str, Any], snapshot_id: SnapshotId) -> SnapshotManifest:
    offsets = tuple(_typed(offset, int) for offset in _typed(header["chunk_offsets"], list))
    if not 0 < len(offsets) <= limits.snapshot_chunk_max_count or min(offsets) < 0:
        raise DecodeError(f"snapshot manifest of {len(offsets)} chunk offsets")
    return SnapshotManifest(snapshot_id, offsets)


def _decoded_chunk(value: bytes) -> SnapshotChunk:
    message = decode_message(value)
    if not isinstance(message, SnapshotChunk):
        raise DecodeError(f"expected a snapshot chunk, got a {type(message).__name__}")
    return message


def _typed(value: Any, kind: type) -> Any:
    """``value`` if it is a ``kind`` (and not a bool posing as an int)."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DecodeError(f"{value!r} is not a {kind.__name__}")
    return value


def _check_names(restored: RestoredReplica, ledger: str, height: int) -> None:
    """The snapshot inside must be the one its chunks or manifest named."""
    checkpoint = restored.replica.checkpoint
    if restored.replica.ledger != ledger or checkpoint is None or checkpoint.height != height:
        raise DecodeError(f"the snapshot inside is not {ledger!r} at height {height}")
