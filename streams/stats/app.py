"""The stats faust app: two agents, four windowed tables, one timer (see ``streams.stats``).

``build_app(settings)`` declares everything; ``python -m streams.stats`` runs it as a worker.
Everything that decides a figure lives in ``figures`` and ``summary``; this module moves bytes
between Kafka, those functions and faust's tables.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted, ProducerSendError
from prometheus_client import Counter

from ledger import codec, limits
from ledger.errors import DecodeError
from ledger.kafka.principals import STATS, STATS_APP
from ledger.kafka.wire import plain
from ledger.kafka_access import KafkaAccess
from ledger.settings import TOPIC_BLOCKS, TOPIC_REJECTIONS, TOPIC_STATS, Settings
from streams.stats.figures import (
    MINUTES,
    WINDOW_SPECS,
    BlockWindow,
    RecentSources,
    RejectionWindow,
    WindowSpec,
    add_block,
    add_rejection,
    block_increment,
    empty_block_window,
    empty_rejection_window,
    is_kept,
    rejection_increment,
)
from streams.stats.summary import (
    SUMMARY_KEY,
    Summary,
    TableKey,
    encode_summary,
    published_minute_windows_count,
    published_second_windows_count,
    summary_bytes_max,
    window_figures,
)
from streams.stats.transport import ReadCommittedTransport

log = logging.getLogger("ledger.stats")

APP_ID = STATS_APP
"""Also the consumer group and the prefix of the changelog topics (``ledger-stats-*-changelog``)."""

changelog_replication = 1
"""As ``ledger up`` creates the ledger topics (a single local broker); a replicated cluster
wants 3, like every topic there (README, "Configuration")."""

publish_interval_s = 1.0
"""The dashboard gathers every second; a fresher summary would not be seen."""

block_produce_delay_ms_max = 10 * 60 * 1_000
"""A block reaches Kafka within seconds of its seal. A block whose Kafka timestamp is older than
the longest kept window plus this cannot fall into a kept window, so it is skipped undecoded:
a fresh consumer group reads the whole chain, and decoding all of it would cost minutes."""

stream_buffer_max_count = 128
"""Messages faust buffers per partition ahead of the agent: a block can be megabytes."""

poll_records_max_count = 500
table_cleanup_interval_s = 10.0
"""How often faust drops expired windows; windows are kept for minutes, so this is plenty."""

rejection_sources_kept_count = 200_000
"""Rejection sources remembered to drop verify redeliveries: a verify restart re-verifies at
most a few batches (2,000 each), so this spans minutes of a heavy rejection flood."""

longest_kept_ms = max(spec.kept_ms for spec in WINDOW_SPECS)


PUBLISH_ERRORS = (KafkaError, OSError, ProducerSendError, ConsumerNotStarted)
"""What publishing a summary can meet while Kafka is away or the worker is (re)starting."""

SUMMARIES_PUBLISHED = Counter(
    "ledger_stats_summaries_published", "Summaries published to ledger.stats (one a second)."
)
"""This process's own health (streams.telemetry); the figures it publishes reach Prometheus
through the dashboard's /metrics."""


def wall_ms() -> int:
    return int(time.time() * 1000)


class StatsTables:
    """The windowed tables and the in-memory progress of one stats worker."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.ledgers = settings.shards
        partition_count = len(settings.shards)
        # (kind, window spec name) -> the faust table, and the same table windowed (tumbling).
        self.tables: dict[tuple[str, str], Any] = {}
        self.windows: dict[tuple[str, str], Any] = {}
        defaults = {"blocks": empty_block_window, "rejections": empty_rejection_window}
        for spec in WINDOW_SPECS:
            for kind, default in defaults.items():
                table = app.Table(
                    f"{kind}-{spec.name}",
                    default=default,
                    partitions=partition_count,
                    help=f"{kind} per (partition, ledger) per {spec.name} window",
                    # faust sets retention = the keep time; without smaller segments neither
                    # retention nor compaction ever reaches the active one (7 days by default),
                    # and every restart would replay days of window writes.
                    extra_topic_configs={"segment.ms": str(spec.kept_ms)},
                )
                self.tables[(kind, spec.name)] = table
                self.windows[(kind, spec.name)] = table.tumbling(
                    spec.size_ms / 1000, expires=spec.kept_ms / 1000
                )
        self.sources = RecentSources(rejection_sources_kept_count)
        self.positions: dict[str, dict[int, int]] = {TOPIC_BLOCKS: {}, TOPIC_REJECTIONS: {}}
        self.heights: dict[str, int] = {}

    def on_block(
        self, partition: int, offset: int, timestamp_s: float, value: bytes | None
    ) -> None:
        """Count one ``ledger.blocks`` message; skips (with a log line) what does not decode."""
        self.positions[TOPIC_BLOCKS][partition] = offset + 1
        now_ms = wall_ms()
        if timestamp_s * 1000 < now_ms - longest_kept_ms - block_produce_delay_ms_max:
            return
        if value is None:
            log.warning(
                "skipping an empty block message at partition %d offset %d", partition, offset
            )
            return
        try:
            # No canonical re-encoding: a count reads the decoded values, whatever their
            # spelling, and the dashboard's chain watcher is the one that verifies blocks.
            block = codec.decode_block(plain(value, "Block"), canonical_check=False)
        except DecodeError as exc:
            log.warning("skipping a block at partition %d offset %d: %s", partition, offset, exc)
            return
        header = block.header
        self.heights[header.ledger] = max(self.heights.get(header.ledger, -1), header.height)
        # The guards first: a block re-read after a restart is skipped before its envelopes are
        # decoded, which is most of the cost.
        pending = [
            spec
            for spec in WINDOW_SPECS
            if is_kept(spec, header.sealed_at_ms, now_ms)
            and not self._counted(
                spec, partition, header.ledger, header.sealed_at_ms, header.height
            )
        ]
        if not pending:
            return
        increment = block_increment(block)
        if increment.undecodable_count:
            log.warning(
                "block %d of %s: %d sealed envelopes do not decode; left out of the volume",
                increment.height,
                increment.ledger,
                increment.undecodable_count,
            )
        for spec in pending:
            # relative_to(seconds): faust places the write in the window of the block's seal
            # time, not of the message's arrival, so a replay lands in the same windows.
            windows = self.windows[("blocks", spec.name)].relative_to(increment.event_ms / 1000)
            key = (partition, increment.ledger)
            updated = add_block(cast(BlockWindow, windows[key].value()), increment)
            assert updated is not None, "checked by _counted above, with no await in between"
            windows[key] = updated

    def _counted(
        self, spec: WindowSpec, partition: int, ledger: str, event_ms: int, height: int
    ) -> bool:
        """True when the block's window counted it already (it was read again after a restart)."""
        windows = self.windows[("blocks", spec.name)].relative_to(event_ms / 1000)
        window = cast(BlockWindow, windows[(partition, ledger)].value())
        return height <= window["height"]

    def on_rejection(self, partition: int, offset: int, value: bytes | None) -> None:
        """Count one ``ledger.rejections`` message; skips (with a log line) what does not decode."""
        self.positions[TOPIC_REJECTIONS][partition] = offset + 1
        if value is None:
            log.warning("skipping an empty rejection at partition %d offset %d", partition, offset)
            return
        try:
            increment = rejection_increment(
                codec.decode_rejection(plain(value, "Rejection")), self.ledgers
            )
        except DecodeError as exc:
            log.warning(
                "skipping a rejection at partition %d offset %d: %s", partition, offset, exc
            )
            return
        if self.sources.seen_before(increment.source):
            log.info(
                "rejection of %s refused again (a verify redelivery): counted once",
                increment.source,
            )
            return
        now_ms = wall_ms()
        for spec in WINDOW_SPECS:
            if not is_kept(spec, increment.event_ms, now_ms):
                continue
            windows = self.windows[("rejections", spec.name)].relative_to(increment.event_ms / 1000)
            key = (partition, increment.ledger)
            updated = add_rejection(cast(RejectionWindow, windows[key].value()), increment, offset)
            if updated is None:
                log.debug(
                    "rejection at partition %d offset %d already counted in its %s window "
                    "(redelivered after a restart)",
                    partition,
                    offset,
                    spec.name,
                )
                continue
            windows[key] = updated

    def summary(self, now_ms: int, assigned: Iterable[tuple[str, int]]) -> Summary:
        """The figures to publish: recent windows, heights, read positions, partitions held."""
        spans = {"second": published_second_windows_count, "minute": published_minute_windows_count}
        figures = {}
        for spec in WINDOW_SPECS:
            since_ms = now_ms - now_ms % spec.size_ms - spans[spec.name] * spec.size_ms
            figures[spec.name] = window_figures(
                spec,
                _items(self.tables[("blocks", spec.name)]),
                _items(self.tables[("rejections", spec.name)]),
                since_ms,
            )
        heights = dict(self.heights)
        # After a restart the heights of blocks counted before it are in the recovered windows.
        for ((_, ledger), _), window in _items(self.tables[("blocks", MINUTES.name)]):
            heights[ledger] = max(heights.get(ledger, -1), window["height"])
        held: dict[str, list[int]] = {TOPIC_BLOCKS: [], TOPIC_REJECTIONS: []}
        for topic, partition in assigned:
            if topic in held:
                held[topic].append(partition)
        return Summary(
            published_at_ms=now_ms,
            seconds=figures["second"],
            minutes=figures["minute"],
            heights=heights,
            positions={topic: dict(offsets) for topic, offsets in self.positions.items()},
            assigned={topic: tuple(sorted(partitions)) for topic, partitions in held.items()},
        )


def _items(table: Any) -> list[tuple[TableKey, Any]]:
    # A copy: faust's expiry may delete windows between two awaits of the caller.
    return list(table.data.items())


def faust_credentials(kafka: KafkaAccess) -> faust.types.auth.CredentialsT | None:
    """The same identity faust's own aiokafka clients present."""
    if kafka.username is not None:
        return faust.SASLCredentials(
            username=kafka.username,
            password=kafka.password,
            mechanism=kafka.mechanism,
            ssl_context=kafka.ssl_context(),
        )
    context = kafka.ssl_context()
    return None if context is None else faust.SSLCredentials(context)


def build_app(settings: Settings) -> faust.App:
    """The stats app, its agents and its publishing timer."""
    datadir = settings.data_dir / "faust" / "stats"
    datadir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    partition_count = len(settings.shards)
    kafka = settings.kafka(STATS)
    app = faust.App(
        APP_ID,
        broker=";".join(f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")),
        broker_credentials=faust_credentials(kafka),
        store="memory://",
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        web_enabled=False,
        topic_disable_leader=True,
        # The broker runs with auto.create.topics.enable=false: faust creates the changelog
        # topics itself, through its admin requests, with these counts.
        topic_allow_declare=True,
        topic_partitions=partition_count,
        topic_replication_factor=changelog_replication,
        table_standby_replicas=0,
        table_cleanup_interval=table_cleanup_interval_s,
        # A new consumer group starts at the beginning of both topics: the figures of every
        # window still kept are rebuilt from the events themselves.
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_commit_every=1_000,
        broker_commit_interval=1.0,
        broker_max_poll_records=poll_records_max_count,
        stream_buffer_maxsize=stream_buffer_max_count,
        producer_acks=-1,
        producer_linger_ms=5,
        producer_max_request_size=limits.message_bytes_max,
        consumer_max_fetch_size=limits.message_bytes_max,
    )
    # Before anything asks the app for its transport (topics and tables do, lazily).
    app.transport = ReadCommittedTransport(app.conf.broker_consumer, app)
    tables = StatsTables(app, settings)
    blocks = app.topic(TOPIC_BLOCKS, key_type=bytes, value_type=bytes)
    rejections = app.topic(TOPIC_REJECTIONS, key_type=bytes, value_type=bytes)
    stats = app.topic(TOPIC_STATS, key_type=bytes, value_type=bytes)

    @app.agent(blocks, name="ledger-stats.blocks")
    async def count_blocks(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            tables.on_block(message.partition, message.offset, message.timestamp, event.value)

    @app.agent(rejections, name="ledger-stats.rejections")
    async def count_rejections(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            tables.on_rejection(message.partition, message.offset, event.value)

    async def publish() -> None:
        # Mid-rebalance or mid-recovery the tables hold part of the figures: publish nothing
        # rather than a dip, and the dashboard shows the last summary aging.
        if app.rebalancing or app.in_recovery:
            return
        try:
            assigned = [(tp.topic, tp.partition) for tp in app.consumer.assignment()]
            raw = encode_summary(tables.summary(wall_ms(), assigned))
            if len(raw) > summary_bytes_max:
                log.error(
                    "stats summary of %d bytes is over %d: not published",
                    len(raw),
                    summary_bytes_max,
                )
                return
            await stats.send(key=SUMMARY_KEY, value=raw)
            SUMMARIES_PUBLISHED.inc()
        except PUBLISH_ERRORS as exc:
            # The next tick tries again; the dashboard shows the summary aging meanwhile.
            log.warning("publishing the stats summary failed: %s: %s", type(exc).__name__, exc)

    for agent in (count_blocks, count_rejections):
        # _ReadCommittedConsumer._new_offset relies on in-order acknowledgement.
        assert agent.concurrency == 1, agent

    # Called, not used as a decorator: faust's timer decorator is untyped.
    app.timer(interval=publish_interval_s, name="ledger-stats.publish")(publish)
    return app
