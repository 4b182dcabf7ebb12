"""Shared fixtures: the real local stack, brought up once per session (or reused), and its
demo ledger ``main``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from support.ledger_fixture import TestLedger, ensure_test_ledger

from ledger.kafka.admin import ensure_acls
from ledger.kafka.principals import ADMIN, READER, Grant, Operation, Resource
from ledger.local import stack
from ledger.settings import Settings

TEST_TOPIC_GRANTS = tuple(
    Grant(READER, operation, Resource.TOPIC, "test.", prefixed=True)
    for operation in (Operation.READ, Operation.DESCRIBE)
)
"""Tests keep forensic copies of chains in topics of their own (``test.*``), which the CLI's
``verify-chain --topic``, ``proof`` and ``consistency`` read as the ``reader`` principal, as an
auditor would read a copy an operator granted it."""


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """The stack the suite runs against: started by the project, or the one already running."""
    current = Settings.from_env()
    stack.up(current)
    if current.kafka_local_auth:
        asyncio.run(ensure_acls(current.kafka(ADMIN), TEST_TOPIC_GRANTS))
    yield current


@pytest.fixture(scope="session")
def test_ledger(settings: Settings) -> TestLedger:
    """Ledger ``main`` of the running stack with keys the tests hold, initialised once if new."""
    return ensure_test_ledger(settings)
