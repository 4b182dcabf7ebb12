"""Fixtures of the client tests: the real stack, and ledger "main" with keys the tests hold."""

from __future__ import annotations

import pytest
from support.ledger_fixture import TestLedger, ensure_test_ledger

from ledger.settings import Settings


@pytest.fixture(scope="session")
def test_ledger(settings: Settings) -> TestLedger:
    """Ledger main of the running stack, initialised by the suite (once) from its own keys."""
    return ensure_test_ledger(settings)
