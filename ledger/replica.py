"""A shard's state rebuilt from its blocks: the state machine plus the chain checkpoint.

The sequencer, the projector and any auditor run this same code over the same blocks, so they
agree on every balance. Pure: blocks in, state and effects out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ledger import codec
from ledger.blocks import ChainCheckpoint, ChainVerifier
from ledger.errors import ChainError, DecodeError
from ledger.model import Block, RotateSealer, Tx
from ledger.signing import key_id
from ledger.state import (
    Accepted,
    Effect,
    State,
    apply,
    begin_block,
    decide,
    restore,
    snapshot_bytes,
)


def tx_from_envelope(envelope_bytes: bytes, *, checked: bool = True) -> Tx:
    """The transaction in a verified envelope (its signature is not checked again here).

    ``checked`` (the default) is for envelopes read back from a block, which the sequencer
    decoded canonically before sealing; the sequencer itself passes False.
    """
    envelope, body = codec.decode_submission(envelope_bytes, checked=checked)
    return Tx(
        body=body,
        public_key=envelope.public_key,
        key_id=key_id(envelope.public_key),
        envelope_bytes=envelope_bytes,
        cosigners=tuple(
            (key_id(cosigner.public_key), cosigner.public_key) for cosigner in envelope.cosigners
        ),
    )


@dataclass(frozen=True, slots=True)
class AppliedTx:
    seq: int
    index_in_block: int
    accepted: Accepted


@dataclass(frozen=True, slots=True)
class AppliedBlock:
    """A block as replayed: its hash, the effects of its start, and each transaction's effects."""

    block: Block
    block_hash: bytes
    expiry_effects: tuple[Effect, ...]
    transactions: tuple[AppliedTx, ...]


@dataclass
class Replica:
    """One ledger's state at a block boundary. ``checkpoint`` is None before genesis."""

    ledger: str
    trusted_sealer_key: bytes | None = None
    """The key that must seal the next block (None: whichever seals it). It follows the chain's
    RotateSealer transactions, so it is the successor once one is applied."""
    state: State = field(default_factory=State)
    checkpoint: ChainCheckpoint | None = None
    last_sealed_at_ms: int = 0

    @property
    def next_height(self) -> int:
        return 0 if self.checkpoint is None else self.checkpoint.next_height

    @property
    def next_seq(self) -> int:
        return 0 if self.checkpoint is None else self.checkpoint.next_first_seq

    def apply_block(self, block: Block) -> AppliedBlock:
        """Verify ``block`` as the next one, replay its transactions, and return their effects.

        1. the chain checks (height, prev_hash, roots, seal) of ``ChainVerifier``;
        2. ``begin_block`` at the block's time;
        3. every transaction must decide as Accepted again: a block that does not replay is a
           fork or a bug, and raises ``ChainError`` naming its height. A RotateSealer must be
           the block's last transaction (``ledger.sealing``).
        """
        verifier = ChainVerifier(
            trusted_sealer_key=self.trusted_sealer_key,
            checkpoint=self.checkpoint,
            ledger=self.ledger,
        )
        digest = verifier.feed(block)
        header = block.header
        now_ms = header.sealed_at_ms
        expiry = tuple(begin_block(self.state, now_ms))
        applied: list[AppliedTx] = []
        for index, sealed in enumerate(block.transactions):
            try:
                tx = tx_from_envelope(sealed.envelope)
            except DecodeError as exc:
                raise ChainError(header.height, f"seq {sealed.seq} does not decode: {exc}") from exc
            decision = decide(self.state, tx, now_ms)
            if not isinstance(decision, Accepted):
                raise ChainError(
                    header.height,
                    f"seq {sealed.seq} replays as {decision.code.name}: {decision.detail}",
                )
            if type(tx.body.op) is RotateSealer and index != len(block.transactions) - 1:
                raise ChainError(header.height, f"seq {sealed.seq}: a RotateSealer mid-block")
            apply(self.state, decision)
            applied.append(AppliedTx(sealed.seq, index, decision))
        self.checkpoint = verifier.checkpoint
        self.trusted_sealer_key = verifier.sealer_key
        self.last_sealed_at_ms = now_ms
        return AppliedBlock(block, digest, expiry, tuple(applied))


snapshot_format_version = 1


def snapshot(replica: Replica, source_offset_end: int, blocks_offset_next: int) -> bytes:
    """The replica after its last block, with where to resume: restart without a full replay.

    Layout: a JSON header (format version, ledger, checkpoint, resume positions) of which the
    first 4 bytes give the length, then the state machine's own snapshot bytes.
    """
    checkpoint = replica.checkpoint
    if checkpoint is None:
        raise ValueError("a replica before genesis has nothing to snapshot")
    header = json.dumps(
        {
            "format": snapshot_format_version,
            "ledger": replica.ledger,
            "height": checkpoint.height,
            "block_hash": checkpoint.block_hash.hex(),
            "next_first_seq": checkpoint.next_first_seq,
            "blocks_tree": checkpoint.blocks_tree.hex(),
            "last_sealed_at_ms": replica.last_sealed_at_ms,
            "sealer_key": None
            if replica.trusted_sealer_key is None
            else replica.trusted_sealer_key.hex(),
            "source_offset_end": source_offset_end,
            "blocks_offset_next": blocks_offset_next,
        },
        sort_keys=True,
    ).encode()
    return len(header).to_bytes(4, "big") + header + snapshot_bytes(replica.state)


@dataclass(frozen=True, slots=True)
class RestoredReplica:
    replica: Replica
    source_offset_end: int
    blocks_offset_next: int


def restore_snapshot(data: bytes, trusted_sealer_key: bytes | None = None) -> RestoredReplica:
    """The replica of ``snapshot``; DecodeError when the bytes are not one.

    The snapshot names the key that seals the block after it (the chain may have rotated its
    sealer since ``trusted_sealer_key``, the first one); a snapshot from before rotation existed
    names none, and ``trusted_sealer_key`` is used.
    """
    try:
        header_size = int.from_bytes(data[:4], "big")
        header = json.loads(data[4 : 4 + header_size])
        if header["format"] != snapshot_format_version:
            raise DecodeError(
                f"snapshot format {header['format']} is not {snapshot_format_version}"
            )
        checkpoint = ChainCheckpoint(
            ledger=header["ledger"],
            height=header["height"],
            block_hash=bytes.fromhex(header["block_hash"]),
            next_first_seq=header["next_first_seq"],
            blocks_tree=bytes.fromhex(header["blocks_tree"]),
        )
        sealer_key = header.get("sealer_key")
        replica = Replica(
            ledger=header["ledger"],
            trusted_sealer_key=trusted_sealer_key
            if sealer_key is None
            else bytes.fromhex(sealer_key),
            state=restore(data[4 + header_size :]),
            checkpoint=checkpoint,
            last_sealed_at_ms=header["last_sealed_at_ms"],
        )
        return RestoredReplica(replica, header["source_offset_end"], header["blocks_offset_next"])
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not a replica snapshot: {exc}") from exc
