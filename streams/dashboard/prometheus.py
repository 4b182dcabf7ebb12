"""A ``Snapshot`` as Prometheus text exposition format 0.0.4, written by hand (no dependency).

Unavailable values are left out rather than written as 0 or NaN: a missing series is what
Prometheus alerting treats as "no data", and ``ledger_source_up`` says why it is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.dashboard.snapshot import WITNESS_STATES, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    """One metric name: its type, help line and samples."""

    name: str
    kind: str
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float | None, **labels: str) -> None:
        if value is not None:
            self.samples.append((tuple(labels.items()), float(value)))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            label_text = ",".join(f'{key}="{_escape_label(text)}"' for key, text in labels)
            series = f"{family.name}{{{label_text}}}" if labels else family.name
            lines.append(f"{series} {_number(value)}")
    return "\n".join(lines) + "\n"


def _flag(value: bool) -> float:
    return 1.0 if value else 0.0


def families(snapshot: Snapshot, now_ms: int) -> list[Family]:
    """Every metric the dashboard exports, in a stable order."""
    source_up = Family("ledger_source_up", "gauge", "1 when the last read of the source succeeded.")
    for name, state in snapshot.sources.items():
        source_up.add(_flag(state.up), source=name)
    snapshot_age = Family(
        "ledger_snapshot_age_seconds", "gauge", "Age of the figures served (gathered every 1 s)."
    )
    snapshot_age.add(max(0.0, (now_ms - snapshot.taken_at_ms) / 1000))

    chain_height = Family(
        "ledger_chain_height", "gauge", "Height of the newest committed block in ledger.blocks."
    )
    projected_height = Family(
        "ledger_projected_height", "gauge", "Height of the newest block written to PostgreSQL."
    )
    sealed = Family(
        "ledger_sealed_transactions_total", "counter", "Transactions sealed into the chain."
    )
    block_age = Family(
        "ledger_last_block_age_seconds", "gauge", "Time since the newest block was sealed."
    )
    throughput = Family(
        "ledger_throughput_transactions_per_second",
        "gauge",
        "Transactions sealed per second over the window, from blocks in PostgreSQL.",
    )
    confirmation = Family(
        "ledger_confirmation_latency_seconds",
        "gauge",
        "sealed_at - created_at of recent transactions, by quantile.",
    )
    visibility = Family(
        "ledger_visibility_latency_seconds",
        "gauge",
        "projected_at - created_at of recent transactions (visible in PostgreSQL), by quantile.",
    )
    verify_lag = Family(
        "ledger_verify_lag_messages",
        "gauge",
        "Submissions not yet verified: ledger.submissions end offsets - consumer group offsets.",
    )
    verify_lag.add(snapshot.verify_lag_messages)
    sequence_lag = Family(
        "ledger_sequence_lag_messages",
        "gauge",
        "Verified messages not yet sealed: ledger.verified end offset - last block's source_offset_end.",
    )
    project_lag = Family(
        "ledger_project_lag_blocks", "gauge", "Blocks sealed but not yet in PostgreSQL."
    )
    verified_height = Family(
        "ledger_chain_verified_height",
        "gauge",
        "Height up to which the dashboard verified the chain from genesis (-1: none yet).",
    )
    chain_ok = Family(
        "ledger_chain_ok", "gauge", "1 while every block read so far verifies; 0 once one fails."
    )
    for view in snapshot.ledgers:
        ledger = view.ledger
        chain_height.add(view.chain_height, ledger=ledger)
        projected_height.add(view.projected_height, ledger=ledger)
        sealed.add(view.sealed_transactions, ledger=ledger)
        block_age.add(view.last_block_age_s, ledger=ledger)
        throughput.add(view.throughput_10s, ledger=ledger, window="10s")
        throughput.add(view.throughput_60s, ledger=ledger, window="60s")
        confirmation.add(view.confirmation_p50_s, ledger=ledger, quantile="0.5")
        confirmation.add(view.confirmation_p99_s, ledger=ledger, quantile="0.99")
        visibility.add(view.visibility_p50_s, ledger=ledger, quantile="0.5")
        visibility.add(view.visibility_p99_s, ledger=ledger, quantile="0.99")
        sequence_lag.add(view.sequence_lag_messages, ledger=ledger)
        project_lag.add(view.project_lag_blocks, ledger=ledger)
        verified_height.add(view.chain.verified_height, ledger=ledger)
        chain_ok.add(_flag(view.chain.ok), ledger=ledger)

    rejections = Family(
        "ledger_rejections_total", "counter", "Refused transactions, by rejection code and stage."
    )
    for item in snapshot.rejections or ():
        rejections.add(item.count, code=item.code, stage=item.stage)
    stream = _stream_families(snapshot, now_ms)
    witnesses = _witness_families(snapshot)
    return [
        source_up,
        snapshot_age,
        chain_height,
        projected_height,
        sealed,
        block_age,
        throughput,
        confirmation,
        visibility,
        verify_lag,
        sequence_lag,
        project_lag,
        verified_height,
        chain_ok,
        rejections,
        *stream,
        *witnesses,
    ]


def _stream_families(snapshot: Snapshot, now_ms: int) -> list[Family]:
    """The stats process's windowed figures (``streams.stats``): by event time, from the block
    stream and ledger.rejections, so they do not trail when the projector lags."""
    age = Family(
        "ledger_stats_age_seconds",
        "gauge",
        "Age of the newest stats summary (published every 1 s).",
    )
    throughput = Family(
        "ledger_stats_transactions_per_second",
        "gauge",
        "Transactions sealed per second over the window, by seal time, from the block stream.",
    )
    volume = Family(
        "ledger_stats_volume_per_minute",
        "gauge",
        "Sum of the positive Transfer postings sealed in the last 60 s, in minor units.",
    )
    rejections = Family(
        "ledger_stats_rejections_per_minute",
        "gauge",
        "Rejections in the last 60 s, by rejection time, ledger and code.",
    )
    height = Family(
        "ledger_stats_height", "gauge", "Height of the newest block the stats process counted."
    )
    if snapshot.stats is not None:
        age.add(max(0.0, (now_ms - snapshot.stats.published_at_ms) / 1000))
        for item in snapshot.stream_ledgers():
            throughput.add(item.sealed_per_s_10s, ledger=item.ledger, window="10s")
            throughput.add(item.sealed_per_s_60s, ledger=item.ledger, window="60s")
            for asset, amount in sorted(item.volume_60s.items()):
                volume.add(amount, ledger=item.ledger, asset=asset)
            height.add(item.height, ledger=item.ledger)
        for item in snapshot.stats.ledgers.values():
            for code, count in sorted(item.rejections_60s.items()):
                rejections.add(count, ledger=item.ledger, code=code)
    return [age, throughput, volume, rejections, height]


def _witness_families(snapshot: Snapshot) -> list[Family]:
    """Finality and the witnesses (``streams.finality``'s tables); ``witness`` is the key id."""
    threshold = Family(
        "ledger_finality_threshold",
        "gauge",
        "Distinct registered witnesses whose cosignature makes a block final (0: final when sealed).",
    )
    final_height = Family(
        "ledger_final_height",
        "gauge",
        "Highest final block: the threshold-th highest witness height (-1: nothing final yet).",
    )
    final_lag = Family(
        "ledger_final_lag_blocks",
        "gauge",
        "Blocks sealed but not final yet: chain height - final height.",
    )
    evidence = Family(
        "ledger_evidence_total",
        "counter",
        "Evidence recorded against the ledger's sealer, signed by a registered witness.",
    )
    witness_count = Family(
        "ledger_witnesses", "gauge", "Registered, unrevoked witness keys of the ledger."
    )
    height = Family(
        "ledger_witness_height",
        "gauge",
        "Highest block the witness co-signed, as recorded in PostgreSQL (-1: none).",
    )
    lag = Family(
        "ledger_witness_lag_blocks",
        "gauge",
        "Blocks in PostgreSQL above the witness's highest cosignature.",
    )
    age = Family(
        "ledger_witness_last_cosignature_age_seconds",
        "gauge",
        "Time since the witness signed its highest cosignature (by the witness's clock).",
    )
    halted = Family(
        "ledger_witness_halted",
        "gauge",
        "1 once the witness published evidence: it co-signs nothing more on the ledger.",
    )
    state = Family(
        "ledger_witness_state",
        "gauge",
        "1 for the witness's current state (co-signing, behind, halted, silent), 0 for the others.",
    )
    ignored = Family(
        "ledger_ignored_witness_messages_total",
        "counter",
        "Cosignature and evidence messages the finality recorder did not count (ledger.ignored_messages).",
    )
    ignored.add(snapshot.ignored_witness_messages)
    recorder_lag = Family(
        "ledger_finality_recorder_lag_messages",
        "gauge",
        "Cosignature and evidence messages not yet recorded: end offsets - the recorder's positions.",
    )
    recorder_lag.add(snapshot.recorder_lag_messages)
    for item in snapshot.finality or ():
        ledger = item.ledger
        threshold.add(item.threshold, ledger=ledger)
        final_height.add(item.final_height, ledger=ledger)
        final_lag.add(item.final_lag_blocks, ledger=ledger)
        evidence.add(item.evidence_count, ledger=ledger)
        witness_count.add(len(item.witnesses), ledger=ledger)
        for witness in item.witnesses:
            key = witness.key_id
            height.add(witness.height, ledger=ledger, witness=key)
            lag.add(witness.lag_blocks, ledger=ledger, witness=key)
            age.add(witness.last_cosignature_age_s, ledger=ledger, witness=key)
            halted.add(_flag(witness.state == "halted"), ledger=ledger, witness=key)
            for name in WITNESS_STATES:
                state.add(_flag(witness.state == name), ledger=ledger, witness=key, state=name)
    return [
        threshold,
        final_height,
        final_lag,
        evidence,
        witness_count,
        height,
        lag,
        age,
        halted,
        state,
        ignored,
        recorder_lag,
    ]


def exposition(snapshot: Snapshot, now_ms: int) -> str:
    """The ``/metrics`` body."""
    return render(families(snapshot, now_ms))
