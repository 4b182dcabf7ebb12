"""Publishing signed transactions, and learning what became of them.

``Publisher`` is an idempotent aiokafka producer (``acks="all"``, explicit linger and batch size)
that writes Avro envelopes to ``ledger.submissions`` keyed by ``tx_id``. ``submit`` returns once
the broker has the message; ``submit_and_wait`` also waits for the outcome, which it learns by
following ``ledger.blocks`` and ``ledger.rejections`` (read_committed) from before the submission.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from ledger import codec, limits
from ledger.errors import InfraError
from ledger.settings import TOPIC_BLOCKS, TOPIC_REJECTIONS, TOPIC_SUBMISSIONS

linger_ms = 5
"""Small enough to stay invisible next to block_wait_ms, big enough to batch bursts."""

batch_bytes_max = 512 * 1024
request_timeout_ms = 30_000


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where the broker stored a submission."""

    tx_id: bytes
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Sealed:
    tx_id: bytes
    ledger: str
    height: int
    seq: int
    sealed_at_ms: int


@dataclass(frozen=True, slots=True)
class Refused:
    tx_id: bytes
    code: str
    detail: str
    stage: str


Outcome = Sealed | Refused


class Publisher:
    """Submit envelopes; use as ``async with Publisher(bootstrap) as publisher:``."""

    def __init__(self, bootstrap_servers: str, *, client_id: str = "ledger-publisher") -> None:
        self.bootstrap_servers = bootstrap_servers
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=batch_bytes_max,
            max_request_size=limits.message_bytes_max,
            request_timeout_ms=request_timeout_ms,
        )
        self._watcher: OutcomeWatcher | None = None

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
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise InfraError(f"cannot reach Kafka at {self.bootstrap_servers}: {exc}") from exc

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
        await self._producer.stop()

    async def enqueue(self, envelope: bytes, tx_id: bytes) -> asyncio.Future[Any]:
        """Hand one envelope to the producer's batch; the returned future resolves on delivery.

        For callers that pace their own load (``ledger bench``); others use ``submit_many``.
        """
        try:
            delivery: asyncio.Future[Any] = await self._producer.send(
                TOPIC_SUBMISSIONS, envelope, key=tx_id
            )
        except KafkaError as exc:
            raise InfraError(f"publishing to {TOPIC_SUBMISSIONS} failed: {exc}") from exc
        return delivery

    async def submit(self, envelope: bytes) -> Receipt:
        """Publish one envelope; returns once the broker acknowledged it."""
        [receipt] = await self.submit_many([envelope])
        return receipt

    async def submit_many(self, envelopes: Sequence[bytes]) -> list[Receipt]:
        """Publish envelopes as fast as batching allows; returns once all are acknowledged."""
        tx_ids = [codec.decode_submission(envelope)[1].tx_id for envelope in envelopes]
        try:
            pending = [
                await self._producer.send(TOPIC_SUBMISSIONS, envelope, key=tx_id)
                for tx_id, envelope in zip(tx_ids, envelopes, strict=True)
            ]
            stored = await asyncio.gather(*pending)
        except KafkaError as exc:
            raise InfraError(f"publishing to {TOPIC_SUBMISSIONS} failed: {exc}") from exc
        return [
            Receipt(tx_id, metadata.partition, metadata.offset)
            for tx_id, metadata in zip(tx_ids, stored, strict=True)
        ]

    async def submit_and_wait(
        self, envelopes: Sequence[bytes], timeout_s: float = 30.0
    ) -> list[Outcome]:
        """Publish and wait for each transaction's outcome: sealed in a block, or refused."""
        if self._watcher is None:
            self._watcher = OutcomeWatcher(self.bootstrap_servers)
            try:
                await self._watcher.start()
            except KafkaError as exc:
                raise InfraError(
                    f"cannot follow blocks at {self.bootstrap_servers}: {exc}"
                ) from exc
        tx_ids = [codec.decode_submission(envelope)[1].tx_id for envelope in envelopes]
        waiting = [self._watcher.expect(tx_id) for tx_id in tx_ids]
        await self.submit_many(envelopes)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*waiting), timeout_s))
        except TimeoutError as exc:
            raise InfraError(
                f"no outcome within {timeout_s:.0f} s: is the pipeline running?"
            ) from exc


class OutcomeWatcher:
    """Follows blocks and rejections from the moment it starts and resolves awaited tx_ids."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._consumer = AIOKafkaConsumer(
            TOPIC_BLOCKS,
            TOPIC_REJECTIONS,
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="latest",
            max_partition_fetch_bytes=limits.message_bytes_max,
        )
        self._waiting: dict[bytes, asyncio.Future[Outcome]] = {}
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

    def expect(self, tx_id: bytes) -> asyncio.Future[Outcome]:
        future = self._waiting.get(tx_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[tx_id] = future
        return future

    def _resolve(self, tx_id: bytes | None, outcome: Outcome) -> None:
        future = self._waiting.pop(tx_id, None) if tx_id is not None else None
        if future is not None and not future.done():
            future.set_result(outcome)

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for topic_partition, messages in batches.items():
                for message in messages:
                    assert message.value is not None
                    if topic_partition.topic == TOPIC_BLOCKS:
                        self._on_block(message.value)
                    else:
                        self._on_rejection(message.value)

    def _on_block(self, value: bytes) -> None:
        block = codec.decode_block(value)
        header = block.header
        for sealed in block.transactions:
            tx_id = codec.decode_submission(sealed.envelope)[1].tx_id
            self._resolve(
                tx_id, Sealed(tx_id, header.ledger, header.height, sealed.seq, header.sealed_at_ms)
            )

    def _on_rejection(self, value: bytes) -> None:
        rejection = codec.decode_rejection(value)
        if rejection.tx_id is not None:
            self._resolve(
                rejection.tx_id,
                Refused(rejection.tx_id, rejection.code, rejection.detail, rejection.stage),
            )
