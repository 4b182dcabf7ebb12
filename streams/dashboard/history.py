"""The last hour of the page's headline figures, sampled in the dashboard process.

Every ``interval_s`` the gatherer's snapshot is reduced to one ``Sample``; the newest hour of
them answers ``/api/history`` and feeds the page's charts. The history lives in this process
only: a restarted dashboard starts its charts empty and fills them again within seconds, which
is what an operations page needs. Longer history is Prometheus's job (``infra/prometheus/``
scrapes ``/metrics`` and every worker).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from typing import Any

from streams.dashboard.snapshot import Snapshot

interval_s = 5.0
"""Time between two samples: 720 of them make the hour, a few kB of JSON for the page."""

span_s = 3600.0
"""How far back the charts reach."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of every chart; None where the source was down (a gap in the line)."""

    taken_at_ms: int
    tx_per_s: float | None
    confirmation_p50_s: float | None
    confirmation_p99_s: float | None
    visibility_p50_s: float | None
    visibility_p99_s: float | None
    verify_lag_messages: int | None
    sequence_lag_messages: int | None
    project_lag_blocks: int | None
    rejections_per_s: float | None
    """Rejections recorded in PostgreSQL since the previous sample, per second."""


SERIES = tuple(field.name for field in fields(Sample) if field.name != "taken_at_ms")


class History:
    """The newest ``span_s`` of samples, oldest first."""

    def __init__(self, sample_interval_s: float = interval_s, kept_s: float = span_s) -> None:
        self.interval_s = sample_interval_s
        self.samples: deque[Sample] = deque(maxlen=max(1, round(kept_s / sample_interval_s)))
        self._rejections: tuple[int, int] | None = None
        """(taken_at_ms, total rejections) at the previous sample, for the rate."""

    def record(self, snapshot: Snapshot) -> Sample:
        """Reduce ``snapshot`` to a sample and keep it (dropping the oldest past the span).

        The figures are the page's cards, from the same ``/api/status`` document: throughput
        from the block stream while the stats are up (it does not trail when the projector
        lags), else from PostgreSQL; the worst shard's latency; the summed lags."""
        status = snapshot.to_json()
        stream_tx_per_s = status["stream"]["tx_per_s_10s"]
        latency, lag = status["latency"], status["lag"]
        sample = Sample(
            taken_at_ms=snapshot.taken_at_ms,
            tx_per_s=stream_tx_per_s
            if stream_tx_per_s is not None
            else status["throughput"]["tx_per_s_10s"],
            confirmation_p50_s=latency["confirmation_s"]["p50"],
            confirmation_p99_s=latency["confirmation_s"]["p99"],
            visibility_p50_s=latency["visibility_s"]["p50"],
            visibility_p99_s=latency["visibility_s"]["p99"],
            verify_lag_messages=lag["verify_messages"],
            sequence_lag_messages=lag["sequence_messages"],
            project_lag_blocks=lag["project_blocks"],
            rejections_per_s=self._rejection_rate(snapshot),
        )
        self.samples.append(sample)
        return sample

    def _rejection_rate(self, snapshot: Snapshot) -> float | None:
        if snapshot.rejections is None:
            self._rejections = None
            return None
        total = sum(item.count for item in snapshot.rejections)
        previous, self._rejections = self._rejections, (snapshot.taken_at_ms, total)
        if previous is None:
            return None
        elapsed_s = (snapshot.taken_at_ms - previous[0]) / 1000
        if elapsed_s <= 0 or total < previous[1]:  # a recreated database counts from zero
            return None
        return (total - previous[1]) / elapsed_s

    def to_json(self) -> dict[str, Any]:
        """The ``/api/history`` document: one column per series, aligned with ``t`` (ms)."""
        samples = list(self.samples)
        return {
            "interval_s": self.interval_s,
            "span_s": self.interval_s * (self.samples.maxlen or 0),
            "t": [sample.taken_at_ms for sample in samples],
            "series": {name: [getattr(sample, name) for sample in samples] for name in SERIES},
        }
