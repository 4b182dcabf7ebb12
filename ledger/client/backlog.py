"""Back-pressure for publishers: how far the ledger lags behind its submissions, and the gate
that slows a publisher down (or fails it) while the lag is too long.

A transfer published into a long queue expires before the ledger reaches it (its validity window
is a minute by default), so a publisher that outruns the ledger only manufactures rejections. The
backlog is what the verify stage has not processed yet: for each partition of the submissions
topic, its end offset minus the offset the verify consumer group committed there.

A partition the group has **never** committed is measured from its end offset at the gauge's
first reading, not from its start. Counting its whole history instead would stall a publisher for
good whenever the group cannot reach that history: a group that starts at ``latest``, a group
renamed during a migration (as when the verify workers moved from the faust group ``ledger``
to ``ledger.verify``), a topic with a long retention. A publisher blocked on history never
publishes the messages whose processing would produce the commits it waits for. Messages
published after that first reading count in full until the group commits, so a group that
commits nothing is still seen to fall behind. Once the group commits a partition, the committed
offset is the truth.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import Literal

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from ledger.errors import Backpressure, InfraError
from ledger.kafka.clients import admin_client, committed_reader, kafka_errors, request_timeout_ms
from ledger.kafka_access import KafkaAccess

BacklogPolicy = Literal["wait", "fail"]
"""What a publisher does when the backlog is over its limit: wait for it to shrink, or raise."""

backlog_max_default = 20_000
"""Messages not yet verified before a publisher slows down: about 7 s of verify work at the
3,000 tx/s the pipeline sustains here (BENCHMARKS.md), well inside a transfer's 60 s validity."""

backlog_low_water_share = 0.5
"""A waiting publisher resumes once the backlog fell to this share of its limit, not just below
the limit, so that it sends in bursts and polls rarely instead of hovering at the limit."""

backlog_refresh_s = 0.15
"""A reading is reused for this long: a refresh costs two requests (OffsetFetch, ListOffsets),
never one per message, while a waiting publisher still notices a shrinking backlog quickly."""

backlog_wait_s_max_default = 30.0
"""A publisher waits this long for the backlog to shrink before it raises ``Backpressure``: half
of a transfer's default validity (60 s), so what it then publishes still has time to be sealed."""

backlog_read_s_max = 10.0
"""One reading (both requests) may take this long before it fails as an infrastructure error."""

coordinator_lookup_count_max = 2
"""The group coordinator's id is cached; when a request to it fails, it is looked up once more."""

assert 0 < backlog_low_water_share < 1
assert backlog_refresh_s < backlog_wait_s_max_default
assert backlog_read_s_max * 1000 < request_timeout_ms

log = logging.getLogger("ledger.publisher")


class BacklogGauge:
    """Reads a consumer group's lag on one topic: two requests a reading (see module docstring)."""

    def __init__(self, kafka: KafkaAccess | str, client_id: str, topic: str, group_id: str) -> None:
        self.topic = topic
        self.group_id = group_id
        self._admin = admin_client(kafka, f"{client_id}-backlog")
        # Submissions are not transactional, so the last stable offset it reads is the end offset.
        self._reader = committed_reader(kafka, f"{client_id}-backlog")
        self._coordinator_id: int | None = None
        self._baseline: dict[int, int] = {}
        """End offset of each partition the group had never committed, at the first reading."""

    async def start(self) -> None:
        with kafka_errors(f"connecting the backlog gauge of group {self.group_id}"):
            await self._admin.start()
            await self._reader.start()

    async def stop(self) -> None:
        await self._reader.stop()
        await self._admin.close()

    async def read(self, partitions: Sequence[int]) -> int:
        """Messages on ``partitions`` of the topic that the group has not committed yet."""
        topic_partitions = [TopicPartition(self.topic, partition) for partition in partitions]
        with kafka_errors(f"reading the backlog of group {self.group_id} on {self.topic}"):
            async with asyncio.timeout(backlog_read_s_max):
                # Committed offsets first: an end offset read after them is never below them.
                committed = await self._committed(topic_partitions)
                ends = await self._reader.end_offsets(topic_partitions)
        backlog = 0
        for topic_partition in topic_partitions:
            partition, end = topic_partition.partition, ends[topic_partition]
            start = committed.get(partition, -1)
            if start < 0:
                start = self._baseline.setdefault(partition, end)
            backlog += max(0, end - start)
        return backlog

    async def _committed(self, topic_partitions: list[TopicPartition]) -> dict[int, int]:
        """Committed offset per partition; -1 where the group has none."""
        for attempt in range(1, coordinator_lookup_count_max + 1):
            if self._coordinator_id is None:
                self._coordinator_id = await self._admin.find_coordinator(self.group_id)
            try:
                offsets = await self._admin.list_consumer_group_offsets(
                    self.group_id, self._coordinator_id, topic_partitions
                )
            except KafkaError:
                self._coordinator_id = None  # moved or restarted: ask again
                if attempt == coordinator_lookup_count_max:
                    raise
                continue
            return {
                topic_partition.partition: metadata.offset
                for topic_partition, metadata in offsets.items()
            }
        raise AssertionError("unreachable: the last attempt returns or raises")


class BacklogGate:
    """Decides, before each chunk a publisher sends, whether it may go now.

    Between readings the gate adds what its publisher sent since the last one (an upper bound:
    it cannot see what the verify stage consumed meanwhile), so a reading ``backlog_refresh_s``
    old does not let a fast publisher overshoot the limit by more than one chunk. Before slowing
    down or failing on that estimate, it confirms with a fresh reading.
    """

    def __init__(
        self, gauge: BacklogGauge, backlog_max: int, policy: BacklogPolicy, wait_s_max: float
    ) -> None:
        if backlog_max < 1 or wait_s_max <= 0 or policy not in ("wait", "fail"):
            raise ValueError(
                f"need backlog_max >= 1, backlog_wait_s_max > 0 and on_backlog 'wait' or 'fail', "
                f"not {backlog_max}, {wait_s_max}, {policy!r}"
            )
        self.gauge = gauge
        self.backlog_max = backlog_max
        self.low_water = int(backlog_max * backlog_low_water_share)
        self.policy = policy
        self.wait_s_max = wait_s_max
        self.backlog: int | None = None
        """The last reading; None before the first."""
        self._read_at = -math.inf
        self._throttled_before_s = 0.0
        self._waiting_count = 0
        self._waiting_since = 0.0
        self._sent_since_read = 0
        self._reading = asyncio.Lock()

    @property
    def throttled_s(self) -> float:
        """Seconds during which at least one chunk was held back, so far: calls that wait at
        the same time (the bench keeps several in flight) count once."""
        if self._waiting_count:
            return self._throttled_before_s + time.monotonic() - self._waiting_since
        return self._throttled_before_s

    def sent(self, count: int) -> None:
        """Count messages the publisher got acknowledged since the last reading."""
        self._sent_since_read += count

    async def admit(self, partitions: Sequence[int]) -> None:
        """Return when the next chunk may be sent; raise ``Backpressure`` when it may not."""
        if time.monotonic() - self._read_at >= backlog_refresh_s:
            await self._read(partitions)
        if self._estimate() <= self.backlog_max:
            return
        if self.policy == "fail":
            if self._sent_since_read:
                await self._read(partitions)
            if self._estimate() <= self.backlog_max:
                return
            raise self._refusal(waited_s=None)
        await self._wait(partitions)

    async def _wait(self, partitions: Sequence[int]) -> None:
        """Sleep in steps of ``backlog_refresh_s``, reading each time, until the backlog is low
        enough: below the limit when only the estimate was over it, down to the low-water mark
        once a reading was over it; at most ``wait_s_max``."""
        started = time.monotonic()
        if self._waiting_count == 0:
            self._waiting_since = started
        self._waiting_count += 1
        reading_was_over = False
        try:
            while True:
                reading_was_over = reading_was_over or self._over_limit()
                resume_at = self.low_water if reading_was_over else self.backlog_max
                if self._estimate() <= resume_at:
                    return
                if time.monotonic() - started >= self.wait_s_max:
                    raise self._refusal(waited_s=time.monotonic() - started)
                await asyncio.sleep(max(0.0, self._read_at + backlog_refresh_s - time.monotonic()))
                await self._read(partitions)
        finally:
            self._waiting_count -= 1
            if self._waiting_count == 0:
                self._throttled_before_s += time.monotonic() - self._waiting_since

    def _over_limit(self) -> bool:
        return self.backlog is not None and self.backlog > self.backlog_max

    def _estimate(self) -> int:
        return (self.backlog or 0) + self._sent_since_read

    async def _read(self, partitions: Sequence[int]) -> None:
        wanted_at = time.monotonic()
        async with self._reading:
            if self._read_at >= wanted_at:
                return  # a concurrent call read while this one waited for the lock
            sent_before = self._sent_since_read
            try:
                reading = await self.gauge.read(partitions)
            except InfraError as exc:
                # A broker failing over, a coordinator moving: the publisher goes on with the
                # last reading plus what it sent since (the sends fail themselves if Kafka is
                # really gone), and reads again at the next refresh.
                log.warning("backlog not read (%s); the last reading stands", exc)
                self._read_at = time.monotonic()
                return
            self.backlog = reading
            self._read_at = time.monotonic()
            # What was acknowledged during the reading may be in it or not: keep counting it.
            self._sent_since_read -= sent_before

    def _refusal(self, waited_s: float | None) -> Backpressure:
        return Backpressure(
            self._estimate(), self.backlog_max, self.gauge.topic, self.gauge.group_id, waited_s
        )
