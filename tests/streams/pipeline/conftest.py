"""The pipeline tests run on the real stack with its workers, on the demo ledger ``main``."""

from __future__ import annotations

import pytest
from support.ledger_fixture import TestLedger, ensure_test_ledger

from ledger.settings import Settings


@pytest.fixture(scope="session")
def test_ledger(settings: Settings) -> TestLedger:
    return ensure_test_ledger(settings)
