"""``ledger up`` / ``down`` / ``status``: the whole local stack, idempotently.

Order of ``up`` (each step is a no-op when already done):
  1. Kafka (when KAFKA_BOOTSTRAP_SERVERS is not set), then wait for a metadata answer;
  2. the ledger topics, with partition counts from the settings;
  3. PostgreSQL (when LEDGER_DATABASE_URL is not set), then wait for connections.
``down`` stops in the reverse order, by pid files only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ledger.client.admin import ensure_topics, wait_for_brokers
from ledger.local.kafka import KafkaCluster, kafka_version
from ledger.local.postgres import PostgresCluster
from ledger.settings import Settings

external_wait_s = 15.0
"""A cluster the user points us at should already run; do not wait for it long."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    address: str
    managed: bool

    def line(self) -> str:
        state = "running" if self.running else "stopped"
        owner = f"pid {self.pid}" if self.pid else ("external" if not self.managed else "-")
        return f"{self.name:<10} {state:<8} {owner:<12} {self.address}"


def kafka_cluster(settings: Settings) -> KafkaCluster:
    return KafkaCluster(
        settings.data_dir / "kafka" / "cluster",
        settings.kafka_libs_dir / kafka_version(),
        settings.kafka_port,
        1,
        settings.kafka_heap_mb,
    )


def postgres_cluster(settings: Settings) -> PostgresCluster:
    return PostgresCluster(settings.data_dir / "postgres", settings.postgres_port)


def up(settings: Settings) -> list[str]:
    """Bring the stack up; returns what was started (empty when all already ran)."""
    started: list[str] = []
    if settings.local_kafka:
        if kafka_cluster(settings).up():
            started.append("kafka")
    else:
        asyncio.run(wait_for_brokers(settings.kafka_bootstrap_servers, 1, external_wait_s))
    created = asyncio.run(
        ensure_topics(settings.kafka_bootstrap_servers, settings.topic_partitions(), replication=1)
    )
    started.extend(f"topic {name}" for name in created)
    if settings.local_postgres and postgres_cluster(settings).up():
        started.append("postgres")
    return started


def down(settings: Settings) -> list[str]:
    stopped: list[str] = []
    if settings.local_postgres and postgres_cluster(settings).down():
        stopped.append("postgres")
    if settings.local_kafka and kafka_cluster(settings).down():
        stopped.append("kafka")
    return stopped


def status(settings: Settings) -> list[ComponentStatus]:
    components: list[ComponentStatus] = []
    if settings.local_kafka:
        pid = kafka_cluster(settings).running()[1]
        components.append(
            ComponentStatus("kafka", pid is not None, pid, settings.kafka_bootstrap_servers, True)
        )
    else:
        components.append(
            ComponentStatus("kafka", True, None, settings.kafka_bootstrap_servers, False)
        )
    if settings.local_postgres:
        pg_pid = postgres_cluster(settings).pid()
        components.append(
            ComponentStatus(
                "postgres", pg_pid is not None, pg_pid, f"127.0.0.1:{settings.postgres_port}", True
            )
        )
    else:
        components.append(ComponentStatus("postgres", True, None, "LEDGER_DATABASE_URL", False))
    return components
