"""The chosen Kafka version does what the ledger depends on, with aiokafka as the client."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from support.block_topics import read_values
from support.ports import free_port_block
from support.waiting import eventually

from ledger.kafka.admin import describe_topics, ensure_topics
from ledger.kafka.clients import admin_client
from ledger.kafka.principals import ADMIN
from ledger.local.kafka import KafkaCluster, kafka_version
from ledger.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.services


async def test_transactions_commit_and_abort(settings: Settings) -> None:
    """A read_committed consumer sees the committed transactional batch and not the aborted one."""
    topic = f"test.tx.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka(ADMIN), {topic: 1}, replication=1)
    producer = AIOKafkaProducer(
        **settings.kafka(ADMIN).client_options(),
        transactional_id=f"test-{topic}",
        enable_idempotence=True,
        acks="all",
    )
    await producer.start()
    try:
        async with producer.transaction():
            for index in range(3):
                await producer.send(topic, f"committed-{index}".encode())
        await producer.begin_transaction()
        for index in range(3):
            await producer.send(topic, f"aborted-{index}".encode())
        await producer.abort_transaction()
    finally:
        await producer.stop()
    committed = await read_values(settings.kafka(ADMIN), topic, isolation_level="read_committed")
    uncommitted = await read_values(
        settings.kafka(ADMIN), topic, isolation_level="read_uncommitted"
    )
    assert committed == [b"committed-0", b"committed-1", b"committed-2"]
    assert len(uncommitted) == 6


async def test_ledger_topics_exist_with_their_settings(settings: Settings) -> None:
    """ledger up created the four topics with the configured partition counts."""
    topics = await describe_topics(settings.kafka(ADMIN), list(settings.topic_partitions()))
    counts = {topic["topic"]: len(topic["partitions"]) for topic in topics}
    assert counts == settings.topic_partitions()


async def test_a_topic_with_too_few_partitions_grows(settings: Settings) -> None:
    """A shard appended to LEDGER_SHARDS: ensure_topics adds the missing partitions to a topic
    that exists with fewer, keeps the old ones, and a second call changes nothing."""
    topic = f"test.grow.{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka(ADMIN)
    assert await ensure_topics(kafka, {topic: 1}, replication=1) == [topic]
    try:
        done = await ensure_topics(kafka, {topic: 3}, replication=1)
        assert done == [f"{topic} now has 3 partitions"]
        [described] = await describe_topics(kafka, [topic])
        assert len(described["partitions"]) == 3
        assert await ensure_topics(kafka, {topic: 3}, replication=1) == []
    finally:
        admin = admin_client(kafka, "test-grow")
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


def test_three_broker_cluster_survives_one_broker_stopping(settings: Settings) -> None:
    """With replication 3 and min.insync.replicas=2, acks=all writes go on when a broker stops."""
    root = REPO_ROOT / ".data" / "test-three-brokers"
    cluster = KafkaCluster(
        root,
        settings.kafka_libs_dir / kafka_version(),
        base_port=free_port_block(6, settings),
        node_count=3,
        heap_mb=384,
        credentials=root / "credentials",  # SCRAM between the brokers too
    )
    cluster.down()
    shutil.rmtree(root, ignore_errors=True)
    # A cluster id that starts with '-' (one in 64 random ids) once read as an option to
    # kafka-storage and failed the format; this cluster is given one on purpose.
    root.mkdir(parents=True)
    (root / "cluster.id").write_text("-AbCdEfGhIjKlMnOpQrStUv\n")
    try:
        assert cluster.up()
        asyncio.run(_replicated_writes(cluster))
    finally:
        cluster.down()
        shutil.rmtree(root, ignore_errors=True)
    assert all(pid is None for pid in cluster.running().values())


async def _replicated_writes(cluster: KafkaCluster) -> None:
    topic = "test.replicated"
    await ensure_topics(cluster.access(), {topic: 1}, replication=3)

    async def description() -> dict[str, Any]:
        [described] = await describe_topics(cluster.access(), [topic])
        return described

    # A new topic reaches every broker's metadata a moment after it is created.
    described = await eventually(
        description,
        lambda found: bool(found["partitions"]) and found["partitions"][0]["leader"] >= 0,
        what=f"a leader for {topic}",
        timeout_s=20.0,
        interval_s=0.2,
    )
    assert len(described["partitions"][0]["replicas"]) == 3

    async def produce(values: list[bytes]) -> None:
        producer = AIOKafkaProducer(
            **cluster.access().client_options(),
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=20_000,
        )
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()

    before = [f"before-{i}".encode() for i in range(20)]
    after = [f"after-{i}".encode() for i in range(20)]
    await produce(before)
    leader = described["partitions"][0]["leader"]
    assert cluster.stop_node(leader)
    await produce(after)
    survivors = ",".join(
        f"127.0.0.1:{node.broker_port}" for node in cluster.nodes if node.node_id != leader
    )
    survivors_only = dataclasses.replace(cluster.access(), bootstrap_servers=survivors)
    assert await read_values(survivors_only, topic) == before + after


def test_kafka_version_is_pinned_in_one_place() -> None:
    """The pom pins the broker version the stack runs; the libs directory is named after it."""
    assert kafka_version().startswith("4.")
    assert Path(REPO_ROOT / "infra" / "pom.xml").read_text().count("<kafka.version>") == 1
