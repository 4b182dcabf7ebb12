"""What the dashboard shows: facts gathered from each source, combined by one pure function.

Each source (Kafka, PostgreSQL, the stats summary, the witnesses' cosignatures in PostgreSQL, the
chain watcher) delivers its own facts on its own schedule; ``build_snapshot`` combines the latest of them into a ``Snapshot`` that
``/metrics`` and ``/api/status`` both render, so the page and Prometheus never disagree. A
source that is down contributes no facts: every value it would have given is ``None``
("unavailable"), never stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.stats.summary import Summary, recent

SOURCES = ("kafka", "postgres", "stats", "witnesses")

HEIGHT_NONE = -1
"""Height of a chain without block 0, and tracked height of a ledger nothing was projected of."""


@dataclass(frozen=True, slots=True)
class SourceState:
    """Whether the last attempt to gather from a source succeeded, and why not."""

    up: bool
    error: str | None
    checked_at_ms: int | None


@dataclass(frozen=True, slots=True)
class ShardTip:
    """The newest committed block of one shard, and how far its input topic reaches (Kafka)."""

    ledger: str
    height: int
    sealed_transactions: int
    sealed_at_ms: int | None
    source_offset_end: int
    verified_end_offset: int


@dataclass(frozen=True, slots=True)
class KafkaFacts:
    tips: Mapping[str, ShardTip]
    verify_lag_messages: int
    witness_end_offsets: Mapping[str, int] | None = None
    """End offset of each partition of ``ledger.cosignatures`` and ``ledger.evidence``, by the
    finality recorder's stream name (``ledger.cosignatures:0``)."""


@dataclass(frozen=True, slots=True)
class LedgerRecent:
    """One ledger as PostgreSQL sees it: projection position, recent throughput and latency."""

    projected_height: int
    transactions_10s: int
    transactions_60s: int
    confirmation_p50_s: float | None = None
    confirmation_p99_s: float | None = None
    visibility_p50_s: float | None = None
    visibility_p99_s: float | None = None


@dataclass(frozen=True, slots=True)
class PostgresFacts:
    ledgers: Mapping[str, LedgerRecent]
    rejections: Mapping[tuple[str, str], int]
    """Rejection count by (code, stage)."""


@dataclass(frozen=True, slots=True)
class StreamLedger:
    """One ledger as the stats process counts it from the block stream, by seal time: it does
    not wait for PostgreSQL, so it does not trail when the projector lags."""

    ledger: str
    sealed_per_s_10s: float
    sealed_per_s_60s: float
    volume_60s: Mapping[str, int]
    """Asset -> positive Transfer postings sealed in the last 60 s (minor units)."""
    rejections_60s: Mapping[str, int]
    """Rejection code -> rejections in the last 60 s (by rejection time)."""
    height: int | None
    """Newest block the stats process counted."""


@dataclass(frozen=True, slots=True)
class StatsFacts:
    published_at_ms: int
    ledgers: Mapping[str, StreamLedger]
    """Every configured ledger, then any other label with rejections (``(other)``)."""


WITNESS_STATES = ("co-signing", "behind", "halted", "silent")
"""What the page and ``ledger_witness_state`` say of a witness (``witness_state``)."""

behind_lag_blocks = 3
"""A witness more blocks than this behind the newest projected block is ``behind``."""

behind_after_s = 10.0
"""A witness that has not co-signed a block sealed this long ago is ``behind``, however few
blocks it lacks (it stopped, or its cosignatures stopped arriving)."""


@dataclass(frozen=True, slots=True)
class WitnessRecord:
    """One registered, unrevoked witness of a ledger, as ``ledger.cosignatures`` and
    ``ledger.evidence`` hold it (``streams.finality`` stores only cosignatures that count)."""

    key_id: str
    height: int
    """Highest height it co-signed (``HEIGHT_NONE``: none)."""
    signed_at_ms: int | None
    """When it signed that cosignature, by its own clock."""
    next_sealed_at_ms: int | None
    """When the lowest block it has not co-signed was sealed; None when it holds the head."""
    evidence_count: int
    evidence_kind: str | None = None
    evidence_height: int | None = None
    evidence_detail: str | None = None
    """The first evidence it published (lowest height), when it published any."""
    name: str | None = None
    """The local stack's name of the witness (``witness-N``) when its public key is on this
    machine; other organisations' witnesses are known by key id only."""


@dataclass(frozen=True, slots=True)
class LedgerWitnessing:
    """One ledger's finality policy, newest projected block, evidence and witnesses."""

    threshold: int
    head_height: int
    """Newest block in PostgreSQL: only projected blocks get their cosignatures recorded."""
    evidence_count: int
    witnesses: tuple[WitnessRecord, ...]
    final_height: int = HEIGHT_NONE
    """``analytics.final_height``; ``HEIGHT_NONE`` when nothing is final yet."""


@dataclass(frozen=True, slots=True)
class WitnessFacts:
    ledgers: Mapping[str, LedgerWitnessing]
    ignored_messages: int
    """Rows of ``ledger.ignored_messages``: cosignatures and evidence that did not count."""
    recorder_positions: Mapping[str, int] | None = None
    """The finality recorder's next offset by stream (``ledger.tracking``); None before it
    recorded anything."""


stream_short_span_ms = 10_000
stream_long_span_ms = 60_000


def stats_facts(summary: Summary, shards: Sequence[str]) -> StatsFacts:
    """The figures the page and /metrics show, from the newest stats summary."""
    short, long = recent(summary, stream_short_span_ms), recent(summary, stream_long_span_ms)
    names = list(shards) + sorted(set(long) - set(shards))
    ledgers = {}
    for name in names:
        last_10s, last_60s = short.get(name), long.get(name)
        ledgers[name] = StreamLedger(
            ledger=name,
            sealed_per_s_10s=0.0 if last_10s is None else last_10s.sealed_per_s,
            sealed_per_s_60s=0.0 if last_60s is None else last_60s.sealed_per_s,
            volume_60s={} if last_60s is None else dict(last_60s.volume),
            rejections_60s={} if last_60s is None else dict(last_60s.rejections),
            height=summary.heights.get(name),
        )
    return StatsFacts(summary.published_at_ms, ledgers)


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """How far the chain watcher has verified one shard, or where the chain broke."""

    verified_height: int
    error_height: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class LedgerView:
    ledger: str
    chain_height: int | None
    sealed_transactions: int | None
    last_block_age_s: float | None
    sequence_lag_messages: int | None
    projected_height: int | None
    throughput_10s: float | None
    throughput_60s: float | None
    confirmation_p50_s: float | None
    confirmation_p99_s: float | None
    visibility_p50_s: float | None
    visibility_p99_s: float | None
    chain: ChainStatus

    @property
    def project_lag_blocks(self) -> int | None:
        """Blocks sealed but not yet in PostgreSQL; negative means PostgreSQL holds another chain."""
        if self.chain_height is None or self.projected_height is None:
            return None
        return self.chain_height - self.projected_height


@dataclass(frozen=True, slots=True)
class WitnessView:
    key_id: str
    name: str | None
    height: int
    lag_blocks: int
    """Blocks in PostgreSQL above its highest cosignature."""
    last_cosignature_age_s: float | None
    waiting_s: float | None
    """Age of the oldest block it has not co-signed; None when it holds the head."""
    state: str
    evidence_count: int
    evidence_kind: str | None
    evidence_height: int | None
    evidence_detail: str | None


@dataclass(frozen=True, slots=True)
class FinalityView:
    ledger: str
    threshold: int
    head_height: int
    final_height: int
    final_lag_blocks: int
    """Sealed blocks that are not final yet: the chain height (Kafka, or PostgreSQL's newest
    block while Kafka is unavailable) minus the final height."""
    evidence_count: int
    witnesses: tuple[WitnessView, ...]


@dataclass(frozen=True, slots=True)
class RejectionCount:
    code: str
    stage: str
    count: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at_ms: int
    sources: Mapping[str, SourceState]
    verify_lag_messages: int | None
    ledgers: tuple[LedgerView, ...]
    rejections: tuple[RejectionCount, ...] | None
    stats: StatsFacts | None = None
    finality: tuple[FinalityView, ...] | None = None
    """None while the witnesses source is unavailable."""
    ignored_witness_messages: int | None = None
    recorder_lag_messages: int | None = None

    def stream_ledgers(self) -> tuple[StreamLedger, ...]:
        """The configured ledgers' stream figures (empty while the stats are unavailable)."""
        if self.stats is None:
            return ()
        shards = {view.ledger for view in self.ledgers}
        return tuple(item for name, item in self.stats.ledgers.items() if name in shards)

    def to_json(self) -> dict[str, Any]:
        """The ``/api/status`` document: totals for the page's cards, then the detail."""
        return {
            "taken_at_ms": self.taken_at_ms,
            "sources": {
                name: {"up": state.up, "error": state.error, "checked_at_ms": state.checked_at_ms}
                for name, state in self.sources.items()
            },
            "throughput": {
                "tx_per_s_10s": _sum([view.throughput_10s for view in self.ledgers]),
                "tx_per_s_60s": _sum([view.throughput_60s for view in self.ledgers]),
            },
            # Percentiles of different ledgers do not combine; the page shows the worst one.
            "latency": {
                "confirmation_s": {
                    "p50": _max([view.confirmation_p50_s for view in self.ledgers]),
                    "p99": _max([view.confirmation_p99_s for view in self.ledgers]),
                },
                "visibility_s": {
                    "p50": _max([view.visibility_p50_s for view in self.ledgers]),
                    "p99": _max([view.visibility_p99_s for view in self.ledgers]),
                },
            },
            "lag": {
                "verify_messages": self.verify_lag_messages,
                "sequence_messages": _sum([view.sequence_lag_messages for view in self.ledgers]),
                "project_blocks": _sum([view.project_lag_blocks for view in self.ledgers]),
            },
            "chain": {
                "ok": all(view.chain.ok for view in self.ledgers),
                "broken": [
                    {
                        "ledger": view.ledger,
                        "height": view.chain.error_height,
                        "reason": view.chain.error,
                    }
                    for view in self.ledgers
                    if not view.chain.ok
                ],
            },
            "ledgers": [_ledger_json(view) for view in self.ledgers],
            "rejections": None
            if self.rejections is None
            else [
                {"code": item.code, "stage": item.stage, "count": item.count}
                for item in self.rejections
            ],
            "stream": _stream_json(self),
            "finality": _finality_json(self),
        }


def build_snapshot(
    shards: Sequence[str],
    sources: Mapping[str, SourceState],
    kafka: KafkaFacts | None,
    postgres: PostgresFacts | None,
    chains: Mapping[str, ChainStatus],
    now_ms: int,
    stats: StatsFacts | None = None,
    witnesses: WitnessFacts | None = None,
) -> Snapshot:
    """Combine the latest facts of every source; None facts mean that source is unavailable."""
    views = tuple(
        _ledger_view(
            ledger,
            None if kafka is None else kafka.tips.get(ledger),
            None if postgres is None else postgres.ledgers.get(ledger),
            chains.get(ledger, ChainStatus(HEIGHT_NONE)),
            now_ms,
            postgres_up=postgres is not None,
        )
        for ledger in shards
    )
    rejections = None
    if postgres is not None:
        rejections = tuple(
            RejectionCount(code, stage, count)
            for (code, stage), count in sorted(
                postgres.rejections.items(), key=lambda item: (-item[1], item[0])
            )
        )
    checked = [state.checked_at_ms for state in sources.values() if state.checked_at_ms is not None]
    return Snapshot(
        # The figures are as old as the oldest source's last read.
        taken_at_ms=min(checked, default=now_ms),
        sources=dict(sources),
        verify_lag_messages=None if kafka is None else kafka.verify_lag_messages,
        ledgers=views,
        rejections=rejections,
        stats=stats,
        finality=None
        if witnesses is None
        else tuple(
            _finality_view(ledger, witnesses.ledgers.get(ledger), view.chain_height, now_ms)
            for ledger, view in zip(shards, views, strict=True)
        ),
        ignored_witness_messages=None if witnesses is None else witnesses.ignored_messages,
        recorder_lag_messages=_recorder_lag(kafka, witnesses),
    )


def _recorder_lag(kafka: KafkaFacts | None, witnesses: WitnessFacts | None) -> int | None:
    """Cosignature and evidence messages the finality recorder has not recorded yet."""
    if kafka is None or kafka.witness_end_offsets is None:
        return None
    if witnesses is None or witnesses.recorder_positions is None:
        return None
    positions = witnesses.recorder_positions
    return sum(
        max(0, end - positions.get(stream, 0)) for stream, end in kafka.witness_end_offsets.items()
    )


def witness_state(record: WitnessRecord, head_height: int, now_ms: int) -> str:
    """``halted`` once it published evidence, ``silent`` before its first cosignature,
    ``behind`` past ``behind_lag_blocks`` or ``behind_after_s``, else ``co-signing``."""
    if record.evidence_count > 0:
        return "halted"
    if record.height == HEIGHT_NONE:
        return "silent"
    lag = head_height - record.height
    if lag > behind_lag_blocks:
        return "behind"
    if (
        lag > 0
        and record.next_sealed_at_ms is not None
        and now_ms - record.next_sealed_at_ms > behind_after_s * 1000
    ):
        return "behind"
    return "co-signing"


def _finality_view(
    ledger: str, facts: LedgerWitnessing | None, chain_height: int | None, now_ms: int
) -> FinalityView:
    if facts is None:
        # PostgreSQL answered but holds nothing of this ledger: no policy, no block, no witness.
        facts = LedgerWitnessing(0, HEIGHT_NONE, 0, ())
    head = facts.head_height if chain_height is None else max(chain_height, facts.head_height)
    final = facts.final_height
    return FinalityView(
        ledger=ledger,
        threshold=facts.threshold,
        head_height=facts.head_height,
        final_height=final,
        final_lag_blocks=max(0, head - final),
        evidence_count=facts.evidence_count,
        witnesses=tuple(
            WitnessView(
                key_id=item.key_id,
                name=item.name,
                height=item.height,
                lag_blocks=max(0, facts.head_height - item.height),
                last_cosignature_age_s=_age_s(item.signed_at_ms, now_ms),
                waiting_s=_age_s(item.next_sealed_at_ms, now_ms),
                state=witness_state(item, facts.head_height, now_ms),
                evidence_count=item.evidence_count,
                evidence_kind=item.evidence_kind,
                evidence_height=item.evidence_height,
                evidence_detail=item.evidence_detail,
            )
            for item in facts.witnesses
        ),
    )


def _age_s(at_ms: int | None, now_ms: int) -> float | None:
    """Seconds since ``at_ms``; never negative (another machine's clock may run ahead)."""
    return None if at_ms is None else max(0.0, (now_ms - at_ms) / 1000)


def _ledger_view(
    ledger: str,
    tip: ShardTip | None,
    recent: LedgerRecent | None,
    chain: ChainStatus,
    now_ms: int,
    *,
    postgres_up: bool,
) -> LedgerView:
    if recent is None and postgres_up:
        # PostgreSQL answered but has nothing of this ledger yet: that is zero, not unknown.
        recent = LedgerRecent(projected_height=HEIGHT_NONE, transactions_10s=0, transactions_60s=0)
    return LedgerView(
        ledger=ledger,
        # The watcher may have read a block newer than the tip of the last Kafka round.
        chain_height=None if tip is None else max(tip.height, chain.verified_height),
        sealed_transactions=None if tip is None else tip.sealed_transactions,
        last_block_age_s=None
        if tip is None or tip.sealed_at_ms is None
        else max(0.0, (now_ms - tip.sealed_at_ms) / 1000),
        sequence_lag_messages=None
        if tip is None
        else max(0, tip.verified_end_offset - tip.source_offset_end),
        projected_height=None if recent is None else recent.projected_height,
        throughput_10s=None if recent is None else recent.transactions_10s / 10,
        throughput_60s=None if recent is None else recent.transactions_60s / 60,
        confirmation_p50_s=None if recent is None else recent.confirmation_p50_s,
        confirmation_p99_s=None if recent is None else recent.confirmation_p99_s,
        visibility_p50_s=None if recent is None else recent.visibility_p50_s,
        visibility_p99_s=None if recent is None else recent.visibility_p99_s,
        chain=chain,
    )


def _ledger_json(view: LedgerView) -> dict[str, Any]:
    return {
        "ledger": view.ledger,
        "chain_height": view.chain_height,
        "projected_height": view.projected_height,
        "chain_verified_height": view.chain.verified_height,
        "sealed_transactions": view.sealed_transactions,
        "last_block_age_s": view.last_block_age_s,
        "throughput_10s": view.throughput_10s,
        "throughput_60s": view.throughput_60s,
        "confirmation_p50_s": view.confirmation_p50_s,
        "confirmation_p99_s": view.confirmation_p99_s,
        "visibility_p50_s": view.visibility_p50_s,
        "visibility_p99_s": view.visibility_p99_s,
        "sequence_lag_messages": view.sequence_lag_messages,
        "project_lag_blocks": view.project_lag_blocks,
        "chain_ok": view.chain.ok,
        "chain_error": view.chain.error,
    }


def _stream_json(snapshot: Snapshot) -> dict[str, Any]:
    """The stats process's figures: keys always present, values None while it is unavailable."""
    stats = snapshot.stats
    ledgers = snapshot.stream_ledgers()
    return {
        "published_at_ms": None if stats is None else stats.published_at_ms,
        "tx_per_s_10s": None if stats is None else sum(item.sealed_per_s_10s for item in ledgers),
        "tx_per_s_60s": None if stats is None else sum(item.sealed_per_s_60s for item in ledgers),
        "ledgers": [
            {
                "ledger": item.ledger,
                "tx_per_s_10s": item.sealed_per_s_10s,
                "tx_per_s_60s": item.sealed_per_s_60s,
                "volume_60s": dict(sorted(item.volume_60s.items())),
                "height": item.height,
            }
            for item in ledgers
        ],
        "rejections_60s": None
        if stats is None
        else sorted(
            (
                {"ledger": item.ledger, "code": code, "count": count}
                for item in stats.ledgers.values()
                for code, count in item.rejections_60s.items()
            ),
            key=lambda row: (-row["count"], row["ledger"], row["code"]),
        ),
    }


def _finality_json(snapshot: Snapshot) -> dict[str, Any]:
    """Keys always present; ``ledgers`` None while the witnesses source is unavailable."""
    finality = snapshot.finality
    return {
        "ignored_messages": snapshot.ignored_witness_messages,
        "recorder_lag_messages": snapshot.recorder_lag_messages,
        "evidence_total": None
        if finality is None
        else sum(item.evidence_count for item in finality),
        "ledgers": None
        if finality is None
        else [
            {
                "ledger": item.ledger,
                "threshold": item.threshold,
                "witness_count": len(item.witnesses),
                "head_height": item.head_height,
                "final_height": item.final_height,
                "final_lag_blocks": item.final_lag_blocks,
                "evidence_count": item.evidence_count,
                "witnesses": [
                    {
                        "key_id": witness.key_id,
                        "name": witness.name,
                        "height": witness.height,
                        "lag_blocks": witness.lag_blocks,
                        "last_cosignature_age_s": witness.last_cosignature_age_s,
                        "waiting_s": witness.waiting_s,
                        "state": witness.state,
                        "evidence_count": witness.evidence_count,
                        "evidence_kind": witness.evidence_kind,
                        "evidence_height": witness.evidence_height,
                        "evidence_detail": witness.evidence_detail,
                    }
                    for witness in item.witnesses
                ],
            }
            for item in finality
        ],
    }


def _sum(values: Sequence[float | None]) -> float | None:
    """The total, or None when any part is unknown (a partial sum would mislead)."""
    if any(value is None for value in values):
        return None
    return sum(value for value in values if value is not None)


def _max(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return max(known) if known else None
