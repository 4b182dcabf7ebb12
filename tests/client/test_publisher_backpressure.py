"""The Publisher's back-pressure on real Kafka, with a private topic and a test-only consumer group.

The group stands in for the verify workers: it commits nothing unless the test commits for it,
so the backlog is exactly what the test published since the publisher's first reading, minus
what the test committed. Chunks are ``backlog_max / 2`` = 50 messages, so a publisher goes
over the limit of 100 after its third chunk (150 messages).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from support.block_topics import create_topic, delete_topics, unique_topic_name
from support.waiting import eventually

from ledger.client.publisher import Publisher
from ledger.errors import Backpressure
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import ADMIN
from ledger.kafka_access import KafkaAccess
from ledger.settings import Settings

pytestmark = pytest.mark.services

backlog_max = 100
condition_wait_s = 30.0
condition_poll_s = 0.02


@pytest.fixture
async def topic(settings: Settings) -> AsyncIterator[str]:
    """A one-partition topic of this test alone, deleted afterwards."""
    name = unique_topic_name("backpressure")
    await create_topic(settings.kafka(ADMIN), name, 1)
    yield name
    await delete_topics(settings.kafka(ADMIN), [name])


@pytest.fixture
def group_id() -> str:
    return f"test.backpressure.{uuid.uuid4().hex[:12]}"


def _messages(count: int) -> tuple[list[bytes], list[bytes]]:
    """``count`` values and distinct 16-byte keys; the topic is private, so any bytes do."""
    keys = [uuid.uuid4().bytes for _ in range(count)]
    return [b"value-" + key for key in keys], keys


async def _end_offset(kafka: KafkaAccess, topic: str) -> int:
    reader = committed_reader(kafka, "test-backpressure-ends")
    await reader.start()
    try:
        topic_partition = TopicPartition(topic, 0)
        return int((await reader.end_offsets([topic_partition]))[topic_partition])
    finally:
        await reader.stop()


async def _commit(kafka: KafkaAccess, group_id: str, topic: str, offset: int) -> None:
    """Commit ``offset`` for the group, as a verify worker does after processing up to it."""
    consumer = AIOKafkaConsumer(
        **KafkaAccess.of(kafka).client_options(), group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        topic_partition = TopicPartition(topic, 0)
        consumer.assign([topic_partition])
        await consumer.commit({topic_partition: offset})
    finally:
        await consumer.stop()


async def test_fail_raises_backpressure_once_the_backlog_is_over_the_limit(
    settings: Settings, topic: str, group_id: str
) -> None:
    """on_backlog="fail": the chunk after the third one raises a one-line Backpressure; 150 of
    the 200 messages were published and nothing after them."""
    kafka = settings.kafka(ADMIN)
    values, keys = _messages(200)
    async with Publisher(
        kafka, topic=topic, group_id=group_id, backlog_max=backlog_max, on_backlog="fail"
    ) as publisher:
        with pytest.raises(Backpressure) as raised:
            await publisher.submit_many(values, keys)
        assert publisher.throttled_s == 0.0
    refusal = raised.value
    assert (refusal.backlog, refusal.backlog_max, refusal.published_count) == (150, 100, 150)
    message = str(refusal)
    assert "\n" not in message
    assert "150" in message and "100" in message and group_id in message and topic in message
    assert await _end_offset(kafka, topic) == 150


async def test_wait_blocks_until_the_group_commits_then_publishes_the_rest(
    settings: Settings, topic: str, group_id: str
) -> None:
    """on_backlog="wait": the publisher holds the fourth chunk back (nothing past 150 is
    published, throttled_s grows) until the group commits; then all 200 are published."""
    kafka = settings.kafka(ADMIN)
    values, keys = _messages(200)
    async with Publisher(
        kafka, topic=topic, group_id=group_id, backlog_max=backlog_max, backlog_wait_s_max=60
    ) as publisher:
        submitting = asyncio.create_task(publisher.submit_many(values, keys))
        await eventually(
            lambda: (publisher.backlog or 0) > backlog_max,
            what="a reading over the limit",
            timeout_s=condition_wait_s,
            interval_s=condition_poll_s,
        )
        throttled_at_first_s = publisher.throttled_s
        await eventually(
            lambda: publisher.throttled_s > throttled_at_first_s,
            what="throttled_s to grow",
            timeout_s=condition_wait_s,
            interval_s=condition_poll_s,
        )
        assert not submitting.done()
        assert await _end_offset(kafka, topic) == 150

        await _commit(kafka, group_id, topic, 150)
        receipts = await asyncio.wait_for(submitting, condition_wait_s)
        assert len(receipts) == 200
        assert publisher.throttled_s > 0
    assert await _end_offset(kafka, topic) == 200


async def test_history_before_a_group_commits_does_not_block_but_commits_are_the_truth(
    settings: Settings, topic: str, group_id: str
) -> None:
    """A group that never committed is measured from the publisher's first reading, so 300 older
    messages do not block it; once the group commits offset 10, everything behind it counts."""
    kafka = settings.kafka(ADMIN)
    async with Publisher(kafka, topic=topic, backlog_max=None) as unlimited:
        await unlimited.submit_many(*_messages(300))
    async with Publisher(
        kafka, topic=topic, group_id=group_id, backlog_max=backlog_max, on_backlog="fail"
    ) as publisher:
        await publisher.submit_many(*_messages(40))
        assert publisher.backlog == 0  # the first reading, taken before the 40 went out

        await _commit(kafka, group_id, topic, 10)
        # The gate reuses a reading for backlog_refresh_s: publish one at a time until it looks.
        published = 340
        deadline = time.monotonic() + condition_wait_s
        with pytest.raises(Backpressure) as raised:
            while time.monotonic() < deadline:
                await publisher.submit_many(*_messages(1))
                published += 1
    assert raised.value.backlog == published - 10
    assert raised.value.published_count == 0
