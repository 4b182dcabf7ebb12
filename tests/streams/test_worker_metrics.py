"""Each worker of the running stack serves its own metrics, and they count a known load."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.cli import run_ledger
from support.ledger_fixture import TestLedger
from support.waiting import eventually

from ledger.client.publisher import Publisher, Sealed
from ledger.kafka.principals import ADMIN
from ledger.local.metrics_ports import metrics_ports
from ledger.model import Posting, Transfer
from ledger.settings import Settings
from ledger.signing import build_tx_body

pytestmark = pytest.mark.services

load_count = 40
"""Transfers of the known load: a few blocks' worth, in a second or two."""

STAGE_FAMILIES = {
    "verify": "ledger_verify_polls",
    "sequence": "ledger_sequencer_blocks_sealed",
    "project": "ledger_projector_batches",
    "finality": "ledger_finality_ignored_messages",
    "witness": "ledger_witness_blocks_checked",
    "crossshard": "ledger_crossshard_steps_sent",
    "stats": "ledger_stats_summaries_published",
}
"""A family each kind of worker declares (the worker name up to its first '-')."""

PER_TRANSACTION_COUNTERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("verify", "ledger_verify_submissions_total", {}),
    ("verify", "ledger_verify_signatures_checked_total", {}),
    ("verify", "ledger_verify_forwarded_envelopes_total", {"ledger": "main"}),
    ("sequence", "ledger_sequencer_transactions_sealed_total", {"ledger": "main"}),
    ("project", "ledger_projector_rows_total", {"table": "transactions"}),
)
"""(worker kind, series, labels) of the counters a sealed transfer moves by one."""

PER_STEP_COUNTERS = (
    ("verify", "ledger_verify_poll_seconds_count"),
    ("sequence", "ledger_sequencer_blocks_sealed_total"),
    ("sequence", "ledger_sequencer_commit_seconds_count"),
    ("sequence", "ledger_sequencer_block_transactions_count"),
    ("project", "ledger_projector_blocks_total"),
    ("project", "ledger_projector_batch_seconds_count"),
)
"""Counters moved once per poll, block or batch: any load moves them."""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""(series name, labels) -> value, of one scrape."""


async def scrape(session: aiohttp.ClientSession, port: int) -> tuple[set[str], Samples]:
    """The family names and the samples one worker's /metrics serves now."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        response.raise_for_status()
        text = await response.text()
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return names, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s series whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        value for (series, having), value in samples.items() if series == name and wanted <= having
    )


async def scrape_all(ports: Mapping[str, int]) -> dict[str, Samples]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        scraped = await asyncio.gather(*(scrape(session, port) for port in ports.values()))
    return {name: samples for name, (_, samples) in zip(ports, scraped, strict=True)}


def of_kind(scraped: Mapping[str, Samples], kind: str) -> list[Samples]:
    return [samples for name, samples in scraped.items() if name.split("-")[0] == kind]


def summed(scraped: Mapping[str, Samples], kind: str, name: str, **labels: str) -> float:
    """``name`` summed over every worker of ``kind`` (both verify workers, every sequencer)."""
    return sum(total(samples, name, **labels) for samples in of_kind(scraped, kind))


async def test_every_worker_serves_its_own_metrics(settings: Settings) -> None:
    """Each port of metrics_ports() answers with the process collector and its stage's metrics."""
    ports = metrics_ports(settings)
    assert ports, "LEDGER_METRICS_PORT_BASE=0: no worker serves metrics"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for name, port in ports.items():
            names, _ = await eventually(
                lambda port=port: scrape(session, port),
                what=f"{name} answers on 127.0.0.1:{port}/metrics",
                timeout_s=15.0,
            )
            assert "process_cpu_seconds" in names, name
            assert STAGE_FAMILIES[name.split("-")[0]] in names, (name, sorted(names))


async def test_a_known_load_moves_verify_sequencer_and_projector_counters(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """After N sealed transfers, the verify, sequencer and projector counters of ledger main
    have each moved by at least N (other traffic may add more, never less)."""
    ports = {
        name: port
        for name, port in metrics_ports(settings).items()
        if name.split("-")[0] in ("verify", "sequence", "project")
    }
    before = await scrape_all(ports)
    alice = test_ledger.signer("alice")
    postings = (Posting("alice", "USD", -1), Posting("bob", "USD", 1))
    envelopes = [alice.sign(build_tx_body("main", Transfer(postings))) for _ in range(load_count)]
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        outcomes = await publisher.submit_and_wait(envelopes, timeout_s=60.0)
    assert all(isinstance(outcome, Sealed) for outcome in outcomes), outcomes
    top_height = max(outcome.height for outcome in outcomes if isinstance(outcome, Sealed))

    async def moved() -> tuple[dict[str, float], dict[str, Samples]]:
        """How far each per-transaction counter moved since ``before``, and the scrape."""
        after = await scrape_all(ports)
        deltas = {
            name: summed(after, kind, name, **labels) - summed(before, kind, name, **labels)
            for kind, name, labels in PER_TRANSACTION_COUNTERS
        }
        return deltas, after

    _, after = await eventually(
        moved,
        lambda result: min(result[0].values()) >= load_count,
        what=f"every per-transaction counter moved by {load_count}",
        timeout_s=30.0,
    )
    for kind, name in PER_STEP_COUNTERS:
        assert summed(after, kind, name) > summed(before, kind, name), name
    assert summed(after, "sequence", "ledger_sequencer_height", ledger="main") >= top_height
    await eventually(
        lambda: scrape_all({"project": ports["project"]}),
        lambda scraped: (
            total(scraped["project"], "ledger_projector_height", ledger="main") >= top_height
        ),
        what=f"the projector's height gauge reaches {top_height}",
    )


def test_ledger_status_lists_each_workers_metrics_address(settings: Settings) -> None:
    """What an operator types to find the endpoints: ``ledger status`` names each one."""
    result = run_ledger("status")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name, port in metrics_ports(settings).items():
        assert f"http://127.0.0.1:{port}/metrics" in lines[name], lines.get(name)
    assert f"http://127.0.0.1:{settings.dashboard_port}/metrics" in lines["dashboard"]
