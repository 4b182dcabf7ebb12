"""Shared fixtures: the real local stack, brought up once per session (or reused)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.local import stack
from ledger.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """The stack the suite runs against: started by the project, or the one already running."""
    current = Settings.from_env()
    stack.up(current)
    yield current
