"""Reading committed messages of ``ledger.blocks`` by partition and offset.

The low-level reader under ``BlockReader`` (which verifies), the sequencer and the projector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from ledger import codec
from ledger.kafka.clients import committed_reader
from ledger.kafka.wire import plain
from ledger.kafka_access import KafkaAccess
from ledger.model import Block
from ledger.settings import TOPIC_BLOCKS

fetch_wait_ms = 500


@dataclass(frozen=True, slots=True)
class BlockMessage:
    offset: int
    block: Block
    size_bytes: int


def blocks_consumer(kafka: KafkaAccess | str, client_id: str) -> AIOKafkaConsumer:
    """A consumer for manual assignment: read_committed, no group, no offset commits."""
    return committed_reader(kafka, client_id)


async def read_blocks(
    kafka: KafkaAccess | str,
    partition: int,
    start_offset: int = 0,
    client_id: str = "ledger-blocks",
    *,
    canonical_check: bool = True,
) -> AsyncIterator[BlockMessage]:
    """Every committed block of ``partition`` from ``start_offset`` up to the current end
    (``canonical_check``: see ``codec.decode_block``)."""
    consumer = blocks_consumer(kafka, client_id)
    await consumer.start()
    try:
        topic_partition = TopicPartition(TOPIC_BLOCKS, partition)
        consumer.assign([topic_partition])
        end = (await consumer.end_offsets([topic_partition]))[topic_partition]
        consumer.seek(topic_partition, start_offset)
        while await consumer.position(topic_partition) < end:
            batch = await consumer.getmany(topic_partition, timeout_ms=fetch_wait_ms)
            for message in batch.get(topic_partition, []):
                assert message.value is not None
                yield BlockMessage(
                    message.offset,
                    codec.decode_block(
                        plain(message.value, "Block"), canonical_check=canonical_check
                    ),
                    len(message.value),
                )
    finally:
        await consumer.stop()
