"""A witness against a real Kafka, on throwaway topics: it co-signs the blocks that verify and
replay, and answers a rogue sealer (a second block at a height, a sealed overdraft) with signed
evidence, after which it co-signs nothing more on that ledger, also after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from support.block_topics import (
    create_topic,
    delete_topics,
    read_values,
    unique_topic_name,
    write_values,
)
from support.cli import assert_one_line_error, run_ledger
from support.waiting import eventually

from ledger import codec
from ledger.blocks import ChainCheckpoint, block_hash, build_block
from ledger.kafka.principals import ADMIN
from ledger.kafka.wire import plain
from ledger.kafka_access import KafkaAccess
from ledger.model import (
    Attest,
    Block,
    DefineAsset,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    Role,
    SetFinality,
    Transfer,
)
from ledger.settings import Settings
from ledger.signing import Signer, build_tx_body
from ledger.witnessing import EvidenceKind, cosignature_ok, evidence_ok
from streams.witness import Witness, WitnessTopics

pytestmark = pytest.mark.services

LEDGER = "witnessed"
NOW_MS = 1_800_000_000_000
wait_s = 60.0


@dataclass
class Chain:
    """A ledger sealed by ``sealer`` block by block; ``checkpoints[h]`` is the one after h."""

    sealer: Signer = field(default_factory=Signer.generate)
    admin: Signer = field(default_factory=Signer.generate)
    issuer: Signer = field(default_factory=Signer.generate)
    alice: Signer = field(default_factory=Signer.generate)
    blocks: list[Block] = field(default_factory=list)
    checkpoints: list[ChainCheckpoint] = field(default_factory=list)

    def seal(self, signed: Sequence[tuple[Signer, Operation]], after: int | None = None) -> Block:
        """A block of ``signed`` operations sealed after block ``after`` (default: the newest)."""
        height = len(self.blocks) if after is None else after + 1
        previous = self.checkpoints[height - 1] if height else None
        now_ms = NOW_MS + 1_000 * height
        envelopes = [
            signer.sign(build_tx_body(LEDGER, op, now_ms=now_ms, external_ref=f"r{index}"))
            for index, (signer, op) in enumerate(signed)
        ]
        block, checkpoint = build_block(
            previous,
            ledger=LEDGER,
            envelopes=envelopes,
            sealed_at_ms=now_ms,
            source_partition=0,
            source_offset_end=height,
            signing_key=self.sealer,
        )
        if after is None:
            self.blocks.append(block)
            self.checkpoints.append(checkpoint)
        return block

    def genesis(self, witness: Signer) -> Block:
        admin = self.admin
        return self.seal(
            [
                (admin, RegisterKey(admin.public_key, (Role.ADMIN.value,), ())),
                (admin, RegisterKey(self.sealer.public_key, (Role.SEALER.value,), ())),
                (admin, RegisterKey(witness.public_key, (Role.WITNESS.value,), ())),
                (admin, SetFinality(1)),
                (admin, DefineAsset("USD", 2, "usd.issuer")),
                (admin, OpenAccount("alice", "USD")),
                (admin, RegisterKey(self.issuer.public_key, (), ("usd.issuer",))),
                (admin, RegisterKey(self.alice.public_key, (), ("alice",))),
                (
                    self.issuer,
                    Transfer((Posting("usd.issuer", "USD", -100), Posting("alice", "USD", 100))),
                ),
            ]
        )

    def attest(self, number: int, after: int | None = None) -> Block:
        return self.seal([(self.alice, Attest(bytes([number]) * 32))], after)

    def pay_back(self, amount: int) -> Block:
        """alice pays the issuer ``amount``: sealed whatever alice holds (a rogue sealer)."""
        return self.seal(
            [
                (
                    self.alice,
                    Transfer(
                        (Posting("alice", "USD", -amount), Posting("usd.issuer", "USD", amount))
                    ),
                )
            ]
        )


@dataclass
class Topics:
    names: WitnessTopics
    kafka: KafkaAccess

    async def write(self, *blocks: Block) -> None:
        values = [codec.encode_block(block) for block in blocks]
        await write_values(self.kafka, self.names.blocks, 0, values, transactional=True)

    async def read(self, topic: str) -> list[bytes]:
        return await read_values(self.kafka, topic)

    async def cosigned_heights(self) -> list[int]:
        cosignatures = [
            codec.decode_cosignature(plain(raw, "Cosignature"))
            for raw in await self.read(self.names.cosignatures)
        ]
        assert all(cosignature_ok(cosignature) for cosignature in cosignatures)
        return [cosignature.height for cosignature in cosignatures]


@pytest.fixture()
async def topics(settings: Settings) -> AsyncIterator[Topics]:
    names = WitnessTopics(
        unique_topic_name("witness-blocks"),
        unique_topic_name("witness-cosignatures"),
        unique_topic_name("witness-evidence"),
    )
    for name in (names.blocks, names.cosignatures, names.evidence):
        await create_topic(settings.kafka(ADMIN), name, 1)
    yield Topics(names, settings.kafka(ADMIN))
    await delete_topics(settings.kafka(ADMIN), [names.blocks, names.cosignatures, names.evidence])


@contextlib.asynccontextmanager
async def running(topics: Topics, signer: Signer, directory: Path) -> AsyncIterator[Witness]:
    witness = Witness(topics.kafka, [LEDGER], "test", signer, directory, topics.names)
    task = asyncio.create_task(witness.run())
    try:
        yield witness
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def position(witness: Witness, partition: TopicPartition) -> int:
    """Where the witness's reader stands on ``partition`` (-1 before it started)."""
    if not hasattr(witness, "consumer"):
        return -1
    try:
        return await witness.consumer.position(partition)
    except IllegalStateError:  # created, not assigned yet
        return -1


def head(directory: Path) -> dict[str, object]:
    heads: dict[str, dict[str, object]] = json.loads((directory / "head.json").read_text())
    return heads[LEDGER]


async def test_cosigns_every_block_once_across_a_restart(topics: Topics, tmp_path: Path) -> None:
    """Blocks that verify and replay are co-signed in order; a restarted witness goes on from
    where it stopped and re-sends at most the same bytes, never another block's signature."""
    witness_key, chain = Signer.generate(), Chain()
    await topics.write(chain.genesis(witness_key), chain.attest(1), chain.attest(2))
    async with running(topics, witness_key, tmp_path):
        await eventually(
            topics.cosigned_heights,
            lambda heights: heights == [0, 1, 2],
            what="cosignatures of blocks 0-2",
        )
    await topics.write(chain.attest(3))
    async with running(topics, witness_key, tmp_path):
        await eventually(
            topics.cosigned_heights,
            lambda heights: 3 in heights,
            what="block 3 co-signed after a restart",
        )
    raw = [
        codec.decode_cosignature(plain(value, "Cosignature"))
        for value in await topics.read(topics.names.cosignatures)
    ]
    by_height: dict[int, set[tuple[bytes, bytes]]] = {}
    for cosignature in raw:
        by_height.setdefault(cosignature.height, set()).add(
            (cosignature.block_hash, cosignature.signature)
        )
    assert sorted(by_height) == [0, 1, 2, 3]
    assert all(len(signed) == 1 for signed in by_height.values())
    assert {height: next(iter(signed))[0] for height, signed in by_height.items()} == {
        block.header.height: block_hash(block.header) for block in chain.blocks
    }
    assert head(tmp_path)["height"] == 3 and head(tmp_path)["halted"] is None


async def test_a_second_block_at_a_height_is_evidence_and_ends_cosigning(
    topics: Topics, tmp_path: Path
) -> None:
    """The sealer's own key seals a different block 1: the witness publishes signed EQUIVOCATION
    evidence holding both, co-signs nothing after it, and stays halted after a restart."""
    witness_key, chain = Signer.generate(), Chain()
    await topics.write(chain.genesis(witness_key), chain.attest(1))
    rogue = chain.attest(99, after=0)
    async with running(topics, witness_key, tmp_path) as witness:
        await eventually(
            topics.cosigned_heights, lambda heights: heights == [0, 1], what="blocks 0-1 co-signed"
        )
        await topics.write(rogue, chain.attest(2))
        [raw] = await eventually(
            lambda: topics.read(topics.names.evidence), what="evidence published"
        )
        evidence = codec.decode_evidence(plain(raw, "Evidence"))
        assert evidence_ok(evidence) and evidence.witness_key == witness_key.public_key
        assert evidence.kind == EvidenceKind.EQUIVOCATION and evidence.height == 1
        assert codec.decode_block(evidence.first) == rogue
        assert evidence.second == codec.encode_block_header(chain.blocks[1].header)
        blocks_end = TopicPartition(topics.names.blocks, 0)
        end = (await witness.consumer.end_offsets([blocks_end]))[blocks_end]
        await eventually(
            lambda: position(witness, blocks_end),
            lambda reached: reached >= end,
            what="block 2 read",
        )
    assert await topics.cosigned_heights() == [0, 1]
    assert str(head(tmp_path)["halted"]).startswith("EQUIVOCATION at height 1")
    verified = run_ledger(
        "verify-chain",
        "--ledger",
        LEDGER,
        "--topic",
        topics.names.blocks,
        "--partition",
        "0",
        "--evidence-topic",
        topics.names.evidence,
    )
    line = assert_one_line_error(verified, 1)
    assert "EQUIVOCATION at height 1" in line and witness_key.key_id in line, line
    async with running(topics, witness_key, tmp_path) as witness:
        await eventually(
            lambda: position(witness, blocks_end),
            lambda reached: reached >= end,
            what="chain read again",
        )
    assert await topics.cosigned_heights() == [0, 1]


async def test_a_sealed_overdraft_is_evidence_not_a_cosignature(
    topics: Topics, tmp_path: Path
) -> None:
    """A block sealed with a transfer the rules refuse (alice spends more than she has) gets
    REPLAY_REFUSED evidence naming the refusal, and no cosignature."""
    witness_key, chain = Signer.generate(), Chain()
    await topics.write(chain.genesis(witness_key), chain.pay_back(500))
    async with running(topics, witness_key, tmp_path):
        [raw] = await eventually(
            lambda: topics.read(topics.names.evidence), what="evidence published"
        )
    evidence = codec.decode_evidence(plain(raw, "Evidence"))
    assert evidence_ok(evidence)
    assert evidence.kind == EvidenceKind.REPLAY_REFUSED and evidence.height == 1
    assert "INSUFFICIENT_FUNDS" in evidence.detail
    assert await topics.cosigned_heights() == [0]
