"""Stacks of their own for tests that must not touch the shared one: a data directory under
``.data`` and a block of free ports (``support.ports``), cleaned before and after."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from unittest import mock

from ledger.kafka.principals import ADMIN
from ledger.kafka_access import KafkaAccess
from ledger.local.postgres import cluster_directory
from ledger.settings import REPO_ROOT, Settings
from support.cli import run_ledger
from support.ports import free_port_block


@contextlib.contextmanager
def isolated_stack(
    name: str, settings: Settings, brokers: int = 1, **extra: str
) -> Iterator[dict[str, str]]:
    """The environment of a stack named ``name`` (``ledger up`` is the caller's): Kafka's
    brokers on the first ports of a free block (each with its controller on the next port),
    then PostgreSQL, the dashboard and the Schema Registry; ``extra`` adds settings
    (LEDGER_SHARDS=...). Stopped and removed afterwards."""
    data_dir = REPO_ROOT / ".data" / name
    base = free_port_block(2 * brokers + 3, settings)
    env = {
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_KAFKA_PORT": str(base),
        "LEDGER_KAFKA_BROKERS": str(brokers),
        "LEDGER_POSTGRES_PORT": str(base + 2 * brokers),
        "LEDGER_DASHBOARD_PORT": str(base + 2 * brokers + 1),
        "LEDGER_REGISTRY_PORT": str(base + 2 * brokers + 2),
        "LEDGER_KAFKA_HEAP_MB": "384",
        # The shared stack's workers hold the metrics ports; this stack's would only warn.
        "LEDGER_METRICS_PORT_BASE": "0",
        **extra,
    }
    directories = (data_dir, cluster_directory(data_dir / "postgres"))
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    try:
        yield env
    finally:
        run_ledger("down", env=env)
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)


def stack_settings(env: dict[str, str]) -> Settings:
    """The settings of the stack ``env`` describes, as its own processes read them."""
    with mock.patch.dict(os.environ, env):
        return Settings.from_env()


def stack_kafka(env: dict[str, str], principal: str = ADMIN) -> KafkaAccess:
    """How a test reaches the Kafka of the stack ``env`` describes, as ``principal``."""
    return stack_settings(env).kafka(principal)
