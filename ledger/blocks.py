"""Blocks: their hash, seal, Merkle roots, and the rules that chain them (DESIGN.md section 5).

- block hash = SHA-256(``BLOCK_HASH_DOMAIN`` + Avro bytes of the header);
- seal = Ed25519 signature of the block hash by ``header.sealer_key``;
- ``tx_root`` = RFC 9162 root over leaf_hash(envelope bytes), in block order;
- ``blocks_root`` of block h = RFC 9162 root over leaf_hash(block hash) of blocks 0..h-1: the
  leaf data is the 32-byte block hash, hashed with the 0x00 leaf prefix like any leaf.

``build_block`` (for the sequencer) and ``ChainVerifier`` (for readers) move the same
``ChainCheckpoint`` forward, so a block is built by exactly the rules it is checked by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import codec, merkle, signing
from ledger.errors import ChainError, DecodeError, LedgerError, SignatureError
from ledger.model import Block, BlockHeader, SealedTx

BLOCK_HASH_DOMAIN: Final = b"ledger.v1.block\x00"
"""Prefix of every hashed header, so a block hash can never pass as another message's hash."""

GENESIS_PREV_HASH: Final = bytes(32)
"""prev_hash of block 0: there is no earlier block."""

hash_bytes: Final = 32


def block_hash(header: BlockHeader) -> bytes:
    """SHA-256(BLOCK_HASH_DOMAIN + canonical Avro bytes of ``header``)."""
    return hashlib.sha256(BLOCK_HASH_DOMAIN + codec.encode_block_header(header)).digest()


def _public_key_bytes(signing_key: Ed25519PrivateKey | signing.Signer) -> bytes:
    if isinstance(signing_key, signing.Signer):
        return signing_key.public_key
    return signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def seal(header: BlockHeader, signing_key: Ed25519PrivateKey | signing.Signer) -> bytes:
    """The Ed25519 signature of the block hash; the key must be the header's sealer_key."""
    if _public_key_bytes(signing_key) != header.sealer_key:
        raise ValueError(
            "the signing key is not the header's sealer_key; the seal would not verify"
        )
    digest = block_hash(header)
    if isinstance(signing_key, signing.Signer):
        return signing_key.sign_message(digest)
    return signing_key.sign(digest)


def check_seal(block: Block) -> None:
    """Raise SignatureError unless ``block.seal`` signs its header's hash by its sealer_key."""
    digest = block_hash(block.header)
    if not signing.message_signature_ok(block.header.sealer_key, block.seal, digest):
        raise SignatureError(
            f"seal of block {block.header.height} does not verify "
            f"by sealer key {signing.key_id(block.header.sealer_key)}"
        )


def tx_leaf_hashes(transactions: Sequence[SealedTx]) -> list[bytes]:
    """Leaf hashes of the tx tree: leaf_hash of each exact envelope, in block order."""
    return [merkle.leaf_hash(tx.envelope) for tx in transactions]


def tx_root(transactions: Sequence[SealedTx]) -> bytes:
    """The header's tx_root for these transactions."""
    return merkle.root(tx_leaf_hashes(transactions))


def blocks_root(block_hashes: Sequence[bytes]) -> bytes:
    """The blocks_root of the block that follows ``block_hashes`` (hashes of blocks 0..h-1)."""
    return merkle.root([merkle.leaf_hash(digest) for digest in block_hashes])


@dataclass(frozen=True, slots=True)
class ChainCheckpoint:
    """Where a verified chain stands after block ``height``: enough to check or build the next.

    ``blocks_tree`` is ``merkle.CompactTree.to_bytes()`` over the leaf hashes of blocks
    0..height (so its size is height + 1 and its root is the next block's blocks_root).
    A reader that trusts one is trusting everything up to ``height``: take it only from a
    source you trust as much as the sealer, or from your own earlier ``ChainVerifier``.
    """

    ledger: str
    height: int
    block_hash: bytes
    next_first_seq: int
    blocks_tree: bytes

    def __post_init__(self) -> None:
        if self.height < 0 or self.next_first_seq < 0:
            raise ValueError("checkpoint height and next_first_seq cannot be negative")
        if len(self.block_hash) != hash_bytes:
            raise ValueError(f"checkpoint block_hash must be {hash_bytes} bytes")
        try:
            tree = merkle.CompactTree.from_bytes(self.blocks_tree)
        except DecodeError as exc:
            raise ValueError(f"checkpoint blocks_tree: {exc}") from exc
        if tree.size != self.height + 1:
            raise ValueError(
                f"checkpoint at height {self.height} needs a blocks tree of {self.height + 1} "
                f"leaves, got {tree.size}"
            )

    @property
    def next_height(self) -> int:
        return self.height + 1

    @property
    def next_blocks_root(self) -> bytes:
        """The blocks_root the next block must carry."""
        return merkle.CompactTree.from_bytes(self.blocks_tree).root()


def _advance(
    previous: ChainCheckpoint | None, header: BlockHeader, digest: bytes
) -> ChainCheckpoint:
    """The checkpoint after ``header`` (whose hash is ``digest``); checks nothing."""
    tree = (
        merkle.CompactTree()
        if previous is None
        else merkle.CompactTree.from_bytes(previous.blocks_tree)
    )
    tree.append(merkle.leaf_hash(digest))
    return ChainCheckpoint(
        ledger=header.ledger,
        height=header.height,
        block_hash=digest,
        next_first_seq=header.first_seq + header.tx_count,
        blocks_tree=tree.to_bytes(),
    )


def build_block(
    previous: ChainCheckpoint | None,
    *,
    ledger: str,
    envelopes: Sequence[bytes],
    sealed_at_ms: int,
    source_partition: int,
    source_offset_end: int,
    signing_key: Ed25519PrivateKey | signing.Signer,
) -> tuple[Block, ChainCheckpoint]:
    """Seal the block after ``previous`` (None: genesis) holding ``envelopes`` in this order.

    Returns the block and the checkpoint after it, to pass as ``previous`` next time.
    """
    if previous is not None and previous.ledger != ledger:
        raise ValueError(f"previous block is of ledger {previous.ledger!r}, not {ledger!r}")
    first_seq = 0 if previous is None else previous.next_first_seq
    transactions = tuple(
        SealedTx(seq=first_seq + index, envelope=envelope)
        for index, envelope in enumerate(envelopes)
    )
    header = BlockHeader(
        ledger=ledger,
        height=0 if previous is None else previous.next_height,
        prev_hash=GENESIS_PREV_HASH if previous is None else previous.block_hash,
        tx_root=tx_root(transactions),
        tx_count=len(transactions),
        first_seq=first_seq,
        sealed_at_ms=sealed_at_ms,
        blocks_root=merkle.root([]) if previous is None else previous.next_blocks_root,
        sealer_key=_public_key_bytes(signing_key),
        source_partition=source_partition,
        source_offset_end=source_offset_end,
    )
    block = Block(header=header, transactions=transactions, seal=seal(header, signing_key))
    return block, _advance(previous, header, block_hash(header))


class ChainVerifier:
    """Checks a block stream one block at a time, in O(log n) memory.

    Feed blocks in order with ``feed``. Each must be the next height of the same ledger, link to
    the previous hash, continue the seq numbering, carry the right tx_count, tx_root and
    blocks_root, and be sealed by its sealer_key (and, if given, by ``trusted_sealer_key``).
    The first failure raises ``ChainError(height, reason)``, where height is the height that
    was expected (the chain is verified up to height - 1), and leaves the verifier unchanged.
    Envelope signatures and the state machine are not checked here: replaying them is the
    consumer's job (one Ed25519 check per transaction).
    """

    def __init__(
        self,
        *,
        trusted_sealer_key: bytes | None = None,
        checkpoint: ChainCheckpoint | None = None,
        ledger: str | None = None,
    ) -> None:
        if checkpoint is not None and ledger is not None and checkpoint.ledger != ledger:
            raise ValueError(f"checkpoint is of ledger {checkpoint.ledger!r}, not {ledger!r}")
        self._trusted_sealer_key = trusted_sealer_key
        self._checkpoint = checkpoint
        self._ledger = checkpoint.ledger if checkpoint is not None else ledger
        self._next_blocks_root = (
            merkle.root([]) if checkpoint is None else checkpoint.next_blocks_root
        )

    @property
    def next_height(self) -> int:
        """The height the next fed block must have."""
        return 0 if self._checkpoint is None else self._checkpoint.next_height

    @property
    def checkpoint(self) -> ChainCheckpoint | None:
        """Where the verified chain stands; None before any block."""
        return self._checkpoint

    def feed(self, block: Block) -> bytes:
        """Verify ``block`` as the next block; on success remember it and return its hash."""
        height = self.next_height
        problem = self._position_problem(block.header) or self._content_problem(block)
        if problem is not None:
            raise ChainError(height, problem)
        digest = self._sealed_hash(block, height)
        header = block.header
        following = _advance(self._checkpoint, header, digest)
        assert following.height == height and following.block_hash == digest
        self._checkpoint = following
        self._ledger = header.ledger
        self._next_blocks_root = following.next_blocks_root
        return digest

    def _position_problem(self, header: BlockHeader) -> str | None:
        """Where the block sits: height, ledger, link to its predecessor, blocks_root."""
        height = self.next_height
        previous = self._checkpoint
        if header.height != height:
            return f"expected block {height}, got block {header.height}"
        if self._ledger is not None and header.ledger != self._ledger:
            return f"ledger is {header.ledger!r}, expected {self._ledger!r}"
        expected_prev = GENESIS_PREV_HASH if previous is None else previous.block_hash
        if header.prev_hash != expected_prev:
            linked_to = "genesis's 32 zero bytes" if previous is None else f"block {height - 1}"
            return (
                f"prev_hash {_hex(header.prev_hash)} does not link to {linked_to} "
                f"({expected_prev.hex()})"
            )
        expected_first_seq = 0 if previous is None else previous.next_first_seq
        if header.first_seq != expected_first_seq:
            return f"first_seq is {header.first_seq}, expected {expected_first_seq}"
        if header.blocks_root != self._next_blocks_root:
            return (
                f"blocks_root {_hex(header.blocks_root)} is not the root over blocks 0..{height - 1} "
                f"({self._next_blocks_root.hex()})"
            )
        return None

    def _content_problem(self, block: Block) -> str | None:
        """What the block holds: tx_count, seq numbers, tx_root, sealer."""
        header = block.header
        if header.tx_count != len(block.transactions):
            return f"tx_count is {header.tx_count} but the block holds {len(block.transactions)}"
        for index, tx in enumerate(block.transactions):
            if tx.seq != header.first_seq + index:
                return f"transaction {index} has seq {tx.seq}, expected {header.first_seq + index}"
        computed_tx_root = tx_root(block.transactions)
        if header.tx_root != computed_tx_root:
            return (
                f"tx_root {_hex(header.tx_root)} is not the root over its transactions "
                f"({computed_tx_root.hex()})"
            )
        trusted = self._trusted_sealer_key
        if trusted is not None and header.sealer_key != trusted:
            return (
                f"sealed by key {_key_id(header.sealer_key)}, "
                f"not the trusted sealer {_key_id(trusted)}"
            )
        return None

    def _sealed_hash(self, block: Block, height: int) -> bytes:
        """The block hash, once the seal over it verifies."""
        try:
            digest = block_hash(block.header)
            check_seal(block)
        except SignatureError as exc:
            raise ChainError(height, str(exc)) from exc
        except (LedgerError, TypeError, ValueError) as exc:
            raise ChainError(height, f"header does not encode: {exc}") from exc
        return digest


def verify_chain(
    blocks: Iterable[Block],
    trusted_sealer_key: bytes | None = None,
    *,
    checkpoint: ChainCheckpoint | None = None,
) -> int:
    """Verify ``blocks`` in order from genesis (or ``checkpoint``); the last height verified.

    Returns -1 when there were no blocks and no checkpoint. Raises ChainError at the first
    height that fails.
    """
    verifier = ChainVerifier(trusted_sealer_key=trusted_sealer_key, checkpoint=checkpoint)
    for block in blocks:
        verifier.feed(block)
    return verifier.next_height - 1


def _hex(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)


def _key_id(public_key: bytes) -> str:
    return signing.key_id(public_key) if isinstance(public_key, bytes) else repr(public_key)


__all__ = [
    "BLOCK_HASH_DOMAIN",
    "GENESIS_PREV_HASH",
    "ChainCheckpoint",
    "ChainVerifier",
    "block_hash",
    "blocks_root",
    "build_block",
    "check_seal",
    "seal",
    "tx_leaf_hashes",
    "tx_root",
    "verify_chain",
]
