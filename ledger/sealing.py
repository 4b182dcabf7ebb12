"""The block-cutting rule and the sealing of one block, pure: the sequencer's whole decision.

Like Fabric's BatchSize/BatchTimeout (DESIGN.md section 5), a block is sealed when it holds
``block_tx_max_count`` transactions or ``block_bytes_max`` bytes, or ``block_wait_ms`` after its
first message, whichever comes first. The unit the sequencer reads is a message of
``ledger.verified`` (a ``VerifiedBatch`` of envelopes), and a block holds whole messages only, so
a block's ``source_offset_end`` (the offset after its last message) is the whole checkpoint:

  1. ``BlockCutter.offer`` takes each message in partition order and returns the blocks that
     must be sealed now (the open one when the message does not fit, or when it became full);
  2. ``BlockCutter.take_due`` returns the open block once its wait is over;
  3. ``seal_block`` decides every envelope at one block time, in order, applies the accepted
     ones to the replica and builds the sealed block; the refused ones become rejections that
     name the position they were submitted at. A ``RotateSealer`` is decided after every other
     envelope of its block, so that an accepted one is the block's last transaction: the
     sealer changes between blocks, and readers look for a rotation only at a block's end.

No clock and no I/O: the caller passes monotonic seconds for the cut and wall milliseconds for
the block time, and produces the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ledger import codec, limits
from ledger.blocks import build_block
from ledger.errors import DecodeError
from ledger.model import Block, RejectionRecord, RotateSealer, Tx, VerifiedEntry
from ledger.rejections import Rejected, RejectionCode, Stage
from ledger.replica import Replica, tx_from_envelope
from ledger.signing import Signer, key_id
from ledger.state import Accepted, State, apply, begin_block, decide

assert limits.verified_batch_tx_max_count <= limits.block_tx_max_count
assert limits.verified_batch_bytes_max <= limits.block_bytes_max


@dataclass(frozen=True, slots=True)
class VerifiedMessage:
    """One message of the shard's ``ledger.verified`` partition, decoded."""

    offset: int
    entries: tuple[VerifiedEntry, ...]
    source_topic: str
    """Where the entries' positions point: ``ledger.submissions`` (or ``ledger.verified`` for a
    message of the single-envelope format written before batches)."""
    size_bytes: int

    @classmethod
    def of(
        cls, offset: int, entries: tuple[VerifiedEntry, ...], source_topic: str
    ) -> VerifiedMessage:
        return cls(offset, entries, source_topic, sum(len(entry.envelope) for entry in entries))


@dataclass
class OpenBlock:
    """Messages waiting for the next seal, in partition order."""

    opened_s: float
    messages: list[VerifiedMessage] = field(default_factory=list)
    tx_count: int = 0
    size_bytes: int = 0

    def fits(self, message: VerifiedMessage) -> bool:
        return (
            self.tx_count + len(message.entries) <= limits.block_tx_max_count
            and self.size_bytes + message.size_bytes <= limits.block_bytes_max
        )

    def add(self, message: VerifiedMessage) -> None:
        self.messages.append(message)
        self.tx_count += len(message.entries)
        self.size_bytes += message.size_bytes

    def full(self) -> bool:
        return (
            self.tx_count >= limits.block_tx_max_count or self.size_bytes >= limits.block_bytes_max
        )

    @property
    def source_offset_end(self) -> int:
        return self.messages[-1].offset + 1


class BlockCutter:
    """Steps 1 and 2: which messages go into which block, and when a block is due."""

    def __init__(self, source_offset_end: int) -> None:
        self.source_offset_end = source_offset_end
        """Messages below this offset are in a sealed block already (a replay after restart)."""
        self.open: OpenBlock | None = None

    def offer(self, message: VerifiedMessage, now_s: float) -> list[OpenBlock]:
        """Add ``message``; returns the blocks to seal now, oldest first (at most two)."""
        if message.offset < self.source_offset_end:
            return []
        ready: list[OpenBlock] = []
        if self.open is not None and not self.open.fits(message):
            ready.append(self._close())
        if self.open is None:
            self.open = OpenBlock(now_s)
        self.open.add(message)
        if self.open.full():
            ready.append(self._close())
        return ready

    def due_in_s(self, now_s: float) -> float | None:
        """Seconds until the open block must be sealed; None when there is none."""
        if self.open is None:
            return None
        return self.open.opened_s + limits.block_wait_ms / 1000 - now_s

    def take_due(self, now_s: float) -> OpenBlock | None:
        due = self.due_in_s(now_s)
        return self._close() if due is not None and due <= 0 else None

    def take_open(self) -> OpenBlock | None:
        """The open block whatever its age (a clean stop seals what it holds)."""
        return self._close() if self.open is not None else None

    def _close(self) -> OpenBlock:
        assert self.open is not None and self.open.messages
        block, self.open = self.open, None
        self.source_offset_end = block.source_offset_end
        return block


@dataclass(frozen=True, slots=True)
class SealedBlock:
    block: Block
    rejections: tuple[RejectionRecord, ...]
    next_signer: Signer | None = None
    """The successor that seals the next block when this block rotated the sealer."""


def _no_successors(public_key: bytes) -> Signer | None:
    return None


def seal_block(
    replica: Replica,
    open_block: OpenBlock,
    now_ms: int,
    source_partition: int,
    signer: Signer,
    successors: Callable[[bytes], Signer | None] = _no_successors,
) -> SealedBlock:
    """Step 3: decide and apply every envelope at block time ``now_ms``, then build the block.

    ``replica`` moves to the state after the block (its checkpoint included); if producing the
    block fails, the caller must discard the replica (the sequencer restarts from the chain).
    ``successors`` gives the private key of a public key the sequencer holds: a RotateSealer
    to a key it does not hold is refused, since no block could follow it.
    """
    assert replica.checkpoint is not None, "a shard seals only after genesis"
    now_ms = max(now_ms, replica.last_sealed_at_ms)
    height = replica.next_height
    begin_block(replica.state, now_ms)
    envelopes: list[bytes] = []
    rejections: list[RejectionRecord] = []
    rotations: list[tuple[VerifiedMessage, VerifiedEntry, Tx]] = []
    next_signer = None
    for message in open_block.messages:
        for entry in message.entries:
            decoded = _decoded(entry.envelope, replica.ledger)
            if isinstance(decoded, Refusal):
                refusal: Refusal | None = decoded
            elif type(decoded.body.op) is RotateSealer:
                rotations.append((message, entry, decoded))
                continue
            else:
                refusal = _decide(decoded, replica.state, now_ms)
            if refusal is None:
                envelopes.append(entry.envelope)
            else:
                rejections.append(
                    _rejection(replica.ledger, height, message, entry, refusal, now_ms)
                )
    for message, entry, tx in rotations:  # after the rest: an accepted one ends the block
        refusal, successor = _rotation(tx, replica.state, now_ms, signer, successors)
        if refusal is None:
            envelopes.append(entry.envelope)
            next_signer = successor
        else:
            rejections.append(_rejection(replica.ledger, height, message, entry, refusal, now_ms))
    block, replica.checkpoint = build_block(
        replica.checkpoint,
        ledger=replica.ledger,
        envelopes=envelopes,
        sealed_at_ms=now_ms,
        source_partition=source_partition,
        source_offset_end=open_block.source_offset_end,
        signing_key=signer,
    )
    replica.last_sealed_at_ms = now_ms
    if next_signer is not None:
        replica.trusted_sealer_key = next_signer.public_key
    assert block.header.height == height
    return SealedBlock(block, tuple(rejections), next_signer)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the sequencer refused one envelope, with what it could read of it."""

    rejected: Rejected
    tx_id: bytes | None = None
    key_id: str | None = None
    external_ref: str | None = None


def _decoded(envelope: bytes, ledger: str) -> Tx | Refusal:
    """The transaction in ``envelope``, or why it cannot be decided.

    The body is decoded here, canonically, for the first and only time on the write path:
    a body that does not decode is MALFORMED (or UNSUPPORTED_VERSION), a body of another
    ledger (misrouted) is UNKNOWN_LEDGER.
    """
    try:
        tx = tx_from_envelope(envelope, checked=False)
    except DecodeError as exc:
        return _undecodable(envelope, exc)
    if tx.body.ledger != ledger:
        rejected = Rejected(RejectionCode.UNKNOWN_LEDGER, f"routed to ledger {ledger!r}")
        return Refusal(rejected, tx.body.tx_id, tx.key_id, tx.body.external_ref)
    return tx


def _rotation(
    tx: Tx,
    state: State,
    now_ms: int,
    signer: Signer,
    successors: Callable[[bytes], Signer | None],
) -> tuple[Refusal | None, Signer | None]:
    """Decide a RotateSealer, and accept it only if this sequencer can follow it: it must be
    signed by the key sealing this block (UNAUTHORIZED) and the successor's private key must be
    in the keyring (INVALID_OPERATION). The state's own checks come first, in their precedence;
    the state is changed only when all hold. (refusal, None) or (None, the successor)."""
    decision = decide(state, tx, now_ms)
    rejected: Rejected | None = decision if isinstance(decision, Rejected) else None
    op = tx.body.op
    assert isinstance(op, RotateSealer)
    successor = successors(op.successor)
    if rejected is None and tx.public_key != signer.public_key:
        rejected = Rejected(
            RejectionCode.UNAUTHORIZED,
            f"RotateSealer is signed by {tx.key_id}, not by the key sealing this block",
        )
    if rejected is None and successor is None:
        rejected = Rejected(
            RejectionCode.INVALID_OPERATION,
            f"the sequencer does not hold successor {key_id(op.successor)}'s private key: put "
            "it in the sealer keyring first (docs/sealer-rotation.md)",
        )
    if rejected is not None:
        return Refusal(rejected, tx.body.tx_id, tx.key_id, tx.body.external_ref), None
    assert isinstance(decision, Accepted)
    apply(state, decision)
    return None, successor


def _decide(tx: Tx, state: State, now_ms: int) -> Refusal | None:
    """Decide ``tx`` and apply it when accepted (None); its Refusal otherwise."""
    decision = decide(state, tx, now_ms)
    if isinstance(decision, Accepted):
        apply(state, decision)
        return None
    return Refusal(decision, tx.body.tx_id, tx.key_id, tx.body.external_ref)


def _undecodable(envelope: bytes, error: DecodeError) -> Refusal:
    """A body that does not decode, named by what can still be read of it (the verify stage
    read its head), so that a publisher waiting on the tx_id learns the outcome."""
    rejected = Rejected(codec.rejection_code_for(error), str(error))
    try:
        decoded = codec.decode_envelope(envelope)
        head = codec.decode_body_head(decoded.body, decoded.body_version)
    except DecodeError:
        return Refusal(rejected)
    return Refusal(rejected, head.tx_id, key_id(decoded.public_key))


def _rejection(
    ledger: str,
    height: int,
    message: VerifiedMessage,
    entry: VerifiedEntry,
    refusal: Refusal,
    now_ms: int,
) -> RejectionRecord:
    return RejectionRecord(
        code=refusal.rejected.code.name,
        detail=refusal.rejected.detail,
        stage=Stage.SEQUENCE.value,
        source_topic=message.source_topic,
        source_partition=entry.source_partition,
        source_offset=entry.source_offset,
        rejected_at_ms=now_ms,
        tx_id=refusal.tx_id,
        ledger=ledger,
        key_id=refusal.key_id,
        height=height,
        external_ref=refusal.external_ref,
    )
