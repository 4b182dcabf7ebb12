"""``BlockReader``: a ledger's committed blocks, each verified before the caller sees it.

What a reconciliation job holds in its hands. For one ledger (one partition of
``ledger.blocks``) the reader:

  1. connects within ``connect_timeout_s`` and checks that the topic and partition exist;
  2. finds where to start: offset 0 (genesis), or, after a trusted ``ChainCheckpoint``, the
     offset of the block after it (given as ``start_offset``, or found by a binary search over
     the partition's offsets, O(log n) fetches);
  3. reads committed messages (``read_committed``) in offset order, decodes each and feeds it to
     ``ChainVerifier`` (seal, optional trusted sealer, prev_hash, tx_root, blocks_root, heights,
     seq numbering), and yields a block only once it verified: the first failure raises
     ``ChainError`` naming its height, and nothing at or after it is yielded;
  4. stops at the partition's end as it was when reading started (``follow=False``), or keeps
     waiting for new blocks (``follow=True``, optionally giving up after ``idle_timeout_s``).

With a ``witness_policy`` (``ledger.witnessing``) the reader yields a block only once it is
final: it also reads the ledger's partition of ``ledger.cosignatures`` and counts, itself, the
valid cosignatures of the policy's witnesses over the blocks it verified. Without ``follow`` it
stops at the first block that is not final by the end of that partition.

Blocks below ``from_height`` (default: the first block read) are verified (the chain has to be
replayed to check what follows) but not yielded. Every wait is bounded: connecting, each fetch, and any read that should make
progress towards a known end but stalls (``InfraError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ledger import codec
from ledger.blocks import ChainCheckpoint, ChainVerifier
from ledger.errors import ChainError, ConfigError, DecodeError, InfraError
from ledger.kafka.blockstream import blocks_consumer
from ledger.kafka.clients import committed_reader
from ledger.kafka.wire import default_wire, plain, wire
from ledger.kafka_access import KafkaAccess
from ledger.model import Block, Cosignature
from ledger.settings import TOPIC_BLOCKS, TOPIC_COSIGNATURES, Settings
from ledger.witnessing import FinalityTracker, WitnessPolicy

connect_timeout_s = 15.0
"""Connecting and the first metadata answer; a reachable broker answers in milliseconds."""

fetch_wait_ms = 500
"""Longest single fetch wait; short enough that follow mode notices idle_timeout_s promptly."""

metadata_poll_s = 0.05

stall_timeout_s = 30.0
"""A read towards a known end offset that receives nothing for this long has lost the broker."""


@dataclass(frozen=True, slots=True)
class VerifiedBlock:
    """One block that verified, where it was read, and the checkpoint after it.

    Resume later with ``BlockReader(..., checkpoint=item.checkpoint, start_offset=item.offset + 1)``.
    """

    offset: int
    block: Block
    block_hash: bytes
    checkpoint: ChainCheckpoint
    size_bytes: int

    @property
    def height(self) -> int:
        return self.block.header.height


class BlockReader:
    """Async iterator over one ledger's verified blocks; see the module docstring.

    Use as ``async with BlockReader(bootstrap, "main") as reader: async for item in reader:``
    (the context closes the Kafka consumer even when the loop is left early). A reader iterates
    once.
    """

    def __init__(
        self,
        kafka: KafkaAccess | str,
        ledger: str,
        *,
        partition: int | None = None,
        topic: str = TOPIC_BLOCKS,
        checkpoint: ChainCheckpoint | None = None,
        start_offset: int | None = None,
        from_height: int | None = None,
        trusted_sealer_key: bytes | None = None,
        follow: bool = False,
        idle_timeout_s: float | None = None,
        client_id: str = "ledger-block-reader",
        witness_policy: WitnessPolicy | None = None,
        cosignatures_topic: str = TOPIC_COSIGNATURES,
        registry_url: str | None = None,
    ) -> None:
        if checkpoint is not None and checkpoint.ledger != ledger:
            raise ValueError(f"checkpoint is of ledger {checkpoint.ledger!r}, not {ledger!r}")
        if start_offset is not None and checkpoint is None:
            raise ValueError("start_offset needs the checkpoint of the block before it")
        if start_offset is not None and start_offset < 0:
            raise ValueError("start_offset cannot be negative")
        first_height = 0 if checkpoint is None else checkpoint.next_height
        from_height = first_height if from_height is None else from_height
        if from_height < first_height:
            raise ValueError(
                f"from_height {from_height} is before the checkpoint's next height {first_height}"
            )
        if trusted_sealer_key is not None and len(trusted_sealer_key) != 32:
            raise ValueError("trusted_sealer_key is 32 raw bytes")
        if partition is None:
            partition = Settings.from_env().shard_partition(ledger)
            if partition is None:
                raise ConfigError(f"ledger {ledger!r} is not in LEDGER_SHARDS")
        self.kafka = kafka
        self.ledger = ledger
        self.topic_partition = TopicPartition(topic, partition)
        self.from_height = from_height
        self.follow = follow
        self.idle_timeout_s = idle_timeout_s
        self._start_offset = start_offset
        self._verifier = ChainVerifier(
            trusted_sealer_key=trusted_sealer_key, checkpoint=checkpoint, ledger=ledger
        )
        self._client_id = client_id
        self._wire = wire(registry_url) if registry_url else default_wire()
        """Resolves the schema ids of framed values: the Schema Registry at ``registry_url``,
        by default LEDGER_SCHEMA_REGISTRY_URL's or the local stack's."""
        self._iterator: AsyncGenerator[VerifiedBlock, None] | None = None
        self._finality = (
            None
            if witness_policy is None
            else _FinalityGate(
                FinalityTracker(witness_policy),
                TopicPartition(cosignatures_topic, partition),
                first_height,
            )
        )

    # ---- what has been verified so far -------------------------------------------------------

    @property
    def checkpoint(self) -> ChainCheckpoint | None:
        """The checkpoint after the last verified block (yielded or not); None before any."""
        return self._verifier.checkpoint

    @property
    def next_height(self) -> int:
        """The height the next block must have; a ChainError names this height."""
        return self._verifier.next_height

    # ---- iteration -----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[VerifiedBlock]:
        if self._iterator is not None:
            raise RuntimeError("a BlockReader iterates once; make a new one to read again")
        self._iterator = self._read()
        return self._iterator

    async def __aenter__(self) -> BlockReader:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reading and close the consumer (also done when the iteration ends)."""
        if self._iterator is not None:
            await self._iterator.aclose()

    async def _read(self) -> AsyncGenerator[VerifiedBlock, None]:
        consumer = blocks_consumer(self.kafka, self._client_id)
        try:
            await self._connect(consumer)
            end = await self._end_offset(consumer)
            consumer.seek(self.topic_partition, await self._first_offset(consumer, end))
            async with contextlib.aclosing(self._records(consumer, end)) as records:
                async for record in records:
                    verified = self._verify(record)
                    if self._finality is not None:
                        self._finality.verified(verified.height, verified.block_hash)
                    if verified.height < self.from_height:
                        continue
                    if self._finality is not None and not await self._final(verified.height):
                        return
                    yield verified
        except KafkaError as exc:
            raise InfraError(f"reading {self._where} from {self.kafka} failed: {exc}") from exc
        finally:
            await consumer.stop()
            if self._finality is not None and self._finality.consumer is not None:
                await self._finality.consumer.stop()

    async def _final(self, height: int) -> bool:
        """Read cosignatures until block ``height`` is final (True), or, without ``follow``,
        until the end the cosignature partition had when first read (False)."""
        gate = self._finality
        assert gate is not None
        if gate.consumer is None:
            gate.consumer = committed_reader(self.kafka, f"{self._client_id}-finality")
            await asyncio.wait_for(gate.consumer.start(), connect_timeout_s)
            gate.consumer.assign([gate.partition])
            gate.consumer.seek(gate.partition, 0)
            offsets = await asyncio.wait_for(
                gate.consumer.end_offsets([gate.partition]), connect_timeout_s
            )
            gate.end = int(offsets[gate.partition])
        last_progress_s = time.monotonic()
        while gate.tracker.final_height(height) < height:
            position = await gate.consumer.position(gate.partition)
            caught_up = position >= gate.end
            if caught_up and not self.follow:
                return False
            batch = await gate.consumer.getmany(gate.partition, timeout_ms=fetch_wait_ms)
            records = batch.get(gate.partition, [])
            if records:
                last_progress_s = time.monotonic()
            elif self._stalled(caught_up, last_progress_s):
                return False
            for record in records:
                gate.count(record.value)
        return True

    @property
    def _where(self) -> str:
        return f"{self.topic_partition.topic}[{self.topic_partition.partition}]"

    # ---- step 1: connect -------------------------------------------------------------------------

    async def _connect(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await asyncio.wait_for(consumer.start(), connect_timeout_s)
            topics = await asyncio.wait_for(consumer.topics(), connect_timeout_s)
        except TimeoutError as exc:
            raise InfraError(
                f"no answer from Kafka at {self.kafka} within {connect_timeout_s:.0f} s"
            ) from exc
        except (KafkaError, OSError) as exc:
            raise InfraError(f"cannot reach Kafka at {self.kafka}: {exc}") from exc
        topic, partition = self.topic_partition.topic, self.topic_partition.partition
        if topic not in topics:
            raise InfraError(f"topic {topic} does not exist on {self.kafka}")
        # Assigning subscribes the client to the topic's metadata; nothing is fetched before the
        # partition is known to exist.
        consumer.assign([self.topic_partition])
        partitions = await self._partitions(consumer, topic)
        if partition not in partitions:
            raise ConfigError(
                f"topic {topic} has {len(partitions)} partitions; ledger {self.ledger!r} "
                f"needs partition {partition}"
            )

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str) -> set[int]:
        deadline = time.monotonic() + connect_timeout_s
        while time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                return set(partitions)
            await asyncio.sleep(metadata_poll_s)
        raise InfraError(f"no metadata for topic {topic} within {connect_timeout_s:.0f} s")

    async def _end_offset(self, consumer: AIOKafkaConsumer) -> int:
        offsets = await asyncio.wait_for(
            consumer.end_offsets([self.topic_partition]), connect_timeout_s
        )
        return int(offsets[self.topic_partition])

    # ---- step 2: where to start ----------------------------------------------------------------

    async def _first_offset(self, consumer: AIOKafkaConsumer, end: int) -> int:
        if self._start_offset is not None:
            return self._start_offset
        if self._verifier.checkpoint is None:
            return 0
        offsets = await asyncio.wait_for(
            consumer.beginning_offsets([self.topic_partition]), connect_timeout_s
        )
        return await self._locate(
            consumer, self.next_height, int(offsets[self.topic_partition]), end
        )

    async def _locate(self, consumer: AIOKafkaConsumer, height: int, low: int, high: int) -> int:
        """The smallest offset whose first committed block at or after it has ``height`` or more.

        Heights grow with offsets (one block per message; transaction markers and aborted
        messages are skipped), so the first block read from there is block ``height`` when the
        chain is intact, and the verifier says so when it is not.
        """
        while low < high:
            middle = (low + high) // 2
            found = await self._first_block_from(consumer, middle, high)
            if found is None or found[1] >= height:
                high = middle
            else:
                low = found[0] + 1
        return low

    async def _first_block_from(
        self, consumer: AIOKafkaConsumer, offset: int, end: int
    ) -> tuple[int, int] | None:
        """(offset, height) of the first committed block at or after ``offset``, before ``end``."""
        consumer.seek(self.topic_partition, offset)
        async with contextlib.aclosing(self._records(consumer, end, max_records=1)) as records:
            async for record in records:
                try:
                    header = codec.decode_block(self._wire.unframe(record.value, "Block")).header
                except DecodeError as exc:
                    raise ChainError(
                        self.next_height,
                        f"cannot locate the block: offset {record.offset} does not decode",
                    ) from exc
                return record.offset, header.height
        return None

    # ---- step 3 and 4: read and verify -----------------------------------------------------------

    async def _records(
        self, consumer: AIOKafkaConsumer, end: int, max_records: int | None = None
    ) -> AsyncGenerator[Any, None]:
        """Committed records from the consumer's position: up to ``end``, then (follow) on."""
        topic_partition = self.topic_partition
        last_progress_s = time.monotonic()
        while True:
            position = await consumer.position(topic_partition)
            caught_up = position >= end
            if caught_up and not (self.follow and max_records is None):
                return
            batch = await consumer.getmany(
                topic_partition, timeout_ms=fetch_wait_ms, max_records=max_records
            )
            records = batch.get(topic_partition, [])
            if records or await consumer.position(topic_partition) > position:
                last_progress_s = time.monotonic()
            elif self._stalled(caught_up, last_progress_s):
                return
            for record in records:
                yield record

    def _stalled(self, caught_up: bool, last_progress_s: float) -> bool:
        """True when an idle follower should stop; raises when a bounded read stalls."""
        idle_s = time.monotonic() - last_progress_s
        if caught_up:
            return self.idle_timeout_s is not None and idle_s >= self.idle_timeout_s
        if idle_s >= stall_timeout_s:
            raise InfraError(
                f"reading {self._where} from {self.kafka} made no progress "
                f"for {stall_timeout_s:.0f} s"
            )
        return False

    def _verify(self, record: Any) -> VerifiedBlock:
        height = self.next_height
        value = record.value
        if not isinstance(value, bytes):
            raise ChainError(height, f"offset {record.offset} of {self._where} has no value")
        try:
            block = codec.decode_block(self._wire.unframe(value, "Block"))
        except DecodeError as exc:
            message = str(exc).replace("\n", " ")
            raise ChainError(
                height, f"offset {record.offset} of {self._where} is not a block: {message}"
            ) from exc
        digest = self._verifier.feed(block)
        checkpoint = self._verifier.checkpoint
        assert checkpoint is not None and checkpoint.block_hash == digest
        return VerifiedBlock(record.offset, block, digest, checkpoint, len(value))


@dataclass
class _FinalityGate:
    """A reader's view of the cosignatures: which blocks are final under its policy."""

    tracker: FinalityTracker
    partition: TopicPartition
    first_height: int
    """The first height this reader verifies: cosignatures of earlier blocks are of no use."""
    consumer: AIOKafkaConsumer | None = None
    end: int = 0
    hashes: dict[int, bytes] = field(default_factory=dict)
    """Hash of every verified block by height: what a cosignature must cover to count."""
    early: dict[int, list[Cosignature]] = field(default_factory=dict)
    """Cosignatures of blocks not verified yet."""

    def verified(self, height: int, block_hash: bytes) -> None:
        """Block ``height`` verified: count the cosignatures of it read before."""
        self.hashes[height] = block_hash
        for cosignature in self.early.pop(height, []):
            self.tracker.add(cosignature, block_hash)

    def count(self, value: bytes | None) -> None:
        try:
            cosignature = codec.decode_cosignature(plain(value or b"", "Cosignature"))
        except DecodeError:
            return  # never a vote
        if cosignature.height < self.first_height:
            return
        chain_hash = self.hashes.get(cosignature.height)
        if chain_hash is None:
            self.early.setdefault(cosignature.height, []).append(cosignature)
        else:
            self.tracker.add(cosignature, chain_hash)


__all__ = ["BlockReader", "VerifiedBlock"]
