"""The back-pressure gate's decisions, driven by a scripted sequence of backlog readings.

The readings come from a gauge that replays a script instead of asking Kafka, so that each rule
(limit, low-water mark, confirmation of an estimate, time limit, counting concurrent waits once)
is shown on its own. ``test_publisher_backpressure.py`` runs the same gate against real Kafka.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from ledger.client.backlog import BacklogGate, BacklogGauge, backlog_refresh_s
from ledger.errors import Backpressure, InfraError

PARTITIONS = [0]


class ScriptedGauge(BacklogGauge):
    """Returns the scripted readings in order, then repeats the last one forever."""

    def __init__(self, readings: Sequence[int]) -> None:  # no Kafka clients
        self.topic = "test.topic"
        self.group_id = "test.group"
        self.readings = list(readings)
        self.read_count = 0

    async def read(self, partitions: Sequence[int]) -> int:
        self.read_count += 1
        return self.readings[min(self.read_count, len(self.readings)) - 1]


async def test_under_the_limit_a_chunk_goes_at_once() -> None:
    """A reading at the limit admits without waiting; a second chunk within the refresh interval
    reuses the reading instead of asking Kafka again."""
    gauge = ScriptedGauge([100])
    gate = BacklogGate(gauge, backlog_max=100, policy="wait", wait_s_max=5)
    await gate.admit(PARTITIONS)
    await gate.admit(PARTITIONS)
    assert (gate.backlog, gate.throttled_s, gauge.read_count) == (100, 0.0, 1)


async def test_a_waiting_gate_resumes_at_the_low_water_mark_not_at_the_limit() -> None:
    """Over the limit (150 > 100) it waits through 80 (below the limit, above half of it) and
    resumes at 40, having waited at least two refresh intervals."""
    gauge = ScriptedGauge([150, 80, 40])
    gate = BacklogGate(gauge, backlog_max=100, policy="wait", wait_s_max=5)
    await gate.admit(PARTITIONS)
    assert gauge.read_count == 3
    assert gate.backlog == 40
    assert gate.throttled_s >= 2 * backlog_refresh_s * 0.9


async def test_an_estimate_over_the_limit_is_confirmed_before_waiting_longer() -> None:
    """90 read plus 20 sent since is an estimate of 110; a fresh reading of 95 (the ledger
    consumed meanwhile) lets the chunk go without waiting for the low-water mark."""
    gauge = ScriptedGauge([90, 95])
    gate = BacklogGate(gauge, backlog_max=100, policy="wait", wait_s_max=5)
    await gate.admit(PARTITIONS)
    gate.sent(20)
    await gate.admit(PARTITIONS)
    assert (gauge.read_count, gate.backlog) == (2, 95)


async def test_fail_raises_at_once_with_a_one_line_message() -> None:
    """on_backlog="fail": one reading over the limit raises Backpressure naming both figures."""
    gate = BacklogGate(ScriptedGauge([150]), backlog_max=100, policy="fail", wait_s_max=5)
    started = time.monotonic()
    with pytest.raises(Backpressure) as raised:
        await gate.admit(PARTITIONS)
    assert time.monotonic() - started < backlog_refresh_s
    message = str(raised.value)
    assert "\n" not in message
    assert "150" in message and "100" in message and "test.group" in message
    refusal = raised.value
    assert (refusal.backlog, refusal.backlog_max, refusal.waited_s) == (150, 100, None)


async def test_fail_confirms_an_estimate_before_raising() -> None:
    """In fail mode too, an estimate over the limit is checked with a fresh reading first."""
    gauge = ScriptedGauge([90, 95])
    gate = BacklogGate(gauge, backlog_max=100, policy="fail", wait_s_max=5)
    await gate.admit(PARTITIONS)
    gate.sent(20)
    await gate.admit(PARTITIONS)
    assert gauge.read_count == 2


async def test_waiting_ends_with_backpressure_after_wait_s_max() -> None:
    """A backlog that never shrinks raises after the time limit, saying how long it waited."""
    gate = BacklogGate(ScriptedGauge([150]), backlog_max=100, policy="wait", wait_s_max=0.4)
    with pytest.raises(Backpressure, match=r"after waiting 0\.\d s") as raised:
        await gate.admit(PARTITIONS)
    assert raised.value.waited_s is not None and raised.value.waited_s >= 0.4
    assert gate.throttled_s >= 0.4


async def test_concurrent_waits_count_once_in_throttled_s() -> None:
    """Three calls held back together add their common wait once: throttled_s never exceeds the
    wall time of the whole episode."""
    gate = BacklogGate(ScriptedGauge([150, 150, 150, 10]), 100, "wait", wait_s_max=5)
    started = time.monotonic()
    await asyncio.gather(*(gate.admit(PARTITIONS) for _ in range(3)))
    elapsed_s = time.monotonic() - started
    assert 0 < gate.throttled_s <= elapsed_s


def test_limits_are_checked_when_the_gate_is_built() -> None:
    """A zero limit, a non-positive time limit or an unknown policy is refused up front."""
    for backlog_max, policy, wait_s_max in [(0, "wait", 1.0), (10, "wait", 0.0), (10, "drop", 1.0)]:
        with pytest.raises(ValueError):
            gauge = ScriptedGauge([0])
            BacklogGate(gauge, backlog_max, policy, wait_s_max)  # type: ignore[arg-type]


class FailingGauge(ScriptedGauge):
    """Reads once, then fails as Kafka does while a broker fails over."""

    async def read(self, partitions: Sequence[int]) -> int:
        self.read_count += 1
        if self.read_count > 1:
            raise InfraError("reading the backlog failed: LeaderNotAvailableError")
        return self.readings[0]


async def test_a_failed_reading_keeps_the_last_one_and_publishing_goes_on() -> None:
    """A reading that fails (a broker failing over) does not fail the publisher: the last
    reading stands and the next chunk goes, as it would have."""
    gauge = FailingGauge([10])
    gate = BacklogGate(gauge, backlog_max=100, policy="wait", wait_s_max=5)
    await gate.admit(PARTITIONS)
    await asyncio.sleep(backlog_refresh_s * 1.1)
    await gate.admit(PARTITIONS)
    assert (gate.backlog, gauge.read_count) == (10, 2)
