"""The dashboard's witnesses and finality against the real stack: /metrics, /api/status, the page
rendered by its own script, and the SQL behind them on rows made inside a rolled-back transaction.

The running stack's ledger ``main`` has the three local witnesses and threshold 2 (the demo
genesis). Other tests may kill and restart those witnesses meanwhile: every wait on them allows a
restarted witness to replay the chain first.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from support.ledger_fixture import TestLedger
from support.waiting import eventually
from test_dashboard import Samples, get, parse_metrics, sample, start_dashboard

from ledger.client.publisher import Publisher, Sealed
from ledger.kafka.principals import ADMIN
from ledger.local.stack import witness_public_keys
from ledger.model import Posting, Transfer
from ledger.settings import TOPIC_COSIGNATURES, Settings
from ledger.signing import Signer, build_tx_body, key_id
from streams.dashboard.metrics import WitnessSource, wall_ms
from streams.dashboard.page import SCRIPT
from streams.dashboard.prometheus import exposition
from streams.dashboard.snapshot import (
    HEIGHT_NONE,
    WITNESS_STATES,
    LedgerWitnessing,
    SourceState,
    WitnessFacts,
    WitnessRecord,
    behind_after_s,
    behind_lag_blocks,
    build_snapshot,
    witness_state,
)

pytestmark = pytest.mark.services

catch_up_wait_s = 150.0
"""A witness restarted by another test replays the whole chain before it co-signs anew."""

WITNESS_FAMILIES = (
    "ledger_final_height",
    "ledger_finality_threshold",
    "ledger_final_lag_blocks",
    "ledger_evidence_total",
    "ledger_witnesses",
    "ledger_witness_height",
    "ledger_witness_lag_blocks",
    "ledger_witness_last_cosignature_age_seconds",
    "ledger_witness_halted",
    "ledger_witness_state",
    "ledger_ignored_witness_messages_total",
    "ledger_finality_recorder_lag_messages",
)


@pytest.fixture()
async def dashboard(settings: Settings) -> AsyncIterator[str]:
    runner, url = await start_dashboard(settings)
    try:
        yield url
    finally:
        await runner.cleanup()


async def seal_one(settings: Settings, test_ledger: TestLedger) -> Sealed:
    """A fresh sealed transfer on ``main``: a block the witnesses have to co-sign."""
    alice = test_ledger.signer(test_ledger.alice)
    postings = (
        Posting(test_ledger.alice, test_ledger.asset, -1),
        Posting(test_ledger.bob, test_ledger.asset, 1),
    )
    envelope = alice.sign(build_tx_body(test_ledger.ledger, Transfer(postings)))
    async with Publisher(
        settings.kafka(ADMIN), client_id="ledger-dashboard-witness-tests"
    ) as publisher:
        (outcome,) = await publisher.submit_and_wait([envelope], timeout_s=60)
    assert isinstance(outcome, Sealed), outcome
    return outcome


async def policy_threshold(settings: Settings, ledger: str) -> int:
    connection = await asyncpg.connect(settings.database_url)
    try:
        value = await connection.fetchval(
            "SELECT threshold FROM ledger.finality_policies WHERE ledger = $1", ledger
        )
    finally:
        await connection.close()
    return 0 if value is None else int(value)


async def status_of(url: str) -> dict[str, Any]:
    response, body = await get(f"{url}/api/status")
    assert response.status == 200
    status: dict[str, Any] = json.loads(body)
    return status


def finality_of(status: dict[str, Any], ledger: str) -> dict[str, Any]:
    ledgers = status["finality"]["ledgers"]
    assert ledgers is not None, status["sources"]
    (found,) = [item for item in ledgers if item["ledger"] == ledger]
    return found


async def test_metrics_carry_the_witnesses_of_main(
    settings: Settings, test_ledger: TestLedger, dashboard: str
) -> None:
    """Every witness family is on /metrics; main's 3 witnesses co-sign close to the head."""
    ledger = test_ledger.ledger
    sealed = await seal_one(settings, test_ledger)
    local_ids = {key_id(public) for public in witness_public_keys(settings)}
    assert len(local_ids) == 3

    async def scrape() -> Samples:
        response, body = await get(f"{dashboard}/metrics")
        assert response.status == 200
        return parse_metrics(body)

    def caught_up(found: Samples) -> bool:
        heights = {
            labels["witness"]: value
            for labels, value in found.get("ledger_witness_height", [])
            if labels["ledger"] == ledger
        }
        lags = [
            value
            for labels, value in found.get("ledger_witness_lag_blocks", [])
            if labels["ledger"] == ledger
        ]
        return (
            set(heights) == local_ids
            and all(height >= sealed.height for height in heights.values())
            and all(lag <= behind_lag_blocks for lag in lags)
        )

    samples = await eventually(
        scrape,
        caught_up,
        what=f"3 witnesses of {ledger} at height >= {sealed.height} on /metrics",
        timeout_s=catch_up_wait_s,
        interval_s=0.5,
    )
    for name in WITNESS_FAMILIES:
        assert name in samples, name
    assert sample(samples, "ledger_source_up", source="witnesses") == 1
    threshold = await policy_threshold(settings, ledger)
    assert sample(samples, "ledger_finality_threshold", ledger=ledger) == threshold
    assert sample(samples, "ledger_witnesses", ledger=ledger) == 3
    assert (sample(samples, "ledger_final_height", ledger=ledger) or -1) >= sealed.height
    assert sample(samples, "ledger_evidence_total", ledger=ledger) is not None
    assert sample(samples, "ledger_ignored_witness_messages_total") is not None
    for witness in local_ids:
        assert sample(samples, "ledger_witness_halted", ledger=ledger, witness=witness) == 0
        states = {
            labels["state"]: value
            for labels, value in samples["ledger_witness_state"]
            if labels["witness"] == witness
        }
        assert set(states) == set(WITNESS_STATES) and sum(states.values()) == 1
        age = sample(
            samples, "ledger_witness_last_cosignature_age_seconds", ledger=ledger, witness=witness
        )
        assert age is not None and age >= 0


async def test_status_shows_three_cosigning_witnesses_and_the_final_height(
    settings: Settings, test_ledger: TestLedger, dashboard: str
) -> None:
    """Once a sealed transfer is final, /api/status has final height >= its block and the three
    local witnesses co-signing; the final height agrees with analytics.final_height."""
    ledger = test_ledger.ledger
    sealed = await seal_one(settings, test_ledger)
    names = {
        key_id(public): f"witness-{index}"
        for index, public in enumerate(witness_public_keys(settings), start=1)
    }

    def ready(status: dict[str, Any]) -> bool:
        found = finality_of(status, ledger)
        # Final takes 2 of the 3; the test then checks all three reached the block, so it
        # waits for the slowest too.
        return (
            found["final_height"] >= sealed.height
            and [witness["state"] for witness in found["witnesses"]] == ["co-signing"] * 3
            and all(witness["height"] >= sealed.height for witness in found["witnesses"])
        )

    status = await eventually(
        lambda: status_of(dashboard),
        ready,
        what=f"{ledger} final at height {sealed.height} with 3 witnesses co-signing",
        timeout_s=catch_up_wait_s,
        interval_s=0.5,
    )
    found = finality_of(status, ledger)
    assert found["threshold"] == await policy_threshold(settings, ledger)
    assert found["witness_count"] == 3 and found["evidence_count"] == 0
    assert found["final_lag_blocks"] >= 0
    witnesses = found["witnesses"]
    assert {witness["key_id"]: witness["name"] for witness in witnesses} == names
    assert [witness["name"] for witness in witnesses] == sorted(names.values())
    for witness in witnesses:
        assert witness["height"] >= sealed.height
        assert 0 <= witness["lag_blocks"] <= behind_lag_blocks
        assert witness["last_cosignature_age_s"] is not None
        assert witness["evidence_count"] == 0 and witness["evidence_kind"] is None
    assert status["finality"]["evidence_total"] == 0
    assert isinstance(status["finality"]["ignored_messages"], int)

    # The dashboard computes the final height from one row per witness; it must agree with the
    # database's own rule: read it, let the dashboard gather after that, read it again.
    connection = await asyncpg.connect(settings.database_url)
    try:
        before = await connection.fetchval("SELECT analytics.final_height($1)", ledger)
        read_at_ms = wall_ms()
        status = await eventually(
            lambda: status_of(dashboard),
            lambda found: (found["sources"]["witnesses"]["checked_at_ms"] or 0) > read_at_ms,
            what="a witnesses round after reading analytics.final_height",
        )
        after = await connection.fetchval("SELECT analytics.final_height($1)", ledger)
    finally:
        await connection.close()
    assert before <= finality_of(status, ledger)["final_height"] <= after


async def test_junk_on_the_cosignature_topic_is_counted_not_fatal(
    settings: Settings, dashboard: str
) -> None:
    """Bytes that are no cosignature become an ignored message: counted, and every source stays
    up."""
    first = await status_of(dashboard)
    assert first["sources"]["witnesses"]["up"] is True
    before = first["finality"]["ignored_messages"]
    producer = AIOKafkaProducer(**settings.kafka(ADMIN).client_options())
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC_COSIGNATURES, b"\x00not a cosignature", partition=0)
    finally:
        await producer.stop()
    status = await eventually(
        lambda: status_of(dashboard),
        lambda found: (found["finality"]["ignored_messages"] or 0) > before,
        what="the junk cosignature counted as ignored",
        timeout_s=60,
        interval_s=0.5,
    )
    assert all(state["up"] for state in status["sources"].values()), status["sources"]
    samples = parse_metrics((await get(f"{dashboard}/metrics"))[1])
    assert (sample(samples, "ledger_ignored_witness_messages_total") or 0) > before


async def test_witnesses_source_down_leaves_the_rest_up(settings: Settings) -> None:
    """With PostgreSQL unreachable the finality figures are unavailable (null, no series), and
    the page's other figures still come."""
    unavailable = "postgresql://ledger:ledger@127.0.0.1:1/ledger"
    runner, url = await start_dashboard(dataclasses.replace(settings, database_url=unavailable))
    try:
        status = await status_of(url)
        assert status["sources"]["witnesses"]["up"] is False
        assert status["sources"]["witnesses"]["error"]
        assert status["finality"]["ledgers"] is None
        assert status["finality"]["ignored_messages"] is None
        samples = parse_metrics((await get(f"{url}/metrics"))[1])
        assert sample(samples, "ledger_source_up", source="witnesses") == 0
        assert "ledger_final_height" not in samples and "ledger_witness_height" not in samples
        assert sample(samples, "ledger_chain_height", ledger=settings.shards[0]) is not None
    finally:
        await runner.cleanup()


# The SQL on made-up rows: a ledger no one else uses, inside a transaction that is rolled back.

ZERO32 = bytes(32)


async def insert_key(
    connection: Any, ledger: str, signer: Signer, roles: list[str], revoked: int | None = None
) -> str:
    identity = key_id(signer.public_key)
    await connection.execute(
        "INSERT INTO ledger.keys (ledger, key_id, public_key, roles, accounts, registered_height,"
        " registered_seq, revoked_height) VALUES ($1, $2, $3, $4, '{}', 0, 0, $5)",
        ledger,
        identity,
        signer.public_key,
        roles,
        revoked,
    )
    return identity


async def insert_cosignatures(
    connection: Any, ledger: str, signer: Signer, heights: range, signed_ago_s: float = 1.0
) -> None:
    await connection.executemany(
        "INSERT INTO ledger.cosignatures (ledger, height, witness_key_id, witness_key, block_hash,"
        " signature, signed_at) VALUES ($1, $2, $3, $4, $5, $6, now() - make_interval(secs => $7))",
        [
            (
                ledger,
                height,
                key_id(signer.public_key),
                signer.public_key,
                ZERO32,
                bytes(64),
                signed_ago_s,
            )
            for height in heights
        ],
    )


async def insert_ignored(connection: Any, topic: str, partition: int, offsets: range) -> None:
    await connection.executemany(
        'INSERT INTO ledger.ignored_messages (topic, partition, "offset", reason)'
        " VALUES ($1, $2, $3, 'test')",
        [(topic, partition, offset) for offset in offsets],
    )


async def test_witness_rows_give_each_state_and_the_final_height(settings: Settings) -> None:
    """Made-up witnesses in each state, a revoked witness and a non-witness key: the source
    lists the 6 registered witnesses, their states and evidence, and the final height of
    analytics.final_height for thresholds 2, 0 and 7."""
    ledger = f"dashboard-test-{uuid.uuid4().hex[:12]}"
    head = 10
    signers = {name: Signer.generate() for name in "ABCDEFGH"}
    connection = await asyncpg.connect(settings.database_url)
    # Repeatable read: rows other tests commit meanwhile (ignored messages) stay out of the counts.
    transaction = connection.transaction(isolation="repeatable_read")
    await transaction.start()
    try:
        # Blocks 0..9 sealed two minutes ago, the head (10) just now.
        await connection.executemany(
            "INSERT INTO ledger.blocks (ledger, height, hash, prev_hash, tx_root, blocks_root,"
            " tx_count, first_seq, sealed_at, sealer_key, source_partition, source_offset_end,"
            " size_bytes, seal) VALUES ($1, $2, $3, $3, $3, $3, 0, 0,"
            " now() - make_interval(secs => $4), $3, 0, $2, 0, $5)",
            [
                (ledger, height, ZERO32, 0.0 if height == head else 120.0, bytes(64))
                for height in range(head + 1)
            ],
        )
        await connection.execute(
            "INSERT INTO ledger.finality_policies (ledger, threshold, set_height) VALUES ($1, 2, 0)",
            ledger,
        )
        ids = {}
        for name, signer in signers.items():
            roles = ["admin"] if name == "H" else ["witness"]
            ids[name] = await insert_key(
                connection, ledger, signer, roles, revoked=3 if name == "G" else None
            )
        await insert_cosignatures(connection, ledger, signers["A"], range(head + 1))  # at head
        await insert_cosignatures(
            connection, ledger, signers["B"], range(8, head)
        )  # 1 behind, fresh
        await insert_cosignatures(connection, ledger, signers["C"], range(7, 9), 100.0)  # stalled
        await insert_cosignatures(connection, ledger, signers["D"], range(3, 6))  # 5 behind
        await insert_cosignatures(connection, ledger, signers["F"], range(head))  # then evidence
        await insert_cosignatures(connection, ledger, signers["G"], range(head + 1))  # revoked
        for name in ("F", "G"):
            await connection.execute(
                "INSERT INTO ledger.evidence (ledger, height, kind, detail, witness_key_id,"
                " observed_at, message) VALUES ($1, $2, 'EQUIVOCATION', $3, $4, now(), '\\x00')",
                ledger,
                head,
                "a second block at height 10 " + "x" * 500,
                ids[name],
            )

        source = WitnessSource(dataclasses.replace(settings, shards=(ledger,)))
        facts = await source.read(connection)
        witnessing = facts.ledgers[ledger]
        assert witnessing.threshold == 2 and witnessing.head_height == head
        assert witnessing.evidence_count == 2  # the revoked witness's evidence counts too
        by_id = {item.key_id: item for item in witnessing.witnesses}
        assert set(by_id) == {ids[name] for name in "ABCDEF"}
        now_ms = wall_ms()
        states = {
            name: witness_state(by_id[ids[name]], witnessing.head_height, now_ms)
            for name in "ABCDEF"
        }
        assert states == {
            "A": "co-signing",
            "B": "co-signing",
            "C": "behind",
            "D": "behind",
            "E": "silent",
            "F": "halted",
        }
        assert by_id[ids["A"]].next_sealed_at_ms is None
        assert by_id[ids["E"]].height == HEIGHT_NONE
        halted = by_id[ids["F"]]
        assert (halted.evidence_count, halted.evidence_kind, halted.evidence_height) == (
            1,
            "EQUIVOCATION",
            head,
        )
        assert halted.evidence_detail is not None and len(halted.evidence_detail) == 200

        # Heights 10, 9, 8, 5, 9 (E never co-signed, G is revoked): the 2nd highest is 9.
        for threshold, expected in ((2, 9), (0, head), (7, None)):
            await connection.execute(
                "UPDATE ledger.finality_policies SET threshold = $2 WHERE ledger = $1",
                ledger,
                threshold,
            )
            facts = await source.read(connection)
            database = await connection.fetchval("SELECT analytics.final_height($1)", ledger)
            assert database == expected
            final = facts.ledgers[ledger].final_height
            assert final == (HEIGHT_NONE if expected is None else expected), threshold

        snapshot = build_snapshot(
            [ledger],
            {"witnesses": SourceState(True, None, now_ms)},
            None,
            None,
            {},
            now_ms,
            witnesses=facts,
        )
        view = snapshot.to_json()["finality"]["ledgers"][0]
        assert (view["final_height"], view["final_lag_blocks"]) == (HEIGHT_NONE, head + 1)
        assert view["evidence_count"] == 2 and view["witness_count"] == 6
        samples = parse_metrics(exposition(snapshot, now_ms))
        assert sample(samples, "ledger_witness_halted", witness=ids["F"]) == 1
        assert sample(samples, "ledger_witness_height", witness=ids["E"]) == HEIGHT_NONE
        assert sample(samples, "ledger_witness_state", witness=ids["C"], state="behind") == 1
        assert sample(samples, "ledger_evidence_total", ledger=ledger) == 2

        # Ignored messages are counted incrementally; a recount finds the same total.
        topic = f"{ledger}.cosignatures"
        base = (await source.read(connection)).ignored_messages
        await insert_ignored(connection, topic, 0, range(3))
        assert (await source.read(connection)).ignored_messages == base + 3
        await insert_ignored(connection, topic, 0, range(3, 5))
        await insert_ignored(connection, topic, 1, range(10, 12))
        assert (await source.read(connection)).ignored_messages == base + 7
        source.recounted_at_s = float("-inf")
        assert (await source.read(connection)).ignored_messages == base + 7
    finally:
        await transaction.rollback()
        await connection.close()


def test_witness_state_thresholds() -> None:
    """Lag above ``behind_lag_blocks`` or an un-co-signed block older than ``behind_after_s``
    is behind; evidence is halted whatever the heights say."""
    now_ms = 1_800_000_000_000
    fresh = now_ms - 1_000
    stale = now_ms - int(behind_after_s * 1000) - 1

    def record(height: int, next_sealed_at_ms: int | None, evidence: int = 0) -> WitnessRecord:
        return WitnessRecord("0" * 32, height, now_ms, next_sealed_at_ms, evidence)

    assert witness_state(record(100, None), 100, now_ms) == "co-signing"
    assert witness_state(record(100 - behind_lag_blocks, fresh), 100, now_ms) == "co-signing"
    assert witness_state(record(99 - behind_lag_blocks, fresh), 100, now_ms) == "behind"
    assert witness_state(record(99, stale), 100, now_ms) == "behind"
    assert witness_state(record(100, None, evidence=1), 100, now_ms) == "halted"
    assert witness_state(record(HEIGHT_NONE, stale), 100, now_ms) == "silent"
    assert witness_state(record(HEIGHT_NONE, None, evidence=1), 100, now_ms) == "halted"


def test_finality_view_with_kafka_down_and_unknown_ledger() -> None:
    """A configured ledger PostgreSQL knows nothing of has threshold 0 and no witness; the
    final lag falls back to PostgreSQL's head when Kafka is unavailable."""
    facts = WitnessFacts(
        ledgers={"main": LedgerWitnessing(1, 20, 0, (WitnessRecord("a" * 32, 15, 0, 0, 0),), 15)},
        ignored_messages=4,
    )
    snapshot = build_snapshot(["main", "other"], {}, None, None, {}, 1_000, witnesses=facts)
    document = snapshot.to_json()["finality"]
    main, other = document["ledgers"]
    assert (main["final_height"], main["final_lag_blocks"]) == (15, 5)
    assert main["witnesses"][0]["lag_blocks"] == 5
    assert (other["threshold"], other["final_height"], other["witnesses"]) == (0, HEIGHT_NONE, [])
    assert document["ignored_messages"] == 4 and document["recorder_lag_messages"] is None


# The page's own script, run by node against a minimal DOM, on /api/status's real document.

DOM_SHIM = r"""
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
class ClassList {
  constructor() { this.names = new Set(); }
  add(name) { this.names.add(name); }
  remove(name) { this.names.delete(name); }
  contains(name) { return this.names.has(name); }
  toggle(name, on) {
    if (on === undefined) on = !this.names.has(name);
    if (on) this.names.add(name); else this.names.delete(name);
    return on;
  }
}
class Element {
  constructor(tagName) {
    this.tagName = tagName; this.children = []; this.text = ""; this.classList = new ClassList();
    this.dataset = {}; this.style = {}; this.attributes = {};
  }
  set className(value) {
    this.classList = new ClassList();
    for (const name of String(value).split(/\s+/)) if (name) this.classList.add(name);
  }
  get className() { return [...this.classList.names].join(" "); }
  set textContent(value) { this.children = []; this.text = String(value); }
  get textContent() { return this.text + this.children.map((child) => child.textContent).join(""); }
  appendChild(child) { this.children.push(child); return child; }
  replaceChildren(...children) { this.children = children; this.text = ""; }
  setAttribute(name, value) { this.attributes[name] = value; }
  querySelector() { return new Element("path"); }
  get outerHTML() {
    const cls = this.className ? ` class="${this.className}"` : "";
    const inner = this.text + this.children.map((child) => child.outerHTML).join("");
    return `<${this.tagName}${cls}>${inner}</${this.tagName}>`;
  }
}
const elements = {};
globalThis.document = {
  getElementById(id) { return elements[id] ??= new Element("div"); },
  createElement(tagName) { return new Element(tagName); },
};
let served = 0;
globalThis.fetch = async () => ({ ok: true, json: async () => input[served++] });
globalThis.setTimeout = () => {};
const dump = () => ({
  banner: elements["banner"].textContent,
  card: elements["finality-card"].className,
  ledgers: elements["finality-ledgers"].outerHTML,
  empty: elements["finality-empty"].textContent,
  ignored: elements["ignored-messages"].textContent,
});
"""

DOM_SHIM_END = r"""
setImmediate(async () => {
  const rendered = [dump()];
  for (const status of input.slice(1)) { render(status); rendered.push(dump()); }
  process.stdout.write(JSON.stringify(rendered));
});
"""


def render_page(statuses: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Run the page's script on each status document in turn; what it rendered after each."""
    node = shutil.which("node")
    # Node.js is part of the machine this project runs on (no test may skip for want of it).
    assert node is not None, "node is not installed: the page's script cannot be run"
    script = SCRIPT
    completed = subprocess.run(
        [node, "-e", DOM_SHIM + script + DOM_SHIM_END],
        input=json.dumps(statuses),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    rendered: list[dict[str, str]] = json.loads(completed.stdout)
    return rendered


async def test_page_renders_the_witnesses_section(
    settings: Settings, test_ledger: TestLedger, dashboard: str
) -> None:
    """The page's script, fed /api/status, renders main's witnesses with their state tags;
    evidence turns the section red and names the halted witness's evidence; a down source says
    unavailable."""
    for path in set(re.findall(r"\bfinality\.(\w+)", SCRIPT)):
        assert path in (await status_of(dashboard))["finality"], path
    status = await eventually(
        lambda: status_of(dashboard),
        lambda found: (
            found["finality"]["ledgers"] is not None
            and len(finality_of(found, test_ledger.ledger)["witnesses"]) == 3
        ),
        what="main's 3 witnesses on /api/status",
        timeout_s=catch_up_wait_s,
    )
    main = finality_of(status, test_ledger.ledger)
    assert set(re.findall(r"\bf\.(\w+)", SCRIPT)) <= set(main)
    assert set(re.findall(r"\bw\.(\w+)", SCRIPT)) <= set(main["witnesses"][0])

    accused = json.loads(json.dumps(status))
    accused_main = finality_of(accused, test_ledger.ledger)
    accused_main["evidence_count"] = 1
    accused["finality"]["evidence_total"] = 1
    accused_main["witnesses"][0].update(
        state="halted",
        evidence_count=1,
        evidence_kind="EQUIVOCATION",
        evidence_height=7,
        evidence_detail="a second block <b>at</b> height 7",
    )
    down = json.loads(json.dumps(status))
    down["finality"].update(ledgers=None, ignored_messages=None, evidence_total=None)

    normal, red, unavailable = render_page([status, accused, down])
    assert normal["banner"] == "", normal["banner"]
    assert "bad" not in normal["card"].split()
    for witness in main["witnesses"]:
        assert witness["key_id"] in normal["ledgers"]
    assert normal["ledgers"].count('<span class="tag ok">co-signing</span>') == sum(
        witness["state"] == "co-signing" for witness in main["witnesses"]
    )
    assert f"{main['threshold']} of 3" in normal["ledgers"]
    assert normal["ignored"] == f"{status['finality']['ignored_messages']:,}"

    assert "bad" in red["card"].split()
    assert '<div class="big evidence bad">1</div>' in red["ledgers"]
    assert '<span class="tag bad">halted</span>' in red["ledgers"]
    # Values go in as text: the markup in the detail is not markup.
    assert "EQUIVOCATION at height 7: a second block <b>at</b> height 7" in red["ledgers"]
    assert "Evidence against the sealer" in red["ledgers"]

    assert unavailable["ledgers"] == "<div></div>"
    assert unavailable["empty"].startswith("unavailable")


def test_page_without_node_still_names_every_state() -> None:
    """Every state the server sends has a tag colour on the page."""
    for state in WITNESS_STATES:
        assert f'"{state}":' in SCRIPT, state


async def test_two_rounds_do_not_double_count(settings: Settings) -> None:
    """The incremental ignored count over two rounds equals a plain count(*)."""
    source = WitnessSource(settings)
    try:
        first = await source.gather()
        second = await source.gather()
        connection = await asyncpg.connect(settings.database_url)
        try:
            total = await connection.fetchval("SELECT count(*) FROM ledger.ignored_messages")
        finally:
            await connection.close()
        # Rows may arrive between the reads, never leave.
        assert first.ignored_messages <= second.ignored_messages <= total
    finally:
        await source.close()
