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

import gc
import logging
import time
from collections.abc import Sequence

from aiokafka import TopicPartition

from ledger import codec
from ledger.errors import ConfigError, DecodeError
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import SEQUENCER
from ledger.model import VerifiedEntry
from ledger.sealer_keys import SealerKeyring
from ledger.sealing import VerifiedMessage
from ledger.settings import TOPIC_SUBMISSIONS, TOPIC_VERIFIED, VERIFIED_BATCH_HEADER, Settings
from streams.lifecycle import collect_less, run_or_exit
from streams.shard import ShardSequencer

log = logging.getLogger("ledger.sequence")

genesis_poll_s = 1.0
"""A shard without block 0 waits for `ledger init`; this is how often it looks."""

poll_wait_ms_max = 100
"""Upper bound of one fetch wait, so a due block is never sealed late by more than this."""

fetch_records_max_count = 64
"""Messages of ledger.verified per fetch: each is a batch of up to
limits.verified_batch_tx_max_count envelopes, so this is several blocks' worth."""


def verified_message(
    partition: int, offset: int, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None
) -> VerifiedMessage:
    """A ledger.verified message as the sealing rule takes it.

    Bytes that are not a batch become one entry naming the ledger.verified position, which
    the sealing rule refuses MALFORMED (the partition never stalls on a poison message).
    """
    raw = value or b""
    if headers and VERIFIED_BATCH_HEADER in headers:
        try:
            batch = codec.decode_verified_batch(raw)
            return VerifiedMessage.of(offset, batch.entries, TOPIC_SUBMISSIONS)
        except DecodeError:
            pass
    return VerifiedMessage.of(offset, (VerifiedEntry(partition, offset, raw),), TOPIC_VERIFIED)


class Sequencer:
    """The shards this process sequences, fed from one consumer of ``ledger.verified``.

    Partitions are assigned by configuration (``LEDGER_SEQUENCER_SHARDS``, default all), not
    by a consumer group: a sequencer started for a shard takes it over at once by fencing the
    previous writer through the shared ``transactional_id``, whether that writer is dead (a
    restart after a crash) or alive (a zombie, which then stops at its next commit). No group
    session has to time out first.
    """

    def __init__(self, settings: Settings, keyring: SealerKeyring, ledgers: Sequence[str]) -> None:
        self.settings = settings
        self.shards: dict[int, ShardSequencer] = {}
        for ledger in ledgers:
            partition = settings.shard_partition(ledger)
            if partition is None:
                raise ConfigError(f"ledger {ledger!r} is not in LEDGER_SHARDS")
            self.shards[partition] = ShardSequencer(settings, ledger, partition, keyring)
        self.consumer = committed_reader(
            settings.kafka(SEQUENCER),
            "ledger-sequencer",
            max_poll_records=fetch_records_max_count,
        )

    async def run(self) -> None:
        collect_less()
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
                        verified = verified_message(
                            message.partition, message.offset, message.value, message.headers
                        )
                        for open_block in shard.cutter.offer(verified, time.monotonic()):
                            await shard.seal(open_block)
                for shard in list(self.shards.values()):
                    due = shard.cutter.take_due(time.monotonic())
                    if due is not None:
                        await shard.seal(due)
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
                gc.freeze()  # the replayed state lives as long as the process
                topic_partition = TopicPartition(TOPIC_VERIFIED, partition)
                self.consumer.seek(topic_partition, shard.source_offset_end)
                self.consumer.resume(topic_partition)

    def _wait_ms(self) -> int:
        now_s = time.monotonic()
        dues = [
            due
            for shard in self.shards.values()
            if (due := shard.cutter.due_in_s(now_s)) is not None
        ]
        if any(not shard.ready for shard in self.shards.values()):
            dues.append(genesis_poll_s)
        if not dues:
            return poll_wait_ms_max
        return max(0, min(poll_wait_ms_max, int(min(dues) * 1000)))


def load_keyring(settings: Settings) -> SealerKeyring:
    return SealerKeyring(settings.sealer_key_file, settings.sealer_passphrase)


async def run_forever(settings: Settings) -> None:
    """Run the sequencer until the process ends (restart = recover from the chain)."""
    await run_or_exit(
        "sequencer",
        lambda: Sequencer(settings, load_keyring(settings), settings.sequencer_shards).run(),
        log,
    )
