"""One shard's sequencer: replay, decide, seal, and produce each block in one Kafka transaction.

``streams.sequence`` feeds it the verified messages of its partition; see that module for the
whole protocol (fence, replay, resume, seal).
"""

from __future__ import annotations

import collections
import logging
import os
import time
from operator import attrgetter

from aiokafka import AIOKafkaProducer
from aiokafka.errors import ProducerFenced
from prometheus_client import Counter, Gauge, Histogram

from ledger import codec, limits
from ledger.errors import ChainError, ConfigError
from ledger.kafka.blockstream import read_blocks
from ledger.kafka.clients import KAFKA_ERRORS, transactional_producer
from ledger.kafka.principals import SEQUENCER
from ledger.kafka.wire import default_wire, framed
from ledger.replica import Replica
from ledger.sealer_keys import SealerKeyring
from ledger.sealing import BlockCutter, OpenBlock, SealedBlock, seal_block
from ledger.settings import (
    TOPIC_BLOCKS,
    TOPIC_REJECTIONS,
    TOPIC_VERIFIED,
    Settings,
)
from ledger.signing import Signer, key_id
from ledger.snapshots import snapshot_chunks
from streams.lifecycle import EXIT_FATAL
from streams.snapshots import read_snapshot, send_snapshot
from streams.telemetry import SECONDS_BUCKETS

log = logging.getLogger("ledger.sequence")

snapshot_interval_tx_count = 200_000
"""A restart replays at most about this many transactions after the newest snapshot (about 8 s
here). Writing one costs about 0.25 s of this process at a full replay window (BENCHMARKS.md),
a pause in sealing or projecting, so not much more often than this."""

snapshot_interval_s = 120.0
"""...and at most this much time of them, whatever the rate."""

EXIT_FENCED = 75

BLOCK_TRANSACTIONS_BUCKETS = (0, 1, 10, 50, 100, 250, 500, 1000, 1500, limits.block_tx_max_count)
"""Transactions per block: empty (an interval of refusals only), a trickle, and the sizes a
block fills to as the rate grows, up to ``block_tx_max_count``."""

# Moved once per committed block (streams.telemetry), by ledger: a process may seal several.
BLOCKS_SEALED = Counter(
    "ledger_sequencer_blocks_sealed", "Blocks sealed and committed, by ledger.", ["ledger"]
)
TRANSACTIONS_SEALED = Counter(
    "ledger_sequencer_transactions_sealed",
    "Transactions sealed into committed blocks, by ledger.",
    ["ledger"],
)
REJECTED = Counter(
    "ledger_sequencer_rejections",
    "Transactions refused by the sequencer, committed with their block, by ledger and code.",
    ["ledger", "code"],
)
BLOCK_TRANSACTIONS = Histogram(
    "ledger_sequencer_block_transactions",
    "Transactions per committed block, by ledger.",
    ["ledger"],
    buckets=BLOCK_TRANSACTIONS_BUCKETS,
)
SEAL_SECONDS = Histogram(
    "ledger_sequencer_seal_seconds",
    "Deciding, building and signing one block, before its Kafka transaction, by ledger.",
    ["ledger"],
    buckets=SECONDS_BUCKETS,
)
COMMIT_SECONDS = Histogram(
    "ledger_sequencer_commit_seconds",
    "One block's Kafka transaction: begin, produce the block, its rejections and any snapshot, "
    "commit (until the brokers acknowledged), by ledger.",
    ["ledger"],
    buckets=SECONDS_BUCKETS,
)
HEIGHT = Gauge(
    "ledger_sequencer_height",
    "Height of the newest block this process committed or replayed, by ledger.",
    ["ledger"],
)


def count_block(sealed: SealedBlock, seal_s: float, commit_s: float) -> None:
    """The metrics of one committed block: a few calls per block, none per transaction
    (``Counter(map(...))`` tallies the rejection codes in C)."""
    header = sealed.block.header
    ledger = header.ledger
    SEAL_SECONDS.labels(ledger).observe(seal_s)
    COMMIT_SECONDS.labels(ledger).observe(commit_s)
    BLOCKS_SEALED.labels(ledger).inc()
    TRANSACTIONS_SEALED.labels(ledger).inc(header.tx_count)
    BLOCK_TRANSACTIONS.labels(ledger).observe(header.tx_count)
    HEIGHT.labels(ledger).set(header.height)
    for code, count in collections.Counter(map(attrgetter("code"), sealed.rejections)).items():
        REJECTED.labels(ledger, code).inc(count)


class ShardSequencer:
    def __init__(
        self, settings: Settings, ledger: str, partition: int, keyring: SealerKeyring
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.partition = partition
        self.keyring = keyring
        self.signer = keyring.configured
        """The key sealing the next block: the configured one until the chain rotated it."""
        # Replay starts trusting the configured key (the ledger's first sealer) and follows the
        # chain's RotateSealer transactions from there.
        self.replica = Replica(ledger, trusted_sealer_key=keyring.configured.public_key)
        self.cutter = BlockCutter(source_offset_end=0)
        self.retry_at_s = 0.0
        self.blocks_offset_next = 0
        self.producer: AIOKafkaProducer | None = None
        self.snapshot_taken = (-snapshot_interval_tx_count, -snapshot_interval_s)
        """(next seq, monotonic time) at the newest snapshot: when the next one is due. A start
        without a snapshot takes one at its first seal, so the next start replays little."""

    @property
    def ready(self) -> bool:
        return self.replica.checkpoint is not None

    @property
    def source_offset_end(self) -> int:
        """The ``ledger.verified`` offset after the newest sealed block: where reading resumes."""
        return self.cutter.source_offset_end

    async def start(self) -> None:
        """Steps 1 and 2: fence older writers, then replay the chain."""
        if self.producer is None:
            self.producer = transactional_producer(
                self.settings.kafka(SEQUENCER), f"ledger-sequencer-{self.ledger}"
            )
            default_wire().load()  # the registry's ids before the first block's transaction
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
            self.replica = Replica(
                self.ledger, trusted_sealer_key=self.keyring.configured.public_key
            )
            self.cutter = BlockCutter(source_offset_end=0)
            self.blocks_offset_next = 0
            await self.catch_up()
        self.signer = self._chain_sealer()

    def _chain_sealer(self) -> Signer:
        """The private key of the key the chain says seals the next block."""
        public_key = self.replica.trusted_sealer_key
        assert public_key is not None
        signer = self.keyring.get(public_key)
        if signer is None:
            raise ConfigError(
                f"ledger {self.ledger} is sealed by key {key_id(public_key)} since a rotation, "
                f"and no sealer-{key_id(public_key)}.key is beside {self.keyring.key_file}"
            )
        return signer

    async def restore_snapshot(self) -> None:
        """Start from the newest snapshot of this shard, if there is a complete one."""
        restored = await read_snapshot(
            self.settings.kafka(SEQUENCER),
            self.partition,
            trusted_sealer_key=self.keyring.configured.public_key,
        )
        if restored is None:
            return
        if restored.replica.ledger != self.ledger:
            log.warning(
                "shard %s: the newest snapshot is of ledger %r; replaying all",
                self.ledger,
                restored.replica.ledger,
            )
            return
        self.replica = restored.replica
        self.cutter = BlockCutter(restored.source_offset_end)
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
            self.settings.kafka(SEQUENCER),
            self.partition,
            self.blocks_offset_next,
            client_id=f"ledger-sequencer-replay-{self.ledger}",
            canonical_check=False,
        ):
            self.replica.apply_block(message.block)
            self.cutter = BlockCutter(message.block.header.source_offset_end)
            self.blocks_offset_next = message.offset + 1
        checkpoint = self.replica.checkpoint
        if checkpoint is not None:
            HEIGHT.labels(self.ledger).set(checkpoint.height)
            log.info(
                "shard %s ready at height %d, resuming %s[%d] at offset %d",
                self.ledger,
                checkpoint.height,
                TOPIC_VERIFIED,
                self.partition,
                self.source_offset_end,
            )

    async def seal(self, open_block: OpenBlock) -> None:
        """Step 4: decide, build, produce and commit one block. Ends the process on failure."""
        assert self.producer is not None and self.ready
        started_s = time.perf_counter()
        sealed = seal_block(
            self.replica,
            open_block,
            int(time.time() * 1000),
            self.partition,
            self.signer,
            self.keyring.get,
        )
        block = sealed.block
        height = block.header.height
        sealed_s = time.perf_counter()
        try:
            await self.producer.begin_transaction()
            sent = await self.producer.send(
                TOPIC_BLOCKS,
                framed("Block", codec.encode_block(block)),
                key=self.ledger.encode(),
                partition=self.partition,
            )
            for rejection in sealed.rejections:
                await self.producer.send(
                    TOPIC_REJECTIONS,
                    framed("Rejection", codec.encode_rejection(rejection)),
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
        except KAFKA_ERRORS as exc:
            log.error(
                "shard %s: sealing height %d failed (%r); restarting from the chain",
                self.ledger,
                height,
                exc,
            )
            os._exit(EXIT_FATAL)
        count_block(sealed, sealed_s - started_s, time.perf_counter() - sealed_s)
        if sealed.next_signer is not None:
            self.signer = sealed.next_signer
            log.info(
                "shard %s: sealer rotated at height %d; blocks from %d on are sealed by %s",
                self.ledger,
                height,
                height + 1,
                self.signer.key_id,
            )

    def _snapshot_due(self) -> bool:
        seq_then, time_then = self.snapshot_taken
        return (
            self.replica.next_seq - seq_then >= snapshot_interval_tx_count
            or time.monotonic() - time_then >= snapshot_interval_s
        )

    async def _send_snapshot(self, source_offset_end: int, blocks_offset_next: int) -> None:
        """Part of the block's transaction, so a snapshot never runs ahead of the chain. Any
        window size fits: the snapshot is cut into chunks below the message limit."""
        assert self.producer is not None
        self.snapshot_taken = (self.replica.next_seq, time.monotonic())
        chunks = snapshot_chunks(self.replica, source_offset_end, blocks_offset_next)
        await send_snapshot(self.producer, self.ledger, self.partition, chunks)

    async def stop(self) -> None:
        open_block = self.cutter.take_open()
        if open_block is not None and self.ready:
            await self.seal(open_block)
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
