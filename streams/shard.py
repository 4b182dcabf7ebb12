"""One shard's sequencer: replay, decide, seal, and produce each block in one Kafka transaction.

``streams.sequence`` feeds it the verified messages of its partition; see that module for the
whole protocol (fence, replay, resume, seal).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, ProducerFenced

from ledger import codec, limits
from ledger.blocks import build_block
from ledger.client.blockstream import read_blocks, read_last
from ledger.errors import ChainError, DecodeError
from ledger.model import RejectionRecord
from ledger.rejections import Rejected, RejectionCode, Stage
from ledger.replica import Replica, restore_snapshot, snapshot, tx_from_envelope
from ledger.settings import (
    TOPIC_BLOCKS,
    TOPIC_REJECTIONS,
    TOPIC_SNAPSHOTS,
    TOPIC_VERIFIED,
    Settings,
)
from ledger.signing import Signer
from ledger.state import Accepted, apply, begin_block, decide
from streams.lifecycle import EXIT_FATAL

log = logging.getLogger("ledger.sequence")

snapshot_interval_tx_count = 200_000
"""A restart replays at most about this many transactions after the newest snapshot (about 8 s
here). Writing one costs about 0.25 s of this process at a full replay window (BENCHMARKS.md),
a pause in sealing or projecting, so not much more often than this."""

snapshot_interval_s = 120.0
"""...and at most this much time of them, whatever the rate."""

EXIT_FENCED = 75


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class OpenBlock:
    """Verified messages waiting for the next seal, in partition order."""

    opened_monotonic_s: float
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    size_bytes: int = 0

    def fits(self, value: bytes) -> bool:
        return (
            len(self.messages) < limits.block_tx_max_count
            and self.size_bytes + len(value) <= limits.block_bytes_max
        )

    def full(self) -> bool:
        return len(self.messages) >= limits.block_tx_max_count


class ShardSequencer:
    def __init__(self, settings: Settings, ledger: str, partition: int, signer: Signer) -> None:
        self.settings = settings
        self.ledger = ledger
        self.partition = partition
        self.signer = signer
        # Replay refuses a chain sealed by another key: one sealer per ledger, set at genesis.
        self.replica = Replica(ledger, trusted_sealer_key=signer.public_key)
        self.source_offset_end = 0
        self.retry_at_s = 0.0
        self.blocks_offset_next = 0
        self.open: OpenBlock | None = None
        self.producer: AIOKafkaProducer | None = None
        self.snapshot_taken = (-snapshot_interval_tx_count, -snapshot_interval_s)
        """(next seq, monotonic time) at the newest snapshot: when the next one is due. A start
        without a snapshot takes one at its first seal, so the next start replays little."""

    @property
    def ready(self) -> bool:
        return self.replica.checkpoint is not None

    async def start(self) -> None:
        """Steps 1 and 2: fence older writers, then replay the chain."""
        if self.producer is None:
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id=f"ledger-sequencer-{self.ledger}",
                transactional_id=f"ledger-sequencer-{self.ledger}",
                enable_idempotence=True,
                acks="all",
                linger_ms=0,
                max_request_size=limits.message_bytes_max,
                request_timeout_ms=30_000,
                transaction_timeout_ms=60_000,
            )
            await self.producer.start()
            await self.restore_snapshot()
        try:
            await self.catch_up()
        except ChainError as exc:
            if self.blocks_offset_next == 0:
                raise
            log.warning(
                "shard %s: snapshot does not match the chain (%s); replaying all", self.ledger, exc
            )
            self.replica = Replica(self.ledger, trusted_sealer_key=self.signer.public_key)
            self.source_offset_end = self.blocks_offset_next = 0
            await self.catch_up()

    async def restore_snapshot(self) -> None:
        """Start from the newest snapshot of this shard, if there is one that decodes."""
        value = await read_last(
            self.settings.kafka_bootstrap_servers, TOPIC_SNAPSHOTS, self.partition
        )
        if value is None:
            return
        try:
            restored = restore_snapshot(value, trusted_sealer_key=self.signer.public_key)
        except DecodeError as exc:
            log.warning(
                "shard %s: newest snapshot does not decode (%s); replaying all", self.ledger, exc
            )
            return
        self.replica = restored.replica
        self.source_offset_end = restored.source_offset_end
        self.blocks_offset_next = restored.blocks_offset_next
        self.snapshot_taken = (self.replica.next_seq, time.monotonic())
        log.info(
            "shard %s: restored the snapshot at height %d",
            self.ledger,
            self.replica.next_height - 1,
        )

    async def catch_up(self) -> None:
        """Replay blocks this process has not applied yet (all of them at first)."""
        async for message in read_blocks(
            self.settings.kafka_bootstrap_servers,
            self.partition,
            self.blocks_offset_next,
            client_id=f"ledger-sequencer-replay-{self.ledger}",
        ):
            self.replica.apply_block(message.block)
            self.source_offset_end = message.block.header.source_offset_end
            self.blocks_offset_next = message.offset + 1
        checkpoint = self.replica.checkpoint
        if checkpoint is not None:
            log.info(
                "shard %s ready at height %d, resuming %s[%d] at offset %d",
                self.ledger,
                checkpoint.height,
                TOPIC_VERIFIED,
                self.partition,
                self.source_offset_end,
            )

    def offer(self, offset: int, value: bytes) -> bool:
        """Buffer one verified message; True when the block must be sealed before the next."""
        if offset < self.source_offset_end:
            return False  # already covered by a sealed block
        if self.open is None:
            self.open = OpenBlock(time.monotonic())
        self.open.messages.append((offset, value))
        self.open.size_bytes += len(value)
        return self.open.full()

    def fits(self, value: bytes) -> bool:
        return self.open is None or self.open.fits(value)

    def due_in_s(self) -> float | None:
        if self.open is None:
            return None
        return self.open.opened_monotonic_s + limits.block_wait_ms / 1000 - time.monotonic()

    async def seal(self) -> None:
        """Step 4: decide, build, produce and commit one block. Ends the process on failure."""
        assert self.open is not None and self.producer is not None and self.ready
        messages, self.open = self.open.messages, None
        now_ms = max(wall_ms(), self.replica.last_sealed_at_ms)
        envelopes, rejections = self._decide_all(messages, now_ms)
        block, checkpoint = build_block(
            self.replica.checkpoint,
            ledger=self.ledger,
            envelopes=envelopes,
            sealed_at_ms=now_ms,
            source_partition=self.partition,
            source_offset_end=messages[-1][0] + 1,
            signing_key=self.signer,
        )
        height = block.header.height
        self.replica.checkpoint = checkpoint
        self.replica.last_sealed_at_ms = now_ms
        try:
            await self.producer.begin_transaction()
            sent = await self.producer.send(
                TOPIC_BLOCKS,
                codec.encode_block(block),
                key=self.ledger.encode(),
                partition=self.partition,
            )
            for rejection in rejections:
                await self.producer.send(
                    TOPIC_REJECTIONS,
                    codec.encode_rejection(replace(rejection, height=height)),
                    key=rejection.tx_id,
                    partition=self.partition,
                )
            if self._snapshot_due():
                block_offset = (await sent).offset
                await self._send_snapshot(block.header.source_offset_end, block_offset + 1)
            await self.producer.commit_transaction()
        except ProducerFenced:
            log.error(
                "shard %s: fenced by a newer sequencer at height %d; stopping", self.ledger, height
            )
            os._exit(EXIT_FENCED)
        except (KafkaError, OSError) as exc:
            log.error(
                "shard %s: sealing height %d failed (%r); restarting from the chain",
                self.ledger,
                height,
                exc,
            )
            os._exit(EXIT_FATAL)
        self.source_offset_end = block.header.source_offset_end

    def _snapshot_due(self) -> bool:
        seq_then, time_then = self.snapshot_taken
        return (
            self.replica.next_seq - seq_then >= snapshot_interval_tx_count
            or time.monotonic() - time_then >= snapshot_interval_s
        )

    async def _send_snapshot(self, source_offset_end: int, blocks_offset_next: int) -> None:
        """Part of the block's transaction, so a snapshot never runs ahead of the chain."""
        assert self.producer is not None
        self.snapshot_taken = (self.replica.next_seq, time.monotonic())
        # The replay window is most of a snapshot (24 bytes a tx_id): skip before paying for it.
        estimate = 24 * len(self.replica.state.recent_tx_ids)
        if estimate > limits.message_bytes_max // 2:
            log.warning(
                "shard %s: snapshot of about %d bytes would not fit a message; skipped",
                self.ledger,
                estimate,
            )
            return
        data = snapshot(self.replica, source_offset_end, blocks_offset_next)
        if len(data) > limits.message_bytes_max - 1024:
            log.warning(
                "shard %s: snapshot of %d bytes is over the message limit; skipped",
                self.ledger,
                len(data),
            )
            return
        await self.producer.send(
            TOPIC_SNAPSHOTS, data, key=self.ledger.encode(), partition=self.partition
        )

    def _decide_all(
        self, messages: list[tuple[int, bytes]], now_ms: int
    ) -> tuple[list[bytes], list[RejectionRecord]]:
        state = self.replica.state
        begin_block(state, now_ms)
        envelopes: list[bytes] = []
        rejections: list[RejectionRecord] = []
        for offset, value in messages:
            try:
                tx = tx_from_envelope(value)
            except DecodeError as exc:
                rejections.append(
                    self._rejection(offset, RejectionCode.MALFORMED, str(exc), now_ms)
                )
                continue
            decision: Accepted | Rejected = (
                decide(state, tx, now_ms)
                if tx.body.ledger == self.ledger
                else Rejected(RejectionCode.UNKNOWN_LEDGER, f"routed to ledger {self.ledger!r}")
            )
            if isinstance(decision, Accepted):
                apply(state, decision)
                envelopes.append(value)
            else:
                rejections.append(
                    self._rejection(
                        offset,
                        decision.code,
                        decision.detail,
                        now_ms,
                        tx.body.tx_id,
                        tx.key_id,
                        tx.body.external_ref,
                    )
                )
        return envelopes, rejections

    def _rejection(
        self,
        offset: int,
        code: RejectionCode,
        detail: str,
        now_ms: int,
        tx_id: bytes | None = None,
        key_id: str | None = None,
        external_ref: str | None = None,
    ) -> RejectionRecord:
        return RejectionRecord(
            code=code.name,
            detail=detail,
            stage=Stage.SEQUENCE.value,
            source_topic=TOPIC_VERIFIED,
            source_partition=self.partition,
            source_offset=offset,
            rejected_at_ms=now_ms,
            tx_id=tx_id,
            ledger=self.ledger,
            key_id=key_id,
            external_ref=external_ref,
        )

    async def stop(self) -> None:
        if self.open is not None and self.ready:
            await self.seal()
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
