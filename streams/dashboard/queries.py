"""The dashboard's PostgreSQL queries, and their rows turned into ``PostgresFacts``.

They run every second against tables that grow forever, so each one reaches its rows through an
index and reads a bounded number of them:

- blocks and transactions are read newest first through their primary keys
  ((ledger, height) and (ledger, seq)) with a LIMIT, then filtered by time; heights and seqs
  grow with sealed_at, so the newest N rows are the most recent ones;
- rejections are counted incrementally by id (primary key), see ``metrics.PostgresSource``;
- the witnesses' figures reach one row per registered witness through the primary keys of
  ledger.cosignatures (ledger, witness_key_id, height), ledger.blocks and ledger.evidence, never
  a scan of every cosignature; ignored messages are counted incrementally by offset per
  (topic, partition), see ``IgnoredCount``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.dashboard.snapshot import (
    HEIGHT_NONE,
    LedgerRecent,
    LedgerWitnessing,
    PostgresFacts,
    WitnessFacts,
    WitnessRecord,
)

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

FINALITY_PROCESSOR = "finality"
"""streams.finality.PROCESSOR: it tracks ('finality', '<topic>:<partition>', next offset)."""

TRACKING_ALL = """
SELECT stream, position FROM ledger.tracking WHERE processor = $1
"""

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

FINALITY_LEDGERS = """
SELECT shard.ledger,
       coalesce(policy.threshold, 0) AS threshold,
       coalesce(head.height, -1) AS head_height,
       (SELECT count(*) FROM ledger.evidence AS e WHERE e.ledger = shard.ledger) AS evidence_count,
       analytics.final_height(shard.ledger) AS final_height
FROM unnest($1::text[]) AS shard(ledger)
LEFT JOIN ledger.finality_policies AS policy ON policy.ledger = shard.ledger
LEFT JOIN LATERAL (
    SELECT b.height FROM ledger.blocks AS b
    WHERE b.ledger = shard.ledger
    ORDER BY b.height DESC
    LIMIT 1
) AS head ON true
"""
"""Per ledger: its threshold (0 when it never set one), newest projected block, evidence rows
and final height (one index probe per witness since migration 0007)."""

EVIDENCE_DETAIL_MAX_CHARS = 200

WITNESSES = f"""
SELECT k.ledger,
       k.key_id,
       k.public_key,
       coalesce(last.height, -1) AS height,
       (extract(epoch FROM last.signed_at) * 1000)::bigint AS signed_at_ms,
       (extract(epoch FROM next.sealed_at) * 1000)::bigint AS next_sealed_at_ms,
       (SELECT count(*) FROM ledger.evidence AS e
        WHERE e.ledger = k.ledger AND e.witness_key_id = k.key_id) AS evidence_count,
       first_evidence.kind AS evidence_kind,
       first_evidence.height AS evidence_height,
       left(first_evidence.detail, {EVIDENCE_DETAIL_MAX_CHARS}) AS evidence_detail
FROM ledger.keys AS k
LEFT JOIN LATERAL (
    SELECT c.height, c.signed_at FROM ledger.cosignatures AS c
    WHERE c.ledger = k.ledger AND c.witness_key_id = k.key_id
    ORDER BY c.height DESC
    LIMIT 1
) AS last ON true
LEFT JOIN LATERAL (
    SELECT b.sealed_at FROM ledger.blocks AS b
    WHERE b.ledger = k.ledger AND b.height = coalesce(last.height, -1) + 1
) AS next ON true
LEFT JOIN LATERAL (
    SELECT e.kind, e.height, e.detail FROM ledger.evidence AS e
    WHERE e.ledger = k.ledger AND e.witness_key_id = k.key_id
    ORDER BY e.height, e.kind
    LIMIT 1
) AS first_evidence ON true
WHERE k.ledger = ANY ($1::text[]) AND 'witness' = ANY (k.roles) AND k.revoked_height IS NULL
ORDER BY k.ledger, k.key_id
"""
"""Per registered, unrevoked witness (the keys analytics.final_height counts): its highest
cosignature (primary key, backwards), when the next block was sealed, and its evidence."""

IGNORED_SINCE = """
WITH RECURSIVE part AS (
    (SELECT i.topic, i.partition FROM ledger.ignored_messages AS i
     ORDER BY i.topic, i.partition LIMIT 1)
    UNION ALL
    SELECT following.topic, following.partition
    FROM part
    CROSS JOIN LATERAL (
        SELECT i.topic, i.partition FROM ledger.ignored_messages AS i
        WHERE (i.topic, i.partition) > (part.topic, part.partition)
        ORDER BY i.topic, i.partition
        LIMIT 1
    ) AS following
)
SELECT part.topic, part.partition, counted.count, counted.last_offset
FROM part
LEFT JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS seen(topic, partition, after)
    ON seen.topic = part.topic AND seen.partition = part.partition
CROSS JOIN LATERAL (
    SELECT count(*) AS count, max(i."offset") AS last_offset
    FROM ledger.ignored_messages AS i
    WHERE i.topic = part.topic AND i.partition = part.partition
      AND i."offset" > coalesce(seen.after, -1)
) AS counted
"""
"""Rows of ledger.ignored_messages above the offset already counted, per (topic, partition):
the partitions are found by skipping through the primary key (one probe each), and each count
reads only the new rows."""


class IgnoredCount:
    """The running count of ``ledger.ignored_messages``, by (topic, partition) and offset.

    The finality recorder writes each partition's rows in offset order, so rows above the
    highest offset counted are the new ones; a full recount (``reset``) now and then repairs a
    row committed out of order or a database that was recreated.
    """

    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], tuple[int, int]] = {}
        """(topic, partition) -> (rows counted, highest offset counted)."""

    def reset(self) -> None:
        self.partitions = {}

    def arguments(self) -> tuple[list[str], list[int], list[int]]:
        """The ``$1, $2, $3`` of IGNORED_SINCE."""
        keys = sorted(self.partitions)
        return (
            [topic for topic, _ in keys],
            [partition for _, partition in keys],
            [self.partitions[key][1] for key in keys],
        )

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            if row["last_offset"] is None:
                continue
            key = (row["topic"], int(row["partition"]))
            counted, _ = self.partitions.get(key, (0, -1))
            self.partitions[key] = (counted + int(row["count"]), int(row["last_offset"]))

    @property
    def total(self) -> int:
        return sum(counted for counted, _ in self.partitions.values())


def _integer(value: Any) -> int | None:
    return None if value is None else int(value)


def witness_facts(
    shards: Sequence[str],
    ledgers: Iterable[Mapping[str, Any]],
    witnesses: Iterable[Mapping[str, Any]],
    tracking: Iterable[Mapping[str, Any]],
    ignored_messages: int,
    names: Mapping[bytes, str],
) -> WitnessFacts:
    """The rows of FINALITY_LEDGERS and WITNESSES as one ``LedgerWitnessing`` per shard, and the
    finality recorder's TRACKING_ALL rows; ``names`` maps the public keys of this machine's
    witnesses to their names."""
    by_ledger: dict[str, list[WitnessRecord]] = {ledger: [] for ledger in shards}
    for row in witnesses:
        by_ledger.setdefault(row["ledger"], []).append(
            WitnessRecord(
                key_id=row["key_id"],
                height=int(row["height"]),
                signed_at_ms=_integer(row["signed_at_ms"]),
                next_sealed_at_ms=_integer(row["next_sealed_at_ms"]),
                evidence_count=int(row["evidence_count"]),
                evidence_kind=row["evidence_kind"],
                evidence_height=_integer(row["evidence_height"]),
                evidence_detail=row["evidence_detail"],
                name=names.get(bytes(row["public_key"])),
            )
        )
    heads = {row["ledger"]: row for row in ledgers}
    result = {}
    for ledger in shards:
        head = heads.get(ledger)
        result[ledger] = LedgerWitnessing(
            threshold=0 if head is None else int(head["threshold"]),
            head_height=HEIGHT_NONE if head is None else int(head["head_height"]),
            evidence_count=0 if head is None else int(head["evidence_count"]),
            final_height=HEIGHT_NONE
            if head is None or head["final_height"] is None
            else int(head["final_height"]),
            # This machine's witnesses first, by name (witness-1, witness-2, ...), then by key id.
            witnesses=tuple(
                sorted(
                    by_ledger[ledger],
                    key=lambda item: (item.name is None, item.name or "", item.key_id),
                )
            ),
        )
    positions = {row["stream"]: int(row["position"]) for row in tracking}
    return WitnessFacts(
        ledgers=result,
        ignored_messages=ignored_messages,
        recorder_positions=positions or None,
    )


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
