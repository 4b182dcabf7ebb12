"""kill -9 of verify workers under load: at-least-once, and the sequencer drops every copy.

The verify loop forwards a poll's batches, waits for their acknowledgement, then commits the
poll's offsets. A worker killed in between leaves forwarded but uncommitted submissions, which
the group verifies again after the rebalance: the same envelope reaches ``ledger.verified``
twice, and the sequencer must seal it once and refuse every other copy as DUPLICATE.

The test kills only verify workers it started itself: two extra members of the verify group
(pid files ``verify-crashtest-*``), so the stack's own workers keep running and always take the
killed ones' partitions over. To land inside the few milliseconds between forwarding and
committing, it watches ``ledger.verified`` and kills both workers the moment a batch from one of
their partitions appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import signal
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from support.ledger_fixture import TestLedger
from support.waiting import eventually

from ledger import codec
from ledger.blocks import block_hash
from ledger.client.publisher import Publisher
from ledger.kafka.blockstream import read_blocks
from ledger.kafka.clients import VERIFY_GROUP, committed_reader
from ledger.kafka.principals import ADMIN
from ledger.kafka.wire import plain
from ledger.local import process
from ledger.local.stack import worker_commands, worker_files
from ledger.model import Block, RejectionRecord
from ledger.settings import (
    REPO_ROOT,
    TOPIC_BLOCKS,
    TOPIC_REJECTIONS,
    TOPIC_SUBMISSIONS,
    TOPIC_VERIFIED,
    Settings,
)
from ledger.tools.demo import ensure_demo_ledger, ensure_load_accounts
from ledger.tools.workload import transfers
from streams.sequence import VERIFIED_BATCH_HEADER

pytestmark = pytest.mark.services

WORKERS = ("verify-crashtest-1", "verify-crashtest-2")
"""The verify workers this test starts, kills and stops; never the stack's own."""

kill_rounds = 3
"""Both workers are killed this many times; after the last kill they stay down. Each round
costs a rebalance, which waits for the killed members' sessions to expire (10 s)."""

publish_chunk_count = 80
publish_interval_s = 0.1
"""About 800 transfers a second: a rebalance leaves a backlog of thousands, so the restarted
workers' first polls are big ones, forwarded in several batches."""

publish_duration_s_max = 45.0
"""Transfers are signed before the kills start (signing in the loop would delay the kill)."""

join_wait_s = 30.0
settle_wait_s = 60.0
poll_interval_s = 0.02


@dataclass
class Topics:
    """The shard's partitions this test reads, and where each stood when it began."""

    blocks: TopicPartition
    verified: TopicPartition
    rejections: TopicPartition
    starts: dict[TopicPartition, int] = field(default_factory=dict)


async def test_kill_9_between_forwarding_and_committing_loses_and_duplicates_nothing(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """Under transfer load and repeated kill -9 of verify workers, every published tx_id is sealed
    exactly once; every copy the group verified again reached the sequencer and was refused
    DUPLICATE (copies in ledger.verified = 1 + DUPLICATE rejections, per tx_id), naming the
    submission it came from; nothing else was refused; the blocks sealed meanwhile link up."""
    demo = await ensure_demo_ledger(settings, test_ledger.ledger)
    accounts = await ensure_load_accounts(settings, demo, 200)
    shard = settings.shard_partition(test_ledger.ledger)
    assert shard is not None
    topics = Topics(
        TopicPartition(TOPIC_BLOCKS, shard),
        TopicPartition(TOPIC_VERIFIED, shard),
        TopicPartition(TOPIC_REJECTIONS, shard),
    )
    count = int(publish_duration_s_max / publish_interval_s) * publish_chunk_count
    now_ms = int(time.time() * 1000)
    envelopes = transfers(accounts, count, 1, [now_ms] * count, seed=now_ms)
    published: dict[bytes, tuple[int, int]] = {}

    async with kafka_clients(settings) as (probe, admin):
        topics.starts = await end_offsets(
            probe, [topics.blocks, topics.verified, topics.rejections]
        )
        kills = await kill_under_load(settings, admin, probe, topics, envelopes, published)
        assert kills == kill_rounds * len(WORKERS) and published
        # 1. the group verified and committed every submission of ours: no copy is still to come
        ends = submission_ends(published)
        await eventually(
            functools.partial(committed_past, admin, ends),
            what="verify caught up",
            timeout_s=settle_wait_s,
            interval_s=poll_interval_s,
        )
        # 2. the sequencer sealed past everything ledger.verified holds by then
        verified_end = (await end_offsets(probe, [topics.verified]))[topics.verified]
    blocks: list[Block] = []

    async def sealed_past_verified_end() -> bool:
        start = topics.starts[topics.blocks]
        blocks[:] = [
            message.block async for message in read_blocks(settings.kafka(ADMIN), shard, start)
        ]
        return bool(blocks) and blocks[-1].header.source_offset_end >= verified_end

    await eventually(
        sealed_past_verified_end,
        what="sequencer caught up",
        timeout_s=settle_wait_s,
        interval_s=poll_interval_s,
    )

    ours = set(published)
    sealed = Counter(
        tx_id
        for block in blocks
        for tx in block.transactions
        if (tx_id := tx_id_of(tx.envelope)) in ours
    )
    forwarded = await verified_tx_ids(settings, topics.verified, topics.starts[topics.verified])
    copies = Counter(tx_id for tx_id in forwarded if tx_id in ours)
    rejections = [
        rejection
        for rejection in await read_rejections(
            settings, topics.rejections, topics.starts[topics.rejections]
        )
        if rejection.tx_id in ours
    ]
    duplicates = Counter(rejection.tx_id for rejection in rejections)

    assert set(sealed) == ours, f"{len(ours - set(sealed))} of {len(ours)} tx_ids never sealed"
    assert max(sealed.values()) == 1, "a tx_id sealed twice"
    assert {(r.code, r.stage, r.source_topic) for r in rejections} <= {
        ("DUPLICATE", "sequence", TOPIC_SUBMISSIONS)
    }, Counter(r.code for r in rejections)
    assert all(copies[tx_id] == 1 + duplicates[tx_id] for tx_id in ours), (
        "a copy in ledger.verified was neither sealed nor refused, or was refused twice"
    )
    for rejection in rejections:  # a copy names the submission it was verified from
        assert rejection.tx_id is not None
        assert (rejection.source_partition, rejection.source_offset) == published[rejection.tx_id]
    assert_linked(blocks)
    if not rejections:
        warnings.warn(
            f"none of {kills} kills landed between forwarding and committing "
            f"({len(ours)} transfers): the at-least-once path was not exercised this run",
            stacklevel=1,
        )


async def kill_under_load(
    settings: Settings,
    admin: AIOKafkaAdminClient,
    probe: AIOKafkaConsumer,
    topics: Topics,
    envelopes: Sequence[bytes],
    published: dict[bytes, tuple[int, int]],
) -> int:
    """Publish while the killer runs its rounds; returns the number of kills. Whatever happens,
    the publisher and the killer are cancelled and this test's workers stopped."""
    stop_publishing = asyncio.Event()
    publishing = asyncio.create_task(
        publish_steadily(settings, envelopes, published, stop_publishing)
    )
    killing = asyncio.create_task(killer(settings, admin, probe, topics.verified))
    try:
        kills = await killing
        stop_publishing.set()
        await publishing
        return kills
    finally:
        stop_publishing.set()
        for task in (killing, publishing):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for name in WORKERS:
            await asyncio.to_thread(process.stop, worker_files(settings, name)[0], 10.0)


# ---- workers --------------------------------------------------------------------------------


def start_worker(settings: Settings, name: str) -> int:
    pid_file, log_file = worker_files(settings, name)
    assert process.read_pid(pid_file) is None, f"{name} is already running"
    command = worker_commands(settings)["verify-1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return process.start(command, pid_file, log_file, env=env, cwd=REPO_ROOT)


def kill_9(settings: Settings, name: str) -> bool:
    """SIGKILL one of this test's workers (no warning, no cleanup); True if it was running."""
    pid_file = worker_files(settings, name)[0]
    pid = process.read_pid(pid_file)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL)
    assert process.wait_until(lambda: not process.pid_alive(pid), 10.0, 0.01)
    pid_file.unlink(missing_ok=True)
    return True


async def killer(
    settings: Settings,
    admin: AIOKafkaAdminClient,
    probe: AIOKafkaConsumer,
    verified: TopicPartition,
) -> int:
    """Each round: start both workers, wait until the group assigned them partitions, then kill
    both the moment a batch of one of their partitions lands on ledger.verified (forwarded, and
    most likely not committed yet). Returns the number of kills."""
    kills = 0
    watcher = committed_reader(
        settings.kafka(ADMIN),
        "ledger-tests-verify-crash-watcher",
        isolation_level="read_uncommitted",
        fetch_max_wait_ms=50,
    )
    await watcher.start()
    try:
        watcher.assign([verified])
        for _ in range(kill_rounds):
            before = set(await group_members(admin))
            for name in WORKERS:
                start_worker(settings, name)
            theirs = await wait_for_assignment(admin, before)
            # Batches of their partitions written before now came from the previous owners.
            watcher.seek(verified, (await end_offsets(probe, [verified]))[verified])
            await eventually(
                functools.partial(forwarded_from, watcher, verified, theirs),
                what="a batch forwarded by this test's workers",
                timeout_s=join_wait_s,
                interval_s=0.0,
            )
            kills += sum(kill_9(settings, name) for name in WORKERS)
    finally:
        await watcher.stop()
    return kills


async def wait_for_assignment(admin: AIOKafkaAdminClient, before: set[str]) -> set[int]:
    """The submission partitions of this test's workers, once the group is stable with them
    (after a kill, that is when the killed members' sessions expired)."""
    theirs: set[int] = set()

    async def assigned() -> bool:
        state, members = await group_state(admin)
        new = {member: parts for member, parts in members.items() if member not in before}
        if state != "Stable" or len(new) < len(WORKERS):
            return False
        theirs.update(*new.values())
        return True

    await eventually(
        assigned,
        what="this test's workers joined the verify group",
        timeout_s=join_wait_s,
        interval_s=poll_interval_s,
    )
    assert theirs, "the group gave this test's workers no partition"
    return theirs


async def forwarded_from(
    watcher: AIOKafkaConsumer, verified: TopicPartition, partitions: set[int]
) -> bool:
    """Whether the next messages on ledger.verified include a batch of one of ``partitions``
    (a batch holds one poll of one worker, so its first entry says whose it is)."""
    fetched = await watcher.getmany(verified, timeout_ms=20)
    return any(
        first_source_partition(message.value) in partitions for message in fetched.get(verified, [])
    )


def first_source_partition(raw: bytes) -> int | None:
    """source_partition of a VerifiedBatch's first entry, read without decoding the batch."""
    length, position = read_long(raw, 0)
    count, position = read_long(raw, position + length)
    if count == 0:
        return None
    if count < 0:  # a block with its size in bytes
        _, position = read_long(raw, position)
    return read_long(raw, position)[0]


def read_long(raw: bytes, position: int) -> tuple[int, int]:
    zigzag = shift = 0
    while True:
        byte = raw[position]
        zigzag |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if byte < 0x80:
            return (zigzag >> 1) ^ -(zigzag & 1), position


# ---- load -------------------------------------------------------------------------------------


async def publish_steadily(
    settings: Settings,
    envelopes: Sequence[bytes],
    published: dict[bytes, tuple[int, int]],
    stop: asyncio.Event,
) -> None:
    """Pre-signed transfers in chunks at a steady rate until ``stop`` (or until they run out);
    records where each tx_id was stored. Back-pressure is off: a rebalance's backlog is the
    point."""
    async with Publisher(settings.kafka(ADMIN), backlog_max=None) as publisher:
        for start in range(0, len(envelopes), publish_chunk_count):
            if stop.is_set():
                return
            chunk = envelopes[start : start + publish_chunk_count]
            for receipt in await publisher.submit_many(chunk):
                published[receipt.tx_id] = (receipt.partition, receipt.offset)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), publish_interval_s)


def submission_ends(published: dict[bytes, tuple[int, int]]) -> dict[TopicPartition, int]:
    ends: dict[TopicPartition, int] = {}
    for partition, offset in published.values():
        topic_partition = TopicPartition(TOPIC_SUBMISSIONS, partition)
        ends[topic_partition] = max(ends.get(topic_partition, 0), offset + 1)
    return ends


# ---- reading Kafka ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def kafka_clients(
    settings: Settings,
) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaAdminClient]]:
    """A consumer for end offsets and an admin client for the verify group, both started."""
    probe = committed_reader(settings.kafka(ADMIN), "ledger-tests-verify-crash")
    admin = AIOKafkaAdminClient(
        **settings.kafka(ADMIN).client_options(), client_id="ledger-tests-verify-crash"
    )
    await probe.start()
    try:
        await admin.start()
        try:
            yield probe, admin
        finally:
            await admin.close()
    finally:
        await probe.stop()


async def group_state(admin: AIOKafkaAdminClient) -> tuple[str, dict[str, set[int]]]:
    """The verify group's state, and the submission partitions of each member."""
    [response] = await admin.describe_consumer_groups([VERIFY_GROUP])
    [(_, _, state, _, _, members)] = response.groups
    assignments = {}
    for member_id, _, _, _, assignment in members:
        parts = (
            ConsumerProtocolMemberAssignment.decode(assignment).partitions() if assignment else []
        )
        assignments[member_id] = {part.partition for part in parts}
    return state, assignments


async def group_members(admin: AIOKafkaAdminClient) -> dict[str, set[int]]:
    return (await group_state(admin))[1]


async def committed_past(admin: AIOKafkaAdminClient, ends: dict[TopicPartition, int]) -> bool:
    committed = await admin.list_consumer_group_offsets(VERIFY_GROUP, partitions=list(ends))
    return all(
        (metadata := committed.get(topic_partition)) is not None and metadata.offset >= end
        for topic_partition, end in ends.items()
    )


async def end_offsets(
    probe: AIOKafkaConsumer, topic_partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    return dict(await probe.end_offsets(topic_partitions))


async def read_range(settings: Settings, topic_partition: TopicPartition, start: int) -> list[Any]:
    """Every committed message of one partition from ``start`` to its current end."""
    consumer = committed_reader(settings.kafka(ADMIN), "ledger-tests-verify-crash")
    await consumer.start()
    try:
        consumer.assign([topic_partition])
        end = (await consumer.end_offsets([topic_partition]))[topic_partition]
        consumer.seek(topic_partition, start)
        messages: list[Any] = []
        while await consumer.position(topic_partition) < end:
            batch = await consumer.getmany(topic_partition, timeout_ms=500)
            messages.extend(batch.get(topic_partition, []))
        return messages
    finally:
        await consumer.stop()


def tx_id_of(envelope: bytes) -> bytes:
    parsed = codec.decode_envelope(envelope)
    return codec.decode_body_head(parsed.body, parsed.body_version).tx_id


async def verified_tx_ids(settings: Settings, verified: TopicPartition, start: int) -> list[bytes]:
    """The tx_id of every envelope forwarded to ledger.verified since ``start``, copies included."""
    tx_ids: list[bytes] = []
    for message in await read_range(settings, verified, start):
        assert message.headers and VERIFIED_BATCH_HEADER in message.headers
        batch = codec.decode_verified_batch(message.value)
        tx_ids.extend(tx_id_of(entry.envelope) for entry in batch.entries)
    return tx_ids


async def read_rejections(
    settings: Settings, partition: TopicPartition, start: int
) -> list[RejectionRecord]:
    messages = await read_range(settings, partition, start)
    return [codec.decode_rejection(plain(message.value, "Rejection")) for message in messages]


def assert_linked(blocks: list[Block]) -> None:
    """Consecutive heights, each block linked to the hash of the one before, seq numbers gapless."""
    for previous, block in itertools.pairwise(blocks):
        assert block.header.height == previous.header.height + 1
        assert block.header.prev_hash == block_hash(previous.header)
        assert block.header.first_seq == previous.header.first_seq + previous.header.tx_count
