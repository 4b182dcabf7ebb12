"""Publishing signed transactions, and learning what became of them.

``Publisher`` writes Avro envelopes to ``ledger.submissions`` keyed by ``tx_id`` with an
idempotent producer (``acks="all"``). ``submit_many`` fills aiokafka record batches itself, one
per partition, choosing each message's partition as Kafka's default partitioner does for its key
(``ledger.client.partitioner``): about 1-2 µs of CPU a message instead of 9 µs for ``send()``.
Before each chunk it asks the back-pressure gate (``ledger.client.backlog``) whether the ledger
keeps up. ``submit_and_wait`` also waits for the outcome, which it learns by following
``ledger.blocks`` and ``ledger.rejections`` (read_committed) from before the submission; with
``until="final"`` it waits until the block is final under the publisher's ``WitnessPolicy``, which
it checks itself from ``ledger.cosignatures`` (``ledger.witnessing``): no operator is trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, overload

from ledger import codec
from ledger.blocks import block_hash
from ledger.client.backlog import (
    BacklogGate,
    BacklogGauge,
    BacklogPolicy,
    backlog_low_water_share,
    backlog_max_default,
    backlog_wait_s_max_default,
)
from ledger.client.partitioner import default_partitions
from ledger.errors import Backpressure, DecodeError, InfraError
from ledger.kafka.clients import VERIFY_GROUP, committed_reader, idempotent_producer, kafka_errors
from ledger.kafka.wire import Wire, default_wire, plain, wire
from ledger.kafka_access import KafkaAccess
from ledger.model import Cosignature
from ledger.settings import TOPIC_BLOCKS, TOPIC_COSIGNATURES, TOPIC_REJECTIONS, TOPIC_SUBMISSIONS
from ledger.witnessing import FinalityTracker, WitnessPolicy

linger_ms = 5
"""For ``enqueue`` only (``submit_many`` closes its batches and sends them at once): small
enough to stay invisible next to block_wait_ms, big enough to batch bursts."""

submit_chunk_count_max = 5_000
"""Messages ``submit_many`` sends before it awaits their acknowledgements and asks the
back-pressure gate again: about 1 MB of transfers, one full round trip of batches, and the most
the backlog can overshoot its limit by one publisher (less with a small ``backlog_max``)."""

outcome_wait_s_default = 30.0

block_hashes_kept_count = 10_000
"""Block hashes an OutcomeWatcher keeps per ledger to match cosignatures against: minutes of
blocks, far more than witnesses lag."""

early_cosignatures_max_count = 10_000
"""Heights whose cosignatures an OutcomeWatcher holds while their block has not been read."""

assert submit_chunk_count_max <= backlog_max_default * (1 - backlog_low_water_share)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where the broker stored a submission."""

    tx_id: bytes
    partition: int
    offset: int


class Receipts(Sequence[Receipt]):
    """The receipts of one ``submit_many`` call, in the order of its envelopes.

    Built on access: creating 100k ``Receipt`` objects would cost as much CPU as publishing.
    """

    __slots__ = ("_offsets", "_partitions", "_tx_ids")

    def __init__(self, tx_ids: list[bytes], partitions: list[int], offsets: list[int]) -> None:
        assert len(tx_ids) == len(partitions) == len(offsets)
        self._tx_ids = tx_ids
        self._partitions = partitions
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._tx_ids)

    @overload
    def __getitem__(self, index: int) -> Receipt: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Receipt]: ...

    def __getitem__(self, index: int | slice) -> Receipt | Sequence[Receipt]:
        if isinstance(index, slice):
            return Receipts(self._tx_ids[index], self._partitions[index], self._offsets[index])
        return Receipt(self._tx_ids[index], self._partitions[index], self._offsets[index])

    def __iter__(self) -> Iterator[Receipt]:
        return map(Receipt, self._tx_ids, self._partitions, self._offsets)

    def __repr__(self) -> str:
        return f"Receipts({len(self)} submissions)"

    def extend(self, more: Receipts) -> None:
        self._tx_ids.extend(more._tx_ids)
        self._partitions.extend(more._partitions)
        self._offsets.extend(more._offsets)


@dataclass(frozen=True, slots=True)
class Sealed:
    tx_id: bytes
    ledger: str
    height: int
    seq: int
    sealed_at_ms: int
    final: bool = False
    """True when the outcome was awaited ``until="final"`` and the block is final."""


@dataclass(frozen=True, slots=True)
class Refused:
    tx_id: bytes
    code: str
    detail: str
    stage: str


Outcome = Sealed | Refused
Until = Literal["sealed", "final"]


class Publisher:
    """Submit envelopes; use as ``async with Publisher(bootstrap) as publisher:``.

    Back-pressure: before each chunk of at most ``submit_chunk_count_max`` messages, the
    publisher checks the backlog of ``topic`` (messages the consumer group ``group_id``, the
    verify workers, has not committed yet). Over ``backlog_max`` it waits until the backlog fell
    to half of that, at most ``backlog_wait_s_max``, then raises ``Backpressure``;
    ``on_backlog="fail"`` raises at once. ``backlog_max=None`` turns it off. ``throttled_s`` and
    ``backlog`` say how much it slowed down and what it last read.
    """

    def __init__(
        self,
        kafka: KafkaAccess | str,
        *,
        client_id: str = "ledger-publisher",
        topic: str = TOPIC_SUBMISSIONS,
        group_id: str = VERIFY_GROUP,
        backlog_max: int | None = backlog_max_default,
        on_backlog: BacklogPolicy = "wait",
        backlog_wait_s_max: float = backlog_wait_s_max_default,
        witness_policy: WitnessPolicy | None = None,
        registry_url: str | None = None,
        frame: bool = True,
    ) -> None:
        self.kafka = kafka
        self._wire: Wire | None = None
        """Frames values in the Confluent wire format with the registry's ids (``registry_url``,
        by default LEDGER_SCHEMA_REGISTRY_URL's or the local stack's); ``frame=False`` publishes
        plain Avro, which the ledger accepts for this version only (docs/schemas.md)."""
        if frame:
            self._wire = wire(registry_url) if registry_url else default_wire()
        self.witness_policy = witness_policy
        """Whose cosignatures make a block final for ``submit_and_wait(until="final")``."""
        self.topic = topic
        self._producer = idempotent_producer(kafka, client_id, linger_ms=linger_ms)
        self._gate: BacklogGate | None = None
        self._chunk_count = submit_chunk_count_max
        if backlog_max is not None:
            gauge = BacklogGauge(kafka, client_id, topic, group_id)
            self._gate = BacklogGate(gauge, backlog_max, on_backlog, backlog_wait_s_max)
            # One chunk may not carry the backlog from below the limit to far above it.
            self._chunk_count = max(1, min(self._chunk_count, backlog_max - self._gate.low_water))
        self._watcher: OutcomeWatcher | None = None

    @property
    def throttled_s(self) -> float:
        """Seconds during which this publisher held chunks back because the ledger lagged
        (calls held back together count once); it grows while they wait."""
        return self._gate.throttled_s if self._gate else 0.0

    @property
    def backlog(self) -> int | None:
        """The last backlog reading (messages); None before the first or without back-pressure."""
        return self._gate.backlog if self._gate else None

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        with kafka_errors(f"connecting to Kafka at {self.kafka}"):
            await self._producer.start()
        if self._gate is not None:
            await self._gate.gauge.start()

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
        if self._gate is not None:
            await self._gate.gauge.stop()
        await self._producer.stop()

    async def enqueue(self, envelope: bytes, tx_id: bytes) -> asyncio.Future[Any]:
        """Hand one envelope to the producer's own batching; the future resolves on delivery.

        Costs about 9 µs a message and bypasses back-pressure: kept for callers that pace their
        own load message by message. ``submit_many(envelopes, tx_ids)`` is the fast path.
        """
        with kafka_errors(f"publishing to {self.topic}"):
            delivery: asyncio.Future[Any] = await self._producer.send(
                self.topic, self._framed(envelope), key=tx_id
            )
        return delivery

    async def submit(self, envelope: bytes) -> Receipt:
        """Publish one envelope; returns once the broker acknowledged it."""
        [receipt] = await self.submit_many([envelope])
        return receipt

    async def submit_many(
        self, envelopes: Sequence[bytes], tx_ids: Sequence[bytes] | None = None
    ) -> Receipts:
        """Publish envelopes keyed by their tx_ids; returns once all are acknowledged.

        Pass ``tx_ids`` (``tx_ids[i]`` of ``envelopes[i]``) when you have them: otherwise each
        envelope is decoded to learn it, about 30 µs. Any count goes; per chunk of at most
        ``submit_chunk_count_max`` messages:

        1. ask the back-pressure gate (may wait, or raise ``Backpressure``);
        2. fill one record batch per partition, sending each batch when it is full;
        3. await the acknowledgements.

        A failure part-way leaves the earlier chunks published; publishing them again is
        harmless, since the sequencer refuses a repeated tx_id as DUPLICATE.
        """
        if tx_ids is None:
            tx_ids = [codec.decode_submission(envelope)[1].tx_id for envelope in envelopes]
        if len(tx_ids) != len(envelopes):
            raise ValueError(f"{len(envelopes)} envelopes but {len(tx_ids)} tx_ids")
        receipts = Receipts([], [], [])
        for start in range(0, len(envelopes), self._chunk_count):
            stop = start + self._chunk_count
            partitions = await self._partitions()
            if self._gate is not None:
                try:
                    await self._gate.admit(partitions)
                except Backpressure as refusal:
                    refusal.published_count = start
                    raise
            chunk = await self._publish_chunk(envelopes[start:stop], tx_ids[start:stop], partitions)
            receipts.extend(chunk)
            if self._gate is not None:
                self._gate.sent(len(chunk))
        return receipts

    async def _partitions(self) -> list[int]:
        """The topic's partitions, sorted by id as the default partitioner sees them."""
        with kafka_errors(f"reading the partitions of {self.topic}"):
            return sorted(await self._producer.partitions_for(self.topic))

    async def _publish_chunk(
        self, envelopes: Sequence[bytes], tx_ids: Sequence[bytes], partitions: list[int]
    ) -> Receipts:
        """Steps 2 and 3 of ``submit_many`` for one chunk."""
        targets = default_partitions(tx_ids, partitions)
        by_partition: dict[int, list[tuple[int, bytes, bytes]]] = {p: [] for p in partitions}
        for message in zip(itertools.count(), tx_ids, envelopes):
            by_partition[targets[message[0]]].append(message)
        timestamp_ms = int(time.time() * 1000)
        deliveries: list[tuple[asyncio.Future[Any], list[int]]] = []
        with kafka_errors(f"publishing to {self.topic}"):
            for partition, messages in by_partition.items():
                if messages:
                    deliveries += await self._send_partition(partition, messages, timestamp_ms)
            stored = await asyncio.gather(*(delivery for delivery, _ in deliveries))
        offsets = [0] * len(envelopes)
        for metadata, in_batch in zip(stored, (members for _, members in deliveries), strict=True):
            for position, index in enumerate(in_batch, start=metadata.offset):
                offsets[index] = position
        return Receipts(list(tx_ids), targets, offsets)

    async def _send_partition(
        self, partition: int, messages: list[tuple[int, bytes, bytes]], timestamp_ms: int
    ) -> list[tuple[asyncio.Future[Any], list[int]]]:
        """Fill record batches (at most the producer's ``max_batch_size`` bytes each) with the
        ``(index, tx_id, envelope)`` messages of one partition; send a batch when the next
        message does not fit, and the last one at the end. Returns each batch's delivery and
        the indexes of its messages, in batch order."""
        deliveries: list[tuple[asyncio.Future[Any], list[int]]] = []
        batch = self._producer.create_batch()
        in_batch: list[int] = []
        for index, tx_id, envelope in messages:
            value = self._framed(envelope)
            if batch.append(timestamp=timestamp_ms, key=tx_id, value=value) is None:
                deliveries.append((await self._send(batch, partition), in_batch))
                batch, in_batch = self._producer.create_batch(), []
                appended = batch.append(timestamp=timestamp_ms, key=tx_id, value=value)
                assert appended is not None, "an empty batch takes a first message of any size"
            in_batch.append(index)
        deliveries.append((await self._send(batch, partition), in_batch))
        return deliveries

    def _framed(self, envelope: bytes) -> bytes:
        if self._wire is None:
            return envelope
        return self._wire.frame(codec.submission_record(envelope), envelope)

    async def _send(self, batch: Any, partition: int) -> asyncio.Future[Any]:
        """Queue a full or final batch; the producer numbers it for idempotence when it drains
        it. Closed first, so that ``enqueue`` cannot append to it and it need not linger."""
        batch.close()
        delivery: asyncio.Future[Any] = await self._producer.send_batch(
            batch, self.topic, partition=partition
        )
        return delivery

    async def submit_and_wait(
        self,
        envelopes: Sequence[bytes],
        timeout_s: float = outcome_wait_s_default,
        *,
        until: Until = "sealed",
    ) -> list[Outcome]:
        """Publish and wait for each transaction's outcome: sealed in a block (and, with
        ``until="final"``, that block final under ``witness_policy``), or refused."""
        if until == "final" and self.witness_policy is None:
            raise ValueError('until="final" needs the Publisher\'s witness_policy')
        if self._watcher is None:
            self._watcher = OutcomeWatcher(self.kafka, self.witness_policy)
            with kafka_errors(f"following blocks at {self.kafka}"):
                await self._watcher.start()
        tx_ids = [codec.decode_submission(envelope)[1].tx_id for envelope in envelopes]
        waiting = [self._watcher.expect(tx_id, until) for tx_id in tx_ids]
        await self.submit_many(envelopes, tx_ids)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*waiting), timeout_s))
        except TimeoutError as exc:
            raise InfraError(
                f"no outcome within {timeout_s:.0f} s: is the pipeline running?"
            ) from exc


class OutcomeWatcher:
    """Follows blocks, rejections and cosignatures from the moment it starts and resolves
    awaited tx_ids."""

    def __init__(self, kafka: KafkaAccess | str, policy: WitnessPolicy | None = None) -> None:
        self._consumer = committed_reader(
            kafka, "ledger-publisher-outcomes", auto_offset_reset="latest"
        )
        topics = [TOPIC_BLOCKS, TOPIC_REJECTIONS]
        if policy is not None:
            topics.append(TOPIC_COSIGNATURES)
        self._consumer.subscribe(topics)
        self._policy = policy
        self._waiting: dict[bytes, tuple[asyncio.Future[Outcome], Until]] = {}
        self._sealed: dict[str, list[tuple[Sealed, asyncio.Future[Outcome]]]] = {}
        """Per ledger: outcomes sealed and awaited until final."""
        self._hashes: dict[str, dict[int, bytes]] = {}
        """Per ledger: the hash of each block seen, to match cosignatures against."""
        self._trackers: dict[str, FinalityTracker] = {}
        self._heads: dict[str, int] = {}
        self._early: dict[tuple[str, int], list[Cosignature]] = {}
        """Cosignatures read before their block (two topics, two fetches), until it comes."""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        # Pin every partition's position now, so nothing published after this point is missed.
        for partition in self._consumer.assignment():
            await self._consumer.position(partition)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def expect(self, tx_id: bytes, until: Until = "sealed") -> asyncio.Future[Outcome]:
        waiting = self._waiting.get(tx_id)
        if waiting is None:
            waiting = (asyncio.get_running_loop().create_future(), until)
            self._waiting[tx_id] = waiting
        return waiting[0]

    def _resolve(self, tx_id: bytes | None, outcome: Outcome) -> None:
        waiting = self._waiting.pop(tx_id, None) if tx_id is not None else None
        if waiting is None or waiting[0].done():
            return
        future, until = waiting
        if until == "final" and isinstance(outcome, Sealed):
            self._sealed.setdefault(outcome.ledger, []).append((outcome, future))
            self._resolve_final(outcome.ledger)
        else:
            future.set_result(outcome)

    def _resolve_final(self, ledger: str) -> None:
        """Resolve the outcomes of ``ledger`` whose block is final by now."""
        assert self._policy is not None
        tracker = self._trackers.setdefault(ledger, FinalityTracker(self._policy))
        final_height = tracker.final_height(self._heads.get(ledger, -1))
        pending = []
        for sealed, future in self._sealed.get(ledger, []):
            if sealed.height > final_height:
                pending.append((sealed, future))
            elif not future.done():
                future.set_result(dataclasses.replace(sealed, final=True))
        self._sealed[ledger] = pending

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for topic_partition, messages in batches.items():
                for message in messages:
                    assert message.value is not None
                    if topic_partition.topic == TOPIC_BLOCKS:
                        self._on_block(message.value)
                    elif topic_partition.topic == TOPIC_COSIGNATURES:
                        self._on_cosignature(message.value)
                    else:
                        self._on_rejection(message.value)

    def _on_cosignature(self, value: bytes) -> None:
        assert self._policy is not None
        try:
            cosignature = codec.decode_cosignature(plain(value, "Cosignature"))
        except DecodeError:
            return  # not a vote; the finality recorder logs it
        self._count(cosignature)

    def _count(self, cosignature: Cosignature) -> None:
        assert self._policy is not None
        ledger = cosignature.ledger
        chain_hash = self._hashes.get(ledger, {}).get(cosignature.height)
        if chain_hash is None and cosignature.height > self._heads.get(ledger, -1):
            if len(self._early) < early_cosignatures_max_count:
                self._early.setdefault((ledger, cosignature.height), []).append(cosignature)
            return
        tracker = self._trackers.setdefault(ledger, FinalityTracker(self._policy))
        if tracker.add(cosignature, chain_hash) is None:
            self._resolve_final(ledger)

    def _on_block(self, value: bytes) -> None:
        block = codec.decode_block(plain(value, "Block"))
        header = block.header
        if self._policy is not None:
            hashes = self._hashes.setdefault(header.ledger, {})
            hashes[header.height] = block_hash(header)
            hashes.pop(header.height - block_hashes_kept_count, None)
            self._heads[header.ledger] = header.height
            for cosignature in self._early.pop((header.ledger, header.height), []):
                self._count(cosignature)
        for sealed in block.transactions:
            tx_id = codec.decode_submission(sealed.envelope)[1].tx_id
            self._resolve(
                tx_id, Sealed(tx_id, header.ledger, header.height, sealed.seq, header.sealed_at_ms)
            )

    def _on_rejection(self, value: bytes) -> None:
        rejection = codec.decode_rejection(plain(value, "Rejection"))
        if rejection.tx_id is not None:
            self._resolve(
                rejection.tx_id,
                Refused(rejection.tx_id, rejection.code, rejection.detail, rejection.stage),
            )
