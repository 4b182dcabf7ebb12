"""Authenticated Kafka: the local broker takes SCRAM users only, and each principal may do what
``ledger.kafka.principals`` grants it and nothing else."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError
from support.cli import assert_one_line_error, run_ledger

from ledger.cli import EXIT_INFRA
from ledger.errors import InfraError
from ledger.kafka.principals import (
    GRANTS,
    PRINCIPALS,
    PUBLISHER,
    READER,
    SEQUENCER,
    Operation,
    Resource,
)
from ledger.kafka_access import KafkaAccess
from ledger.local.kafka import KafkaCluster
from ledger.local.stack import kafka_cluster
from ledger.settings import (
    TOPIC_BLOCKS,
    TOPIC_SNAPSHOTS,
    TOPIC_SUBMISSIONS,
    Settings,
)

connect_timeout_s = 15.0


def granted(principal: str, operation: Operation, topic: str) -> bool:
    return any(
        grant.principal == principal
        and grant.resource is Resource.TOPIC
        and grant.operation in (operation, Operation.ALL)
        and (topic.startswith(grant.name) if grant.prefixed else topic == grant.name)
        for grant in GRANTS
    )


async def write_refused(kafka: KafkaAccess, topic: str) -> bool:
    """True when the broker refuses ``kafka``'s write to ``topic`` for want of an ACL. Nothing
    is written when it is allowed either: the caller asks only where it must be refused."""
    # Not idempotent: an idempotent producer needs some write grant before it may start.
    producer = AIOKafkaProducer(
        **kafka.client_options(), enable_idempotence=False, request_timeout_ms=10_000
    )
    await asyncio.wait_for(producer.start(), connect_timeout_s)
    try:
        await producer.send_and_wait(topic, b"not a ledger message", partition=0)
    except TopicAuthorizationFailedError:
        return True
    finally:
        await producer.stop()
    return False


async def read_refused(kafka: KafkaAccess, topic: str) -> bool:
    """True when the broker refuses ``kafka`` a fetch from ``topic``: it may not even see the
    topic (no DESCRIBE), or it sees it and may not read it (no READ)."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, request_timeout_ms=10_000)
    await asyncio.wait_for(consumer.start(), connect_timeout_s)
    try:
        if topic not in await consumer.topics():
            return True
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, 0)
        await consumer.getmany(partition, timeout_ms=5_000)
    except TopicAuthorizationFailedError:
        return True
    finally:
        await consumer.stop()
    return False


@pytest.mark.parametrize(
    "principal", [principal for principal in PRINCIPALS if principal != "admin"]
)
async def test_each_principal_is_refused_every_write_it_was_not_granted(
    settings: Settings, principal: str
) -> None:
    kafka = settings.kafka(principal)
    for topic in settings.topic_partitions():
        if not granted(principal, Operation.WRITE, topic):
            assert await write_refused(kafka, topic), f"{principal} could write {topic}"


@pytest.mark.parametrize(
    "principal", [principal for principal in PRINCIPALS if principal != "admin"]
)
async def test_each_principal_is_refused_every_read_it_was_not_granted(
    settings: Settings, principal: str
) -> None:
    kafka = settings.kafka(principal)
    for topic in settings.topic_partitions():
        if not granted(principal, Operation.READ, topic):
            assert await read_refused(kafka, topic), f"{principal} could read {topic}"


@pytest.mark.parametrize(
    "principal", [principal for principal in PRINCIPALS if principal != "admin"]
)
async def test_each_principal_reads_what_it_was_granted(settings: Settings, principal: str) -> None:
    kafka = settings.kafka(principal)
    for topic in settings.topic_partitions():
        if granted(principal, Operation.READ, topic):
            assert not await read_refused(kafka, topic), f"{principal} cannot read {topic}"


async def test_a_publisher_writes_submissions_but_not_blocks_nor_reads_snapshots(
    settings: Settings,
) -> None:
    """The issue's own example, spelt out: what a leaked payment-system password can do."""
    publisher = settings.kafka(PUBLISHER)
    assert await write_refused(publisher, TOPIC_BLOCKS)
    assert await read_refused(publisher, TOPIC_SNAPSHOTS)
    assert not await read_refused(publisher, TOPIC_BLOCKS)  # its outcomes come from blocks
    # Garbage on submissions is harmless: verify rejects it (MALFORMED, on ledger.rejections).
    assert not await write_refused(publisher, TOPIC_SUBMISSIONS)
    sequencer = settings.kafka(SEQUENCER)
    assert await write_refused(sequencer, TOPIC_SUBMISSIONS)
    assert not await read_refused(settings.kafka(READER), TOPIC_BLOCKS)


async def test_an_anonymous_client_cannot_connect(settings: Settings) -> None:
    anonymous = KafkaAccess(settings.kafka_bootstrap_servers)
    producer = AIOKafkaProducer(**anonymous.client_options(), request_timeout_ms=5_000)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), connect_timeout_s)
    await producer.stop()


async def test_a_wrong_password_cannot_connect(settings: Settings) -> None:
    impostor = settings.kafka(PUBLISHER).as_user(PUBLISHER, "not-the-password")
    producer = AIOKafkaProducer(**impostor.client_options(), request_timeout_ms=5_000)
    with pytest.raises(KafkaError):
        await asyncio.wait_for(producer.start(), connect_timeout_s)
    await producer.stop()


def test_passwords_are_private_files_and_never_in_a_process_list(settings: Settings) -> None:
    directory = settings.kafka_credentials_dir
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    secrets = []
    for principal in (*PRINCIPALS, "kafka"):
        path = directory / f"{principal}.password"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        secrets.append(path.read_text().strip())
    for node in kafka_cluster(settings).nodes:  # it holds the nodes' own password
        assert stat.S_IMODE(node.config_file.stat().st_mode) == 0o600
    processes = subprocess.run(
        ["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True
    ).stdout
    assert "java" in processes and "streams.worker" in processes
    assert not [secret for secret in secrets if secret in processes]


def test_kafka_acls_prints_every_grant_and_applies_only_as_an_admin(settings: Settings) -> None:
    printed = run_ledger("kafka-acls")
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) == len(GRANTS) and all(line.startswith("kafka-acls.sh ") for line in lines)
    assert any("User:sequencer --operation WRITE --topic ledger.blocks" in line for line in lines)
    assert run_ledger("kafka-acls", "--apply").returncode == 0  # the local admin: a no-op
    as_publisher = {
        "LEDGER_KAFKA_USERNAME": PUBLISHER,
        "LEDGER_KAFKA_PASSWORD_FILE": str(settings.kafka_credentials_dir / "publisher.password"),
    }
    refused = run_ledger("kafka-acls", "--apply", env=as_publisher)
    line = assert_one_line_error(refused, EXIT_INFRA)
    assert "ClusterAuthorizationFailedError" in line, line


def test_a_cluster_keeps_the_authentication_it_was_formatted_with(
    settings: Settings, tmp_path: Path
) -> None:
    """Its users live in its metadata, which only a format writes: `up` says how to go on."""
    open_cluster = KafkaCluster(tmp_path / "cluster", settings.kafka_libs_dir, 1)
    data_dir = open_cluster.nodes[0].data_dir
    data_dir.mkdir(parents=True)
    (data_dir / "meta.properties").write_text("cluster.id=x\n")  # formatted before auth existed
    secured = KafkaCluster(
        tmp_path / "cluster", settings.kafka_libs_dir, 1, credentials=tmp_path / "credentials"
    )
    with pytest.raises(InfraError, match="LEDGER_KAFKA_AUTH=none to run it as it is"):
        secured._check_auth_mode()
    open_cluster._check_auth_mode()  # the mode it has: fine
