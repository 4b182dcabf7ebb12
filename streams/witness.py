"""A witness: an independent organisation's process that co-signs the blocks it checked.

``python -m streams.witness --name NAME --key FILE`` (passphrase in LEDGER_WITNESS_PASSPHRASE)
follows every shard of ``ledger.blocks`` (read_committed) from block 0. Per poll:

1. decode each block canonically and check every client signature (libsodium, thread pool);
2. replay it (``Replica.apply_block``: height, link, roots, seal, then every transaction must be
   accepted again) and check that its sealer key holds the sealer role on chain;
3. persist the new head of each ledger (atomically, fsync'd) *before* publishing anything;
4. publish a cosignature per block to ``ledger.cosignatures`` (key = ledger, partition = the
   shard's), then record that they were acknowledged.

A block that breaks the chain is evidence, not a cosignature: two different sealed blocks at one
height (EQUIVOCATION), a block that does not extend the chain held (NOT_EXTENDING), or one that
does not verify or replay (REPLAY_REFUSED). The witness publishes signed evidence to
``ledger.evidence`` and co-signs nothing more on that ledger, across restarts.

On restart the chain is replayed again (every check anew); cosignatures of heights after the
last acknowledged one are re-sent. Ed25519 is deterministic, so a re-sent cosignature is the same
bytes: never two different blocks signed at one height.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Gauge

from ledger import codec
from ledger.blocks import block_hash
from ledger.errors import ChainError, DecodeError, LedgerError
from ledger.kafka.clients import committed_reader, idempotent_producer, send_batched
from ledger.kafka.principals import WITNESS
from ledger.kafka.wire import default_wire, framed, plain
from ledger.kafka_access import KafkaAccess
from ledger.model import Block, Cosignature, Envelope, Evidence, Role
from ledger.replica import Replica
from ledger.settings import TOPIC_BLOCKS, TOPIC_COSIGNATURES, TOPIC_EVIDENCE, Settings
from ledger.signing import Signer, bad_signers, key_id, load_private_key
from ledger.witnessing import EvidenceKind, cosign, sign_evidence
from streams.lifecycle import collect_less, run_or_exit
from streams.telemetry import add_metrics_port_argument, serve_metrics

log = logging.getLogger("ledger.witness")

poll_wait_ms = 200
poll_records_max = 200
signature_threads = 2

# Moved once per shard per poll (streams.telemetry), by ledger: a witness follows every shard.
BLOCKS_CHECKED = Counter(
    "ledger_witness_blocks_checked",
    "Block messages checked (decoded, signatures, replay), by ledger; a redelivered copy too.",
    ["ledger"],
)
COSIGNATURES_PUBLISHED = Counter(
    "ledger_witness_cosignatures_published",
    "Cosignatures acknowledged on ledger.cosignatures, by ledger; re-sent ones after a restart "
    "too.",
    ["ledger"],
)
EVIDENCE_PUBLISHED = Counter(
    "ledger_witness_evidence_published",
    "Evidence acknowledged on ledger.evidence, by ledger: co-signing that ledger stopped.",
    ["ledger"],
)
HEAD_HEIGHT = Gauge(
    "ledger_witness_head_height",
    "Height of this witness's head (the newest block it accepted, kept across restarts), by "
    "ledger (-1: none yet).",
    ["ledger"],
)


@dataclass
class LedgerHead:
    """What one witness holds of one ledger; ``height``/``acknowledged`` are -1 before block 0."""

    height: int = -1
    block_hash: str = ""
    acknowledged: int = -1
    """The highest height whose cosignature the broker acknowledged."""
    halted: str | None = None
    """Why this witness co-signs nothing more on the ledger (it published evidence)."""


class HeadFile:
    """``head.json`` in the witness's directory: each ledger's ``LedgerHead``, crash-safe."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "head.json"
        self.heads: dict[str, LedgerHead] = {}
        if self.path.exists():
            try:
                raw = json.loads(self.path.read_text())
                self.heads = {ledger: LedgerHead(**head) for ledger, head in raw.items()}
            except (ValueError, TypeError) as exc:
                raise LedgerError(f"{self.path} is damaged ({exc}); refusing to guess") from exc

    def head(self, ledger: str) -> LedgerHead:
        return self.heads.setdefault(ledger, LedgerHead())

    def save(self) -> None:
        """Write to a temporary file, fsync, rename over, fsync the directory."""
        temporary = self.path.with_suffix(".tmp")
        text = json.dumps({ledger: vars(head) for ledger, head in self.heads.items()}, indent=1)
        with open(temporary, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        descriptor = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@dataclass
class Follower:
    """One ledger as this witness replays it."""

    ledger: str
    partition: int
    replica: Replica
    headers: list[bytes] = field(default_factory=list)
    """Encoded header of each height: the witness's side of any equivocation evidence."""
    hashes: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class WitnessTopics:
    """Where a witness reads blocks and writes cosignatures and evidence; partition i of each
    carries ledger i."""

    blocks: str = TOPIC_BLOCKS
    cosignatures: str = TOPIC_COSIGNATURES
    evidence: str = TOPIC_EVIDENCE


@dataclass(frozen=True)
class Problem:
    """Why a block gets evidence instead of a cosignature; ``second`` is the witness's header."""

    kind: str
    detail: str
    second: bytes | None = None


SEEN = Problem("SEEN", "an exact copy of a block already held")
"""Not a problem: Kafka may deliver a block again after a reconnect."""


@dataclass(frozen=True)
class Outcome:
    cosignatures: list[Cosignature]
    evidence: Evidence | None = None
    halted: str | None = None


class Witness:
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer

    def __init__(
        self,
        kafka: KafkaAccess | str,
        ledgers: Sequence[str],
        name: str,
        signer: Signer,
        directory: Path,
        topics: WitnessTopics = WitnessTopics(),
    ) -> None:
        self.kafka = kafka
        self.ledgers = tuple(ledgers)
        self.topics = topics
        self.name = name
        self.signer = signer
        self.heads = HeadFile(directory)
        self.followers: dict[int, Follower] = {}
        self.executor = ThreadPoolExecutor(signature_threads, thread_name_prefix="witness-sig")

    async def run(self) -> None:
        collect_less()
        client_id = f"ledger-witness-{self.name}"
        self.consumer = committed_reader(self.kafka, client_id)
        self.producer = idempotent_producer(self.kafka, client_id, linger_ms=5)
        default_wire().load()
        await self.producer.start()
        await self.consumer.start()
        try:
            partitions = [
                TopicPartition(self.topics.blocks, index) for index in range(len(self.ledgers))
            ]
            self.consumer.assign(partitions)
            for index, ledger in enumerate(self.ledgers):
                self.followers[index] = Follower(ledger, index, Replica(ledger))
                self.consumer.seek(partitions[index], 0)
            log.info(
                "witness %s (key %s) follows %s",
                self.name,
                self.signer.key_id,
                self.ledgers,
            )
            while True:
                polled = await self.consumer.getmany(
                    timeout_ms=poll_wait_ms, max_records=poll_records_max
                )
                for topic_partition, messages in polled.items():
                    follower = self.followers[topic_partition.partition]
                    await self.witness(follower, [message.value for message in messages])
        finally:
            await self.consumer.stop()
            await self.producer.stop()
            self.executor.shutdown(wait=False)

    async def witness(self, follower: Follower, values: Sequence[bytes]) -> None:
        """Steps 1 to 4 for the messages of one shard."""
        head = self.heads.head(follower.ledger)
        if head.halted is not None:
            return
        blocks = [self._decode(value) for value in values]
        bad_signatures = await self._check_signatures(blocks)
        outcome = self.replay(follower, blocks, bad_signatures, int(time.time() * 1000))
        BLOCKS_CHECKED.labels(follower.ledger).inc(len(blocks))
        HEAD_HEIGHT.labels(follower.ledger).set(head.height)
        key = follower.ledger.encode()
        if outcome.cosignatures:
            self.heads.save()  # the head first: whatever was signed is remembered
            await self._send(
                self.topics.cosignatures,
                [
                    (
                        follower.partition,
                        key,
                        framed("Cosignature", codec.encode_cosignature(cosignature)),
                    )
                    for cosignature in outcome.cosignatures
                ],
            )
            head.acknowledged = outcome.cosignatures[-1].height
            COSIGNATURES_PUBLISHED.labels(follower.ledger).inc(len(outcome.cosignatures))
        if outcome.evidence is not None:
            # Published before the halt is saved: a crash in between publishes it again.
            await self._send(
                self.topics.evidence,
                [
                    (
                        follower.partition,
                        key,
                        framed("Evidence", codec.encode_evidence(outcome.evidence)),
                    )
                ],
            )
            head.halted = outcome.halted
            EVIDENCE_PUBLISHED.labels(follower.ledger).inc()
            log.error("%s: %s; co-signing stops", follower.ledger, head.halted)
        if outcome.cosignatures or outcome.evidence is not None:
            self.heads.save()

    async def _send(self, topic: str, messages: list[tuple[int, bytes, bytes]]) -> None:
        await asyncio.gather(*await send_batched(self.producer, topic, messages))

    def _decode(self, value: bytes) -> Block | DecodeError:
        try:
            return codec.decode_block(plain(value, "Block"))
        except DecodeError as exc:
            return exc

    async def _check_signatures(self, blocks: list[Block | DecodeError]) -> set[bytes]:
        """The envelopes (by their exact bytes) whose client signature does not verify."""
        envelopes = [
            sealed.envelope
            for block in blocks
            if isinstance(block, Block)
            for sealed in block.transactions
        ]

        def check(chunk: list[bytes]) -> list[bytes]:
            bad: list[bytes] = []
            decoded: list[tuple[bytes, Envelope]] = []
            for raw in chunk:
                try:
                    decoded.append((raw, codec.decode_envelope(raw)))
                except DecodeError:
                    bad.append(raw)
            failed = bad_signers([envelope for _, envelope in decoded])
            bad += [raw for (raw, _), key in zip(decoded, failed, strict=True) if key is not None]
            return bad

        loop = asyncio.get_running_loop()
        half = (len(envelopes) + 1) // 2
        chunks = [envelopes[:half], envelopes[half:]]
        results = await asyncio.gather(
            *(loop.run_in_executor(self.executor, check, chunk) for chunk in chunks if chunk)
        )
        return {raw for bad in results for raw in bad}

    def replay(
        self,
        follower: Follower,
        blocks: Sequence[Block | DecodeError],
        bad_signatures: set[bytes],
        now_ms: int,
    ) -> Outcome:
        """Apply each block in order; a cosignature for each new one, evidence at the first
        failure (and nothing after it)."""
        head = self.heads.head(follower.ledger)
        cosignatures: list[Cosignature] = []
        for block in blocks:
            problem = self._problem(follower, block, bad_signatures)
            if problem is SEEN:
                continue
            if problem is not None:
                evidence = self._evidence(follower, block, problem, now_ms)
                halted = f"{problem.kind} at height {evidence.height}: {problem.detail}"
                return Outcome(cosignatures, evidence, halted)
            assert isinstance(block, Block)
            digest = follower.hashes[-1]
            if block.header.height > head.acknowledged:
                cosignatures.append(cosign(self.signer, block.header, digest, now_ms))
            if block.header.height > head.height:
                head.height, head.block_hash = block.header.height, digest.hex()
        return Outcome(cosignatures)

    def _problem(
        self, follower: Follower, block: Block | DecodeError, bad_signatures: set[bytes]
    ) -> Problem | None:
        """None when ``block`` was applied as the next one, else what is wrong with it."""
        if isinstance(block, DecodeError):
            return Problem(EvidenceKind.REPLAY_REFUSED, f"a message that is not a block: {block}")
        header = block.header
        expected = follower.replica.next_height
        if header.height < expected:
            if block_hash(header) == follower.hashes[header.height]:
                return SEEN
            return Problem(
                EvidenceKind.EQUIVOCATION,
                f"a second, different block at height {header.height}",
                follower.headers[header.height],
            )
        if header.height > expected:
            return Problem(
                EvidenceKind.NOT_EXTENDING, f"block {header.height} after {expected - 1}"
            )
        for sealed in block.transactions:
            if sealed.envelope in bad_signatures:
                return Problem(
                    EvidenceKind.REPLAY_REFUSED,
                    f"seq {sealed.seq}: the client signature does not verify",
                )
        try:
            applied = follower.replica.apply_block(block)
        except ChainError as exc:
            linked = "prev_hash" not in str(exc)
            kind = EvidenceKind.REPLAY_REFUSED if linked else EvidenceKind.NOT_EXTENDING
            return Problem(kind, str(exc))
        sealer = follower.replica.state.keys.get(key_id(header.sealer_key))
        if (
            sealer is None
            or Role.SEALER.value not in sealer.roles
            # revoked by this very block (a RotateSealer ends it) is still its sealer
            or (sealer.revoked_at_ms is not None and sealer.revoked_at_ms < header.sealed_at_ms)
        ):
            return Problem(
                EvidenceKind.REPLAY_REFUSED,
                "sealed by a key that held no sealer role at the block's time",
            )
        follower.hashes.append(applied.block_hash)
        follower.headers.append(codec.encode_block_header(header))
        persisted = self.heads.head(follower.ledger)
        if header.height == persisted.height and applied.block_hash.hex() != persisted.block_hash:
            return Problem(
                EvidenceKind.EQUIVOCATION,
                f"block {header.height} differs from the one this witness co-signed before",
            )
        return None

    def _evidence(
        self, follower: Follower, block: Block | DecodeError, problem: Problem, now_ms: int
    ) -> Evidence:
        first = codec.encode_block(block) if isinstance(block, Block) else b""
        height = block.header.height if isinstance(block, Block) else follower.replica.next_height
        return sign_evidence(
            self.signer,
            Evidence(
                ledger=follower.ledger,
                height=height,
                kind=problem.kind,
                detail=problem.detail[:500],
                first=first,
                second=problem.second,
                witness_key=self.signer.public_key,
                observed_at_ms=now_ms,
            ),
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.witness", description=__doc__)
    parser.add_argument("--name", required=True, help="this witness's name (its state directory)")
    parser.add_argument("--key", required=True, type=Path, help="its encrypted key file")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="lower this process's CPU priority by this much (on a machine shared with the "
        "pipeline: a witness lags rather than slows the ledger)",
    )
    add_metrics_port_argument(parser)
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    passphrase = os.environ.get("LEDGER_WITNESS_PASSPHRASE", "local-dev-witness").encode()
    try:
        signer = load_private_key(args.key, passphrase)
    except LedgerError as exc:
        sys.exit(f"witness {args.name}: {exc}")
    directory = settings.data_dir / "witnesses" / args.name
    witness = Witness(settings.kafka(WITNESS), settings.shards, args.name, signer, directory)
    serve_metrics(args.metrics_port, f"witness {args.name}")
    asyncio.run(run_or_exit(f"witness {args.name}", witness.run, log))


if __name__ == "__main__":
    main()
