"""A replicated cluster under load: three brokers (replication 3, min.insync.replicas=2, acks=all
everywhere), the whole pipeline on them, and the leader of ``ledger.blocks`` killed -9 during
load: nothing lost, nothing duplicated, sealing resumes, no worker dies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.cli import run_ledger
from support.stacks import isolated_stack

from ledger.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.services

transfer_count = 3000
run_timeout_s = 400.0


@pytest.fixture(scope="module")
def three_brokers(settings: Settings) -> Iterator[dict[str, str]]:
    extra = {"LEDGER_WITNESSES": "0", "LEDGER_VERIFY_WORKERS": "1"}
    with isolated_stack("test-three-broker-stack", settings, brokers=3, **extra) as env:
        started = run_ledger("up", env=env, timeout_s=run_timeout_s)
        assert started.returncode == 0, started.stderr
        yield env


def test_topics_are_replicated_three_times(three_brokers: dict[str, str]) -> None:
    """`ledger up` with three brokers: every ledger topic has 3 replicas, min ISR 2."""
    status = run_ledger("status", "--json", env=three_brokers)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("127.0.0.1:") >= 3


def test_killing_the_blocks_leader_during_load_loses_and_doubles_nothing(
    three_brokers: dict[str, str],
) -> None:
    """3,000 transfers; the broker leading ledger.blocks partition 0 is killed -9 a third of the
    way in and started again at two thirds: all 3,000 sealed once, no worker died."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tests" / "support" / "leader_kill.py"),
            str(transfer_count),
        ],
        env={**os.environ, **three_brokers},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=run_timeout_s,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["sealed"] == transfer_count, figures
    assert figures["duplicated"] == 0, figures
    assert figures["dead_workers"] == [], figures
