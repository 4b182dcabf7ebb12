"""Gathering: one background loop per source, each bounded by timeouts, none able to crash the page.

- ``KafkaSource``: end offsets of ``ledger.submissions``, ``ledger.verified`` and
  ``ledger.blocks``; the faust group's committed offsets (verify lag); the newest committed block
  of each shard (chain height, sealed transactions, ``source_offset_end`` for sequence lag).
- ``PostgresSource``: tracking rows (projected height), recent blocks (throughput), recent
  transactions (confirmation and visibility latency), rejections by code and stage.
- ``StatsSource`` (``streams.dashboard.stats``): the newest summary of the stats process
  (windowed figures from the block stream and the rejections, by event time).
- ``WitnessSource``: each ledger's finality threshold and newest block, every registered witness's
  highest cosignature and evidence, the count of ignored cosignature and evidence messages (the
  finality recorder's tables, ``streams.finality``). Its own connection: a failure there (say, a
  database without migration 0006) leaves the other PostgreSQL figures up.
- ``ChainWatcher`` (``streams.dashboard.chain``): verified height or the first broken block.

``Gatherer`` owns the five loops and combines their latest facts into a ``Snapshot`` on demand;
every few seconds it keeps one in its ``History`` (``streams.dashboard.history``) for the charts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ledger import codec
from ledger.errors import DecodeError, LedgerError
from ledger.kafka.blockstream import blocks_consumer
from ledger.kafka.clients import VERIFY_GROUP, admin_client
from ledger.kafka.principals import READER
from ledger.kafka.wire import plain
from ledger.settings import (
    TOPIC_BLOCKS,
    TOPIC_COSIGNATURES,
    TOPIC_EVIDENCE,
    TOPIC_SUBMISSIONS,
    TOPIC_VERIFIED,
    Settings,
)
from streams.dashboard import queries
from streams.dashboard.chain import ChainWatcher
from streams.dashboard.history import History
from streams.dashboard.snapshot import (
    HEIGHT_NONE,
    KafkaFacts,
    PostgresFacts,
    ShardTip,
    Snapshot,
    SourceState,
    StatsFacts,
    WitnessFacts,
    build_snapshot,
)
from streams.dashboard.stats import StatsSource

log = logging.getLogger("ledger.dashboard")

gather_interval_s = 1.0
"""How often each source is read: the page polls at the same rate."""

source_timeout_s = 3.0
"""One whole gathering of one source; past it the source shows as down until the next round."""

kafka_request_timeout_ms = 2_500
query_timeout_s = 2.0
connect_timeout_s = 2.0
close_timeout_s = 2.0
assert kafka_request_timeout_ms / 1000 < source_timeout_s
assert query_timeout_s < source_timeout_s and connect_timeout_s < source_timeout_s

tail_fetch_wait_ms = 200
tail_lookback_min_count = 2
"""A committed block is followed by its transaction's commit marker, so the newest block
usually sits two offsets below the end; aborted transactions push it further back."""

tail_lookback_growth = 8

VERIFY_CONSUMER_GROUP = VERIFY_GROUP
"""The verify workers' consumer group: its committed offsets are the verify stage's progress."""

rejections_recount_s = 60.0
"""Rejections are counted incrementally by id; a full recount this often repairs any row a
concurrent writer committed out of id order, or a database that was recreated."""

FactsT = TypeVar("FactsT")


def wall_ms() -> int:
    return int(time.time() * 1000)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return type(exc).__name__ + (f": {text}" if text else "")


class KafkaSource:
    """Offsets and the newest block of each shard, through one consumer and one admin client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: AIOKafkaConsumer | None = None
        self.admin: AIOKafkaAdminClient | None = None
        # Per blocks partition: the end offset last seen and the tip read at it.
        self.tips: dict[int, tuple[int, ShardTip]] = {}

    async def gather(self) -> KafkaFacts:
        consumer, admin = await self._clients()
        submissions = [
            TopicPartition(TOPIC_SUBMISSIONS, index)
            for index in range(self.settings.submission_partitions)
        ]
        shard_count = len(self.settings.shards)
        verified = [TopicPartition(TOPIC_VERIFIED, index) for index in range(shard_count)]
        blocks = [TopicPartition(TOPIC_BLOCKS, index) for index in range(shard_count)]
        witnessed = [
            TopicPartition(topic, index)
            for topic in (TOPIC_COSIGNATURES, TOPIC_EVIDENCE)
            for index in range(shard_count)
        ]
        end = await consumer.end_offsets(submissions + verified + blocks + witnessed)
        committed = await admin.list_consumer_group_offsets(
            VERIFY_CONSUMER_GROUP, partitions=submissions
        )
        positions = {
            topic_partition: metadata.offset
            for topic_partition, metadata in committed.items()
            if metadata.offset >= 0
        }
        never_committed = [tp for tp in submissions if tp not in positions]
        if never_committed:
            # faust starts an uncommitted partition at its beginning (auto_offset_reset earliest).
            positions.update(await consumer.beginning_offsets(never_committed))
        verify_lag = sum(max(0, end[tp] - positions[tp]) for tp in submissions)
        tips = {}
        for index, ledger in enumerate(self.settings.shards):
            tip = await self._tip(consumer, blocks[index], end[blocks[index]], ledger)
            if tip is None:
                continue
            tips[ledger] = ShardTip(
                ledger=ledger,
                height=tip.height,
                sealed_transactions=tip.sealed_transactions,
                sealed_at_ms=tip.sealed_at_ms,
                source_offset_end=tip.source_offset_end,
                verified_end_offset=end[verified[index]],
            )
        return KafkaFacts(
            tips=tips,
            verify_lag_messages=verify_lag,
            witness_end_offsets={f"{tp.topic}:{tp.partition}": end[tp] for tp in witnessed},
        )

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        if self.consumer is None or self.admin is None:
            await self.close()
            consumer = blocks_consumer(self.settings.kafka(READER), client_id="ledger-dashboard")
            admin = admin_client(
                self.settings.kafka(READER),
                "ledger-dashboard-admin",
                kafka_request_timeout_ms,
            )
            self.consumer, self.admin = consumer, admin
            await consumer.start()
            await admin.start()
            blocks = [
                TopicPartition(TOPIC_BLOCKS, index) for index in range(len(self.settings.shards))
            ]
            consumer.assign(blocks)
            # Paused between reads, so the consumer does not prefetch blocks nobody asked for.
            consumer.pause(*blocks)
        return self.consumer, self.admin

    async def _tip(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, end: int, ledger: str
    ) -> ShardTip | None:
        """The newest committed block below ``end``; read again only when ``end`` moved.

        None when that block does not decode: the chain watcher reports the broken chain, and
        the other figures from Kafka stay available.
        """
        cached = self.tips.get(partition.partition)
        if cached is not None and cached[0] == end:
            return cached[1]
        value = await self._last_value(consumer, partition, end)
        if value is None:
            tip = ShardTip(ledger, HEIGHT_NONE, 0, None, 0, 0)
        else:
            try:
                header = codec.decode_block(plain(value, "Block")).header
            except DecodeError as exc:
                log.error("the newest block of %s does not decode: %s", partition, exc)
                return None
            tip = ShardTip(
                ledger=ledger,
                height=header.height,
                sealed_transactions=header.first_seq + header.tx_count,
                sealed_at_ms=header.sealed_at_ms,
                source_offset_end=header.source_offset_end,
                verified_end_offset=0,
            )
        self.tips[partition.partition] = (end, tip)
        return tip

    async def _last_value(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, end: int
    ) -> bytes | None:
        """Seek a little below ``end`` and read up to it; look further back while nothing shows.

        The read_committed consumer skips commit markers and aborted blocks, so what it returns
        last is the newest committed block. The caller's timeout bounds the whole search.
        """
        consumer.resume(partition)
        try:
            return await self._search_back(consumer, partition, end)
        finally:
            consumer.pause(partition)

    async def _search_back(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, end: int
    ) -> bytes | None:
        lookback = tail_lookback_min_count
        while True:
            start = max(0, end - lookback)
            consumer.seek(partition, start)
            last: bytes | None = None
            while await consumer.position(partition) < end:
                batch = await consumer.getmany(partition, timeout_ms=tail_fetch_wait_ms)
                for message in batch.get(partition, []):
                    if message.offset < end and message.value is not None:
                        last = message.value
            if last is not None or start == 0:
                return last
            lookback *= tail_lookback_growth

    async def close(self) -> None:
        consumer, admin, self.consumer, self.admin = self.consumer, self.admin, None, None
        if consumer is not None:
            await _bounded(consumer.stop, "Kafka consumer")
        if admin is not None:
            await _bounded(admin.close, "Kafka admin client")


class PostgresSource:
    """One read-only connection; any failure drops it and the next round connects again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connection: Any = None
        self.rejections: dict[tuple[str, str], int] = {}
        self.rejections_last_id = 0
        self.recounted_at_s = -math.inf

    async def gather(self) -> PostgresFacts:
        connection = await self._connection()
        shards = list(self.settings.shards)
        tracking = await connection.fetch(
            queries.TRACKING, queries.PROCESSOR, timeout=query_timeout_s
        )
        throughput = await connection.fetch(
            queries.THROUGHPUT, shards, queries.recent_blocks_max_count, timeout=query_timeout_s
        )
        latency = await connection.fetch(
            queries.LATENCY,
            shards,
            queries.latency_sample_max_count,
            queries.latency_window_s,
            timeout=query_timeout_s,
        )
        await self._count_rejections(connection)
        return queries.postgres_facts(shards, tracking, throughput, latency, self.rejections)

    async def _count_rejections(self, connection: Any) -> None:
        recount = time.monotonic() - self.recounted_at_s >= rejections_recount_s
        since_id = 0 if recount else self.rejections_last_id
        rows = await connection.fetch(queries.REJECTIONS_SINCE, since_id, timeout=query_timeout_s)
        counts = {} if recount else dict(self.rejections)
        last_id = since_id
        for row in rows:
            key = (row["code"], row["stage"])
            counts[key] = counts.get(key, 0) + row["count"]
            last_id = max(last_id, row["last_id"])
        self.rejections, self.rejections_last_id = counts, last_id
        if recount:
            self.recounted_at_s = time.monotonic()

    async def _connection(self) -> Any:
        if self.connection is None or self.connection.is_closed():
            self.connection = await _connect(self.settings)
        return self.connection

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        _terminate(connection)


class WitnessSource:
    """Finality figures from PostgreSQL, through a read-only connection of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connection: Any = None
        self.ignored = queries.IgnoredCount()
        self.recounted_at_s = -math.inf
        self.names: dict[bytes, str] = {}
        self.names_read_at_s = -math.inf

    async def gather(self) -> WitnessFacts:
        if self.connection is None or self.connection.is_closed():
            self.connection = await _connect(self.settings)
        return await self.read(self.connection)

    async def read(self, connection: Any) -> WitnessFacts:
        """One round on ``connection`` (the tests pass one inside a transaction)."""
        shards = list(self.settings.shards)
        ledgers = await connection.fetch(queries.FINALITY_LEDGERS, shards, timeout=query_timeout_s)
        witnesses = await connection.fetch(queries.WITNESSES, shards, timeout=query_timeout_s)
        tracking = await connection.fetch(
            queries.TRACKING_ALL, queries.FINALITY_PROCESSOR, timeout=query_timeout_s
        )
        await self._count_ignored(connection)
        return queries.witness_facts(
            shards, ledgers, witnesses, tracking, self.ignored.total, self._local_names()
        )

    async def _count_ignored(self, connection: Any) -> None:
        if time.monotonic() - self.recounted_at_s >= rejections_recount_s:
            self.ignored.reset()
            self.recounted_at_s = time.monotonic()
        rows = await connection.fetch(
            queries.IGNORED_SINCE, *self.ignored.arguments(), timeout=query_timeout_s
        )
        self.ignored.add(rows)

    def _local_names(self) -> dict[bytes, str]:
        """``witness-N`` by public key, from the ``.pub`` files ``ledger up`` writes; read again
        now and then (keys appear on the first ``up``)."""
        if time.monotonic() - self.names_read_at_s >= witness_names_reread_s:
            self.names = local_witness_names(self.settings)
            self.names_read_at_s = time.monotonic()
        return self.names

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        _terminate(connection)


witness_names_reread_s = 60.0


def local_witness_names(settings: Settings) -> dict[bytes, str]:
    """Public key -> ``witness-N`` for the local stack's witnesses whose ``.pub`` file exists
    (``ledger.local.stack.witness_public_keys`` lists them; the dashboard is below that layer)."""
    names = {}
    for index in range(1, settings.witness_count + 1):
        public = settings.witness_key_file(index).with_suffix(".pub")
        try:
            names[bytes.fromhex(public.read_text().strip())] = f"witness-{index}"
        except (OSError, ValueError):
            continue
    return names


async def _connect(settings: Settings) -> Any:
    return await asyncpg.connect(
        settings.database_url,
        timeout=connect_timeout_s,
        command_timeout=query_timeout_s,
        server_settings={
            "application_name": "ledger-dashboard",
            "default_transaction_read_only": "on",
            # The server gives up too, so an abandoned query never keeps running.
            "statement_timeout": str(int(query_timeout_s * 1000)),
        },
    )


def _terminate(connection: Any) -> None:
    if connection is not None:
        # terminate, not close: after a timeout the connection may be mid-query.
        connection.terminate()


async def _bounded(stop: Callable[[], Awaitable[Any]], what: str) -> None:
    try:
        await asyncio.wait_for(stop(), close_timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("%s did not stop cleanly: %s", what, describe(exc))


class SourceLoop(Generic[FactsT]):
    """Gathers one source every ``gather_interval_s``; keeps its latest facts and state."""

    expected_errors = (
        OSError,
        TimeoutError,
        KafkaError,
        LedgerError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    )

    def __init__(
        self,
        name: str,
        gather: Callable[[], Awaitable[FactsT]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self.gather = gather
        self.close = close
        self.facts: FactsT | None = None
        self.state = SourceState(up=False, error="not read yet", checked_at_ms=None)
        self.first_round = asyncio.Event()

    async def run(self) -> None:
        try:
            while True:
                started = time.monotonic()
                await self.round()
                self.first_round.set()
                elapsed = time.monotonic() - started
                await asyncio.sleep(max(0.0, gather_interval_s - elapsed))
        finally:
            await self.close()

    async def round(self) -> None:
        try:
            facts = await asyncio.wait_for(self.gather(), source_timeout_s)
        except self.expected_errors as exc:
            self._down(describe(exc))
            await self.close()
        except Exception as exc:
            # A bug, not an outage: say so loudly, but keep serving the page.
            log.exception("gathering %s failed", self.name)
            self._down(describe(exc))
            await self.close()
        else:
            if not self.state.up:
                log.info("%s is up", self.name)
            self.facts = facts
            self.state = SourceState(up=True, error=None, checked_at_ms=wall_ms())

    def _down(self, error: str) -> None:
        if self.state.up or self.state.checked_at_ms is None:
            log.warning("%s is unavailable: %s", self.name, error)
        self.facts = None
        self.state = SourceState(up=False, error=error, checked_at_ms=wall_ms())


class Gatherer:
    """Owns the source loops and the chain watcher; ``snapshot()`` combines their latest facts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        kafka = KafkaSource(settings)
        postgres = PostgresSource(settings)
        self.kafka: SourceLoop[KafkaFacts] = SourceLoop("kafka", kafka.gather, kafka.close)
        self.postgres: SourceLoop[PostgresFacts] = SourceLoop(
            "postgres", postgres.gather, postgres.close
        )
        stats = StatsSource(settings)
        self.stats: SourceLoop[StatsFacts] = SourceLoop("stats", stats.gather, stats.close)
        witnesses = WitnessSource(settings)
        self.witnesses: SourceLoop[WitnessFacts] = SourceLoop(
            "witnesses", witnesses.gather, witnesses.close
        )
        self.chain = ChainWatcher(settings)
        self.history = History()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every loop; return after each source's first round (bounded by its timeout)."""
        self.tasks = [
            asyncio.create_task(self.kafka.run(), name="dashboard-kafka"),
            asyncio.create_task(self.postgres.run(), name="dashboard-postgres"),
            asyncio.create_task(self.stats.run(), name="dashboard-stats"),
            asyncio.create_task(self.witnesses.run(), name="dashboard-witnesses"),
            asyncio.create_task(self.chain.run(), name="dashboard-chain"),
        ]
        first_rounds = [
            self.kafka.first_round.wait(),
            self.postgres.first_round.wait(),
            self.stats.first_round.wait(),
            self.witnesses.first_round.wait(),
        ]
        try:
            await asyncio.wait_for(
                asyncio.gather(*first_rounds), source_timeout_s + 2 * close_timeout_s
            )
        except TimeoutError:
            log.warning("a source did not answer its first round in time; serving anyway")
        self.tasks.append(asyncio.create_task(self._sample(), name="dashboard-history"))

    async def _sample(self) -> None:
        """Record a history sample every ``history.interval_s``, from the first round on."""
        while True:
            self.history.record(self.snapshot())
            await asyncio.sleep(self.history.interval_s)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    def snapshot(self) -> Snapshot:
        return build_snapshot(
            self.settings.shards,
            {
                "kafka": self.kafka.state,
                "postgres": self.postgres.state,
                "stats": self.stats.state,
                "witnesses": self.witnesses.state,
            },
            self.kafka.facts,
            self.postgres.facts,
            self.chain.statuses(),
            wall_ms(),
            stats=self.stats.facts,
            witnesses=self.witnesses.facts,
        )
