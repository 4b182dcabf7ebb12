"""The finality recorder: witnesses' cosignatures and evidence into PostgreSQL.

One process reads every partition of ``ledger.cosignatures`` and ``ledger.evidence`` from the
positions it keeps in ``ledger.tracking`` (processor ``finality``), and writes each poll's rows and
its new positions in one PostgreSQL transaction, like the projector: a database rebuilt from
scratch is filled again from offset 0, and a crash loses or repeats nothing. Per poll:

- a cosignature counts (``ledger.cosignatures``) when it decodes, its key is registered on the
  ledger with the witness role and not revoked, its signature verifies, and it covers the block
  the chain has at that height (as projected: a cosignature of a block not projected yet waits
  for it). Anything else is a row of ``ledger.ignored_messages`` with the reason, never a vote;
- evidence signed by a registered witness is kept in ``ledger.evidence``; other evidence is
  ignored the same way.

``analytics.final_height(ledger)`` (migration 0006) turns the cosignatures into the final height.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Gauge

from ledger import codec
from ledger.errors import DecodeError
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import FINALITY
from ledger.kafka.wire import plain
from ledger.model import Cosignature, Evidence
from ledger.settings import TOPIC_COSIGNATURES, TOPIC_EVIDENCE, Settings
from ledger.signing import key_id
from ledger.witnessing import cosignature_problem, evidence_ok
from streams.lifecycle import run_or_exit

log = logging.getLogger("ledger.finality")

PROCESSOR = "finality"
"""The ``processor`` of this recorder's ``ledger.tracking`` rows."""
poll_wait_ms = 200
projection_wait_s = 30.0
"""How long a cosignature waits for its block to be projected before it is ignored."""
projection_poll_s = 0.1

# Moved once per recorded poll (streams.telemetry).
COSIGNATURES = Counter(
    "ledger_finality_cosignatures",
    "Cosignatures recorded (counted towards finality), by ledger.",
    ["ledger"],
)
EVIDENCE = Counter(
    "ledger_finality_evidence",
    "Evidence signed by a registered witness, recorded, by ledger.",
    ["ledger"],
)
IGNORED = Counter(
    "ledger_finality_ignored_messages",
    "Cosignature and evidence messages recorded as ignored (ledger.ignored_messages).",
)
FINAL_HEIGHT = Gauge(
    "ledger_finality_final_height",
    "Final height (analytics.final_height) after the newest poll that recorded cosignatures of "
    "the ledger, by ledger.",
    ["ledger"],
)

_INSERT_COSIGNATURE = """
INSERT INTO ledger.cosignatures
    (ledger, height, witness_key_id, witness_key, block_hash, signature, signed_at)
VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7 / 1000.0))
ON CONFLICT DO NOTHING
"""
_INSERT_EVIDENCE = """
INSERT INTO ledger.evidence
    (ledger, height, kind, detail, witness_key_id, observed_at, message)
VALUES ($1, $2, $3, $4, $5, to_timestamp($6 / 1000.0), $7)
ON CONFLICT DO NOTHING
"""
_TRACK = """
INSERT INTO ledger.tracking (processor, stream, position, updated_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (processor, stream) DO UPDATE SET position = EXCLUDED.position, updated_at = now()
"""
_INSERT_IGNORED = """
INSERT INTO ledger.ignored_messages (topic, partition, "offset", reason)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass
class Sorted:
    """One poll's messages, decided."""

    cosignatures: list[Cosignature] = field(default_factory=list)
    evidence: list[tuple[Evidence, bytes]] = field(default_factory=list)
    ignored: list[tuple[str, int, int, str]] = field(default_factory=list)


async def witness_keys(connection: asyncpg.Connection, ledger: str) -> frozenset[bytes]:
    """The ledger's registered, unrevoked witness keys, as projected."""
    rows = await connection.fetch(
        "SELECT public_key FROM ledger.keys"
        " WHERE ledger = $1 AND 'witness' = ANY (roles) AND revoked_height IS NULL",
        ledger,
    )
    return frozenset(bytes(row["public_key"]) for row in rows)


async def chain_hashes(
    connection: asyncpg.Connection, ledger: str, heights: Sequence[int]
) -> dict[int, bytes]:
    rows = await connection.fetch(
        "SELECT height, hash FROM ledger.blocks WHERE ledger = $1 AND height = ANY ($2::bigint[])",
        ledger,
        list(heights),
    )
    return {row["height"]: bytes(row["hash"]) for row in rows}


async def sort_poll(connection: asyncpg.Connection, messages: Sequence[Received]) -> Sorted:
    """Decide every message of a poll; waits (bounded) for blocks not projected yet."""
    result = Sorted()
    decoded: list[tuple[Received, Cosignature]] = []
    for message in messages:
        if message.topic == TOPIC_EVIDENCE:
            await _sort_evidence(connection, message, result)
            continue
        try:
            decoded.append((message, codec.decode_cosignature(plain(message.value, "Cosignature"))))
        except DecodeError as exc:
            result.ignored.append(_ignored(message, f"not a Cosignature: {exc}"))
    keys: dict[str, frozenset[bytes]] = {}
    deadline = time.monotonic() + projection_wait_s
    while decoded:
        waiting: list[tuple[Received, Cosignature]] = []
        for ledger in {cosignature.ledger for _, cosignature in decoded}:
            keys[ledger] = await witness_keys(connection, ledger)
            mine = [(m, c) for m, c in decoded if c.ledger == ledger]
            hashes = await chain_hashes(connection, ledger, [c.height for _, c in mine])
            for message, cosignature in mine:
                problem = cosignature_problem(
                    cosignature, keys[ledger], hashes.get(cosignature.height)
                )
                if problem is None:
                    result.cosignatures.append(cosignature)
                elif problem == "no such block yet" and time.monotonic() < deadline:
                    waiting.append((message, cosignature))
                else:
                    result.ignored.append(_ignored(message, problem))
        decoded = waiting
        if decoded:
            await asyncio.sleep(projection_poll_s)
    return result


async def _sort_evidence(connection: asyncpg.Connection, message: Received, result: Sorted) -> None:
    try:
        evidence = codec.decode_evidence(plain(message.value, "Evidence"))
    except DecodeError as exc:
        result.ignored.append(_ignored(message, f"not an Evidence: {exc}"))
        return
    if evidence.witness_key not in await witness_keys(connection, evidence.ledger):
        result.ignored.append(_ignored(message, "not signed by a registered witness key"))
    elif not evidence_ok(evidence):
        result.ignored.append(_ignored(message, "the signature does not verify"))
    else:
        result.evidence.append((evidence, message.value))


def _ignored(message: Received, reason: str) -> tuple[str, int, int, str]:
    log.warning("%s[%d]@%d ignored: %s", message.topic, message.partition, message.offset, reason)
    return (message.topic, message.partition, message.offset, reason[:500])


async def record(connection: asyncpg.Connection, result: Sorted, positions: dict[str, int]) -> None:
    """Write one sorted poll and the positions after it (stream -> next offset) atomically."""
    async with connection.transaction():
        await connection.executemany(
            _TRACK, [(PROCESSOR, stream, position) for stream, position in positions.items()]
        )
        if result.cosignatures:
            await connection.executemany(
                _INSERT_COSIGNATURE,
                [
                    (
                        c.ledger,
                        c.height,
                        key_id(c.witness_key),
                        c.witness_key,
                        c.block_hash,
                        c.signature,
                        c.signed_at_ms,
                    )
                    for c in result.cosignatures
                ],
            )
        if result.evidence:
            await connection.executemany(
                _INSERT_EVIDENCE,
                [
                    (
                        e.ledger,
                        e.height,
                        e.kind,
                        e.detail,
                        key_id(e.witness_key),
                        e.observed_at_ms,
                        raw,
                    )
                    for e, raw in result.evidence
                ],
            )
        if result.ignored:
            await connection.executemany(_INSERT_IGNORED, result.ignored)


def stream_name(partition: TopicPartition) -> str:
    """The ``ledger.tracking`` stream of a partition: ``ledger.cosignatures:0``."""
    return f"{partition.topic}:{partition.partition}"


async def count_poll(connection: asyncpg.Connection, result: Sorted) -> None:
    """The metrics of one recorded poll; the final height of each ledger it recorded
    cosignatures of is read again (one query per ledger, a few index entries each)."""
    cosigned = collections.Counter(map(attrgetter("ledger"), result.cosignatures))
    for ledger, count in cosigned.items():
        COSIGNATURES.labels(ledger).inc(count)
    for evidence, _ in result.evidence:
        EVIDENCE.labels(evidence.ledger).inc()
    IGNORED.inc(len(result.ignored))
    for ledger in cosigned:
        height = await connection.fetchval("SELECT analytics.final_height($1)", ledger)
        if height is not None:
            FINAL_HEIGHT.labels(ledger).set(height)


class FinalityRecorder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: AIOKafkaConsumer = committed_reader(
            settings.kafka(FINALITY), "ledger-finality"
        )

    async def run(self) -> None:
        connection = await asyncpg.connect(self.settings.database_url)
        await self.consumer.start()
        try:
            tracked = {
                row["stream"]: row["position"]
                for row in await connection.fetch(
                    "SELECT stream, position FROM ledger.tracking WHERE processor = $1", PROCESSOR
                )
            }
            partitions = [
                TopicPartition(topic, index)
                for topic in (TOPIC_COSIGNATURES, TOPIC_EVIDENCE)
                for index in range(len(self.settings.shards))
            ]
            self.consumer.assign(partitions)
            for partition in partitions:
                self.consumer.seek(partition, tracked.get(stream_name(partition), 0))
            while True:
                polled = await self.consumer.getmany(timeout_ms=poll_wait_ms)
                if not polled:
                    continue
                messages = [
                    Received(tp.topic, tp.partition, message.offset, message.value)
                    for tp, batch in polled.items()
                    for message in batch
                ]
                positions = {stream_name(tp): batch[-1].offset + 1 for tp, batch in polled.items()}
                result = await sort_poll(connection, messages)
                await record(connection, result, positions)
                await count_poll(connection, result)
        finally:
            await self.consumer.stop()
            await connection.close()


async def run_forever(settings: Settings) -> None:
    """Run the finality recorder until the process ends."""
    await run_or_exit("finality", lambda: FinalityRecorder(settings).run(), log)
