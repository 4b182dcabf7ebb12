"""Throwaway block topics: sealed chains written with a raw producer, so tests can tamper freely.

Nothing here touches ``ledger.blocks``: each topic has a unique name, is created with
``ensure_topics`` (the ledger's own topic settings) and deleted by the caller's fixture.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition

from ledger import codec, limits, signing
from ledger.blocks import ChainCheckpoint, build_block
from ledger.kafka.admin import ensure_topics
from ledger.kafka.clients import admin_client, committed_reader
from ledger.kafka_access import KafkaAccess
from ledger.model import Attest, Block

FORENSIC_LEDGER = "forensic"
"""Ledger name inside throwaway chains: not a shard of any stack, so never confused with one."""

sealed_at_ms_base = 1_790_000_000_000


def unique_topic_name(label: str) -> str:
    return f"test.client.{label}.{uuid.uuid4().hex[:12]}"


def attest_envelope(author: signing.Signer, number: int, ledger: str = FORENSIC_LEDGER) -> bytes:
    """A signed Attest transaction, distinct per ``number``."""
    body = signing.build_tx_body(
        ledger,
        Attest(hashlib.sha256(number.to_bytes(8, "big")).digest()),
        now_ms=sealed_at_ms_base,
        tx_id=hashlib.sha256(b"tx" + number.to_bytes(8, "big")).digest()[:16],
        external_ref=f"forensic-{number}",
    )
    return author.sign(body)


@dataclasses.dataclass(frozen=True)
class SealedChain:
    blocks: list[Block]
    checkpoints: list[ChainCheckpoint]
    sealer: signing.Signer
    author: signing.Signer

    def tx_id(self, height: int, index: int = 0) -> bytes:
        envelope = self.blocks[height].transactions[index].envelope
        return codec.decode_submission(envelope)[1].tx_id


def build_chain(
    tx_counts: Sequence[int], ledger: str = FORENSIC_LEDGER, sealer: signing.Signer | None = None
) -> SealedChain:
    """Blocks 0..len(tx_counts)-1 of ``ledger``, block h holding tx_counts[h] attestations."""
    sealer = sealer or signing.Signer.generate()
    author = signing.Signer.generate()
    chain_blocks: list[Block] = []
    checkpoints: list[ChainCheckpoint] = []
    previous: ChainCheckpoint | None = None
    number = 0
    for height, count in enumerate(tx_counts):
        envelopes = [attest_envelope(author, number + offset, ledger) for offset in range(count)]
        number += count
        block, previous = build_block(
            previous,
            ledger=ledger,
            envelopes=envelopes,
            sealed_at_ms=sealed_at_ms_base + height,
            source_partition=0,
            source_offset_end=number,
            signing_key=sealer,
        )
        chain_blocks.append(block)
        checkpoints.append(previous)
    return SealedChain(chain_blocks, checkpoints, sealer, author)


async def create_topic(kafka: KafkaAccess, name: str, partition_count: int) -> None:
    await ensure_topics(kafka, {name: partition_count}, replication=1)


async def delete_topics(kafka: KafkaAccess, names: Sequence[str]) -> None:
    admin = admin_client(kafka, "ledger-tests", timeout_ms=10_000)
    await admin.start()
    try:
        await admin.delete_topics(list(names), timeout_ms=10_000)
    finally:
        await admin.close()


async def write_values(
    kafka: KafkaAccess,
    topic: str,
    partition: int,
    values: Sequence[bytes],
    *,
    transactional: bool = False,
) -> None:
    """Produce ``values`` in order; ``transactional`` puts each in its own committed transaction
    (as the sequencer does), so commit markers take offsets between the blocks."""
    producer = AIOKafkaProducer(
        **kafka.client_options(),
        acks="all",
        enable_idempotence=True,
        transactional_id=f"{topic}-{partition}-writer" if transactional else None,
        max_request_size=limits.message_bytes_max,
    )
    await producer.start()
    try:
        for value in values:
            if transactional:
                async with producer.transaction():
                    await producer.send_and_wait(topic, value, partition=partition)
            else:
                await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


async def read_values(
    kafka: KafkaAccess,
    topic: str,
    partition: int = 0,
    isolation_level: str = "read_committed",
) -> list[bytes]:
    """Every value of ``topic[partition]`` up to its end now, as a reader with
    ``isolation_level`` sees them (read_committed skips aborted transactions)."""
    consumer = committed_reader(kafka, "test-read-values", isolation_level=isolation_level)
    await consumer.start()
    try:
        topic_partition = TopicPartition(topic, partition)
        consumer.assign([topic_partition])
        end = (await consumer.end_offsets([topic_partition]))[topic_partition]
        values: list[bytes] = []
        while await consumer.position(topic_partition) < end:
            batch = await consumer.getmany(topic_partition, timeout_ms=500)
            values.extend(message.value for message in batch.get(topic_partition, []))
        return values
    finally:
        await consumer.stop()
