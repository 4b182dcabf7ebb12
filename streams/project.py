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

import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from ledger import codec, limits
from ledger.errors import DecodeError, InfraError
from ledger.replica import Replica, restore_snapshot, snapshot
from ledger.settings import TOPIC_BLOCKS, TOPIC_REJECTIONS, Settings
from streams.lifecycle import run_or_exit
from streams.rows import Rows

log = logging.getLogger("ledger.project")

PROCESSOR = "project"
fetch_wait_ms = 200
fetch_records_max_count = 500
"""Blocks and rejections per PostgreSQL transaction: big transactions, few commits."""


snapshot_interval_tx_count = 200_000
"""A restart replays at most about this many transactions after the newest snapshot (about 8 s
here). Writing one costs about 0.25 s of this process at a full replay window (BENCHMARKS.md),
a pause in sealing or projecting, so not much more often than this."""

COPY_TABLES: dict[str, tuple[str, ...]] = {
    "blocks": (
        "ledger",
        "height",
        "hash",
        "prev_hash",
        "tx_root",
        "blocks_root",
        "tx_count",
        "first_seq",
        "sealed_at",
        "sealer_key",
        "source_partition",
        "source_offset_end",
        "size_bytes",
        "seal",
    ),
    "transactions": (
        "ledger",
        "seq",
        "tx_id",
        "height",
        "index_in_block",
        "kind",
        "key_id",
        "created_at",
        "expires_at",
        "sealed_at",
        "external_ref",
        "memo",
        "envelope",
    ),
    "postings": (
        "ledger",
        "seq",
        "posting_index",
        "account",
        "asset",
        "amount",
        "height",
        "sealed_at",
    ),
    "attestations": (
        "ledger",
        "digest",
        "algorithm",
        "seq",
        "tx_id",
        "key_id",
        "height",
        "sealed_at",
    ),
    "accounts": (
        "ledger",
        "account",
        "asset",
        "status",
        "max_balance",
        "allow_negative",
        "opened_height",
        "opened_seq",
    ),
    "assets": ("ledger", "asset", "scale", "issuer_account", "defined_height", "defined_seq"),
    "keys": (
        "ledger",
        "key_id",
        "public_key",
        "roles",
        "accounts",
        "registered_height",
        "registered_seq",
        "revoked_height",
    ),
    "holds": (
        "ledger",
        "hold_id",
        "payer",
        "payee",
        "asset",
        "amount",
        "captured_amount",
        "status",
        "expires_at",
        "created_seq",
        "resolved_seq",
        "resolved_height",
    ),
}

UPSERT_BALANCE = """
INSERT INTO ledger.balances (ledger, account, asset, balance, held, updated_height, updated_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (ledger, account) DO UPDATE SET
    balance = EXCLUDED.balance, held = EXCLUDED.held,
    updated_height = EXCLUDED.updated_height, updated_seq = EXCLUDED.updated_seq
"""
UPDATE_ACCOUNT_STATUS = "UPDATE ledger.accounts SET status = $3 WHERE ledger = $1 AND account = $2"
UPDATE_KEY_REVOKED = "UPDATE ledger.keys SET revoked_height = $3 WHERE ledger = $1 AND key_id = $2"
UPDATE_HOLD = """
UPDATE ledger.holds SET status = $3, captured_amount = $4, resolved_seq = $5, resolved_height = $6
WHERE ledger = $1 AND hold_id = $2
"""
INSERT_REJECTION = """
INSERT INTO ledger.rejections (tx_id, ledger, code, detail, stage, key_id, source_topic,
    source_partition, source_offset, rejected_at, height, external_ref)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING
"""
UPSERT_SNAPSHOT = """
INSERT INTO ledger.replica_snapshots (ledger, height, snapshot, taken_at) VALUES ($1, $2, $3, now())
ON CONFLICT (ledger) DO UPDATE SET
    height = EXCLUDED.height, snapshot = EXCLUDED.snapshot, taken_at = now()
"""
UPSERT_TRACKING = """
INSERT INTO ledger.tracking (processor, stream, position, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (processor, stream) DO UPDATE SET position = EXCLUDED.position, updated_at = now()
"""


async def write(connection: asyncpg.Connection, rows: Rows) -> None:
    """Write one batch and its tracking rows atomically; inserts first, then updates."""
    async with connection.transaction():
        for table, columns in COPY_TABLES.items():
            records: list[Any] = getattr(rows, table)
            if records:
                await connection.copy_records_to_table(
                    table, schema_name="ledger", columns=columns, records=records
                )
        if rows.balances:
            await connection.executemany(UPSERT_BALANCE, list(rows.balances.values()))
        if rows.account_statuses:
            await connection.executemany(
                UPDATE_ACCOUNT_STATUS,
                [(*key, status) for key, status in rows.account_statuses.items()],
            )
        if rows.key_revocations:
            await connection.executemany(
                UPDATE_KEY_REVOKED, [(*key, height) for key, height in rows.key_revocations.items()]
            )
        if rows.hold_resolutions:
            await connection.executemany(
                UPDATE_HOLD, [(*key, *values) for key, values in rows.hold_resolutions.items()]
            )
        if rows.rejections:
            await connection.executemany(INSERT_REJECTION, rows.rejections)
        if rows.snapshots:
            await connection.executemany(UPSERT_SNAPSHOT, list(rows.snapshots.values()))
        await connection.executemany(
            UPSERT_TRACKING, [(*key, position) for key, position in rows.tracking.items()]
        )


class Projector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.replicas = {index: Replica(name) for index, name in enumerate(settings.shards)}
        self.projected_height: dict[int, int] = {}
        self.snapshot_seq: dict[int, int] = {}
        """Per shard, the next seq at its newest snapshot."""
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="ledger-projector",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=limits.message_bytes_max,
            fetch_max_bytes=4 * limits.message_bytes_max,
        )

    async def run(self) -> None:
        connection = await self._connect()
        try:
            await self.consumer.start()
            await self._seek(connection)
            while True:
                batches = await self.consumer.getmany(
                    timeout_ms=fetch_wait_ms, max_records=fetch_records_max_count
                )
                rows = Rows()
                for topic_partition in sorted(batches, key=lambda tp: (tp.topic, tp.partition)):
                    for message in batches[topic_partition]:
                        self._collect(rows, topic_partition, message.offset, message.value)
                if len(rows):
                    await write(connection, rows)
        finally:
            await self.consumer.stop()
            await connection.close()

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self.settings.database_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise InfraError(f"cannot connect to PostgreSQL: {exc}") from exc

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
                rows.add_rejection(partition, offset, codec.decode_rejection(value))
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
        applied = replica.apply_block(codec.decode_block(value))
        header = applied.block.header
        if header.height > self.projected_height[partition]:
            rows.add_block(applied, len(value))
            self.projected_height[partition] = header.height
            if replica.next_seq - self.snapshot_seq[partition] >= snapshot_interval_tx_count:
                data = snapshot(replica, header.source_offset_end, offset + 1)
                rows.snapshots[replica.ledger] = (replica.ledger, header.height, data)
                self.snapshot_seq[partition] = replica.next_seq


async def run_forever(settings: Settings) -> None:
    """Run the projector until the process ends (restart = resume)."""
    await run_or_exit("projector", lambda: Projector(settings).run(), log)


def register(app: Any, settings: Settings) -> None:
    """Run the projector as a long-lived task of an all-roles faust worker."""

    @app.task  # type: ignore[untyped-decorator]
    async def project() -> None:
        await run_forever(settings)
