"""State snapshots on Kafka: write one inside the block's transaction, read the newest back.

The bytes (chunks, manifest, whole-message snapshots of earlier builds) are ``ledger.snapshots``'
business, a pure module; this one decides keys and offsets and does the I/O.

Layout of one partition of ``ledger.snapshots`` (one per shard, compacted):

- chunk ``i`` of a snapshot has the key ``"<ledger>/<i>"``, so compaction keeps one message per
  chunk index: the newest snapshot's (a snapshot is never larger than the chunk keys it reuses
  plus new ones; stale higher indexes of an older, larger snapshot stay, unreferenced);
- after its chunks, in the same transaction, a manifest with the key ``"<ledger>"`` lists their
  offsets. That is also the key of the whole-message snapshots earlier builds wrote, so the first
  manifest supersedes the last of those.

Why this survives compaction and aborts: a chunk is removed only once a newer message of its key
is committed, and a newer chunk commits only together with a newer manifest, which then is the
newest. The log cleaner neither cleans past the last stable offset (open transactions) nor lets
aborted records replace anything, and read_committed readers never see aborted ones. The one race
left, a newer snapshot committed and compacted between reading a manifest and its chunks, makes
the chunks go missing; the reader then looks for the newest manifest again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ledger.errors import DecodeError, InfraError
from ledger.kafka.clients import committed_reader, kafka_errors
from ledger.kafka_access import KafkaAccess
from ledger.replica import RestoredReplica, restore_snapshot
from ledger.settings import TOPIC_SNAPSHOTS
from ledger.snapshots import (
    SnapshotChunk,
    SnapshotManifest,
    WholeSnapshot,
    decode_message,
    manifest,
    restore_manifest,
)

log = logging.getLogger("ledger.snapshots")

fetch_wait_ms = 500
read_timeout_s = 120.0
"""A read of the newest snapshot gives up (InfraError) after this long: at least a few hundred MB
at local fetch rates, far more than a snapshot of one shard."""
lookback_first_count = 2
"""Offsets read back from the end first: a manifest and its commit marker, normally."""
lookback_growth_factor = 8
read_attempt_count = 2
"""Tries at a manifest whose chunks went missing (compacted by a newer snapshot meanwhile)."""


def chunk_key(ledger: str, chunk_index: int) -> bytes:
    return f"{ledger}/{chunk_index}".encode()


def manifest_key(ledger: str) -> bytes:
    return ledger.encode()


async def send_snapshot(
    producer: AIOKafkaProducer,
    ledger: str,
    partition: int,
    chunks: Sequence[bytes],
    *,
    topic: str = TOPIC_SNAPSHOTS,
) -> None:
    """Write ``chunks`` (``ledger.snapshots.snapshot_chunks``) into the producer's open
    transaction; readers see the snapshot once the caller commits it, never if it aborts.

    1. send every chunk to ``partition`` under its ``chunk_key``;
    2. wait for their acknowledgements, which carry their offsets (assigned while the
       transaction is still open);
    3. send the manifest listing those offsets under ``manifest_key`` and wait for it too.

    Errors are the producer's own, unchanged (``ProducerFenced``, ``KafkaError``): the caller's
    transaction handling must tell a fenced sequencer from a failed one.
    """
    sent = [
        await producer.send(topic, chunk, key=chunk_key(ledger, index), partition=partition)
        for index, chunk in enumerate(chunks)
    ]
    offsets = [(await future).offset for future in sent]
    entry = await producer.send(
        topic, manifest(chunks, offsets), key=manifest_key(ledger), partition=partition
    )
    await entry


async def read_snapshot(
    kafka: KafkaAccess | str,
    partition: int,
    trusted_sealer_key: bytes | None = None,
    *,
    topic: str = TOPIC_SNAPSHOTS,
) -> RestoredReplica | None:
    """The newest committed snapshot of ``partition`` (chunked, or whole from an older build),
    restored; None when there is none, or when it does not decode (logged as a warning: the
    caller replays the chain from genesis instead). Kafka failures raise ``InfraError``."""
    consumer = committed_reader(kafka, f"ledger-snapshot-reader-{partition}")
    topic_partition = TopicPartition(topic, partition)
    with kafka_errors(f"reading the newest snapshot of {topic}[{partition}]"):
        await consumer.start()
        try:
            consumer.assign([topic_partition])
            return await _read_newest(consumer, topic_partition, trusted_sealer_key)
        except DecodeError as exc:
            log.warning("%s[%d]: newest snapshot refused (%s)", topic, partition, exc)
            return None
        finally:
            await consumer.stop()


async def _read_newest(
    consumer: AIOKafkaConsumer, topic_partition: TopicPartition, trusted_sealer_key: bytes | None
) -> RestoredReplica | None:
    """Find the newest entry (manifest or whole snapshot), then restore it."""
    for _ in range(read_attempt_count):
        found = await _newest_entry(consumer, topic_partition)
        if found is None:
            return None
        offset, entry = found
        if isinstance(entry, DecodeError):
            raise entry
        if isinstance(entry, WholeSnapshot):
            return restore_snapshot(entry.data, trusted_sealer_key)
        if max(entry.chunk_offsets) >= offset:
            raise DecodeError(f"manifest at offset {offset} lists chunks after itself")
        chunks = await _values_at(consumer, topic_partition, entry.chunk_offsets)
        if chunks is not None:
            return restore_manifest(entry, chunks, trusted_sealer_key)
        log.info(
            "%s: chunks of the manifest at %d are gone; looking again", topic_partition, offset
        )
    raise DecodeError(f"the newest manifest's chunks are missing after {read_attempt_count} tries")


Entry = SnapshotManifest | WholeSnapshot | DecodeError
"""The newest message that is not a chunk: a snapshot to restore, or why it cannot be one."""


async def _newest_entry(
    consumer: AIOKafkaConsumer, topic_partition: TopicPartition
) -> tuple[int, Entry] | None:
    """The newest committed manifest or whole snapshot, with its offset. Reads back from the end
    in growing steps: transaction markers and aborted chunks take offsets too. A message that
    does not decode counts as an entry (it may have been one), so a corrupt newest snapshot is
    refused rather than passed over for an older one."""
    end = (await consumer.end_offsets([topic_partition]))[topic_partition]
    lookback_count = lookback_first_count
    while True:
        start = max(0, end - lookback_count)
        newest: tuple[int, Entry] | None = None
        async for offset, value in _committed(consumer, topic_partition, start, end):
            if value is None:
                continue  # a tombstone: nothing was ever written with one, but it is legal
            try:
                message = decode_message(value)
            except DecodeError as exc:
                newest = (offset, exc)
                continue
            if not isinstance(message, SnapshotChunk):
                newest = (offset, message)
        if newest is not None or start == 0:
            return newest
        lookback_count *= lookback_growth_factor


async def _values_at(
    consumer: AIOKafkaConsumer, topic_partition: TopicPartition, offsets: Sequence[int]
) -> list[bytes] | None:
    """The committed values at ``offsets``, in that order; None if any is missing."""
    wanted = set(offsets)
    found: dict[int, bytes] = {}
    async for offset, value in _committed(consumer, topic_partition, min(wanted), max(wanted) + 1):
        if offset in wanted and value is not None:
            found[offset] = value
    if len(found) != len(wanted):
        return None
    return [found[offset] for offset in offsets]


async def _committed(
    consumer: AIOKafkaConsumer, topic_partition: TopicPartition, start: int, end: int
) -> AsyncIterator[tuple[int, bytes | None]]:
    """(offset, value) of every committed message in [start, end), within ``read_timeout_s``."""
    deadline = time.monotonic() + read_timeout_s
    consumer.seek(topic_partition, start)
    while await consumer.position(topic_partition) < end:
        if time.monotonic() > deadline:
            raise InfraError(
                f"reading {topic_partition} [{start}, {end}) took over {read_timeout_s} s"
            )
        batch = await consumer.getmany(topic_partition, timeout_ms=fetch_wait_ms)
        for message in batch.get(topic_partition, []):
            if message.offset < end:
                yield message.offset, message.value
