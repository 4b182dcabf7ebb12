"""Project: committed blocks and rejections into PostgreSQL, exactly once.

Each batch of blocks and rejections is written in ONE PostgreSQL transaction together with the
``ledger.tracking`` rows that say how far it got (the eventsourcing pattern), so a crash before
the commit writes nothing and a restart resumes after the tracked positions:

  1. read the tracking rows;
  2. restore every shard's replica from its snapshot (saved with the rows, every
     ``snapshot_interval_tx_count`` transactions), then replay the chain from there up to the
     tracked height, in memory only (the state machine gives the effects, so balances are
     derived by the same code as the chain);
  3. seek ``ledger.rejections`` partitions to their tracked offsets;
  4. loop: fetch, replay new blocks into rows, write rows + tracking, commit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import time
from collections.abc import Iterable
from operator import attrgetter
from typing import Any, Final

import asyncpg
from aiokafka import TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from ledger import codec
from ledger.errors import DecodeError, InfraError
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import PROJECTOR
from ledger.kafka.wire import plain
from ledger.replica import Replica, restore_snapshot, snapshot
from ledger.settings import TOPIC_BLOCKS, TOPIC_REJECTIONS, Settings
from streams.lifecycle import collect_less, run_or_exit
from streams.rows import (
    ACCOUNT_METADATA,
    ACCOUNT_POLICIES,
    ACCOUNT_STATUSES,
    BALANCES,
    FINALITY_POLICIES,
    HOLD_RESOLUTIONS,
    ISSUANCE_CAPS,
    KEY_ACCOUNTS,
    KEY_REVOCATIONS,
    PROCESSOR,
    REJECTIONS,
    SNAPSHOTS,
    TRACKING,
    Rows,
    SnapshotRow,
    Table,
)
from streams.telemetry import SECONDS_BUCKETS

log = logging.getLogger("ledger.project")

fetch_wait_ms = 200
fetch_records_max_count = 500
"""Blocks and rejections per PostgreSQL transaction: big transactions, few commits."""


snapshot_interval_tx_count = 200_000
"""A restart replays at most about this many transactions after the newest snapshot (about 8 s
here). Writing one costs about 0.25 s of this process at a full replay window (BENCHMARKS.md),
a pause in sealing or projecting, so not much more often than this."""

STAGED: Final[dict[Table, str]] = {
    BALANCES: "staged_balances",
    HOLD_RESOLUTIONS: "staged_hold_resolutions",
    REJECTIONS: "staged_rejections",
}
"""Changes that can be many in one batch, by the temporary table they are COPied into before one
statement applies them all: about one balance row per transaction, holds that expire by the
thousand at a block's start, rejections in a flood. Measured in PostgreSQL per row: 14 µs by
executemany, 6 µs staged. Each temporary table is created once per connection (``prepare``) and
emptied by every commit that touched any of them (ON COMMIT DELETE ROWS: about 0.15 ms per
table and commit). ON COMMIT DROP would cost 0.4 ms more per table and commit, write and delete
catalog rows (pg_class, pg_attribute, pg_type) several times a second, and leave asyncpg's
prepared COPY statement of each table name pointing at a dropped table."""


def _columns(names: Iterable[str]) -> str:
    return ", ".join(names)


def _set_excluded(table: Table) -> str:
    return _columns(f"{name} = EXCLUDED.{name}" for name in table.value_columns)


def _insert_from_staged(table: Table, on_conflict: str) -> str:
    """One INSERT of every staged row of ``table``; ``on_conflict`` says what a key present does."""
    columns = _columns(table.columns)
    return (
        f"INSERT INTO ledger.{table.name} ({columns}) SELECT {columns}"
        f" FROM pg_temp.{STAGED[table]} ON CONFLICT ({_columns(table.key)}) {on_conflict}"
    )


def _update_from_staged(table: Table) -> str:
    """One UPDATE of every row matching a staged row of ``table`` on its key."""
    assignments = _columns(f"{name} = staged.{name}" for name in table.value_columns)
    match = " AND ".join(f"target.{name} = staged.{name}" for name in table.key)
    return (
        f"UPDATE ledger.{table.name} AS target SET {assignments}"
        f" FROM pg_temp.{STAGED[table]} AS staged WHERE {match}"
    )


def _update_each(table: Table) -> str:
    """An UPDATE of one row; its parameters are a row of ``table.row_type``, in field order."""
    number = {name: index for index, name in enumerate(table.columns, start=1)}
    assignments = _columns(f"{name} = ${number[name]}" for name in table.value_columns)
    match = " AND ".join(f"{name} = ${number[name]}" for name in table.key)
    return f"UPDATE ledger.{table.name} SET {assignments} WHERE {match}"


def _upsert_each(table: Table, time_column: str | None = None) -> str:
    """An upsert of one row of ``table.row_type``, stamping ``time_column`` (if any) with now()."""
    placeholders = [f"${index}" for index in range(1, len(table.columns) + 1)]
    columns, updates = list(table.columns), [_set_excluded(table)]
    if time_column is not None:
        columns.append(time_column)
        placeholders.append("now()")
        updates.append(f"{time_column} = now()")
    return (
        f"INSERT INTO ledger.{table.name} ({_columns(columns)})"
        f" VALUES ({_columns(placeholders)}) ON CONFLICT ({_columns(table.key)})"
        f" DO UPDATE SET {_columns(updates)}"
    )


STATEMENTS: Final[dict[Table, str]] = {
    BALANCES: _insert_from_staged(BALANCES, f"DO UPDATE SET {_set_excluded(BALANCES)}"),
    HOLD_RESOLUTIONS: _update_from_staged(HOLD_RESOLUTIONS),
    # A redelivered rejection message is the same row: the key is where it was read.
    REJECTIONS: _insert_from_staged(REJECTIONS, "DO NOTHING"),
    ACCOUNT_STATUSES: _update_each(ACCOUNT_STATUSES),
    KEY_REVOCATIONS: _update_each(KEY_REVOCATIONS),
    KEY_ACCOUNTS: _update_each(KEY_ACCOUNTS),
    FINALITY_POLICIES: _upsert_each(FINALITY_POLICIES),
    ACCOUNT_POLICIES: _upsert_each(ACCOUNT_POLICIES),
    ACCOUNT_METADATA: _update_each(ACCOUNT_METADATA),
    ISSUANCE_CAPS: _update_each(ISSUANCE_CAPS),
    SNAPSHOTS: _upsert_each(SNAPSHOTS, "taken_at"),
    TRACKING: _upsert_each(TRACKING, "updated_at"),
}
"""How each table of ``Rows.changes`` is written: a staged one by one statement per batch, the
rare others (a status, a revocation, a snapshot, a tracking row per stream) by one per row."""

assert set(STAGED) <= set(STATEMENTS)

# Moved once per committed batch (streams.telemetry): what a rolled-back batch held never counts.
BATCHES = Counter("ledger_projector_batches", "Batches written and committed to PostgreSQL.")
ROWS = Counter(
    "ledger_projector_rows",
    "Rows sent to PostgreSQL (copied, upserted or updated) in committed batches, by table.",
    ["table"],
)
BLOCKS = Counter(
    "ledger_projector_blocks", "Blocks projected and committed, by ledger.", ["ledger"]
)
BATCH_SECONDS = Histogram(
    "ledger_projector_batch_seconds",
    "Writing and committing one batch in PostgreSQL.",
    buckets=SECONDS_BUCKETS,
)
HEIGHT = Gauge(
    "ledger_projector_height",
    "Height of the newest block committed to PostgreSQL, by ledger (-1: none yet).",
    ["ledger"],
)


async def prepare(connection: asyncpg.Connection) -> None:
    """Make ``connection`` ready for ``write``: once per connection, outside any transaction.

    1. timestamptz travels as its binary value, an int8 of microseconds since 2000 (the rows'
       ``PostgresInstant``), both ways on this connection: asyncpg's datetime codec cost about
       0.6 µs a value, and building the datetime 0.7 µs more, five values a transfer;
    2. the staging tables of ``STAGED`` exist, with the types of the columns they feed.
    """
    await connection.set_builtin_type_codec(
        "timestamptz", schema="pg_catalog", codec_name="int8", format="binary"
    )
    for table, staged in STAGED.items():
        await connection.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staged} ON COMMIT DELETE ROWS AS"
            f" SELECT {_columns(table.columns)} FROM ledger.{table.name} WITH NO DATA"
        )


async def _copy(
    connection: asyncpg.Connection, table: Table, records: Iterable[Any], *, staged: bool
) -> None:
    await connection.copy_records_to_table(
        STAGED[table] if staged else table.name,
        schema_name="pg_temp" if staged else "ledger",
        columns=table.columns,
        # As plain tuples: asyncpg reads a tuple subclass's items through the generic protocol,
        # about 80 ns more a value, where tuple() copies a whole row in about 40 ns.
        records=map(tuple, records),
    )


async def write(connection: asyncpg.Connection, rows: Rows) -> None:
    """Write one batch and its tracking rows atomically, on a connection given to ``prepare``.

    1. COPY every inserted row, parents before children;
    2. apply the changes after the inserts (a hold opened and resolved in one batch is inserted,
       then updated): a staged table is COPied into its temporary table and applied by one
       statement, the others one statement per row; the tracking rows come last.
    """
    async with connection.transaction():
        for table, inserted in rows.inserts():
            if inserted:
                await _copy(connection, table, inserted, staged=False)
        for table, changed in rows.changes():
            if not changed:
                continue
            if table in STAGED:
                await _copy(connection, table, changed, staged=True)
                await connection.execute(STATEMENTS[table])
            else:
                await connection.executemany(STATEMENTS[table], changed)


async def write_counted(connection: asyncpg.Connection, rows: Rows) -> None:
    """``write``, then the batch's metrics: a call per table and per ledger, none per row."""
    started_s = time.perf_counter()
    await write(connection, rows)
    BATCH_SECONDS.observe(time.perf_counter() - started_s)
    BATCHES.inc()
    for table, written in (*rows.inserts(), *rows.changes()):
        if written:
            ROWS.labels(table.name).inc(len(written))
    for ledger, count in collections.Counter(map(attrgetter("ledger"), rows.blocks)).items():
        BLOCKS.labels(ledger).inc(count)
    # In chain order per ledger, so the last block of each is its newest.
    for ledger, height in {block.ledger: block.height for block in rows.blocks}.items():
        HEIGHT.labels(ledger).set(height)


class Projector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.replicas = {index: Replica(name) for index, name in enumerate(settings.shards)}
        self.projected_height: dict[int, int] = {}
        self.snapshot_seq: dict[int, int] = {}
        """Per shard, the next seq at its newest snapshot."""
        self.consumer = committed_reader(settings.kafka(PROJECTOR), "ledger-projector")

    async def run(self) -> None:
        """Step 4 overlaps two batches: the next batch is fetched and replayed into rows while
        PostgreSQL writes and commits the previous one (about half of the wall time per batch
        at high rates), so one projector keeps up with a faster chain."""
        collect_less()
        connection = await self._connect()
        writing: asyncio.Task[None] | None = None
        try:
            await self.consumer.start()
            await self._seek(connection)
            # What is alive now, chiefly the restored replicas, lives as long as the process:
            # full collections need not walk it again. Reference counting still frees any of it
            # that is dropped; only a reference cycle among it would stay.
            gc.freeze()
            while True:
                batches = await self.consumer.getmany(
                    timeout_ms=fetch_wait_ms, max_records=fetch_records_max_count
                )
                rows = Rows()
                for topic_partition in sorted(batches, key=lambda tp: (tp.topic, tp.partition)):
                    for message in batches[topic_partition]:
                        self._collect(rows, topic_partition, message.offset, message.value)
                # One write at a time, in order: the previous batch's must have committed.
                if writing is not None:
                    await writing
                    writing = None
                if len(rows):
                    writing = asyncio.create_task(write_counted(connection, rows))
        finally:
            if writing is not None:
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writing
            await self.consumer.stop()
            await connection.close()

    async def _connect(self) -> asyncpg.Connection:
        try:
            connection = await asyncpg.connect(self.settings.database_url, timeout=10)
            await prepare(connection)
        except (OSError, asyncpg.PostgresError) as exc:
            raise InfraError(f"cannot connect to PostgreSQL: {exc}") from exc
        return connection

    async def _seek(self, connection: asyncpg.Connection) -> None:
        """Steps 1 to 3."""
        tracked = {
            row["stream"]: row["position"]
            for row in await connection.fetch(
                "SELECT stream, position FROM ledger.tracking WHERE processor = $1", PROCESSOR
            )
        }
        shard_count = len(self.settings.shards)
        blocks = [TopicPartition(TOPIC_BLOCKS, index) for index in range(shard_count)]
        rejections = [TopicPartition(TOPIC_REJECTIONS, index) for index in range(shard_count)]
        self.consumer.assign(blocks + rejections)
        snapshots = {
            row["ledger"]: row["snapshot"]
            for row in await connection.fetch(
                "SELECT ledger, snapshot FROM ledger.replica_snapshots"
            )
        }
        for index, name in enumerate(self.settings.shards):
            self.projected_height[index] = tracked.get(f"blocks:{name}", -1)
            HEIGHT.labels(name).set(self.projected_height[index])
            blocks_offset = 0
            if name in snapshots:
                restored = restore_snapshot(snapshots[name])
                self.replicas[index] = restored.replica
                blocks_offset = restored.blocks_offset_next
            self.snapshot_seq[index] = self.replicas[index].next_seq
            self.consumer.seek(blocks[index], blocks_offset)
            self.consumer.seek(rejections[index], tracked.get(f"rejections:{index}", 0))
        log.info(
            "projecting from heights %s",
            {self.settings.shards[i]: h for i, h in self.projected_height.items()},
        )

    def _collect(
        self, rows: Rows, topic_partition: TopicPartition, offset: int, value: bytes | None
    ) -> None:
        partition = topic_partition.partition
        if value is None:
            return
        if topic_partition.topic == TOPIC_REJECTIONS:
            try:
                rows.add_rejection(
                    partition, offset, codec.decode_rejection(plain(value, "Rejection"))
                )
            except DecodeError as exc:
                log.error(
                    "%s[%d]@%d is not a Rejection (%s); skipped",
                    TOPIC_REJECTIONS,
                    partition,
                    offset,
                    exc,
                )
            return
        replica = self.replicas.get(partition)
        if replica is None:
            return
        applied = replica.apply_block(
            codec.decode_block(plain(value, "Block"), canonical_check=False)
        )
        header = applied.block.header
        if header.height > self.projected_height[partition]:
            rows.add_block(applied, len(value))
            self.projected_height[partition] = header.height
            if replica.next_seq - self.snapshot_seq[partition] >= snapshot_interval_tx_count:
                data = snapshot(replica, header.source_offset_end, offset + 1)
                rows.snapshots[replica.ledger] = SnapshotRow(replica.ledger, header.height, data)
                self.snapshot_seq[partition] = replica.next_seq


async def run_forever(settings: Settings) -> None:
    """Run the projector until the process ends (restart = resume)."""
    await run_or_exit("projector", lambda: Projector(settings).run(), log)
