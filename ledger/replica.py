"""A shard's state rebuilt from its blocks: the state machine plus the chain checkpoint.

The sequencer, the projector and any auditor run this same code over the same blocks, so they
agree on every balance. Pure: blocks in, state and effects out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger import codec
from ledger.blocks import ChainCheckpoint, ChainVerifier
from ledger.errors import ChainError, DecodeError
from ledger.model import Block, Tx
from ledger.signing import key_id
from ledger.state import Accepted, Effect, State, apply, begin_block, decide


def tx_from_envelope(envelope_bytes: bytes) -> Tx:
    """The transaction in a verified envelope (its signature is not checked again here)."""
    envelope, body = codec.decode_submission(envelope_bytes, checked=True)
    return Tx(
        body=body,
        public_key=envelope.public_key,
        key_id=key_id(envelope.public_key),
        envelope_bytes=envelope_bytes,
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
           fork or a bug, and raises ``ChainError`` naming its height.
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
            apply(self.state, decision)
            applied.append(AppliedTx(sealed.seq, index, decision))
        self.checkpoint = verifier.checkpoint
        self.last_sealed_at_ms = now_ms
        return AppliedBlock(block, digest, expiry, tuple(applied))
