"""Snapshots on the real Kafka: written in a transaction, chunked, read back newest-complete-first."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from support.block_topics import delete_topics, unique_topic_name
from support.snapshot_states import (
    FIXED_BLOCKS_OFFSET_NEXT,
    FIXED_LEDGER,
    FIXED_SOURCE_OFFSET_END,
    checkpoint,
    fixed_replica,
)

from ledger.kafka.admin import LEDGER_TOPIC_CONFIGS, ensure_topics
from ledger.kafka.clients import transactional_producer
from ledger.kafka.principals import ADMIN
from ledger.replica import Replica, RestoredReplica
from ledger.settings import TOPIC_SNAPSHOTS, Settings
from ledger.snapshots import snapshot_chunks
from streams.snapshots import manifest_key, read_snapshot, send_snapshot

pytestmark = pytest.mark.services

partition = 1
"""Not partition 0: the snapshot must be read where it was written, not merely first."""
chunk_bytes_max = 64 * 1024
sealer_key = b"s" * 32
OLD_FORMAT_FILE = (
    Path(__file__).resolve().parents[1]
    / "ledger"
    / "fixtures"
    / "replica_snapshot.format1.state2.bin"
)
"""A snapshot written whole by the build before chunking (see tests/ledger/test_snapshot_chunks.py)."""


@pytest.fixture
async def topic(settings: Settings) -> AsyncIterator[str]:
    """A fresh two-partition topic configured like ledger.snapshots (compacted)."""
    name = unique_topic_name("snapshots")
    await ensure_topics(
        settings.kafka(ADMIN),
        {name: 2},
        replication=1,
        extra_configs={name: LEDGER_TOPIC_CONFIGS[TOPIC_SNAPSHOTS]},
    )
    yield name
    await delete_topics(settings.kafka(ADMIN), [name])


@pytest.fixture
async def producer(settings: Settings, topic: str) -> AsyncIterator[AIOKafkaProducer]:
    writer = transactional_producer(settings.kafka(ADMIN), f"{topic}-writer")
    await writer.start()
    yield writer
    await writer.stop()


def replica_at(height: int, window_count: int) -> Replica:
    """The fixed replica moved to ``height`` with a replay window of ``window_count`` tx_ids:
    about 16 bytes each, so 20,000 of them make a snapshot of 5 or more chunks."""
    replica = fixed_replica()
    replica.checkpoint = checkpoint(FIXED_LEDGER, height)
    for number in range(window_count):
        tx_id = hashlib.sha256(f"{height}/{number}".encode()).digest()[:16]
        replica.state.recent_tx_ids[tx_id] = 1_790_000_060_000 + number // 10
    replica.state.rebuild_indexes()
    return replica


async def write(
    producer: AIOKafkaProducer, topic: str, replica: Replica, *, commit: bool = True
) -> int:
    """One snapshot of ``replica`` in one transaction; returns its chunk count."""
    chunks = snapshot_chunks(replica, height_offset(replica), 7, chunk_bytes_max)
    await producer.begin_transaction()
    await send_snapshot(producer, replica.ledger, partition, chunks, topic=topic)
    if commit:
        await producer.commit_transaction()
    else:
        await producer.abort_transaction()
    return len(chunks)


def height_offset(replica: Replica) -> int:
    assert replica.checkpoint is not None
    return 1_000 + replica.checkpoint.height


async def read(settings: Settings, topic: str) -> RestoredReplica | None:
    return await read_snapshot(
        settings.kafka(ADMIN), partition, trusted_sealer_key=sealer_key, topic=topic
    )


def assert_restored(restored: RestoredReplica | None, replica: Replica) -> None:
    assert restored is not None
    assert restored.replica.state == replica.state
    assert restored.replica.checkpoint == replica.checkpoint
    assert restored.replica.trusted_sealer_key == sealer_key
    assert (restored.source_offset_end, restored.blocks_offset_next) == (
        height_offset(replica),
        7,
    )


async def test_a_partition_without_snapshots_has_none(settings: Settings, topic: str) -> None:
    """An empty partition reads as None (the caller replays from genesis)."""
    assert await read(settings, topic) is None


async def test_a_chunked_snapshot_reads_back_exactly(
    settings: Settings, topic: str, producer: AIOKafkaProducer
) -> None:
    """A multi-chunk snapshot committed in one transaction restores to the replica written."""
    replica = replica_at(10, 20_000)
    assert await write(producer, topic, replica) >= 5
    assert_restored(await read(settings, topic), replica)


async def test_aborted_snapshots_are_ignored_and_the_newest_committed_wins(
    settings: Settings, topic: str, producer: AIOKafkaProducer
) -> None:
    """Chunks and manifest of an aborted transaction are never read (larger or smaller than the
    committed snapshot); a later committed snapshot, with fewer chunks, replaces the first."""
    first = replica_at(10, 20_000)
    first_chunk_count = await write(producer, topic, first)
    await write(producer, topic, replica_at(11, 30_000), commit=False)
    assert_restored(await read(settings, topic), first)
    await write(producer, topic, replica_at(12, 2_000), commit=False)
    assert_restored(await read(settings, topic), first)
    newer = replica_at(13, 8_000)
    assert await write(producer, topic, newer) < first_chunk_count
    assert_restored(await read(settings, topic), newer)


async def test_an_old_single_message_snapshot_is_read_then_superseded(
    settings: Settings, topic: str, producer: AIOKafkaProducer
) -> None:
    """A whole-message snapshot of the previous build is restored as it is; the first chunked
    snapshot after it wins."""
    async with producer.transaction():
        await producer.send_and_wait(
            topic, OLD_FORMAT_FILE.read_bytes(), key=manifest_key(FIXED_LEDGER), partition=partition
        )
    restored = await read(settings, topic)
    assert restored is not None and restored.replica.state == fixed_replica().state
    assert (restored.source_offset_end, restored.blocks_offset_next) == (
        FIXED_SOURCE_OFFSET_END,
        FIXED_BLOCKS_OFFSET_NEXT,
    )
    newer = replica_at(20, 10_000)
    await write(producer, topic, newer)
    assert_restored(await read(settings, topic), newer)


async def test_a_corrupt_newest_snapshot_reads_as_none_with_a_warning(
    settings: Settings, topic: str, producer: AIOKafkaProducer, caplog: pytest.LogCaptureFixture
) -> None:
    """A newest message that is no snapshot is refused with a warning, not passed over."""
    await write(producer, topic, replica_at(10, 1_000))
    async with producer.transaction():
        await producer.send_and_wait(
            topic, b"\x00\x00\x00\x02{}", key=manifest_key(FIXED_LEDGER), partition=partition
        )
    with caplog.at_level(logging.WARNING, logger="ledger.snapshots"):
        assert await read(settings, topic) is None
    assert "newest snapshot refused" in caplog.text
