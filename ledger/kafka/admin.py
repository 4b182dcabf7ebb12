"""Cluster administration over the Kafka protocol: readiness, the ledger's topics, ACLs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1
from aiokafka.protocol.api import Request

from ledger import codec, limits
from ledger.errors import InfraError
from ledger.kafka.clients import admin_client, committed_reader, transactional_producer
from ledger.kafka.principals import GRANTS, Grant
from ledger.kafka.wire import framed
from ledger.kafka_access import KafkaAccess
from ledger.model import Block
from ledger.settings import (
    TOPIC_BLOCKS,
    TOPIC_COSIGNATURES,
    TOPIC_EVIDENCE,
    TOPIC_REJECTIONS,
    TOPIC_SNAPSHOTS,
    TOPIC_STATS,
)

TOPIC_ALREADY_EXISTS = 36
LITERAL, PREFIXED = 3, 4
"""Kafka's PatternType codes."""
ALLOW = 3
"""Kafka's AclPermissionType code."""
request_timeout_ms = 10_000
retry_interval_s = 0.5

LEDGER_TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    # The block stream is the ledger: kept forever, never compacted.
    TOPIC_BLOCKS: {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
    # Cosignatures and evidence are part of the ledger's proof (finality, misbehaviour): forever.
    TOPIC_COSIGNATURES: {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
    TOPIC_EVIDENCE: {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
    # Rejections are evidence for payment systems; a year is the usual dispute horizon.
    TOPIC_REJECTIONS: {"retention.ms": str(366 * 24 * 3600 * 1000)},
    # The sequencer's state snapshots: only the newest per ledger matters (it bounds restarts).
    TOPIC_SNAPSHOTS: {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"},
    # The stats summary, one a second under one key: readers want the newest only, so keep
    # an hour at most and let compaction and small segments drop the rest.
    TOPIC_STATS: {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(3600 * 1000),
        "segment.ms": str(600 * 1000),
        "min.cleanable.dirty.ratio": "0.1",
    },
}


def _admin(kafka: KafkaAccess) -> AIOKafkaAdminClient:
    return admin_client(kafka, "ledger-admin", request_timeout_ms)


async def wait_for_brokers(
    kafka: KafkaAccess,
    broker_count: int,
    timeout_s: float,
    on_each_try: Callable[[], None] = lambda: None,
) -> None:
    """Return once a metadata request lists ``broker_count`` brokers and a controller.

    ``on_each_try`` may raise to give up early (a broker process that died, say).
    """
    deadline = time.monotonic() + timeout_s
    # Refused connections are the expected answer while a broker starts; say it once, at the end.
    client_log = logging.getLogger("aiokafka")
    quiet_level, client_log.level = client_log.level, logging.CRITICAL
    try:
        await _poll_brokers(kafka, broker_count, deadline, on_each_try)
    finally:
        client_log.setLevel(quiet_level)


async def _poll_brokers(
    kafka: KafkaAccess, broker_count: int, deadline: float, on_each_try: Callable[[], None]
) -> None:
    last_error = "no answer"
    timeout_s = deadline - time.monotonic()
    while time.monotonic() < deadline:
        on_each_try()
        admin = _admin(kafka)
        try:
            await asyncio.wait_for(admin.start(), timeout=5)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
            brokers = cluster.get("brokers", [])
            if len(brokers) >= broker_count and cluster.get("controller_id", -1) >= 0:
                return
            last_error = f"{len(brokers)} of {broker_count} brokers registered"
        except (TimeoutError, KafkaError, OSError) as exc:
            last_error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        finally:
            await admin.close()
        await asyncio.sleep(retry_interval_s)
    raise InfraError(
        f"Kafka at {kafka} did not become ready within {timeout_s:.0f} s ({last_error})"
    )


async def ensure_topics(
    kafka: KafkaAccess,
    partitions: dict[str, int],
    replication: int,
    extra_configs: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the topics that are missing, and add partitions to those that have fewer than
    asked (a shard appended to LEDGER_SHARDS gets the next partition of each per-shard topic;
    existing partitions keep their shard); returns what was done. Idempotent."""
    configs = {**LEDGER_TOPIC_CONFIGS, **(extra_configs or {})}
    admin = _admin(kafka)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                count,
                replication,
                topic_configs={
                    "max.message.bytes": str(limits.message_bytes_max),
                    **configs.get(name, {}),
                },
            )
            for name, count in partitions.items()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing, timeout_ms=30_000)
            _raise_topic_errors(response.to_object())
        present = [name for name in partitions if name in existing]
        counts = {
            described["topic"]: len(described["partitions"])
            for described in (await admin.describe_topics(present) if present else [])
        }
        grow = {
            name: NewPartitions(partitions[name])
            for name, count in counts.items()
            if count < partitions[name]
        }
        if grow:
            response = await admin.create_partitions(grow, timeout_ms=30_000)
            _raise_topic_errors(response.to_object())
        return [topic.name for topic in missing] + [
            f"{name} now has {grown.total_count} partitions" for name, grown in grow.items()
        ]
    except KafkaError as exc:
        raise InfraError(f"cannot create topics on {kafka}: {exc}") from exc
    finally:
        await admin.close()


def _raise_topic_errors(response: dict[str, Any]) -> None:
    for topic in response.get("topics", response.get("topic_errors", [])):
        code = topic.get("error_code", 0)
        if code not in (0, TOPIC_ALREADY_EXISTS):
            name = topic.get("name", topic.get("topic"))
            message = topic.get("error_message") or f"error code {code}"
            raise InfraError(f"creating topic {name} failed: {message}")


async def describe_topics(kafka: KafkaAccess, names: list[str]) -> list[dict[str, Any]]:
    admin = _admin(kafka)
    try:
        await admin.start()
        return list(await admin.describe_topics(names))
    finally:
        await admin.close()


async def publish_genesis(kafka: KafkaAccess, block: Block) -> None:
    """Produce block 0 to its shard's partition of ``ledger.blocks``, once.

    Refuses when the partition already holds a committed block (the ledger exists). A
    transactional producer of its own (not the sequencer's, which it would fence) makes the
    block visible to read_committed readers atomically.
    """
    partition = block.header.source_partition
    topic_partition = TopicPartition(TOPIC_BLOCKS, partition)
    consumer = committed_reader(kafka, "ledger-init")
    producer = transactional_producer(kafka, f"ledger-init-{block.header.ledger}")
    try:
        await consumer.start()
        end = (await consumer.end_offsets([topic_partition]))[topic_partition]
        if end > 0:
            raise InfraError(
                f"ledger {block.header.ledger!r} already has blocks "
                f"({TOPIC_BLOCKS}[{partition}] is not empty); init runs once per ledger"
            )
        await producer.start()
        async with producer.transaction():
            await producer.send(
                TOPIC_BLOCKS,
                framed("Block", codec.encode_block(block)),
                key=block.header.ledger.encode(),
                partition=partition,
            )
    except KafkaError as exc:
        raise InfraError(f"cannot publish the genesis block to {kafka}: {exc}") from exc
    finally:
        await consumer.stop()
        await producer.stop()


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    """All bindings in one request (aiokafka's own ``CreateAclsRequest`` carries one)."""

    API_KEY = 30

    def __init__(self, grants: tuple[Grant, ...]) -> None:
        self.grants = grants

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(
            [
                (
                    int(grant.resource),
                    grant.name,
                    PREFIXED if grant.prefixed else LITERAL,
                    f"User:{grant.principal}",
                    "*",
                    int(grant.operation),
                    ALLOW,
                )
                for grant in self.grants
            ]
        )


async def ensure_acls(kafka: KafkaAccess, grants: tuple[Grant, ...] = GRANTS) -> None:
    """Grant ``grants``; a binding that exists already stays as it is (ACLs are a set).

    aiokafka 0.14's admin client has no ACL method: the request goes through its request path
    (``_send_request``), which negotiates the version with the broker (v1, Kafka 4's oldest).
    """
    admin = _admin(kafka)
    try:
        await admin.start()
        response = await admin._send_request(_CreateAcls(grants))
    except KafkaError as exc:
        raise InfraError(f"cannot create ACLs on {kafka}: {exc}") from exc
    finally:
        await admin.close()
    for code, _message in response.creation_responses:
        if code != 0:  # the broker's message is a dump of the request: the error's name says it
            raise InfraError(f"creating Kafka ACLs on {kafka} failed: {for_code(code).__name__}")
