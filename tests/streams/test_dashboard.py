"""The operator dashboard against the real stack: /metrics, /api/status, the page, sources down."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from support.ledger_fixture import TestLedger, insufficient_amount
from support.waiting import eventually

from ledger import codec
from ledger.blocks import build_block
from ledger.client.publisher import Outcome, Publisher, Refused, Sealed
from ledger.kafka.principals import ADMIN
from ledger.model import Block, Posting, Transfer
from ledger.settings import Settings
from ledger.signing import Signer, build_tx_body
from streams.dashboard import server
from streams.dashboard.chain import ShardChain
from streams.dashboard.page import SCRIPT
from streams.dashboard.prometheus import exposition
from streams.dashboard.snapshot import (
    ChainStatus,
    LedgerRecent,
    PostgresFacts,
    SourceState,
    build_snapshot,
)

pytestmark = pytest.mark.services

Samples = dict[str, list[tuple[dict[str, str], float]]]

SAMPLE_LINE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

PER_LEDGER_GAUGES = (
    "ledger_chain_height",
    "ledger_projected_height",
    "ledger_sealed_transactions_total",
    "ledger_last_block_age_seconds",
    "ledger_throughput_transactions_per_second",
    "ledger_confirmation_latency_seconds",
    "ledger_visibility_latency_seconds",
    "ledger_sequence_lag_messages",
    "ledger_project_lag_blocks",
    "ledger_chain_verified_height",
    "ledger_chain_ok",
)
UNAVAILABLE = "postgresql://ledger:ledger@127.0.0.1:1/ledger"
request_time_max_s = 1.0
"""Handlers only render cached facts: an answer never waits for a source."""


def parse_metrics(text: str) -> Samples:
    """Prometheus text format: TYPE before samples, and every other line `name{labels} value`."""
    typed: set[str] = set()
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("gauge", "counter"), line
            typed.add(name)
            continue
        if not line or line.startswith("#"):
            continue
        match = SAMPLE_LINE.fullmatch(line)
        assert match is not None, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        assert name in typed, f"{name} has no TYPE line before its samples"
        pairs = LABEL_PAIR.findall(label_text or "")
        assert ",".join(f'{key}="{raw}"' for key, raw in pairs) == (label_text or ""), line
        labels = {
            key: re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], raw)
            for key, raw in pairs
        }
        samples.setdefault(name, []).append((labels, float(value)))
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    for found, value in samples.get(name, []):
        if all(found.get(key) == text for key, text in labels.items()):
            return value
    return None


@pytest.fixture(scope="module")
async def traffic(settings: Settings, test_ledger: TestLedger) -> list[Outcome]:
    """Two sealed transfers and one refused: fresh latency samples and a rejection row."""
    alice = test_ledger.signer(test_ledger.alice)

    def transfer(amount: int) -> bytes:
        postings = (
            Posting(test_ledger.alice, test_ledger.asset, -amount),
            Posting(test_ledger.bob, test_ledger.asset, amount),
        )
        return alice.sign(build_tx_body(test_ledger.ledger, Transfer(postings)))

    async with Publisher(settings.kafka(ADMIN), client_id="ledger-dashboard-tests") as publisher:
        outcomes = await publisher.submit_and_wait(
            [transfer(1), transfer(2), transfer(insufficient_amount)], timeout_s=60
        )
    assert [type(outcome) for outcome in outcomes] == [Sealed, Sealed, Refused], outcomes
    return outcomes


async def start_dashboard(settings: Settings) -> tuple[aiohttp.web.AppRunner, str]:
    runner, port = await server.start(settings, port=0)
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture()
async def dashboard(settings: Settings) -> AsyncIterator[str]:
    runner, url = await start_dashboard(settings)
    try:
        yield url
    finally:
        await runner.cleanup()


async def get(url: str) -> tuple[aiohttp.ClientResponse, str]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.text()
    assert time.monotonic() - started < request_time_max_s, f"{url} answered too slowly"
    return response, body


async def test_metrics_is_prometheus_text_with_every_gauge(
    settings: Settings, traffic: list[Outcome], dashboard: str
) -> None:
    """/metrics parses as Prometheus text and carries every gauge for each ledger."""

    async def scrape() -> Samples:
        response, body = await get(f"{dashboard}/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse_metrics(body)

    samples = await eventually(
        scrape,
        lambda found: sample(found, "ledger_visibility_latency_seconds") is not None,
        what="a visibility latency on /metrics",
        interval_s=0.5,
    )
    assert sample(samples, "ledger_source_up", source="kafka") == 1
    assert sample(samples, "ledger_source_up", source="postgres") == 1
    assert sample(samples, "ledger_verify_lag_messages") is not None
    assert sample(samples, "ledger_snapshot_age_seconds") is not None
    for ledger in settings.shards:
        for name in PER_LEDGER_GAUGES:
            assert sample(samples, name, ledger=ledger) is not None, (name, ledger)
    main = settings.shards[0]
    for window in ("10s", "60s"):
        assert (
            sample(samples, "ledger_throughput_transactions_per_second", window=window) is not None
        )
    for quantile in ("0.5", "0.99"):
        assert sample(samples, "ledger_confirmation_latency_seconds", quantile=quantile) is not None
    assert sample(samples, "ledger_chain_ok", ledger=main) == 1


async def test_metrics_agree_with_the_chain_and_the_rejections(
    settings: Settings, traffic: list[Outcome], dashboard: str
) -> None:
    """Chain height reaches our sealed block, and our refused transfer is counted by code."""
    sealed = [outcome for outcome in traffic if isinstance(outcome, Sealed)]
    refused = [outcome for outcome in traffic if isinstance(outcome, Refused)]
    ledger, height = sealed[-1].ledger, max(outcome.height for outcome in sealed)

    async def scrape() -> Samples:
        return parse_metrics((await get(f"{dashboard}/metrics"))[1])

    def caught_up(found: Samples) -> bool:
        verified = sample(found, "ledger_chain_verified_height", ledger=ledger) or -1
        projected = sample(found, "ledger_projected_height", ledger=ledger) or -1
        return verified >= height and projected >= height

    samples = await eventually(
        scrape,
        caught_up,
        what=f"/metrics with {ledger} verified and projected to height {height}",
        interval_s=0.5,
    )
    assert (sample(samples, "ledger_chain_height", ledger=ledger) or -1) >= height
    assert (sample(samples, "ledger_chain_verified_height", ledger=ledger) or -1) >= height
    assert (sample(samples, "ledger_projected_height", ledger=ledger) or -1) >= height
    assert (sample(samples, "ledger_sealed_transactions_total", ledger=ledger) or 0) > max(
        outcome.seq for outcome in sealed
    )
    code, stage = refused[0].code, refused[0].stage
    assert (sample(samples, "ledger_rejections_total", code=code, stage=stage) or 0) >= 1


async def test_status_json_has_every_key_the_page_reads(
    traffic: list[Outcome], dashboard: str
) -> None:
    """/api/status is JSON holding every path the page's script reads from it."""
    response, body = await get(f"{dashboard}/api/status")
    assert response.status == 200 and response.content_type == "application/json"
    status = json.loads(body)
    for path in set(re.findall(r"\bstatus((?:\.\w+)+)", SCRIPT)):
        node = status
        for key in path.strip(".").split("."):
            assert isinstance(node, dict) and key in node, f"status{path} is missing"
            node = node[key]
    ledger_keys = set(status["ledgers"][0])
    assert set(re.findall(r"\bl\.(\w+)", SCRIPT)) <= ledger_keys
    assert set(re.findall(r"\br\.(\w+)", SCRIPT)) <= set(status["rejections"][0])
    assert set(re.findall(r"\bstate\.(\w+)", SCRIPT)) <= set(status["sources"]["kafka"])
    broken = build_snapshot(
        ["x"], {}, None, None, {"x": ChainStatus(4, 5, "block 5: bad seal")}, 0
    ).to_json()["chain"]
    assert broken["ok"] is False
    assert set(re.findall(r"\bfirst\.(\w+)", SCRIPT)) <= set(broken["broken"][0])


async def test_page_loads_only_its_own_files_and_polls_status(dashboard: str) -> None:
    """/ is an HTML document whose stylesheet and scripts come from this server's /static/
    (package data, no CDN); the script polls /api/status and /api/history; nothing loads from
    elsewhere."""
    response, body = await get(f"{dashboard}/")
    assert response.status == 200 and response.content_type == "text/html"
    assert body.lstrip().lower().startswith("<!doctype html>")
    assets = re.findall(r'(?:href|src)="([^"]+)"', body)
    assert sorted(assets) == [
        "/explorer",  # the header's link to the block explorer, a page of this server
        "/static/chart.js",
        "/static/dashboard.css",
        "/static/dashboard.js",
    ]
    css_response, css = await get(f"{dashboard}/static/dashboard.css")
    js_response, js = await get(f"{dashboard}/static/dashboard.js")
    chart_response, chart = await get(f"{dashboard}/static/chart.js")
    assert css_response.content_type == "text/css" and js_response.content_type == "text/javascript"
    assert chart_response.content_type == "text/javascript"
    assert 'fetch("/api/status"' in js and 'fetch("/api/history"' in js
    for text in (body, css, js, chart):
        # The SVG namespace is a name, not an address anything loads from.
        text = text.replace('"http://www.w3.org/2000/svg"', "")
        assert not re.search(r"https?://|@import|url\(", text)
    missing, _ = await get(f"{dashboard}/static/nothing.js")
    assert missing.status == 404


async def test_postgres_down_still_answers(settings: Settings) -> None:
    """With PostgreSQL unreachable every endpoint answers and ledger_source_up{postgres} is 0."""
    runner, url = await start_dashboard(dataclasses.replace(settings, database_url=UNAVAILABLE))
    try:
        samples = parse_metrics((await get(f"{url}/metrics"))[1])
        assert sample(samples, "ledger_source_up", source="postgres") == 0
        assert sample(samples, "ledger_source_up", source="kafka") == 1
        assert sample(samples, "ledger_projected_height") is None
        assert sample(samples, "ledger_chain_height", ledger=settings.shards[0]) is not None
        status = json.loads((await get(f"{url}/api/status"))[1])
        assert status["sources"]["postgres"]["up"] is False
        assert status["sources"]["postgres"]["error"]
        assert status["rejections"] is None
        assert status["ledgers"][0]["projected_height"] is None
        response, _ = await get(f"{url}/")
        assert response.status == 200
    finally:
        await runner.cleanup()


async def test_kafka_down_still_answers(settings: Settings) -> None:
    """With Kafka unreachable every endpoint answers and ledger_source_up{kafka} is 0."""
    runner, url = await start_dashboard(
        dataclasses.replace(
            settings,
            kafka_access=dataclasses.replace(
                settings.kafka_access, bootstrap_servers="127.0.0.1:1"
            ),
        )
    )
    try:
        samples = parse_metrics((await get(f"{url}/metrics"))[1])
        assert sample(samples, "ledger_source_up", source="kafka") == 0
        assert sample(samples, "ledger_source_up", source="postgres") == 1
        assert sample(samples, "ledger_chain_height") is None
        assert sample(samples, "ledger_verify_lag_messages") is None
        assert sample(samples, "ledger_projected_height", ledger=settings.shards[0]) is not None
        status = json.loads((await get(f"{url}/api/status"))[1])
        assert status["sources"]["kafka"]["up"] is False
        assert status["lag"]["verify_messages"] is None
    finally:
        await runner.cleanup()


def sealed_chain(count: int, sealer: Signer, ledger: str = "main") -> list[Block]:
    chain: list[Block] = []
    previous = None
    for height in range(count):
        block, previous = build_block(
            previous,
            ledger=ledger,
            envelopes=[],
            sealed_at_ms=1_700_000_000_000 + height,
            source_partition=0,
            source_offset_end=height,
            signing_key=sealer,
        )
        chain.append(block)
    return chain


def test_chain_watcher_stops_at_the_first_bad_block() -> None:
    """A bad seal at height 2 leaves the chain verified to 1 and broken at 2, whatever follows."""
    chain = sealed_chain(5, Signer.generate())
    chain[2] = dataclasses.replace(chain[2], seal=bytes(64))
    shard = ShardChain("main")
    shard.feed([(offset, codec.encode_block(block)) for offset, block in enumerate(chain[:2])])
    assert shard.status() == ChainStatus(1)
    shard.feed([(offset, codec.encode_block(block)) for offset, block in enumerate(chain)])
    status = shard.status()
    assert (status.ok, status.verified_height, status.error_height) == (False, 1, 2)
    assert status.error is not None and "seal" in status.error


def test_chain_watcher_trusts_only_the_genesis_sealer() -> None:
    """A block that links correctly but is sealed by another key than block 0's breaks the chain."""
    genesis_sealer, intruder = Signer.generate(), Signer.generate()
    genesis, checkpoint = build_block(
        None,
        ledger="main",
        envelopes=[],
        sealed_at_ms=1_700_000_000_000,
        source_partition=0,
        source_offset_end=0,
        signing_key=genesis_sealer,
    )
    forged, _ = build_block(
        checkpoint,
        ledger="main",
        envelopes=[],
        sealed_at_ms=1_700_000_000_001,
        source_partition=0,
        source_offset_end=1,
        signing_key=intruder,
    )
    shard = ShardChain("main")
    shard.feed([(0, codec.encode_block(genesis)), (1, codec.encode_block(forged))])
    status = shard.status()
    assert (status.verified_height, status.error_height) == (0, 1)
    assert status.error is not None and "trusted sealer" in status.error


def test_chain_watcher_reports_undecodable_and_null_messages() -> None:
    """Bytes that are not a block, or a null value, break the chain at the expected height."""
    for value in (b"\x00garbage", None):
        shard = ShardChain("main")
        shard.feed([(0, codec.encode_block(sealed_chain(1, Signer.generate())[0])), (1, value)])
        status = shard.status()
        assert (status.verified_height, status.error_height) == (0, 1)


def test_exposition_escapes_labels_and_leaves_out_the_unknown() -> None:
    """Label values round-trip through escaping; values of a down source are absent, not 0."""
    ledger = 'we"ird\\name\nx'
    snapshot = build_snapshot(
        [ledger],
        {
            "kafka": SourceState(False, "refused", 1_000),
            "postgres": SourceState(True, None, 1_000),
        },
        None,
        PostgresFacts(
            ledgers={
                ledger: LedgerRecent(projected_height=7, transactions_10s=50, transactions_60s=60)
            },
            rejections={("INSUFFICIENT_FUNDS", "sequence"): 3},
        ),
        {},
        2_000,
    )
    samples = parse_metrics(exposition(snapshot, 2_500))
    assert sample(samples, "ledger_projected_height", ledger=ledger) == 7
    assert sample(samples, "ledger_throughput_transactions_per_second", window="10s") == 5
    assert sample(samples, "ledger_throughput_transactions_per_second", window="60s") == 1
    assert sample(samples, "ledger_rejections_total", code="INSUFFICIENT_FUNDS") == 3
    assert sample(samples, "ledger_source_up", source="kafka") == 0
    assert sample(samples, "ledger_snapshot_age_seconds") == 1.5
    for name in ("ledger_chain_height", "ledger_project_lag_blocks", "ledger_verify_lag_messages"):
        assert name not in samples
    assert sample(samples, "ledger_confirmation_latency_seconds") is None
