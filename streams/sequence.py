"""Sequence: one active writer per shard orders, decides, and seals blocks.

The output is the checkpoint (DESIGN.md section 6). For each assigned partition of
``ledger.verified`` (one per ledger shard) a ``ShardSequencer``:

  1. starts a transactional producer with the shard's stable ``transactional_id``, which fences
     any older sequencer of the shard and aborts its open transaction;
  2. rebuilds the shard's state by replaying ``ledger.blocks`` (read_committed), verifying the
     chain as it goes;
  3. resumes ``ledger.verified`` at the last block's ``source_offset_end``;
  4. buffers verified envelopes until the block is full (count or bytes) or ``block_wait_ms``
     passed since its first one, then decides them all at one block time, seals the block and
     produces it with its rejections in one Kafka transaction.

Any failure after the state changed and before the commit succeeded leaves memory ahead of the
chain, so it ends the process: a restart rebuilds from the chain, which lost nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ledger import limits
from ledger.errors import ConfigError
from ledger.settings import (
    TOPIC_VERIFIED,
    Settings,
)
from ledger.signing import Signer, load_private_key
from streams.lifecycle import run_or_exit
from streams.shard import ShardSequencer

log = logging.getLogger("ledger.sequence")

genesis_poll_s = 1.0
"""A shard without block 0 waits for `ledger init`; this is how often it looks."""

poll_wait_ms_max = 100
"""Upper bound of one fetch wait, so a due block is never sealed late by more than this."""

fetch_records_max_count = limits.block_tx_max_count


class Sequencer:
    """The shards this process sequences, fed from one consumer of ``ledger.verified``.

    Partitions are assigned by configuration (``LEDGER_SEQUENCER_SHARDS``, default all), not
    by a consumer group: a sequencer started for a shard takes it over at once by fencing the
    previous writer through the shared ``transactional_id``, whether that writer is dead (a
    restart after a crash) or alive (a zombie, which then stops at its next commit). No group
    session has to time out first.
    """

    def __init__(self, settings: Settings, signer: Signer, ledgers: Sequence[str]) -> None:
        self.settings = settings
        self.signer = signer
        self.shards: dict[int, ShardSequencer] = {}
        for ledger in ledgers:
            partition = settings.shard_partition(ledger)
            if partition is None:
                raise ConfigError(f"ledger {ledger!r} is not in LEDGER_SHARDS")
            self.shards[partition] = ShardSequencer(settings, ledger, partition, signer)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="ledger-sequencer",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=fetch_records_max_count,
            max_partition_fetch_bytes=limits.message_bytes_max,
        )

    async def run(self) -> None:
        await self.consumer.start()
        partitions = [TopicPartition(TOPIC_VERIFIED, partition) for partition in self.shards]
        self.consumer.assign(partitions)
        self.consumer.pause(*partitions)
        try:
            while True:
                await self._start_waiting_shards()
                batches = await self.consumer.getmany(
                    timeout_ms=self._wait_ms(), max_records=fetch_records_max_count
                )
                for topic_partition, messages in batches.items():
                    shard = self.shards.get(topic_partition.partition)
                    if shard is None or not shard.ready:
                        continue
                    for message in messages:
                        assert message.value is not None
                        if not shard.fits(message.value):
                            await shard.seal()
                        if shard.offer(message.offset, message.value):
                            await shard.seal()
                for shard in list(self.shards.values()):
                    due = shard.due_in_s()
                    if due is not None and due <= 0:
                        await shard.seal()
        finally:
            for shard in list(self.shards.values()):
                await shard.stop()
            await self.consumer.stop()

    async def _start_waiting_shards(self) -> None:
        for partition, shard in list(self.shards.items()):
            if shard.ready:
                continue
            if time.monotonic() >= shard.retry_at_s:
                await shard.start()
                shard.retry_at_s = time.monotonic() + genesis_poll_s
            if shard.ready and self.shards.get(partition) is shard:
                topic_partition = TopicPartition(TOPIC_VERIFIED, partition)
                self.consumer.seek(topic_partition, shard.source_offset_end)
                self.consumer.resume(topic_partition)

    def _wait_ms(self) -> int:
        dues = [due for shard in self.shards.values() if (due := shard.due_in_s()) is not None]
        if any(not shard.ready for shard in self.shards.values()):
            dues.append(genesis_poll_s)
        if not dues:
            return poll_wait_ms_max
        return max(0, min(poll_wait_ms_max, int(min(dues) * 1000)))


def load_sealer(settings: Settings) -> Signer:
    return load_private_key(settings.sealer_key_file, settings.sealer_passphrase)


async def run_forever(settings: Settings) -> None:
    """Run the sequencer until the process ends (restart = recover from the chain)."""
    await run_or_exit(
        "sequencer",
        lambda: Sequencer(settings, load_sealer(settings), settings.sequencer_shards).run(),
        log,
    )


def register(app: Any, settings: Settings) -> None:
    """Run the sequencer as a long-lived task of an all-roles faust worker."""

    @app.task  # type: ignore[untyped-decorator]
    async def sequence() -> None:
        await run_forever(settings)
