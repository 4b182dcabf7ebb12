"""Blocks: their hash, seal, Merkle roots, and the rules that chain them (DESIGN.md section 5).

- block hash = SHA-256(``BLOCK_HASH_DOMAIN`` + Avro bytes of the header);
- seal = Ed25519 signature of the block hash by ``header.sealer_key``;
- ``tx_root`` = RFC 9162 root over leaf_hash(envelope bytes), in block order;
- ``blocks_root`` of block h = RFC 9162 root over leaf_hash(block hash) of blocks 0..h-1: the
  leaf data is the 32-byte block hash, hashed with the 0x00 leaf prefix like any leaf.

``build_block`` (for the sequencer) and ``ChainVerifier`` (for readers) move the same
``ChainCheckpoint`` forward, so a block is built by exactly the rules it is checked by.

Sealer rotation (docs/sealer-rotation.md): a block whose last transaction is a valid
``RotateSealer`` hands sealing to its successor from the next block on. Valid means: signed by
the block's own sealer, cosigned by the successor, every signature over the body bytes good, for
the block's ledger (``rotation_problem`` and ``signing.verify_envelope``). Readers look at the
last transaction only, and decode it only when its operation index says RotateSealer: one cheap
read per block. A RotateSealer anywhere else in a block is the state machine's matter.
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
from ledger.model import OPERATION_TYPES, Block, BlockHeader, Envelope, RotateSealer, SealedTx

BLOCK_HASH_DOMAIN: Final = b"ledger.v1.block\x00"
"""Prefix of every hashed header, so a block hash can never pass as another message's hash."""

GENESIS_PREV_HASH: Final = bytes(32)
"""prev_hash of block 0: there is no earlier block."""

hash_bytes: Final = 32

ROTATE_SEALER_INDEX: Final = OPERATION_TYPES.index(RotateSealer)
"""Branch of the TxBody ``op`` union that rotates the sealer (``codec.operation_index``)."""


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


def check_tx_inclusion(
    envelope: bytes, tx_index: int, audit_path: Sequence[bytes], header: BlockHeader
) -> None:
    """Raise ProofError unless ``envelope`` is transaction ``tx_index`` of the block whose
    header is ``header`` (its leaf, by ``audit_path``, in the header's ``tx_root``)."""
    merkle.verify_inclusion(
        merkle.leaf_hash(envelope), tx_index, header.tx_count, audit_path, header.tx_root
    )


def blocks_root(block_hashes: Sequence[bytes]) -> bytes:
    """The blocks_root of the block that follows ``block_hashes`` (hashes of blocks 0..h-1)."""
    return merkle.root([merkle.leaf_hash(digest) for digest in block_hashes])


@dataclass(frozen=True, slots=True)
class SealerRotation:
    """A RotateSealer transaction, decoded but not yet checked (``rotation_problem``)."""

    envelope: Envelope
    ledger: str
    successor: bytes


def read_sealer_rotation(envelope_bytes: bytes) -> SealerRotation | None:
    """The RotateSealer in ``envelope_bytes``; None when it holds another operation.

    Only the operation index is read unless it is a RotateSealer. Bytes that are no envelope,
    or whose body is too short to name an operation, are no rotation either (None): nothing can
    rotate the sealer without a valid envelope. DecodeError when the body claims to be a
    RotateSealer and does not decode.
    """
    try:
        envelope = codec.decode_envelope(envelope_bytes)
        if codec.operation_index(envelope.body) != ROTATE_SEALER_INDEX:
            return None
    except DecodeError:
        return None
    body = codec.decode_tx_body(envelope.body, envelope.body_version)
    if not isinstance(body.op, RotateSealer):  # operation_index and the decoder disagree
        raise DecodeError(f"the body's operation index is RotateSealer, its op is {body.kind}")
    return SealerRotation(envelope, body.ledger, body.op.successor)


def sealer_rotation(block: Block) -> SealerRotation | None:
    """The RotateSealer ending ``block`` (decoded, not checked); None when it ends otherwise."""
    if not block.transactions:
        return None
    return read_sealer_rotation(block.transactions[-1].envelope)


def rotation_problem(rotation: SealerRotation, header: BlockHeader) -> str | None:
    """Why ``rotation``, the last transaction of the block of ``header``, does not hand sealing
    to its successor; None when it does, once its signatures verify.

    Checks, in order: the ledger, the submitting key (the block's own sealer), the successor (a
    new key, among the cosigners). Signatures are the caller's last check, with
    ``signing.verify_envelope`` (the Ed25519 work comes after the cheap comparisons).
    """
    envelope = rotation.envelope
    if rotation.ledger != header.ledger:
        return f"the RotateSealer is for ledger {rotation.ledger!r}, not {header.ledger!r}"
    if envelope.public_key != header.sealer_key:
        return (
            f"the RotateSealer is signed by key {_key_id(envelope.public_key)}, "
            f"not by the block's sealer {_key_id(header.sealer_key)}"
        )
    if rotation.successor == header.sealer_key:
        return f"the RotateSealer names the block's own sealer {_key_id(header.sealer_key)}"
    if rotation.successor not in {cosigner.public_key for cosigner in envelope.cosigners}:
        return (
            f"the successor {_key_id(rotation.successor)} did not cosign the RotateSealer "
            "(the cosignature proves it holds the new key)"
        )
    return None


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
    blocks_root, and be sealed by the expected sealer (``sealer_key``): ``trusted_sealer_key``,
    or when it is None the sealer of the first block fed, until a block ends in a valid
    RotateSealer; from the block after it, its successor. A sealer change anywhere else, or a
    RotateSealer that does not hold, fails.
    The first failure raises ``ChainError(height, reason)``, where height is the height that
    was expected (the chain is verified up to height - 1), and leaves the verifier unchanged.
    Envelope signatures (but a rotation's) and the state machine are not checked here:
    replaying them is the consumer's job (one Ed25519 check per transaction).

    To resume later, pass ``checkpoint`` and ``sealer_key`` (as ``trusted_sealer_key``)
    together: a checkpoint alone does not say which key sealing has passed to.
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
        self._sealer_key = trusted_sealer_key
        self._sealer_trusted = trusted_sealer_key is not None
        self._rotated_at: int | None = None
        """Height of the last rotation followed; None before the first one."""
        self._rotation_count = 0
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

    @property
    def sealer_key(self) -> bytes | None:
        """The key that must seal the next block; None before any block when no key is trusted.

        After a block ending in a RotateSealer this is already its successor.
        """
        return self._sealer_key

    @property
    def rotation_count(self) -> int:
        """Sealer rotations followed by this verifier (not those before its checkpoint)."""
        return self._rotation_count

    def feed(self, block: Block) -> bytes:
        """Verify ``block`` as the next block; on success remember it and return its hash."""
        height = self.next_height
        problem = self._position_problem(block.header) or self._content_problem(block)
        if problem is not None:
            raise ChainError(height, problem)
        digest = self._sealed_hash(block, height)
        successor = self._successor(block, height)
        header = block.header
        following = _advance(self._checkpoint, header, digest)
        assert following.height == height and following.block_hash == digest
        self._checkpoint = following
        self._ledger = header.ledger
        self._next_blocks_root = following.next_blocks_root
        self._sealer_key = header.sealer_key if successor is None else successor
        if successor is not None:
            self._rotated_at = height
            self._rotation_count += 1
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
        expected = self._sealer_key
        if expected is not None and header.sealer_key != expected:
            return self._sealer_problem(header.sealer_key, expected)
        return None

    def _sealer_problem(self, sealer_key: bytes, expected: bytes) -> str:
        sealed_by = f"sealed by key {_key_id(sealer_key)}"
        if self._rotated_at is not None:
            return (
                f"{sealed_by}, not {_key_id(expected)}, the successor named by the "
                f"RotateSealer ending block {self._rotated_at}"
            )
        if self._sealer_trusted:
            return f"{sealed_by}, not the trusted sealer {_key_id(expected)}"
        return (
            f"{sealed_by}, not {_key_id(expected)}, which sealed the blocks before it: the "
            "sealer changes only after a block that ends in a RotateSealer"
        )

    def _successor(self, block: Block, height: int) -> bytes | None:
        """The key that seals from the next block on when ``block`` (sealed, so its header is
        trusted) ends in a RotateSealer that holds; None when it ends otherwise."""
        try:
            rotation = sealer_rotation(block)
        except DecodeError as exc:
            raise ChainError(
                height, f"its last transaction, a RotateSealer, does not decode: {exc}"
            ) from exc
        if rotation is None:
            return None
        problem = rotation_problem(rotation, block.header)
        if problem is not None:
            raise ChainError(height, problem)
        try:
            signing.verify_envelope(rotation.envelope)
        except SignatureError as exc:
            raise ChainError(height, f"the RotateSealer's {exc}") from exc
        return rotation.successor

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
    "ROTATE_SEALER_INDEX",
    "ChainCheckpoint",
    "ChainVerifier",
    "SealerRotation",
    "block_hash",
    "blocks_root",
    "build_block",
    "check_seal",
    "read_sealer_rotation",
    "rotation_problem",
    "seal",
    "sealer_rotation",
    "tx_leaf_hashes",
    "tx_root",
    "verify_chain",
]
