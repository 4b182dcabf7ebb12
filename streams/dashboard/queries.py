"""The dashboard's PostgreSQL queries, and their rows turned into ``PostgresFacts``.

They run every second against tables that grow forever, so each one reaches its rows through an
index and reads a bounded number of them:

- blocks and transactions are read newest first through their primary keys
  ((ledger, height) and (ledger, seq)) with a LIMIT, then filtered by time; heights and seqs
  grow with sealed_at, so the newest N rows are the most recent ones;
- rejections are counted incrementally by id (primary key), see ``metrics.PostgresSource``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.dashboard.snapshot import HEIGHT_NONE, LedgerRecent, PostgresFacts

recent_blocks_max_count = 12_000
"""Blocks read for the 60 s throughput: 200 blocks/s for 60 s. Each block is one Kafka
transaction of the sequencer (a few ms at least), so a shard seals far fewer; above that rate
the 60 s figure would undercount."""

latency_sample_max_count = 2_000
"""Newest transactions per ledger behind the latency percentiles: enough for a stable p99."""

latency_window_s = 300
"""Transactions older than this say nothing about latency now: an idle ledger shows none."""

PROCESSOR = "project"
"""streams.project.PROCESSOR (not imported: the dashboard must not load the projector)."""

TRACKING = """
SELECT stream, position FROM ledger.tracking WHERE processor = $1 AND stream LIKE 'blocks:%'
"""
"""streams.project tracks ('project', 'blocks:<ledger>', height) and 'rejections:<partition>'."""

THROUGHPUT = """
SELECT shard.ledger,
       coalesce(sum(recent.tx_count) FILTER (WHERE recent.sealed_at > now() - interval '10 seconds'), 0)
           AS transactions_10s,
       coalesce(sum(recent.tx_count) FILTER (WHERE recent.sealed_at > now() - interval '60 seconds'), 0)
           AS transactions_60s
FROM unnest($1::text[]) AS shard(ledger)
CROSS JOIN LATERAL (
    SELECT b.tx_count, b.sealed_at
    FROM ledger.blocks AS b
    WHERE b.ledger = shard.ledger
    ORDER BY b.height DESC
    LIMIT $2
) AS recent
GROUP BY shard.ledger
"""

LATENCY = """
SELECT shard.ledger,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM recent.sealed_at - recent.created_at))
           AS confirmation_p50_s,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM recent.sealed_at - recent.created_at))
           AS confirmation_p99_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.projected_at - recent.created_at))
           AS visibility_p50_s,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM b.projected_at - recent.created_at))
           AS visibility_p99_s
FROM unnest($1::text[]) AS shard(ledger)
CROSS JOIN LATERAL (
    SELECT t.height, t.created_at, t.sealed_at
    FROM ledger.transactions AS t
    WHERE t.ledger = shard.ledger
    ORDER BY t.seq DESC
    LIMIT $2
) AS recent
JOIN ledger.blocks AS b ON b.ledger = shard.ledger AND b.height = recent.height
WHERE recent.sealed_at > now() - make_interval(secs => $3)
GROUP BY shard.ledger
"""

REJECTIONS_SINCE = """
SELECT code, stage, count(*) AS count, max(id) AS last_id
FROM ledger.rejections
WHERE id > $1
GROUP BY code, stage
"""


def _seconds(row: Mapping[str, Any] | None, column: str) -> float | None:
    """A percentile column (float8 seconds), None when the ledger had no recent transaction."""
    if row is None or row[column] is None:
        return None
    return float(row[column])


def postgres_facts(
    shards: Sequence[str],
    tracking: Iterable[Mapping[str, Any]],
    throughput: Iterable[Mapping[str, Any]],
    latency: Iterable[Mapping[str, Any]],
    rejections: Mapping[tuple[str, str], int],
) -> PostgresFacts:
    """The rows of TRACKING, THROUGHPUT and LATENCY as one ``LedgerRecent`` per shard."""
    projected = {row["stream"].removeprefix("blocks:"): int(row["position"]) for row in tracking}
    counts = {row["ledger"]: row for row in throughput}
    percentiles = {row["ledger"]: row for row in latency}
    ledgers = {}
    for ledger in shards:
        count_row = counts.get(ledger)
        latency_row = percentiles.get(ledger)
        ledgers[ledger] = LedgerRecent(
            projected_height=projected.get(ledger, HEIGHT_NONE),
            transactions_10s=0 if count_row is None else int(count_row["transactions_10s"]),
            transactions_60s=0 if count_row is None else int(count_row["transactions_60s"]),
            confirmation_p50_s=_seconds(latency_row, "confirmation_p50_s"),
            confirmation_p99_s=_seconds(latency_row, "confirmation_p99_s"),
            visibility_p50_s=_seconds(latency_row, "visibility_p50_s"),
            visibility_p99_s=_seconds(latency_row, "visibility_p99_s"),
        )
    return PostgresFacts(ledgers=ledgers, rejections=dict(rejections))
