"""Shared fixtures: the real local stack, brought up once per session (or reused), and its
demo ledger ``main``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.ledger_fixture import TestLedger, ensure_test_ledger

from ledger.local import stack
from ledger.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """The stack the suite runs against: started by the project, or the one already running."""
    current = Settings.from_env()
    stack.up(current)
    yield current


@pytest.fixture(scope="session")
def test_ledger(settings: Settings) -> TestLedger:
    """Ledger ``main`` of the running stack with keys the tests hold, initialised once if new."""
    return ensure_test_ledger(settings)
