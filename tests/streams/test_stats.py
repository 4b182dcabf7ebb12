"""The stats process: pure windowing and guards, then its figures against PostgreSQL on the stack."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import faust
import pytest
from aiokafka import TopicPartition
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from support.ledger_fixture import TestLedger, insufficient_amount
from support.waiting import eventually

from ledger import codec
from ledger.blocks import build_block
from ledger.client.publisher import Publisher, Refused, Sealed
from ledger.errors import DecodeError
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import ADMIN
from ledger.kafka.wire import plain
from ledger.model import Envelope, Hold, Posting, RejectionRecord, Transfer
from ledger.settings import TOPIC_BLOCKS, TOPIC_REJECTIONS, TOPIC_STATS, Settings
from ledger.signing import Signer, build_tx_body
from streams.dashboard import server
from streams.dashboard.page import SCRIPT
from streams.dashboard.snapshot import StatsFacts, StreamLedger, build_snapshot
from streams.stats.app import build_app
from streams.stats.figures import (
    MINUTES,
    OTHER_LEDGER,
    SECONDS,
    BlockIncrement,
    RecentSources,
    RejectionIncrement,
    WindowSpec,
    add_block,
    add_rejection,
    block_increment,
    empty_block_window,
    empty_rejection_window,
    is_kept,
    rejection_increment,
    window_start_ms,
)
from streams.stats.summary import (
    Summary,
    WindowFigures,
    decode_summary,
    encode_summary,
    recent,
    window_figures,
)
from streams.stats.transport import restart_rewind_count

NOW_MS = 1_800_000_000_000
wait_s = 25.0
"""The whole integration test stays under 30 s; the stack seals and projects in about one."""
poll_s = 0.2

settle_ms = 1_500
"""A refusal or a block reaches Kafka within this of its timestamp: after it, no more events
of a closed interval can arrive."""


# --- pure: windows, increments, guards ---------------------------------------------------------


def transfer(signer: Signer, *legs: tuple[str, str, int]) -> bytes:
    postings = tuple(Posting(account, asset, amount) for account, asset, amount in legs)
    return signer.sign(build_tx_body("main", Transfer(postings), now_ms=NOW_MS))


def test_window_start_and_keep() -> None:
    """Windows start at multiples of their size; one is kept while younger than its spec says."""
    assert window_start_ms(NOW_MS + 999, SECONDS.size_ms) == NOW_MS
    assert window_start_ms(NOW_MS + 1_000, SECONDS.size_ms) == NOW_MS + 1_000
    assert window_start_ms(NOW_MS + 59_999, MINUTES.size_ms) == NOW_MS
    assert is_kept(SECONDS, NOW_MS - SECONDS.kept_ms + 1_000, NOW_MS)
    assert not is_kept(SECONDS, NOW_MS - SECONDS.kept_ms - 1, NOW_MS)
    assert is_kept(MINUTES, NOW_MS - SECONDS.kept_ms - 1, NOW_MS)


def test_block_increment_counts_every_sealed_tx_and_positive_transfer_legs() -> None:
    """A block's increment: every transaction sealed, volume = positive Transfer legs per asset."""
    alice = Signer.generate()
    envelopes = [
        transfer(alice, ("alice", "USD", -5), ("bob", "USD", 5)),
        transfer(alice, ("a", "USD", -7), ("b", "USD", 3), ("c", "USD", 4)),
        transfer(alice, ("a", "USD", -2), ("b", "USD", 2), ("x", "EUR", -9), ("y", "EUR", 9)),
        alice.sign(build_tx_body("main", Hold("a", "b", "USD", 100, NOW_MS + 1), now_ms=NOW_MS)),
    ]
    block, _ = build_block(
        None,
        ledger="main",
        envelopes=envelopes,
        sealed_at_ms=NOW_MS + 123,
        source_partition=0,
        source_offset_end=4,
        signing_key=Signer.generate(),
    )
    increment = block_increment(block)
    assert increment == BlockIncrement(
        ledger="main",
        height=0,
        event_ms=NOW_MS + 123,
        sealed_count=4,
        volume={"USD": 5 + 7 + 2, "EUR": 9},
        undecodable_count=0,
    )


def test_rejection_increment_labels_unknown_ledgers_as_one() -> None:
    """Rejections of configured ledgers keep their name; any other name, or none, is (other)."""

    def rejection(ledger: str | None) -> RejectionRecord:
        return RejectionRecord(
            "BAD_SIGNATURE", "no", "verify", "ledger.submissions", 1, 7, NOW_MS, ledger=ledger
        )

    assert rejection_increment(rejection("main"), ["main"]).ledger == "main"
    assert rejection_increment(rejection("invented"), ["main"]).ledger == OTHER_LEDGER
    increment = rejection_increment(rejection(None), ["main"])
    assert increment.ledger == OTHER_LEDGER
    assert increment.source == ("ledger.submissions", 1, 7)


def test_guards_count_a_redelivered_event_once() -> None:
    """A block at or below a window's height, or a rejection at or below its offset, adds nothing."""
    block = BlockIncrement("main", 5, NOW_MS, 3, {"USD": 10}, 0)
    once = add_block(empty_block_window(), block)
    assert once == {"sealed": 3, "blocks": 1, "volume": {"USD": 10}, "height": 5}
    assert add_block(once, block) is None
    assert add_block(once, BlockIncrement("main", 4, NOW_MS, 1, {}, 0)) is None
    rejection = RejectionIncrement("main", "EXPIRED", NOW_MS, ("ledger.verified", 0, 1))
    counted = add_rejection(empty_rejection_window(), rejection, offset=10)
    assert counted == {"codes": {"EXPIRED": 1}, "offset": 10}
    assert add_rejection(counted, rejection, offset=10) is None
    assert add_rejection(counted, rejection, offset=11) == {"codes": {"EXPIRED": 2}, "offset": 11}


def test_recent_sources_drop_repeats_within_capacity() -> None:
    """A source offered twice is a repeat; the oldest source is forgotten past the capacity."""
    sources = RecentSources(capacity=2)
    assert not sources.seen_before(("t", 0, 1))
    assert sources.seen_before(("t", 0, 1))
    assert not sources.seen_before(("t", 0, 2))
    assert not sources.seen_before(("t", 0, 3))
    assert not sources.seen_before(("t", 0, 1))  # forgotten: capacity 2


Table = dict[tuple[tuple[int, str], tuple[float, float]], Any]


def apply_blocks(table: Table, spec: WindowSpec, increments: Iterable[BlockIncrement]) -> None:
    """What the agent does for one window spec, with a dict for faust's table."""
    for increment in increments:
        start_ms = window_start_ms(increment.event_ms, spec.size_ms)
        key = ((0, increment.ledger), (start_ms / 1000, (start_ms + spec.size_ms) / 1000 - 0.1))
        updated = add_block(table.get(key, empty_block_window()), increment)
        if updated is not None:
            table[key] = updated


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 2_500), min_size=1, max_size=40),
    sizes=st.data(),
    restart=st.data(),
)
def test_replay_after_any_restart_equals_one_pass_and_the_naive_sums(
    gaps: list[int], sizes: st.DataObject, restart: st.DataObject
) -> None:
    """Redelivering any suffix of the blocks (an at-least-once restart) changes no window, and
    every window equals a naive per-window sum of the blocks sealed in it."""
    event_ms, increments = NOW_MS, []
    for height, gap in enumerate(gaps):
        event_ms += gap
        count = sizes.draw(st.integers(0, 50))
        increments.append(BlockIncrement("main", height, event_ms, count, {"USD": 3 * count}, 0))
    crash_at = restart.draw(st.integers(0, len(increments)))
    replay_from = restart.draw(st.integers(0, crash_at))
    for spec in (SECONDS, MINUTES):
        once: Table = {}
        apply_blocks(once, spec, increments)
        crashed: Table = {}
        apply_blocks(crashed, spec, increments[:crash_at])
        apply_blocks(crashed, spec, increments[replay_from:])
        assert crashed == once
        naive: dict[int, int] = {}
        for increment in increments:
            start = window_start_ms(increment.event_ms, spec.size_ms)
            naive[start] = naive.get(start, 0) + increment.sealed_count
        figures = window_figures(spec, once.items(), [], since_ms=0)
        assert {window.start_ms: window.sealed_count for window in figures} == naive
        assert all(window.volume.get("USD", 0) == 3 * window.sealed_count for window in figures)


def test_summary_round_trips_and_recent_leaves_out_the_current_second() -> None:
    """A summary decodes to what was encoded; recent() sums whole seconds before publication."""
    published_ms = NOW_MS + 60_500
    seconds = tuple(
        WindowFigures("main", NOW_MS + index * 1_000, 2, 1, {"USD": 5}, {"EXPIRED": 1})
        for index in range(61)  # the last one is the current, unfinished second
    )
    summary = Summary(
        published_at_ms=published_ms,
        seconds=seconds,
        minutes=(WindowFigures("main", NOW_MS, 120, 60, {"USD": 300}, {}),),
        heights={"main": 60},
        positions={TOPIC_BLOCKS: {0: 121}, TOPIC_REJECTIONS: {0: 61}},
        assigned={TOPIC_BLOCKS: (0,), TOPIC_REJECTIONS: (0,)},
    )
    assert decode_summary(encode_summary(summary)) == summary
    last_10s, last_60s = recent(summary, 10_000)["main"], recent(summary, 60_000)["main"]
    assert (last_10s.sealed_count, last_10s.sealed_per_s) == (20, 2.0)
    assert (last_60s.sealed_count, last_60s.volume, last_60s.rejections) == (
        120,
        {"USD": 300},
        {"EXPIRED": 60},
    )
    assert summary.covers(TOPIC_BLOCKS, 1) and not summary.covers(TOPIC_BLOCKS, 2)
    for garbage in (b"", b"[]", b'{"version": 2}', encode_summary(summary).replace(b"60", b'"x"')):
        with pytest.raises(DecodeError):
            decode_summary(garbage)


# --- the faust consumer overrides (no broker: nothing is started) ----------------------------


@pytest.fixture()
def stats_app(tmp_path: Path) -> faust.App:
    return build_app(dataclasses.replace(Settings.from_env(), data_dir=tmp_path))


async def test_consumer_reads_committed_transactions_only(stats_app: faust.App) -> None:
    """The worker consumer faust builds for the stats app asks Kafka for committed records only."""
    consumer: Any = stats_app.consumer
    client = consumer._thread._create_worker_consumer(stats_app.transport)
    assert client._isolation_level == "read_committed"
    assert client._group_id == "ledger-stats" and client._enable_auto_commit is False


def test_changelogs_are_partitioned_like_the_input_and_expire_with_their_windows(
    stats_app: faust.App,
) -> None:
    """Each table's changelog has one partition per shard, and retention and segments of the
    window's keep time, so a restart replays minutes of window writes, not days."""
    kept_s = {spec.name: spec.kept_ms / 1000 for spec in (SECONDS, MINUTES)}
    names = set()
    for table in stats_app.tables.values():
        topic = table.changelog_topic
        spec_name = table.name.rsplit("-", 1)[1]
        names.add(topic.get_topic_name())
        assert topic.partitions == len(Settings.from_env().shards)
        assert topic.retention == kept_s[spec_name] and topic.compacting and topic.deleting
        assert topic.config == {"segment.ms": str(int(kept_s[spec_name] * 1000))}
    assert names == {
        f"ledger-stats-{kind}-{name}-changelog"
        for kind in ("blocks", "rejections")
        for name in kept_s
    }


def test_commits_reach_past_transaction_markers(stats_app: faust.App) -> None:
    """On a transactional topic (a marker after every block) each commit reaches one past the
    newest acknowledged block and leaves no bookkeeping behind, unlike faust's own."""
    consumer: Any = stats_app.consumer

    def commits(new_offset: Any, tp: TP) -> list[int | None]:
        made = []
        for first in range(0, 400, 40):
            for offset in range(first, first + 40, 2):  # blocks at even offsets, markers between
                consumer._acked[tp].append(offset)
                consumer._acked_index[tp].add(offset)
                if offset:  # what faust's fetcher records on seeing offset two past the last one
                    consumer._gap[tp].addi(offset - 1, offset + 1)
            committed = new_offset(consumer, tp)
            if committed is not None:
                consumer._committed_offset[tp] = committed
            made.append(committed)
        return made

    ours = commits(type(consumer)._new_offset, TP(TOPIC_BLOCKS, 0))
    assert ours == list(range(39, 400, 40))
    assert not any(
        bookkeeping[TP(TOPIC_BLOCKS, 0)]
        for bookkeeping in (consumer._acked, consumer._acked_index, consumer._gap)
    )
    assert consumer._new_offset(TP(TOPIC_BLOCKS, 0)) is None  # nothing acknowledged since
    # Why the override exists: faust's own falls behind by a block per commit.
    theirs = commits(FaustConsumer._new_offset, TP(TOPIC_BLOCKS, 1))
    assert theirs[-1] is not None and theirs[-1] < 100, theirs


async def test_a_start_re_reads_below_the_committed_offsets(stats_app: faust.App) -> None:
    """Every start seeks each input partition a fixed count below its committed offset."""
    consumer: Any = stats_app.consumer
    sought: list[tuple[str, int, int]] = []

    async def committed_offsets() -> dict[TP, int | None]:
        return {TP(TOPIC_BLOCKS, 0): 5_000, TP(TOPIC_REJECTIONS, 0): 70, TP("other", 0): 9}

    def seek(tp: TP, offset: int) -> None:
        sought.append((tp.topic, tp.partition, offset))

    consumer._thread.seek_to_committed = committed_offsets
    consumer._thread.seek = seek
    positions = await consumer.seek_to_committed()
    rewind = restart_rewind_count[TOPIC_BLOCKS]
    assert positions == {
        TP(TOPIC_BLOCKS, 0): 5_000 - rewind,
        TP(TOPIC_REJECTIONS, 0): 0,
        TP("other", 0): 9,
    }
    assert sought == [(TOPIC_BLOCKS, 0, 5_000 - rewind), (TOPIC_REJECTIONS, 0, 0)]


# --- the real stack ---------------------------------------------------------------------------


async def latest_summary(settings: Settings) -> Summary | None:
    """The newest summary on ledger.stats, or None when there is none."""
    consumer = committed_reader(settings.kafka(ADMIN), "ledger-stats-tests")
    partition = TopicPartition(TOPIC_STATS, 0)
    await consumer.start()
    try:
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        if end == 0:
            return None
        consumer.seek(partition, end - 1)
        batch = await consumer.getmany(partition, timeout_ms=2_000)
        values = [message.value for message in batch.get(partition, []) if message.value]
        return decode_summary(values[-1]) if values else None
    finally:
        await consumer.stop()


async def read_rejections(
    settings: Settings, partition: int, start: int | None = None
) -> tuple[list[tuple[int, RejectionRecord]], int]:
    """The committed rejections of ``partition`` from ``start`` (None: none) to its end offset,
    and that end offset."""
    consumer = committed_reader(settings.kafka(ADMIN), "ledger-stats-tests")
    topic_partition = TopicPartition(TOPIC_REJECTIONS, partition)
    await consumer.start()
    try:
        consumer.assign([topic_partition])
        end = (await consumer.end_offsets([topic_partition]))[topic_partition]
        found: list[tuple[int, RejectionRecord]] = []
        if start is None:
            return found, end
        consumer.seek(topic_partition, start)
        while await consumer.position(topic_partition) < end:
            batch = await consumer.getmany(topic_partition, timeout_ms=500)
            for message in batch.get(topic_partition, []):
                if message.value is not None:
                    found.append(
                        (message.offset, codec.decode_rejection(plain(message.value, "Rejection")))
                    )
        return found, end
    finally:
        await consumer.stop()


def sum_windows(
    windows: Iterable[WindowFigures], ledger: str, start_ms: int, end_ms: int
) -> tuple[int, dict[str, int], dict[str, int]]:
    sealed, volume, rejections = 0, dict[str, int](), dict[str, int]()
    for window in windows:
        if window.ledger == ledger and start_ms <= window.start_ms < end_ms:
            sealed += window.sealed_count
            for name, count in window.volume.items():
                volume[name] = volume.get(name, 0) + count
            for name, count in window.rejections.items():
                rejections[name] = rejections.get(name, 0) + count
    return sealed, volume, rejections


def instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.mark.services
async def test_windows_agree_with_postgresql(settings: Settings, test_ledger: TestLedger) -> None:
    """On a known load (transfers, a bad signature, an overdraft) the stats' second windows hold
    exactly PostgreSQL's transactions, Transfer volume and rejections by code for that ledger."""
    ledger, asset = test_ledger.ledger, test_ledger.asset
    partition = settings.shard_partition(ledger)
    assert partition is not None
    alice = test_ledger.signer(test_ledger.alice)

    def pay(amount: int) -> bytes:
        postings = (
            Posting(test_ledger.alice, asset, -amount),
            Posting(test_ledger.bob, asset, amount),
        )
        envelope: bytes = alice.sign(build_tx_body(ledger, Transfer(postings)))
        return envelope

    good = [pay(amount) for amount in range(1, 21)]
    envelope = codec.decode_envelope(pay(1))
    bad_signature = codec.encode_envelope(
        Envelope(envelope.body, envelope.public_key, bytes(64), envelope.body_version)
    )
    _, rejections_start = await read_rejections(settings, partition)
    async with Publisher(settings.kafka(ADMIN), client_id="ledger-stats-tests") as pub:
        outcomes = await pub.submit_and_wait(
            [*good, bad_signature, pay(insufficient_amount)], timeout_s=wait_s
        )
        sealed = [outcome for outcome in outcomes if isinstance(outcome, Sealed)]
        refused = {outcome.tx_id: outcome for outcome in outcomes if isinstance(outcome, Refused)}
        assert len(sealed) == len(good), outcomes
        assert sorted(outcome.code for outcome in refused.values()) == [
            "BAD_SIGNATURE",
            "INSUFFICIENT_FUNDS",
        ]
        # Our rejections as they sit in the topic: their rejected_at_ms bound the interval.
        mine = await eventually(
            lambda: read_rejections(settings, partition, rejections_start),
            lambda found: {r.tx_id for _, r in found[0]} >= set(refused),
            what="our two rejections on ledger.rejections",
            timeout_s=wait_s,
            interval_s=poll_s,
        )
        rejected_at = [r.rejected_at_ms for _, r in mine[0] if r.tx_id in refused]
        blocks = (
            window_start_ms(min(o.sealed_at_ms for o in sealed), SECONDS.size_ms),
            window_start_ms(max(o.sealed_at_ms for o in sealed), SECONDS.size_ms) + 1_000,
        )
        refusals = (
            window_start_ms(min(rejected_at), SECONDS.size_ms),
            window_start_ms(max(rejected_at), SECONDS.size_ms) + 1_000,
        )
        # Wait out the intervals (a clock condition, not a guess): then everything sealed or
        # refused inside them is in Kafka, below a fence block and the rejections' end offset.
        closed_ms = max(blocks[1], refusals[1]) + settle_ms
        await asyncio.sleep(max(0.0, (closed_ms - time.time() * 1000) / 1000))
        [fence] = await pub.submit_and_wait([pay(1)], timeout_s=wait_s)
    assert isinstance(fence, Sealed) and fence.sealed_at_ms >= blocks[1], fence
    # The read_committed reader skips commit markers: the last offset it returns is the newest
    # rejection, and both readers track "next offset" = that + 1.
    rejections_next = (await read_rejections(settings, partition, rejections_start))[0][-1][0] + 1

    connection = await asyncpg.connect(settings.database_url)
    try:

        async def projected() -> dict[str, int]:
            rows = await connection.fetch(
                "SELECT stream, position FROM ledger.tracking WHERE processor = 'project'"
            )
            return {row["stream"]: row["position"] for row in rows}

        await eventually(
            projected,
            lambda found: (
                found.get(f"blocks:{ledger}", -1) >= fence.height
                and found.get(f"rejections:{partition}", 0) >= rejections_next
            ),
            what="PostgreSQL has the fence block and every rejection",
            timeout_s=wait_s,
            interval_s=poll_s,
        )

        def caught_up(summary: Summary | None) -> bool:
            return (
                summary is not None
                and summary.heights.get(ledger, -1) >= fence.height
                and summary.positions.get(TOPIC_REJECTIONS, {}).get(partition, 0) >= rejections_next
            )

        summary = await eventually(
            lambda: latest_summary(settings),
            caught_up,
            what="a stats summary past the fence block and every rejection "
            "(is the stats worker running? .data/workers/stats.log)",
            timeout_s=wait_s,
            interval_s=poll_s,
        )
        stats_sealed, stats_volume, _ = sum_windows(summary.seconds, ledger, *blocks)
        _, _, stats_rejections = sum_windows(summary.seconds, ledger, *refusals)

        pg_sealed = await connection.fetchval(
            "SELECT count(*) FROM ledger.transactions"
            " WHERE ledger = $1 AND sealed_at >= $2 AND sealed_at < $3",
            ledger,
            *map(instant, blocks),
        )
        pg_volume = await connection.fetch(
            "SELECT p.asset, sum(p.amount) AS amount FROM ledger.postings AS p"
            " JOIN ledger.transactions AS t USING (ledger, seq)"
            " WHERE p.ledger = $1 AND p.sealed_at >= $2 AND p.sealed_at < $3"
            " AND t.kind = 'Transfer' AND p.amount > 0 GROUP BY p.asset",
            ledger,
            *map(instant, blocks),
        )
        pg_rejections = await connection.fetch(
            "SELECT code, count(*) AS count FROM ledger.rejections"
            " WHERE ledger = $1 AND rejected_at >= $2 AND rejected_at < $3 GROUP BY code",
            ledger,
            *map(instant, refusals),
        )
    finally:
        await connection.close()
    assert stats_sealed == pg_sealed >= len(good)
    assert stats_volume == {row["asset"]: row["amount"] for row in pg_volume}
    assert stats_volume[asset] >= sum(range(1, 21))
    assert stats_rejections == {row["code"]: row["count"] for row in pg_rejections}
    assert stats_rejections["BAD_SIGNATURE"] >= 1 and stats_rejections["INSUFFICIENT_FUNDS"] >= 1


@pytest.mark.services
async def test_dashboard_shows_the_stats(settings: Settings) -> None:
    """The dashboard reads the stats summary: ledger_source_up{stats} is 1, the stats gauges are
    exported, and /api/status has every stream key the page reads."""
    runner, port = await server.start(settings, port=0)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def fetch(path: str) -> str:
                async with session.get(url + path) as response:
                    assert response.status == 200
                    return await response.text()

            metrics = await eventually(
                lambda: fetch("/metrics"),
                lambda text: 'ledger_source_up{source="stats"} 1' in text,
                what="the dashboard's stats source up",
                timeout_s=wait_s,
                interval_s=poll_s,
            )
            status: Mapping[str, Any] = json.loads(await fetch("/api/status"))
    finally:
        await runner.cleanup()
    for ledger in settings.shards:
        for window in ("10s", "60s"):
            series = f'ledger_stats_transactions_per_second{{ledger="{ledger}",window="{window}"}}'
            assert series in metrics
        assert f'ledger_stats_height{{ledger="{ledger}"}}' in metrics
    assert "ledger_stats_age_seconds " in metrics
    stream = status["stream"]
    assert stream["tx_per_s_10s"] is not None and stream["rejections_60s"] is not None
    assert [item["ledger"] for item in stream["ledgers"]] == list(settings.shards)


def test_status_json_has_every_stream_key_the_page_reads() -> None:
    """The page's stream table, rejection table and throughput card read keys /api/status has,
    with the stats up and down."""
    facts = StatsFacts(
        NOW_MS,
        {
            "main": StreamLedger("main", 1.0, 2.0, {"USD": 3}, {"EXPIRED": 4}, 5),
            OTHER_LEDGER: StreamLedger(OTHER_LEDGER, 0.0, 0.0, {}, {"MALFORMED": 1}, None),
        },
    )
    up = build_snapshot(["main"], {}, None, None, {}, NOW_MS, stats=facts).to_json()["stream"]
    down = build_snapshot(["main"], {}, None, None, {}, NOW_MS).to_json()["stream"]
    assert up["tx_per_s_60s"] == 2.0 and up["rejections_60s"][0]["count"] == 4
    assert [item["ledger"] for item in up["ledgers"]] == ["main"]
    assert set(down) == set(up) and down["rejections_60s"] is None and down["ledgers"] == []
    assert set(re.findall(r"\bstream\.(\w+)", SCRIPT)) <= set(up)
    assert set(re.findall(r"\bs\.(\w+)", SCRIPT)) <= set(up["ledgers"][0])
    assert set(re.findall(r"\bq\.(\w+)", SCRIPT)) <= set(up["rejections_60s"][0])
