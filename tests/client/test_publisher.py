"""Publisher on real Kafka: batched submissions land where the default partitioner puts them,
and submit_and_wait reports the outcome of an accepted and a refused transaction."""

from __future__ import annotations

import os
import random
import time

import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from support.block_topics import create_topic, delete_topics, unique_topic_name
from support.ledger_fixture import TestLedger, insufficient_amount

from ledger.client.publisher import Publisher, Receipt, Refused, Sealed, submit_chunk_count_max
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import ADMIN
from ledger.kafka.wire import plain
from ledger.kafka_access import KafkaAccess
from ledger.model import Posting, Transfer
from ledger.settings import Settings
from ledger.signing import build_tx_body

pytestmark = pytest.mark.services


def _transfer(ledger: TestLedger, payer: str, payee: str, amount: int) -> tuple[bytes, bytes]:
    op = Transfer((Posting(payer, ledger.asset, -amount), Posting(payee, ledger.asset, amount)))
    body = build_tx_body(ledger.ledger, op, external_ref="publisher-test")
    return body.tx_id, ledger.signer(payer).sign(body)


async def test_an_accepted_transfer_is_awaited_until_sealed(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """submit_and_wait returns Sealed with the block height and seq of the transaction."""
    tx_id, envelope = _transfer(test_ledger, test_ledger.alice, test_ledger.bob, 1)
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=60)
    assert isinstance(outcome, Sealed), outcome
    assert outcome.tx_id == tx_id and outcome.ledger == test_ledger.ledger
    assert outcome.height >= 1 and outcome.seq >= 0


async def test_a_refused_transfer_is_awaited_until_refused_with_its_code(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """Spending more than the balance comes back as Refused(INSUFFICIENT_FUNDS) from sequence."""
    tx_id, envelope = _transfer(
        test_ledger, test_ledger.bob, test_ledger.alice, insufficient_amount
    )
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=60)
    assert isinstance(outcome, Refused), outcome
    assert (outcome.tx_id, outcome.code, outcome.stage) == (tx_id, "INSUFFICIENT_FUNDS", "sequence")
    assert test_ledger.bob in outcome.detail


async def test_outcomes_of_a_mixed_batch_come_back_in_submission_order(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """One call, several transactions: each gets its own outcome, in the order given."""
    transfers = [
        _transfer(test_ledger, test_ledger.alice, test_ledger.bob, 2),
        _transfer(test_ledger, test_ledger.bob, test_ledger.alice, insufficient_amount),
        _transfer(test_ledger, test_ledger.bob, test_ledger.alice, 3),
    ]
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        outcomes = await publisher.submit_and_wait([e for _, e in transfers], timeout_s=60)
    assert [o.tx_id for o in outcomes] == [tx_id for tx_id, _ in transfers]
    assert [type(o) for o in outcomes] == [Sealed, Refused, Sealed]


read_back_wait_s = 60.0


async def _read_topic(
    kafka: KafkaAccess, topic: str, partitions: list[int]
) -> dict[bytes, tuple[int, int, bytes]]:
    """Every message of ``topic`` as key -> (partition, offset, value); fails on a repeated key."""
    reader = committed_reader(kafka, "test-publisher-read-back")
    await reader.start()
    try:
        topic_partitions = [TopicPartition(topic, partition) for partition in partitions]
        reader.assign(topic_partitions)
        await reader.seek_to_beginning(*topic_partitions)
        ends = await reader.end_offsets(topic_partitions)
        stored: dict[bytes, tuple[int, int, bytes]] = {}
        deadline = time.monotonic() + read_back_wait_s
        while any([await reader.position(tp) < ends[tp] for tp in topic_partitions]):
            assert time.monotonic() < deadline, "the topic was not read back in time"
            for topic_partition, messages in (await reader.getmany(timeout_ms=500)).items():
                for message in messages:
                    assert message.key is not None and message.value is not None
                    assert message.key not in stored, f"{message.key.hex()} stored twice"
                    stored[message.key] = (topic_partition.partition, message.offset, message.value)
        return stored
    finally:
        await reader.stop()


async def test_batches_land_once_on_the_default_partitioners_partition(settings: Settings) -> None:
    """submit_many with tx_ids (several chunks, several full batches per partition) stores each
    message once, on DefaultPartitioner's partition for its tx_id, where its receipt says."""
    kafka = settings.kafka(ADMIN)
    topic, partition_count = unique_topic_name("publisher-batches"), 5
    count = 2 * submit_chunk_count_max + 1_234
    chooser = random.Random(count)
    tx_ids = [os.urandom(16) for _ in range(count)]
    # About 4 MB a chunk: each partition's share fills more than one 512 KB record batch.
    values = [os.urandom(chooser.randrange(100, 1_500)) for _ in range(count)]
    await create_topic(kafka, topic, partition_count)
    try:
        async with Publisher(kafka, topic=topic, backlog_max=None) as publisher:
            receipts = await publisher.submit_many(values, tx_ids)
            assert publisher.backlog is None and publisher.throttled_s == 0.0
        partitions = list(range(partition_count))
        stored = await _read_topic(kafka, topic, partitions)
    finally:
        await delete_topics(kafka, [topic])
    assert len(receipts) == len(stored) == count
    choose = DefaultPartitioner()
    for index, (tx_id, value) in enumerate(zip(tx_ids, values, strict=True)):
        partition, offset, stored_value = stored[tx_id]
        assert partition == choose(tx_id, partitions, partitions)
        assert receipts[index] == Receipt(tx_id, partition, offset)
        assert stored_value[0] == 0  # the Confluent wire format's magic byte, then the id
        assert plain(stored_value, "Envelope", "MultiSignedEnvelope") == value


async def test_tx_ids_must_match_the_envelopes_one_to_one(settings: Settings) -> None:
    """Two envelopes with one tx_id is a caller's bug: ValueError before anything is sent."""
    async with Publisher(settings.kafka(ADMIN), backlog_max=None) as publisher:
        with pytest.raises(ValueError, match="2 envelopes but 1 tx_ids"):
            await publisher.submit_many([b"a", b"b"], [os.urandom(16)])
