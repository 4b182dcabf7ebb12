"""Sealer rotation read from the chain: ChainVerifier follows a valid RotateSealer ending a block,
and refuses every other change of sealer and every RotateSealer that does not hold."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sealed_chain import LEDGER, NOW_MS, envelope

from ledger import blocks, codec, signing
from ledger.blocks import ChainCheckpoint
from ledger.errors import ChainError
from ledger.model import Block, Cosigner, RotateSealer

TX_COUNTS = [1, 2, 1, 3, 0, 2, 1, 2]
ROTATION_HEIGHTS = (2, 5)
"""Block 2 hands sealing from K0 to K1, block 5 from K1 to K2."""


@dataclasses.dataclass(frozen=True)
class RotatedChain:
    blocks: list[Block]
    hashes: list[bytes]
    checkpoints: list[ChainCheckpoint]
    sealers: list[signing.Signer]
    """K0, K1, ...: K0 seals from genesis, K(i+1) from the block after the i-th rotation."""
    rotation_heights: tuple[int, ...]
    author: signing.Signer

    def sealer_at(self, height: int) -> signing.Signer:
        return self.sealers[sum(1 for rotated in self.rotation_heights if rotated < height)]


def rotation_envelope(
    signer: signing.Signer,
    successor: bytes,
    cosigners: Sequence[signing.Signer],
    ledger: str = LEDGER,
    number: int = 0,
) -> bytes:
    """A RotateSealer naming ``successor``, submitted by ``signer`` and cosigned by ``cosigners``."""
    body = signing.build_tx_body(
        ledger,
        RotateSealer(successor),
        now_ms=NOW_MS,
        tx_id=number.to_bytes(16, "big"),
    )
    return signer.sign(body, cosigners=cosigners)


def next_block(
    previous: ChainCheckpoint | None, envelopes: Sequence[bytes], sealer: signing.Signer
) -> tuple[Block, ChainCheckpoint]:
    height = 0 if previous is None else previous.next_height
    return blocks.build_block(
        previous,
        ledger=LEDGER,
        envelopes=envelopes,
        sealed_at_ms=NOW_MS + height,
        source_partition=0,
        source_offset_end=height,
        signing_key=sealer,
    )


def build_rotated_chain(
    tx_counts: Sequence[int], rotation_heights: Sequence[int] = ROTATION_HEIGHTS
) -> RotatedChain:
    """Blocks of ``tx_counts`` Attest transactions each; every block of ``rotation_heights``
    also ends in a RotateSealer from its sealer to a new key, cosigned by the new key."""
    sealers = [signing.Signer.generate() for _ in range(len(rotation_heights) + 1)]
    author = signing.Signer.generate()
    chain_blocks: list[Block] = []
    checkpoints: list[ChainCheckpoint] = []
    previous: ChainCheckpoint | None = None
    number, current = 0, 0
    for height, count in enumerate(tx_counts):
        envelopes = [envelope(author, number + offset) for offset in range(count)]
        number += count
        sealer = sealers[current]
        if height in rotation_heights:
            successor = sealers[current + 1]
            envelopes.append(
                rotation_envelope(sealer, successor.public_key, [successor], number=height + 1)
            )
            current += 1
        block, previous = next_block(previous, envelopes, sealer)
        chain_blocks.append(block)
        checkpoints.append(previous)
    hashes = [blocks.block_hash(block.header) for block in chain_blocks]
    return RotatedChain(chain_blocks, hashes, checkpoints, sealers, tuple(rotation_heights), author)


@pytest.fixture(scope="module")
def chain() -> RotatedChain:
    return build_rotated_chain(TX_COUNTS)


def _with_block(
    chain: RotatedChain, height: int, envelopes: Sequence[bytes], sealer: signing.Signer
) -> list[Block]:
    """The chain's blocks 0..height-1, then a block of ``envelopes`` sealed by ``sealer``."""
    previous = chain.checkpoints[height - 1] if height else None
    block, _ = next_block(previous, envelopes, sealer)
    return [*chain.blocks[:height], block]


def _failure(block_list: Sequence[Block], trusted: bytes | None = None) -> ChainError:
    with pytest.raises(ChainError) as caught:
        blocks.verify_chain(block_list, trusted)
    return caught.value


def _rotation_block_with(chain: RotatedChain, rotation: bytes) -> list[Block]:
    """The chain up to its first rotation block, whose RotateSealer is replaced by ``rotation``,
    and the block after it sealed by K1."""
    height = chain.rotation_heights[0]
    genuine = [tx.envelope for tx in chain.blocks[height].transactions[:-1]]
    rotated, checkpoint = next_block(
        chain.checkpoints[height - 1], [*genuine, rotation], chain.sealers[0]
    )
    following, _ = next_block(checkpoint, [], chain.sealers[1])
    return [*chain.blocks[:height], rotated, following]


# ---- the chain follows rotations -----------------------------------------------------------


def test_a_chain_across_two_rotations_verifies_trusting_k0_or_nobody(chain: RotatedChain) -> None:
    """Trusting K0, or no key (block 0's sealer), the whole chain verifies through both
    rotations, and the verifier ends expecting K2."""
    last = len(TX_COUNTS) - 1
    assert blocks.verify_chain(chain.blocks, chain.sealers[0].public_key) == last
    assert blocks.verify_chain(chain.blocks) == last
    for trusted in (chain.sealers[0].public_key, None):
        verifier = blocks.ChainVerifier(trusted_sealer_key=trusted, ledger=LEDGER)
        for block in chain.blocks:
            verifier.feed(block)
            assert verifier.sealer_key == chain.sealer_at(block.header.height + 1).public_key
        assert verifier.rotation_count == 2


def test_a_chain_across_one_rotation_verifies(chain: RotatedChain) -> None:
    """Up to the block after the first rotation (one rotation followed), the chain verifies."""
    up_to = chain.rotation_heights[0] + 1
    verifier = blocks.ChainVerifier(trusted_sealer_key=chain.sealers[0].public_key)
    for block in chain.blocks[: up_to + 1]:
        verifier.feed(block)
    assert verifier.rotation_count == 1
    assert verifier.sealer_key == chain.sealers[1].public_key


def test_the_sealer_key_is_the_successor_right_after_the_rotation_block(
    chain: RotatedChain,
) -> None:
    """Once the rotation block is fed, sealer_key already names the successor."""
    verifier = blocks.ChainVerifier()
    assert verifier.sealer_key is None
    for block in chain.blocks[: chain.rotation_heights[0] + 1]:
        verifier.feed(block)
    assert verifier.sealer_key == chain.sealers[1].public_key


def test_resuming_needs_the_checkpoint_and_the_sealer_key(chain: RotatedChain) -> None:
    """A verifier resumed with a checkpoint and the earlier verifier's sealer_key goes on
    through the next rotation; trusting the genesis key after a rotation fails at once."""
    verifier = blocks.ChainVerifier()
    for block in chain.blocks[:4]:
        verifier.feed(block)
    resumed = blocks.ChainVerifier(
        trusted_sealer_key=verifier.sealer_key, checkpoint=verifier.checkpoint
    )
    for block in chain.blocks[4:]:
        resumed.feed(block)
    assert resumed.rotation_count == 1 and resumed.sealer_key == chain.sealers[2].public_key
    stale = blocks.ChainVerifier(
        trusted_sealer_key=chain.sealers[0].public_key, checkpoint=chain.checkpoints[3]
    )
    with pytest.raises(ChainError, match="not the trusted sealer") as caught:
        stale.feed(chain.blocks[4])
    assert caught.value.height == 4


def test_trusting_a_later_sealer_from_genesis_fails_at_block_0(chain: RotatedChain) -> None:
    """A trusted key is the key of the first block read: K1 did not seal block 0."""
    assert _failure(chain.blocks, chain.sealers[1].public_key).height == 0


@settings(max_examples=25, deadline=None)
@given(
    tx_counts=st.lists(st.integers(min_value=0, max_value=3), min_size=2, max_size=9),
    data=st.data(),
)
def test_any_rotation_schedule_verifies_and_any_other_sealer_fails(
    tx_counts: list[int], data: st.DataObject
) -> None:
    """For random blocks and rotation heights the chain verifies; resealing any block by any
    other of its keys fails at that very block."""
    heights = data.draw(
        st.lists(st.integers(0, len(tx_counts) - 2), unique=True, max_size=3).map(sorted)
    )
    chain = build_rotated_chain(tx_counts, heights)
    assert blocks.verify_chain(chain.blocks, chain.sealers[0].public_key) == len(tx_counts) - 1
    assert blocks.verify_chain(chain.blocks) == len(tx_counts) - 1
    height = data.draw(st.integers(1, len(tx_counts) - 1))
    wrong = data.draw(
        st.sampled_from([s for s in chain.sealers if s is not chain.sealer_at(height)] or [None])
    )
    if wrong is None:
        return  # no rotation: a single key
    resealed = _with_block(
        chain, height, [tx.envelope for tx in chain.blocks[height].transactions], wrong
    )
    assert _failure(resealed).height == height


# ---- sealer changes that are refused ----------------------------------------------------------


def test_a_block_after_the_rotation_sealed_by_the_old_key_fails(chain: RotatedChain) -> None:
    """K0 may not seal the block after the RotateSealer that retired it."""
    after = chain.rotation_heights[0] + 1
    old_sealed = _with_block(chain, after, [], chain.sealers[0])
    for trusted in (chain.sealers[0].public_key, None):
        failure = _failure(old_sealed, trusted)
        assert failure.height == after
        assert "the successor named by the RotateSealer ending block 2" in failure.reason


def test_a_sealer_change_without_a_rotation_fails(chain: RotatedChain) -> None:
    """K1 may not seal block 1: block 0 names no successor."""
    changed = _with_block(chain, 1, [], chain.sealers[1])
    failure = _failure(changed)
    assert failure.height == 1
    assert "changes only after a block that ends in a RotateSealer" in failure.reason
    assert "not the trusted sealer" in _failure(changed, chain.sealers[0].public_key).reason


def test_a_rotation_in_the_middle_of_a_block_hands_nothing_on(chain: RotatedChain) -> None:
    """Only the last transaction of a block counts: a RotateSealer before others does not
    rotate, so the block after it sealed by the named successor fails."""
    height = chain.rotation_heights[0]
    successor = chain.sealers[1]
    rotation = rotation_envelope(chain.sealers[0], successor.public_key, [successor], number=99)
    envelopes = [rotation, envelope(chain.author, 1_000)]
    middle, checkpoint = next_block(chain.checkpoints[height - 1], envelopes, chain.sealers[0])
    following, _ = next_block(checkpoint, [], successor)
    failure = _failure([*chain.blocks[:height], middle, following])
    assert failure.height == height + 1 and "RotateSealer" in failure.reason


def test_a_rotation_not_cosigned_by_the_successor_fails(chain: RotatedChain) -> None:
    """Without the successor's cosignature (none at all, or another key's), the rotation block
    itself fails: nothing shows the successor holds the new key."""
    k0, k1 = chain.sealers[0], chain.sealers[1]
    height = chain.rotation_heights[0]
    for cosigners in ([], [signing.Signer.generate()]):
        failure = _failure(
            _rotation_block_with(chain, rotation_envelope(k0, k1.public_key, cosigners))
        )
        assert failure.height == height and "did not cosign" in failure.reason


def test_a_rotation_signed_by_another_key_than_the_blocks_sealer_fails(
    chain: RotatedChain,
) -> None:
    """A RotateSealer submitted by any key but the sealer of its block (here an admin's, and
    the successor's own) hands nothing on."""
    k1 = chain.sealers[1]
    for signer, cosigners in ((signing.Signer.generate(), [k1]), (k1, [chain.sealers[0]])):
        rotation = rotation_envelope(signer, k1.public_key, cosigners)
        failure = _failure(_rotation_block_with(chain, rotation))
        assert failure.height == chain.rotation_heights[0]
        assert "not by the block's sealer" in failure.reason


def test_a_rotation_with_a_bad_signature_fails(chain: RotatedChain) -> None:
    """A flipped bit in the successor's cosignature, or in the sealer's own signature, fails
    the rotation block."""
    k0, k1 = chain.sealers[0], chain.sealers[1]
    genuine = codec.decode_envelope(rotation_envelope(k0, k1.public_key, [k1]))
    bad_cosigner = Cosigner(k1.public_key, _flip(genuine.cosigners[0].signature))
    for forged in (
        dataclasses.replace(genuine, cosigners=(bad_cosigner,)),
        dataclasses.replace(genuine, signature=_flip(genuine.signature)),
    ):
        failure = _failure(_rotation_block_with(chain, codec.encode_envelope(forged)))
        assert failure.height == chain.rotation_heights[0]
        assert "signature by key" in failure.reason and "does not verify" in failure.reason


def test_a_rotation_for_another_ledger_or_to_the_same_key_fails(chain: RotatedChain) -> None:
    """The RotateSealer must be for the block's ledger and name a new key."""
    k0, k1 = chain.sealers[0], chain.sealers[1]
    elsewhere = rotation_envelope(k0, k1.public_key, [k1], ledger="elsewhere")
    failure = _failure(_rotation_block_with(chain, elsewhere))
    assert "for ledger 'elsewhere'" in failure.reason
    to_itself = rotation_envelope(k0, k0.public_key, [k1])
    assert "names the block's own sealer" in _failure(_rotation_block_with(chain, to_itself)).reason


def test_a_failed_rotation_leaves_the_verifier_unchanged(chain: RotatedChain) -> None:
    """After a refused rotation block the verifier still expects that height and K0, and
    accepts the genuine block."""
    height = chain.rotation_heights[0]
    k0, k1 = chain.sealers[0], chain.sealers[1]
    bad = _rotation_block_with(chain, rotation_envelope(k0, k1.public_key, []))[height]
    verifier = blocks.ChainVerifier()
    for block in chain.blocks[:height]:
        verifier.feed(block)
    with pytest.raises(ChainError):
        verifier.feed(bad)
    assert verifier.next_height == height and verifier.sealer_key == k0.public_key
    assert verifier.rotation_count == 0
    verifier.feed(chain.blocks[height])
    assert verifier.sealer_key == k1.public_key and verifier.rotation_count == 1


def test_read_sealer_rotation_reads_only_rotations(chain: RotatedChain) -> None:
    """Other operations, and bytes that are no envelope, are no rotation."""
    assert blocks.read_sealer_rotation(chain.blocks[0].transactions[0].envelope) is None
    assert blocks.read_sealer_rotation(b"\x00") is None
    assert blocks.sealer_rotation(chain.blocks[4]) is None  # an empty block
    rotation = blocks.sealer_rotation(chain.blocks[chain.rotation_heights[0]])
    assert rotation is not None and rotation.successor == chain.sealers[1].public_key


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 0x01]) + value[1:]
