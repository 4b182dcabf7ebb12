"""The one Kafka edge: every consumer and producer of the project is built here.

Options are passed explicitly (STYLE habit 5), once, so the isolation level, acknowledgement and
size limits cannot drift between the SDK, the stream processors and the local tooling. Library
errors become ``InfraError`` at this edge (``kafka_errors``); what is left to callers is what
their step means, not which exception tuple to catch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ledger import limits
from ledger.errors import InfraError
from ledger.kafka_access import KafkaAccess

VERIFY_GROUP = "ledger.verify"
"""Consumer group of the verify workers on ``ledger.submissions``: its committed offsets are
the verify stage's progress (dashboard lag, the Publisher's back-pressure)."""

KAFKA_ERRORS = (KafkaError, OSError)
"""What the Kafka client raises for an unreachable or failing cluster."""

request_timeout_ms = 30_000
group_session_timeout_ms = 10_000
"""A killed verify worker's partitions move to the others after this: keep it short."""
group_heartbeat_interval_ms = 2_000


@contextlib.contextmanager
def kafka_errors(doing: str) -> Iterator[None]:
    """Translate the Kafka client's errors into ``InfraError("<doing> failed: ...")``."""
    try:
        yield
    except KAFKA_ERRORS as exc:
        raise InfraError(f"{doing} failed: {type(exc).__name__}: {exc}") from exc


def admin_client(
    kafka: KafkaAccess | str, client_id: str, timeout_ms: int = request_timeout_ms
) -> AIOKafkaAdminClient:
    """An admin client (topics, cluster metadata, consumer-group offsets, ACLs)."""
    return AIOKafkaAdminClient(
        **KafkaAccess.of(kafka).client_options(), client_id=client_id, request_timeout_ms=timeout_ms
    )


def committed_reader(kafka: KafkaAccess | str, client_id: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer for manual assignment that sees committed transactions only: no group, no
    offset commits, starting at the earliest offset unless sought."""
    settings: dict[str, Any] = {
        **KafkaAccess.of(kafka).client_options(),
        "client_id": client_id,
        "group_id": None,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": limits.message_bytes_max,
        "fetch_max_bytes": 4 * limits.message_bytes_max,
        "request_timeout_ms": request_timeout_ms,
    }
    return AIOKafkaConsumer(**{**settings, **options})


def group_consumer(
    kafka: KafkaAccess | str, client_id: str, group_id: str, *topics: str, **options: Any
) -> AIOKafkaConsumer:
    """A consumer-group member that commits its offsets itself, after its work is acknowledged."""
    settings: dict[str, Any] = {
        **KafkaAccess.of(kafka).client_options(),
        "client_id": client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "session_timeout_ms": group_session_timeout_ms,
        "heartbeat_interval_ms": group_heartbeat_interval_ms,
        "max_partition_fetch_bytes": limits.message_bytes_max,
        "request_timeout_ms": request_timeout_ms,
    }
    return AIOKafkaConsumer(*topics, **{**settings, **options})


def idempotent_producer(
    kafka: KafkaAccess | str, client_id: str, *, linger_ms: int, **options: Any
) -> AIOKafkaProducer:
    """A producer that writes each message once per send, acknowledged by all in-sync replicas."""
    settings: dict[str, Any] = {
        **KafkaAccess.of(kafka).client_options(),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": linger_ms,
        "max_batch_size": 512 * 1024,
        "max_request_size": limits.message_bytes_max,
        "request_timeout_ms": request_timeout_ms,
    }
    return AIOKafkaProducer(**{**settings, **options})


def transactional_producer(
    kafka: KafkaAccess | str, transactional_id: str, **options: Any
) -> AIOKafkaProducer:
    """A producer whose ``transactional_id`` fences every older producer of the same id."""
    return idempotent_producer(
        kafka,
        transactional_id,
        linger_ms=0,
        transactional_id=transactional_id,
        transaction_timeout_ms=60_000,
        **options,
    )


async def send_batched(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Iterable[tuple[int, bytes | None, bytes]],
) -> list[asyncio.Future[Any]]:
    """Hand ``(partition, key, value)`` messages to ``producer`` as record batches.

    About 1 µs a message against 9 µs for ``send()`` (DESIGN.md section 10). Returns one future
    per record batch; each resolves once the broker acknowledged the whole batch.
    """
    by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
    for partition, key, value in messages:
        by_partition.setdefault(partition, []).append((key, value))
    deliveries: list[asyncio.Future[Any]] = []
    for partition, items in by_partition.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a {len(value)}-byte message does not fit a record batch")
        if batch.record_count():
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
    return deliveries
