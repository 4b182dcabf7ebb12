"""The dashboard's last hour: samples reduced from snapshots, and ``/api/history`` on the stack."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from support.waiting import eventually

from ledger.settings import Settings
from streams.dashboard import server
from streams.dashboard.history import SERIES, History
from streams.dashboard.page import SCRIPT
from streams.dashboard.snapshot import RejectionCount, Snapshot, SourceState

UP = SourceState(up=True, error=None, checked_at_ms=0)


def snapshot(taken_at_ms: int, rejected: int | None, verify_lag: int | None = 3) -> Snapshot:
    return Snapshot(
        taken_at_ms=taken_at_ms,
        sources={"postgres": UP},
        verify_lag_messages=verify_lag,
        ledgers=(),
        rejections=None
        if rejected is None
        else (
            RejectionCount("EXPIRED", "verify", rejected - 1),
            RejectionCount("X", "sequence", 1),
        ),
    )


def test_rejection_rate_is_the_count_since_the_previous_sample_per_second() -> None:
    history = History(sample_interval_s=5, kept_s=60)
    assert history.record(snapshot(10_000, 10)).rejections_per_s is None  # nothing to compare
    assert history.record(snapshot(15_000, 30)).rejections_per_s == 4.0
    assert history.record(snapshot(20_000, None)).rejections_per_s is None  # PostgreSQL down
    assert history.record(snapshot(25_000, 40)).rejections_per_s is None  # back: start again
    assert history.record(snapshot(30_000, 45)).rejections_per_s == 1.0
    assert history.record(snapshot(35_000, 2)).rejections_per_s is None  # a recreated database


def test_keeps_the_newest_span_with_aligned_columns() -> None:
    history = History(sample_interval_s=5, kept_s=20)
    for index in range(7):
        history.record(snapshot(index * 5_000, index, verify_lag=None if index == 5 else index))
    document = history.to_json()
    assert document["t"] == [15_000, 20_000, 25_000, 30_000]
    assert document["span_s"] == 20
    assert set(document["series"]) == set(SERIES)
    assert all(len(column) == 4 for column in document["series"].values())
    assert document["series"]["verify_lag_messages"] == [3, 4, None, 6]
    assert document["series"]["tx_per_s"] == [0] * 4  # no ledger: nothing sealed, as the page says
    json.dumps(document, allow_nan=False)


@pytest.fixture()
async def dashboard(settings: Settings) -> AsyncIterator[str]:
    runner, port = await server.start(settings, port=0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_history_fills_from_the_running_stack(dashboard: str) -> None:
    """A fresh dashboard records its first sample at once and one more every interval; every
    column is as long as ``t``, and the stack's throughput and lags are numbers, not gaps."""

    async def document() -> dict:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{dashboard}/api/history") as response,
        ):
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            return await response.json()

    found = await eventually(
        document, lambda found: len(found["t"]) >= 2, timeout_s=20, what="two history samples"
    )
    assert found["t"] == sorted(found["t"])
    assert all(len(column) == len(found["t"]) for column in found["series"].values())
    newest = {name: column[-1] for name, column in found["series"].items()}
    assert newest["tx_per_s"] is not None and newest["verify_lag_messages"] is not None
    assert newest["project_lag_blocks"] is not None


def test_the_page_reads_only_series_the_server_keeps() -> None:
    read = set(re.findall(r"\bseries\.(\w+)", SCRIPT))
    assert read and read <= set(SERIES)
