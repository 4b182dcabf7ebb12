"""BlockReader on the real Kafka: verifies before yielding, stops at the first bad block, resumes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.block_topics import (
    FORENSIC_LEDGER,
    SealedChain,
    attest_envelope,
    build_chain,
    create_topic,
    delete_topics,
    unique_topic_name,
    write_values,
)
from support.ledger_fixture import TestLedger

from ledger import blocks, codec, signing
from ledger.client.reader import BlockReader, VerifiedBlock
from ledger.errors import ChainError, ConfigError, InfraError
from ledger.kafka.principals import ADMIN
from ledger.model import Block, SealedTx
from ledger.settings import Settings

pytestmark = pytest.mark.services

chain_length = 6
tampered_height = chain_length - 1


def _resealed(block: Block, sealer: signing.Signer, **changes: Any) -> Block:
    header = dataclasses.replace(block.header, **changes)
    return dataclasses.replace(block, header=header, seal=blocks.seal(header, sealer))


def _other_envelope(chain: SealedChain, block: Block) -> Block:
    first = block.transactions[0]
    swapped = SealedTx(first.seq, attest_envelope(chain.author, 10_000))
    return dataclasses.replace(block, transactions=(swapped, *block.transactions[1:]))


def _flipped_seal(chain: SealedChain, block: Block) -> Block:
    return dataclasses.replace(block, seal=bytes([block.seal[0] ^ 1]) + block.seal[1:])


TAMPERINGS: dict[str, Callable[[SealedChain, Block], Block | bytes]] = {
    "envelope swapped": _other_envelope,
    "seal flipped": _flipped_seal,
    "prev_hash resealed": lambda chain, block: _resealed(block, chain.sealer, prev_hash=bytes(32)),
    "blocks_root resealed": lambda chain, block: _resealed(
        block, chain.sealer, blocks_root=bytes(32)
    ),
    "height skipped": lambda chain, block: _resealed(
        block, chain.sealer, height=block.header.height + 1
    ),
    "first_seq shifted": lambda chain, block: _resealed(
        block, chain.sealer, first_seq=block.header.first_seq + 1
    ),
    "not a block": lambda chain, block: b"\x00not a block at all",
}


@dataclasses.dataclass(frozen=True)
class TamperedTopic:
    name: str
    chain: SealedChain
    partitions: dict[str, int]
    """Tampering -> the partition holding a chain whose last block has it."""


@pytest.fixture(scope="module")
async def tampered_topic(settings: Settings) -> AsyncIterator[TamperedTopic]:
    """One fresh topic; partition i holds the good chain with tampering i applied to its end."""
    name = unique_topic_name("tampered")
    chain = build_chain([2] * chain_length)
    await create_topic(settings.kafka(ADMIN), name, len(TAMPERINGS))
    partitions: dict[str, int] = {}
    for partition, (label, tamper) in enumerate(TAMPERINGS.items()):
        last = tamper(chain, chain.blocks[-1])
        values = [codec.encode_block(block) for block in chain.blocks[:-1]]
        values.append(last if isinstance(last, bytes) else codec.encode_block(last))
        await write_values(settings.kafka(ADMIN), name, partition, values)
        partitions[label] = partition
    yield TamperedTopic(name, chain, partitions)
    await delete_topics(settings.kafka(ADMIN), [name])


@pytest.fixture(scope="module")
async def transactional_topic(settings: Settings) -> AsyncIterator[tuple[str, SealedChain]]:
    """A good chain written one Kafka transaction per block: commit markers sit between blocks."""
    name = unique_topic_name("transactional")
    chain = build_chain([1, 3, 0, 2, 1, 1, 4, 1])
    await create_topic(settings.kafka(ADMIN), name, 1)
    await write_values(
        settings.kafka(ADMIN),
        name,
        0,
        [codec.encode_block(block) for block in chain.blocks],
        transactional=True,
    )
    yield name, chain
    await delete_topics(settings.kafka(ADMIN), [name])


async def _read_all(reader: BlockReader) -> list[VerifiedBlock]:
    async with reader:
        return [item async for item in reader]


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
async def test_a_tampered_block_stops_the_reader_at_its_height(
    settings: Settings, tampered_topic: TamperedTopic, tampering: str
) -> None:
    """Every block before the tampered one is yielded, then ChainError names exactly its height."""
    reader = BlockReader(
        settings.kafka(ADMIN),
        FORENSIC_LEDGER,
        partition=tampered_topic.partitions[tampering],
        topic=tampered_topic.name,
    )
    heights: list[int] = []
    with pytest.raises(ChainError) as failure:
        async with reader:
            async for item in reader:
                heights.append(item.height)
    assert failure.value.height == tampered_height
    assert heights == list(range(tampered_height))
    assert reader.next_height == tampered_height


async def test_a_block_by_another_sealer_fails_when_the_sealer_is_trusted(
    settings: Settings, tampered_topic: TamperedTopic
) -> None:
    """An intact chain sealed by an unexpected key fails at block 0 once a sealer is trusted."""
    reader = BlockReader(
        settings.kafka(ADMIN),
        FORENSIC_LEDGER,
        partition=tampered_topic.partitions["not a block"],
        topic=tampered_topic.name,
        trusted_sealer_key=signing.Signer.generate().public_key,
    )
    with pytest.raises(ChainError, match="not the trusted sealer") as failure:
        await _read_all(reader)
    assert failure.value.height == 0


async def test_reading_from_genesis_yields_every_block_with_its_offset(
    settings: Settings, transactional_topic: tuple[str, SealedChain]
) -> None:
    """Blocks come in height order with their Kafka offsets, hashes and checkpoints."""
    name, chain = transactional_topic
    items = await _read_all(
        BlockReader(
            settings.kafka(ADMIN),
            FORENSIC_LEDGER,
            partition=0,
            topic=name,
            trusted_sealer_key=chain.sealer.public_key,
        )
    )
    assert [item.block for item in items] == chain.blocks
    assert [item.checkpoint for item in items] == chain.checkpoints
    assert [item.block_hash for item in items] == [
        blocks.block_hash(block.header) for block in chain.blocks
    ]
    offsets = [item.offset for item in items]
    assert offsets == sorted(offsets) and offsets[-1] > len(offsets) - 1  # markers in between


@pytest.mark.parametrize("after_height", [0, 2, 5, 6])
async def test_a_checkpoint_resumes_at_the_next_block_found_by_offset_search(
    settings: Settings, transactional_topic: tuple[str, SealedChain], after_height: int
) -> None:
    """From a trusted checkpoint the reader finds the next block's offset and yields the rest."""
    name, chain = transactional_topic
    from_genesis = await _read_all(
        BlockReader(settings.kafka(ADMIN), FORENSIC_LEDGER, partition=0, topic=name)
    )
    resumed = await _read_all(
        BlockReader(
            settings.kafka(ADMIN),
            FORENSIC_LEDGER,
            partition=0,
            topic=name,
            checkpoint=chain.checkpoints[after_height],
        )
    )
    assert resumed == from_genesis[after_height + 1 :]
    with_offset = await _read_all(
        BlockReader(
            settings.kafka(ADMIN),
            FORENSIC_LEDGER,
            partition=0,
            topic=name,
            checkpoint=chain.checkpoints[after_height],
            start_offset=from_genesis[after_height].offset + 1,
        )
    )
    assert with_offset == resumed


async def test_from_height_replays_earlier_blocks_without_yielding_them(
    settings: Settings, transactional_topic: tuple[str, SealedChain]
) -> None:
    """from_height skips the yield, not the verification: the chain is checked from genesis."""
    name, chain = transactional_topic
    items = await _read_all(
        BlockReader(
            settings.kafka(ADMIN),
            FORENSIC_LEDGER,
            partition=0,
            topic=name,
            from_height=5,
        )
    )
    assert [item.height for item in items] == [5, 6, 7]
    assert items[-1].checkpoint == chain.checkpoints[-1]


async def test_a_checkpoint_from_another_history_fails_at_the_next_height(
    settings: Settings, transactional_topic: tuple[str, SealedChain]
) -> None:
    """A checkpoint that is not of this chain makes the next block fail to link, by height."""
    name, _ = transactional_topic
    foreign = build_chain([1, 1, 1]).checkpoints[2]
    with pytest.raises(ChainError) as failure:
        await _read_all(
            BlockReader(
                settings.kafka(ADMIN),
                FORENSIC_LEDGER,
                partition=0,
                topic=name,
                checkpoint=foreign,
            )
        )
    assert failure.value.height == 3


async def test_follow_mode_yields_blocks_sealed_after_it_caught_up(settings: Settings) -> None:
    """follow=True waits at the end and yields each new block; idle_timeout_s ends the wait."""
    name = unique_topic_name("follow")
    chain = build_chain([1, 2, 1, 1, 3])
    kafka = settings.kafka(ADMIN)
    await create_topic(kafka, name, 1)
    try:
        encoded = [codec.encode_block(block) for block in chain.blocks]
        await write_values(kafka, name, 0, encoded[:2])
        reader = BlockReader(
            kafka, FORENSIC_LEDGER, partition=0, topic=name, follow=True, idle_timeout_s=5
        )
        seen: list[int] = []
        writer: asyncio.Task[None] | None = None
        async with reader:
            async for item in reader:
                seen.append(item.height)
                if item.height == 1:
                    writer = asyncio.create_task(write_values(kafka, name, 0, encoded[2:]))
        assert writer is not None
        await writer
        assert seen == [0, 1, 2, 3, 4]
    finally:
        await delete_topics(kafka, [name])


async def test_the_ledger_main_chain_verifies_under_its_sealer(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """The live ledger's blocks verify from genesis under the sealer named in block 0."""
    items = await _read_all(
        BlockReader(
            settings.kafka(ADMIN),
            test_ledger.ledger,
            trusted_sealer_key=test_ledger.sealer_public_key,
        )
    )
    assert [item.height for item in items] == list(range(len(items)))
    assert all(item.block.header.ledger == test_ledger.ledger for item in items)


async def test_unreachable_kafka_is_an_infra_error_within_the_bound() -> None:
    """Nothing listening: InfraError well within the connect bound, not a hang."""
    started = time.monotonic()
    with pytest.raises(InfraError, match="cannot reach Kafka"):
        await _read_all(BlockReader("127.0.0.1:1", "main", partition=0))
    assert time.monotonic() - started < 20


async def test_a_missing_topic_or_partition_is_named(settings: Settings) -> None:
    """A topic that does not exist, or a partition it lacks, is an error that names it."""
    with pytest.raises(InfraError, match="does not exist"):
        await _read_all(
            BlockReader(
                settings.kafka(ADMIN),
                "main",
                partition=0,
                topic=unique_topic_name("missing"),
            )
        )
    with pytest.raises(ConfigError, match="needs partition 99"):
        await _read_all(BlockReader(settings.kafka(ADMIN), "main", partition=99))


def test_misuse_is_refused_before_any_io() -> None:
    """Contradictory arguments fail at construction: nothing is read on a wrong premise."""
    checkpoint = build_chain([1]).checkpoints[0]
    with pytest.raises(ValueError, match="ledger"):
        BlockReader("127.0.0.1:1", "main", partition=0, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="start_offset"):
        BlockReader("127.0.0.1:1", FORENSIC_LEDGER, partition=0, start_offset=3)
    with pytest.raises(ValueError, match="from_height"):
        BlockReader(
            "127.0.0.1:1", FORENSIC_LEDGER, partition=0, checkpoint=checkpoint, from_height=0
        )
    with pytest.raises(ConfigError, match="LEDGER_SHARDS"):
        BlockReader("127.0.0.1:1", "no-such-ledger")
