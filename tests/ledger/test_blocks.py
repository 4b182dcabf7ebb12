"""Block hashes, seals, roots, and the chain verifier: every tampering is caught at its height."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sealed_chain import LEDGER, NOW_MS, Chain, build_chain, envelope

from ledger import blocks, codec, merkle, signing
from ledger.errors import ChainError, SignatureError
from ledger.model import Block, BlockHeader, SealedTx

TX_COUNTS = [2, 0, 3, 1, 4, 1]


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain(TX_COUNTS)


def _flip(value: bytes, byte: int = 0) -> bytes:
    changed = bytearray(value)
    changed[byte] ^= 0x01
    return bytes(changed)


def _replace_block(chain: Chain, height: int, block: Block) -> list[Block]:
    return chain.blocks[:height] + [block] + chain.blocks[height + 1 :]


def _chain_error_height(block_list: list[Block], trusted: bytes | None = None) -> int:
    with pytest.raises(ChainError) as caught:
        blocks.verify_chain(block_list, trusted)
    return caught.value.height


def test_block_hash_is_sha256_of_domain_and_header_avro(chain: Chain) -> None:
    """block_hash = SHA-256(b"ledger.v1.block\\x00" + the header's canonical Avro bytes)."""
    header = chain.blocks[2].header
    expected = hashlib.sha256(b"ledger.v1.block\x00" + codec.encode_block_header(header)).digest()
    assert blocks.block_hash(header) == expected


def test_seal_accepts_private_key_and_signer_and_refuses_a_foreign_key() -> None:
    """seal() signs with an Ed25519PrivateKey or a Signer; a key other than sealer_key is a bug."""
    private_key = Ed25519PrivateKey.generate()
    signer = signing.Signer(private_key)
    block, _ = blocks.build_block(
        None,
        ledger=LEDGER,
        envelopes=[],
        sealed_at_ms=NOW_MS,
        source_partition=0,
        source_offset_end=0,
        signing_key=private_key,
    )
    blocks.check_seal(block)
    assert blocks.seal(block.header, signer) == block.seal  # Ed25519 is deterministic
    with pytest.raises(ValueError, match="not the header's sealer_key"):
        blocks.seal(block.header, Ed25519PrivateKey.generate())


def test_check_seal_refuses_a_flipped_seal_bit(chain: Chain) -> None:
    """check_seal raises SignatureError for any changed seal or header."""
    block = chain.blocks[3]
    for byte in range(64):
        with pytest.raises(SignatureError, match="seal of block 3"):
            blocks.check_seal(dataclasses.replace(block, seal=_flip(block.seal, byte)))
    header = dataclasses.replace(block.header, sealed_at_ms=block.header.sealed_at_ms + 1)
    with pytest.raises(SignatureError):
        blocks.check_seal(dataclasses.replace(block, header=header))


def test_roots_are_rfc9162_over_envelopes_and_block_hashes(chain: Chain) -> None:
    """tx_root is over leaf_hash(envelope); blocks_root of h is over leaf_hash(hash) of 0..h-1."""
    for height, block in enumerate(chain.blocks):
        envelopes = [tx.envelope for tx in block.transactions]
        assert block.header.tx_root == merkle.root([merkle.leaf_hash(e) for e in envelopes])
        earlier = [merkle.leaf_hash(digest) for digest in chain.hashes[:height]]
        assert block.header.blocks_root == merkle.root(earlier)
        assert block.header.blocks_root == blocks.blocks_root(chain.hashes[:height])
    assert chain.blocks[1].header.tx_root == hashlib.sha256(b"").digest()  # empty block


def test_a_built_chain_verifies_with_and_without_trusted_key(chain: Chain) -> None:
    """verify_chain returns the last height; the verifier's checkpoints equal build_block's."""
    assert blocks.verify_chain(chain.blocks) == len(TX_COUNTS) - 1
    assert blocks.verify_chain(chain.blocks, chain.sealer.public_key) == len(TX_COUNTS) - 1
    verifier = blocks.ChainVerifier(trusted_sealer_key=chain.sealer.public_key, ledger=LEDGER)
    for height, block in enumerate(chain.blocks):
        assert verifier.feed(block) == chain.hashes[height]
        assert verifier.checkpoint == chain.checkpoints[height]
    assert blocks.verify_chain([]) == -1


def test_blocks_read_back_from_avro_verify(chain: Chain) -> None:
    """Blocks encoded for Kafka and decoded again verify: the streaming reader's path."""
    decoded = [codec.decode_block(codec.encode_block(block)) for block in chain.blocks]
    assert blocks.verify_chain(decoded, chain.sealer.public_key) == len(TX_COUNTS) - 1


def _tampered_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return _flip(value, 31)
    if isinstance(value, str):
        return value + "x"
    assert isinstance(value, int)
    return value + 1


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(BlockHeader)])
def test_any_tampered_header_field_fails_at_its_height(chain: Chain, field: str) -> None:
    """Changing any one header field of block h (without resealing) fails at exactly h."""
    for height, block in enumerate(chain.blocks):
        value = _tampered_value(getattr(block.header, field))
        header = dataclasses.replace(block.header, **{field: value})
        tampered = _replace_block(chain, height, dataclasses.replace(block, header=header))
        assert _chain_error_height(tampered) == height


def test_a_tampered_seal_fails_at_its_height(chain: Chain) -> None:
    """A flipped bit in the seal of block h fails at h."""
    for height, block in enumerate(chain.blocks):
        tampered = _replace_block(chain, height, dataclasses.replace(block, seal=_flip(block.seal)))
        assert _chain_error_height(tampered) == height


def test_tampered_transactions_fail_at_their_height(chain: Chain) -> None:
    """A changed envelope byte, swapped envelopes or swapped transactions, a dropped or added
    transaction, or a renumbered seq each fail at the block's height."""
    block = chain.blocks[4]
    transactions = list(block.transactions)
    first, second = transactions[0], transactions[1]
    variants: dict[str, tuple[SealedTx, ...]] = {
        "envelope byte": (SealedTx(first.seq, _flip(first.envelope, 20)), *transactions[1:]),
        "swapped envelopes": (
            SealedTx(first.seq, second.envelope),
            SealedTx(second.seq, first.envelope),
            *transactions[2:],
        ),
        "swapped transactions": (second, first, *transactions[2:]),
        "dropped": tuple(transactions[:-1]),
        "added": (*transactions, SealedTx(transactions[-1].seq + 1, envelope(chain.author, 999))),
        "seq": (SealedTx(first.seq + 100, first.envelope), *transactions[1:]),
    }
    reasons = {}
    for name, variant in variants.items():
        tampered = _replace_block(chain, 4, dataclasses.replace(block, transactions=variant))
        with pytest.raises(ChainError) as caught:
            blocks.verify_chain(tampered)
        assert caught.value.height == 4, name
        reasons[name] = caught.value.reason
    assert "tx_root" in reasons["envelope byte"]
    assert "tx_root" in reasons["swapped envelopes"]
    assert "seq" in reasons["swapped transactions"]
    assert "tx_count" in reasons["dropped"] and "tx_count" in reasons["added"]


def test_gaps_duplicates_and_reordering_fail_at_the_missing_height(chain: Chain) -> None:
    """A missing, repeated or out-of-order block fails at the first height not verified."""
    for height in range(len(chain.blocks)):
        dropped = chain.blocks[:height] + chain.blocks[height + 1 :]
        if height < len(chain.blocks) - 1:
            assert _chain_error_height(dropped) == height
    repeated = chain.blocks[:3] + [chain.blocks[2]] + chain.blocks[3:]
    assert _chain_error_height(repeated) == 3
    swapped = chain.blocks[:2] + [chain.blocks[3], chain.blocks[2]] + chain.blocks[4:]
    assert _chain_error_height(swapped) == 2
    with pytest.raises(ChainError, match="expected block 0, got block 1"):
        blocks.verify_chain(chain.blocks[1:])


def test_a_block_resealed_by_another_key_is_caught(chain: Chain) -> None:
    """A forger who reseals block h with their own key is caught at h itself: by the trusted
    sealer key, and without one by the sealer change that no RotateSealer allowed."""
    forger = signing.Signer.generate()
    block = chain.blocks[2]
    header = dataclasses.replace(block.header, sealer_key=forger.public_key)
    forged = Block(header, block.transactions, blocks.seal(header, forger))
    tampered = _replace_block(chain, 2, forged)
    with pytest.raises(ChainError, match="changes only after a block that ends in a RotateSealer"):
        blocks.verify_chain(tampered)
    assert _chain_error_height(tampered) == 2
    with pytest.raises(ChainError, match="not the trusted sealer") as caught:
        blocks.verify_chain(tampered, chain.sealer.public_key)
    assert caught.value.height == 2


def test_a_whole_chain_sealed_by_a_stranger_needs_the_trusted_key() -> None:
    """A self-consistent chain by another sealer verifies alone, and fails at 0 when trusted."""
    stranger_chain = build_chain([1, 1])
    assert blocks.verify_chain(stranger_chain.blocks) == 1
    with pytest.raises(ChainError) as caught:
        blocks.verify_chain(stranger_chain.blocks, signing.Signer.generate().public_key)
    assert caught.value.height == 0


def test_genesis_rules(chain: Chain) -> None:
    """Block 0 links to 32 zero bytes, starts at seq 0 and commits to the empty blocks tree."""
    genesis = chain.blocks[0].header
    assert genesis.prev_hash == bytes(32) and genesis.first_seq == 0
    assert genesis.blocks_root == hashlib.sha256(b"").digest()
    changes: list[tuple[dict[str, Any], str]] = [
        ({"prev_hash": b"\x01" * 32}, "link to genesis"),
        ({"first_seq": 5}, "first_seq is 5, expected 0"),
        ({"blocks_root": bytes(32)}, "blocks_root"),
    ]
    for change, reason in changes:
        header = dataclasses.replace(genesis, **change)
        block = Block(header, chain.blocks[0].transactions, blocks.seal(header, chain.sealer))
        with pytest.raises(ChainError, match=reason) as caught:
            blocks.ChainVerifier().feed(block)
        assert caught.value.height == 0


def test_a_failed_block_leaves_the_verifier_unchanged(chain: Chain) -> None:
    """After a ChainError the verifier still expects the same height and accepts the real block."""
    verifier = blocks.ChainVerifier(trusted_sealer_key=chain.sealer.public_key)
    verifier.feed(chain.blocks[0])
    before = verifier.checkpoint
    bad = dataclasses.replace(chain.blocks[1], seal=_flip(chain.blocks[1].seal))
    with pytest.raises(ChainError):
        verifier.feed(bad)
    assert verifier.checkpoint == before and verifier.next_height == 1
    verifier.feed(chain.blocks[1])
    assert verifier.next_height == 2


def test_verification_resumes_from_a_trusted_checkpoint(chain: Chain) -> None:
    """From checkpoint k, blocks k+1.. verify; a checkpoint with a wrong hash fails at k+1."""
    for height, checkpoint in enumerate(chain.checkpoints):
        rest = chain.blocks[height + 1 :]
        assert blocks.verify_chain(rest, checkpoint=checkpoint) == len(TX_COUNTS) - 1
    checkpoint = chain.checkpoints[2]
    wrong = dataclasses.replace(checkpoint, block_hash=_flip(checkpoint.block_hash))
    with pytest.raises(ChainError, match="prev_hash") as caught:
        blocks.verify_chain(chain.blocks[3:], checkpoint=wrong)
    assert caught.value.height == 3
    wrong_seq = dataclasses.replace(checkpoint, next_first_seq=checkpoint.next_first_seq + 1)
    with pytest.raises(ChainError, match="first_seq"):
        blocks.verify_chain(chain.blocks[3:], checkpoint=wrong_seq)


def test_checkpoint_refuses_inconsistent_state(chain: Chain) -> None:
    """A checkpoint whose blocks tree size is not height + 1, or with a short hash, is refused."""
    checkpoint = chain.checkpoints[2]
    with pytest.raises(ValueError, match="blocks tree of 4 leaves"):
        dataclasses.replace(checkpoint, height=3)
    with pytest.raises(ValueError, match="32 bytes"):
        dataclasses.replace(checkpoint, block_hash=b"short")
    with pytest.raises(ValueError, match="blocks_tree"):
        dataclasses.replace(checkpoint, blocks_tree=b"\x00")
    with pytest.raises(ValueError, match="ledger"):
        blocks.ChainVerifier(checkpoint=checkpoint, ledger="other")


def test_a_block_of_another_ledger_is_refused(chain: Chain) -> None:
    """A verifier pinned to a ledger name refuses blocks of another one at genesis."""
    with pytest.raises(ChainError, match="ledger is"):
        blocks.ChainVerifier(ledger="other").feed(chain.blocks[0])
