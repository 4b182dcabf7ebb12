"""The stats summary: what the stats process publishes to ``ledger.stats`` every second and the
dashboard reads back. Pure: building, encoding, decoding and the recent figures.

One JSON document (compact, sorted keys) under one key on a one-partition compacted topic, so
the newest message is all a reader needs. It carries the recent windows themselves, not rates:
readers compute what they show (``recent``) relative to ``published_at_ms``, and a test can sum
windows over exactly the interval it compares with PostgreSQL.

Layout (version 1)::

    {"version": 1, "published_at_ms": 1764470000123,
     "window_ms": {"second": 1000, "minute": 60000},
     "seconds": [{"ledger": "main", "start_ms": ..., "sealed": 12, "blocks": 3,
                  "volume": {"USD": 1200}, "rejections": {"BAD_SIGNATURE": 1}}, ...],
     "minutes": [... the same, per minute ...],
     "heights": {"main": 42},
     "positions": {"ledger.blocks": {"0": 43}, "ledger.rejections": {"0": 17}},
     "assigned": {"ledger.blocks": [0], "ledger.rejections": [0]}}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import DecodeError
from streams.stats.figures import (
    MINUTES,
    SECONDS,
    BlockWindow,
    RejectionWindow,
    WindowSpec,
    window_start_ms,
)

SUMMARY_VERSION = 1
SUMMARY_KEY = b"summary"

published_second_windows_count = 60
"""Second windows in each summary: the page's 10 s and 60 s figures, and a test's interval."""

published_minute_windows_count = 60
"""Minute windows in each summary: the last hour."""

summary_bytes_max = 1024 * 1024
"""A summary above this is not published (and logged): with a handful of ledgers, assets and
codes a summary is a few KiB; only a misconfiguration (thousands of assets) comes near."""

TableKey = tuple[tuple[int, str], tuple[float, float]]
"""A windowed faust table key: ((partition, ledger), (window start s, window end s))."""


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """One ledger in one window: sealed transactions, blocks, Transfer volume, rejections."""

    ledger: str
    start_ms: int
    sealed_count: int = 0
    block_count: int = 0
    volume: Mapping[str, int] = field(default_factory=dict)
    rejections: Mapping[str, int] = field(default_factory=dict)
    """Rejection code -> count."""


@dataclass(frozen=True, slots=True)
class Summary:
    published_at_ms: int
    seconds: tuple[WindowFigures, ...]
    minutes: tuple[WindowFigures, ...]
    heights: Mapping[str, int]
    """Ledger -> newest block height counted."""
    positions: Mapping[str, Mapping[int, int]]
    """Topic -> partition -> next offset the stats process reads (what it has read so far)."""
    assigned: Mapping[str, tuple[int, ...]]
    """Topic -> partitions this stats worker holds: all of them, unless a second one runs."""

    def covers(self, topic: str, partition_count: int) -> bool:
        return set(self.assigned.get(topic, ())) >= set(range(partition_count))


@dataclass(frozen=True, slots=True)
class Recent:
    """One ledger over the last ``span_ms`` of whole seconds before the summary was published."""

    ledger: str
    span_ms: int
    sealed_count: int
    volume: Mapping[str, int]
    rejections: Mapping[str, int]

    @property
    def sealed_per_s(self) -> float:
        return self.sealed_count * 1000 / self.span_ms


def window_figures(
    spec: WindowSpec,
    block_items: Iterable[tuple[TableKey, BlockWindow]],
    rejection_items: Iterable[tuple[TableKey, RejectionWindow]],
    since_ms: int,
) -> tuple[WindowFigures, ...]:
    """Merge the block and rejection windows of every partition per (ledger, start), keeping
    windows that start at or after ``since_ms``; ordered by start, then ledger."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}

    def entry(key: TableKey) -> dict[str, Any] | None:
        (_, ledger), (start_s, _) = key
        start_ms = round(start_s * 1000)
        assert start_ms == window_start_ms(start_ms, spec.size_ms), (key, spec)
        if start_ms < since_ms:
            return None
        return merged.setdefault(
            (ledger, start_ms), {"sealed": 0, "blocks": 0, "volume": {}, "rejections": {}}
        )

    for key, block_window in block_items:
        if (item := entry(key)) is not None:
            item["sealed"] += block_window["sealed"]
            item["blocks"] += block_window["blocks"]
            _add_counts(item["volume"], block_window["volume"])
    for key, rejection_window in rejection_items:
        if (item := entry(key)) is not None:
            _add_counts(item["rejections"], rejection_window["codes"])
    return tuple(
        WindowFigures(
            ledger, start, item["sealed"], item["blocks"], item["volume"], item["rejections"]
        )
        for (ledger, start), item in sorted(
            merged.items(), key=lambda pair: (pair[0][1], pair[0][0])
        )
    )


def _add_counts(total: dict[str, int], more: Mapping[str, int]) -> None:
    for name, count in more.items():
        total[name] = total.get(name, 0) + count


def recent(summary: Summary, span_ms: int) -> dict[str, Recent]:
    """Per ledger, the second windows of the ``span_ms`` before the summary's current second
    (which is still filling, so it is left out)."""
    assert span_ms % SECONDS.size_ms == 0 and span_ms > 0
    end_ms = window_start_ms(summary.published_at_ms, SECONDS.size_ms)
    totals: dict[str, WindowFigures] = {}
    for window in summary.seconds:
        if end_ms - span_ms <= window.start_ms < end_ms:
            totals[window.ledger] = _plus(
                totals.get(window.ledger, WindowFigures(window.ledger, 0)), window
            )
    return {
        ledger: Recent(ledger, span_ms, total.sealed_count, total.volume, total.rejections)
        for ledger, total in totals.items()
    }


def _plus(total: WindowFigures, window: WindowFigures) -> WindowFigures:
    volume, rejections = dict(total.volume), dict(total.rejections)
    _add_counts(volume, window.volume)
    _add_counts(rejections, window.rejections)
    return WindowFigures(
        total.ledger,
        total.start_ms,
        total.sealed_count + window.sealed_count,
        total.block_count + window.block_count,
        volume,
        rejections,
    )


def encode_summary(summary: Summary) -> bytes:
    document = {
        "version": SUMMARY_VERSION,
        "published_at_ms": summary.published_at_ms,
        "window_ms": {SECONDS.name: SECONDS.size_ms, MINUTES.name: MINUTES.size_ms},
        "seconds": [_window_json(window) for window in summary.seconds],
        "minutes": [_window_json(window) for window in summary.minutes],
        "heights": dict(summary.heights),
        "positions": {
            topic: {str(partition): offset for partition, offset in offsets.items()}
            for topic, offsets in summary.positions.items()
        },
        "assigned": {topic: list(partitions) for topic, partitions in summary.assigned.items()},
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _window_json(window: WindowFigures) -> dict[str, Any]:
    return {
        "ledger": window.ledger,
        "start_ms": window.start_ms,
        "sealed": window.sealed_count,
        "blocks": window.block_count,
        "volume": dict(window.volume),
        "rejections": dict(window.rejections),
    }


def decode_summary(raw: bytes) -> Summary:
    """The summary in ``raw``; ``DecodeError`` for anything that is not a version-1 summary."""
    if len(raw) > summary_bytes_max:
        raise DecodeError(f"stats summary: {len(raw)} bytes, at most {summary_bytes_max}")
    try:
        document = json.loads(raw)
        if document["version"] != SUMMARY_VERSION:
            raise DecodeError(
                f"stats summary version {document['version']!r} is not {SUMMARY_VERSION}"
            )
        if document["window_ms"] != {SECONDS.name: SECONDS.size_ms, MINUTES.name: MINUTES.size_ms}:
            raise DecodeError(
                f"stats summary windows {document['window_ms']!r} are not this build's"
            )
        return Summary(
            published_at_ms=_int(document["published_at_ms"]),
            seconds=tuple(_window(item) for item in document["seconds"]),
            minutes=tuple(_window(item) for item in document["minutes"]),
            heights=_counts(document["heights"]),
            positions={
                _str(topic): {int(partition): _int(offset) for partition, offset in offsets.items()}
                for topic, offsets in document["positions"].items()
            },
            assigned={
                _str(topic): tuple(_int(partition) for partition in partitions)
                for topic, partitions in document["assigned"].items()
            },
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DecodeError(f"stats summary does not decode: {type(exc).__name__}: {exc}") from exc


def _window(item: Mapping[str, Any]) -> WindowFigures:
    return WindowFigures(
        ledger=_str(item["ledger"]),
        start_ms=_int(item["start_ms"]),
        sealed_count=_int(item["sealed"]),
        block_count=_int(item["blocks"]),
        volume=_counts(item["volume"]),
        rejections=_counts(item["rejections"]),
    )


def _counts(item: Mapping[str, Any]) -> dict[str, int]:
    return {_str(name): _int(count) for name, count in item.items()}


def _int(value: Any) -> int:
    # bool is an int in Python but never a count here.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value
