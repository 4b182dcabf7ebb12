"""Helpers of the pipeline tests: publish, wait for PostgreSQL, read the whole chain back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from support.waiting import eventually

from ledger import limits
from ledger.client.publisher import Outcome, Publisher
from ledger.kafka.blockstream import read_blocks
from ledger.kafka.principals import ADMIN
from ledger.replica import Replica
from ledger.settings import TOPIC_SUBMISSIONS, Settings

wait_s = 60.0


async def submit_and_wait(settings: Settings, envelopes: Sequence[bytes]) -> list[Outcome]:
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        return await publisher.submit_and_wait(envelopes, timeout_s=wait_s)


async def publish_raw(settings: Settings, values: Sequence[bytes]) -> list[tuple[int, int]]:
    """Publish arbitrary bytes to ledger.submissions; returns (partition, offset) of each."""
    producer = AIOKafkaProducer(
        **settings.kafka(ADMIN).client_options(),
        acks="all",
        enable_idempotence=True,
        max_request_size=limits.message_bytes_max,
    )
    await producer.start()
    try:
        stored = [await producer.send_and_wait(TOPIC_SUBMISSIONS, value) for value in values]
    finally:
        await producer.stop()
    return [(metadata.partition, metadata.offset) for metadata in stored]


async def fetch_until(
    settings: Settings, query: str, *args: Any, done: Any = bool, timeout_s: float = wait_s
) -> list[asyncpg.Record]:
    """Run ``query`` until ``done(rows)`` holds; fail the test after ``timeout_s``."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await eventually(
            lambda: connection.fetch(query, *args),
            done,
            what=f"PostgreSQL satisfies the wait: {query}",
            timeout_s=timeout_s,
        )
        return list(rows)
    finally:
        await connection.close()


async def replay_chain(
    settings: Settings, ledger: str, until_height: int | None = None
) -> tuple[Replica, list[bytes]]:
    """Verify and replay the chain of ``ledger`` (to its end, or to ``until_height``); returns
    the replica and every tx_id sealed."""
    from ledger.replica import tx_from_envelope

    partition = settings.shard_partition(ledger)
    assert partition is not None
    replica = Replica(ledger)
    tx_ids: list[bytes] = []
    async for message in read_blocks(settings.kafka(ADMIN), partition):
        if until_height is not None and message.block.header.height > until_height:
            break
        replica.apply_block(message.block)
        tx_ids.extend(tx_from_envelope(tx.envelope).body.tx_id for tx in message.block.transactions)
    return replica, tx_ids
