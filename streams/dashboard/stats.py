"""The dashboard's third source: the newest summary the stats process published on ``ledger.stats``.

The stats process (``streams.stats``) counts the block stream and the rejections in event-time
windows and publishes one summary a second; this reads the newest one, and only when the topic
grew since the last round. A summary that stopped coming (the stats worker is down), or that
covers only some partitions (a second stats worker took the others), makes the source
unavailable rather than showing figures that are stale or partial.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ledger.errors import InfraError
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import READER
from ledger.settings import TOPIC_BLOCKS, TOPIC_REJECTIONS, TOPIC_STATS, Settings
from streams.dashboard.snapshot import StatsFacts, stats_facts
from streams.stats.summary import Summary, decode_summary

stats_stale_after_ms = 5_000
"""The stats process publishes every second: five missed summaries mean it is not running (or
is stuck in a rebalance), and its last figures no longer describe now."""

request_timeout_ms = 2_500
"""Below the dashboard's per-source timeout (``metrics.source_timeout_s``)."""

fetch_wait_ms = 200
close_timeout_s = 2.0

log = logging.getLogger("ledger.dashboard")

STATS_PARTITION = TopicPartition(TOPIC_STATS, 0)


class StatsSource:
    """One paused consumer on ``ledger.stats``; any failure drops it and the next round opens
    another."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: AIOKafkaConsumer | None = None
        self.newest: tuple[int, Summary] | None = None
        """The end offset last seen and the summary read below it."""

    async def gather(self) -> StatsFacts:
        consumer = await self._consumer()
        end = (await consumer.end_offsets([STATS_PARTITION]))[STATS_PARTITION]
        if self.newest is None or self.newest[0] != end:
            self.newest = (end, decode_summary(await self._last_value(consumer, end)))
        summary = self.newest[1]
        age_ms = int(time.time() * 1000) - summary.published_at_ms
        if age_ms > stats_stale_after_ms:
            raise InfraError(
                f"the newest stats summary is {age_ms / 1000:.0f} s old (is the stats worker running?)"
            )
        partition_count = len(self.settings.shards)
        for topic in (TOPIC_BLOCKS, TOPIC_REJECTIONS):
            if not summary.covers(topic, partition_count):
                raise InfraError(
                    f"the stats summary covers {topic} partitions {list(summary.assigned.get(topic, ()))} "
                    f"of {partition_count} (more than one stats worker?)"
                )
        return stats_facts(summary, self.settings.shards)

    async def _consumer(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            consumer = committed_reader(
                self.settings.kafka(READER),
                "ledger-dashboard-stats",
                request_timeout_ms=request_timeout_ms,
            )
            self.consumer = consumer
            await consumer.start()
            consumer.assign([STATS_PARTITION])
            # Paused between reads, so it does not prefetch summaries nobody asked for.
            consumer.pause(STATS_PARTITION)
        return self.consumer

    async def _last_value(self, consumer: AIOKafkaConsumer, end: int) -> bytes:
        """The message at ``end - 1``: the summary producer is not transactional, so the last
        offset is a message, and compaction never removes the newest one of its key."""
        if end == 0:
            raise InfraError(
                f"no stats summary on {TOPIC_STATS} yet (is the stats worker running?)"
            )
        consumer.seek(STATS_PARTITION, end - 1)
        consumer.resume(STATS_PARTITION)
        try:
            # The caller's timeout (metrics.source_timeout_s) bounds this loop.
            while True:
                batch = await consumer.getmany(STATS_PARTITION, timeout_ms=fetch_wait_ms)
                for message in batch.get(STATS_PARTITION, []):
                    value: bytes | None = message.value
                    if message.offset == end - 1 and value is not None:
                        return value
                if await consumer.position(STATS_PARTITION) >= end:
                    raise InfraError(f"{TOPIC_STATS} ends in an empty message")
        finally:
            consumer.pause(STATS_PARTITION)

    async def close(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                await asyncio.wait_for(consumer.stop(), close_timeout_s)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("stats consumer did not stop cleanly: %s: %s", type(exc).__name__, exc)
