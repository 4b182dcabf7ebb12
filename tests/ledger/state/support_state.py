"""Builders for state machine tests: fake keys, transactions, and a small ledger that records
its blocks so that any test can replay them.

Fake keys sign nothing: decide trusts the verify stage for signatures. A ``Reverse`` is the one
operation that checks a signature itself (its original's block seal), so ``real_key`` gives a
deterministic Ed25519 key, ``seal_block`` seals real blocks with it and ``reverse_of`` builds the
proof that a recorded transaction was sealed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger import blocks, codec, merkle
from ledger.blocks import ChainCheckpoint
from ledger.model import (
    Block,
    Cosigner,
    DefineAsset,
    Envelope,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    Reverse,
    SetAccountPolicy,
    Transfer,
    Tx,
    TxBody,
)
from ledger.rejections import Rejected, RejectionCode
from ledger.signing import Signer
from ledger.state import Accepted, Decision, Effect, State, apply, begin_block, decide

GENESIS_MS = 1_700_000_000_000
TTL_MS = 60_000


@dataclass(frozen=True)
class FakeKey:
    """A 32-byte stand-in for an Ed25519 public key; nothing is signed in these tests."""

    public_key: bytes
    key_id: str

    @classmethod
    def named(cls, name: str) -> FakeKey:
        public_key = hashlib.sha256(b"fake public key " + name.encode()).digest()
        return cls(public_key, hashlib.sha256(public_key).digest()[:16].hex())

    @classmethod
    def of(cls, signer: Signer) -> FakeKey:
        """The fake key with a real key's public key: transactions "signed" by ``signer``."""
        return cls(signer.public_key, signer.key_id)


ADMIN = FakeKey.named("admin")
ISSUER = FakeKey.named("issuer")
ALICE = FakeKey.named("alice")
BOB = FakeKey.named("bob")
CAROL = FakeKey.named("carol")
STRANGER = FakeKey.named("stranger")


def make_tx(
    key: FakeKey,
    op: Operation,
    tx_id: bytes,
    created_at_ms: int,
    expires_at_ms: int,
) -> Tx:
    body = TxBody(
        tx_id=tx_id,
        ledger="test",
        created_at_ms=created_at_ms,
        expires_at_ms=expires_at_ms,
        op=op,
    )
    return Tx(body=body, public_key=key.public_key, key_id=key.key_id, envelope_bytes=b"")


@dataclass
class Ledger:
    """A State driven like the sequencer drives it, recording (block time, accepted txs)."""

    state: State = field(default_factory=State)
    now_ms: int = GENESIS_MS
    serial: int = 0
    blocks: list[tuple[int, list[Tx]]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    decisions: list[tuple[int, Tx, Decision]] = field(default_factory=list)
    """(index in ``blocks``, tx, decision) of every submission, refused ones included."""

    def __post_init__(self) -> None:
        self.block(self.now_ms)

    def block(self, now_ms: int) -> list[Effect]:
        self.now_ms = now_ms
        self.blocks.append((now_ms, []))
        expired = begin_block(self.state, now_ms)
        self.effects.extend(expired)
        return expired

    def advance(self, delta_ms: int) -> list[Effect]:
        return self.block(self.now_ms + delta_ms)

    def next_tx_id(self) -> bytes:
        self.serial += 1
        return self.serial.to_bytes(16, "big")

    def tx(
        self,
        key: FakeKey,
        op: Operation,
        *,
        tx_id: bytes | None = None,
        created_at_ms: int | None = None,
        expires_at_ms: int | None = None,
    ) -> Tx:
        created = self.now_ms if created_at_ms is None else created_at_ms
        expires = created + TTL_MS if expires_at_ms is None else expires_at_ms
        return make_tx(key, op, tx_id or self.next_tx_id(), created, expires)

    def submit_tx(self, tx: Tx) -> Decision:
        decision = decide(self.state, tx, self.now_ms)
        self.decisions.append((len(self.blocks) - 1, tx, decision))
        if isinstance(decision, Accepted):
            apply(self.state, decision)
            self.blocks[-1][1].append(tx)
            self.effects.extend(decision.effects)
        return decision

    def submit(self, key: FakeKey, op: Operation, **times: int) -> Decision:
        return self.submit_tx(self.tx(key, op, **times))  # type: ignore[arg-type]

    def accept(self, key: FakeKey, op: Operation, **times: int) -> Accepted:
        decision = self.submit(key, op, **times)
        assert isinstance(decision, Accepted), decision
        return decision

    def reject(self, key: FakeKey, op: Operation, **times: int) -> RejectionCode:
        decision = self.submit(key, op, **times)
        assert isinstance(decision, Rejected), decision
        return decision.code

    def reject_tx(self, tx: Tx) -> RejectionCode:
        decision = self.submit_tx(tx)
        assert isinstance(decision, Rejected), decision
        return decision.code

    def balance(self, account: str) -> tuple[int, int]:
        """(balance, held) of ``account``."""
        found = self.state.accounts[account]
        return found.balance, found.held


def replay(blocks: list[tuple[int, list[Tx]]]) -> State:
    """A fresh state fed the recorded blocks: every transaction must be accepted again."""
    state = State()
    for now_ms, txs in blocks:
        begin_block(state, now_ms)
        for tx in txs:
            decision = decide(state, tx, now_ms)
            assert isinstance(decision, Accepted), decision
            apply(state, decision)
    return state


def replay_decisions(ledger: Ledger) -> State:
    """A fresh state fed every submission of ``ledger``, refused ones too, block by block: each
    decision must equal the recorded one (same code and detail, or same effects)."""
    state = State()
    submissions = iter(ledger.decisions)
    pending = next(submissions, None)
    for block_index, (now_ms, _) in enumerate(ledger.blocks):
        begin_block(state, now_ms)
        while pending is not None and pending[0] == block_index:
            _, tx, recorded = pending
            decision = decide(state, tx, now_ms)
            assert decision == recorded, (tx.body.op, recorded, decision)
            if isinstance(decision, Accepted):
                apply(state, decision)
            pending = next(submissions, None)
    assert pending is None
    return state


def cosigned(tx: Tx, *keys: FakeKey) -> Tx:
    """``tx`` with ``keys`` as its cosigners (what a multi-signed envelope gives the sequencer)."""
    return dataclasses.replace(tx, cosigners=tuple((key.key_id, key.public_key) for key in keys))


def treasury_policy(
    ledger: Ledger, account: str = "alice-usd", **limits: object
) -> SetAccountPolicy:
    """A 1-of-{ALICE, CAROL} policy on ``account``, 2 of them above 1,000 by default; accepted."""
    policy = SetAccountPolicy(
        account,
        (ALICE.key_id, CAROL.key_id),
        **{"threshold": 1, "high_threshold": 2, "high_amount": 1_000, **limits},  # type: ignore[arg-type]
    )
    ledger.accept(ADMIN, policy)
    return policy


def pay(source: str, target: str, asset: str, amount: int) -> Transfer:
    return Transfer((Posting(source, asset, -amount), Posting(target, asset, amount)))


def standard_ledger() -> Ledger:
    """Genesis plus a small economy.

    USD (scale 2, issuer usd-issuer) and BOND (scale 0, issuer bond-issuer);
    alice-usd (10,000 USD), bob-usd, carol-usd (max_balance 1,000); alice-bond, bob-bond (5 BOND).
    ISSUER owns both issuer accounts, ALICE owns alice-*, BOB owns bob-*, CAROL owns carol-usd.
    """
    ledger = Ledger()
    ledger.accept(ADMIN, RegisterKey(ADMIN.public_key, ("admin",), ()))
    ledger.accept(ADMIN, DefineAsset("USD", 2, "usd-issuer"))
    ledger.accept(ADMIN, DefineAsset("BOND", 0, "bond-issuer"))
    ledger.accept(ADMIN, OpenAccount("alice-usd", "USD"))
    ledger.accept(ADMIN, OpenAccount("bob-usd", "USD"))
    ledger.accept(ADMIN, OpenAccount("carol-usd", "USD", max_balance=1_000))
    ledger.accept(ADMIN, OpenAccount("alice-bond", "BOND"))
    ledger.accept(ADMIN, OpenAccount("bob-bond", "BOND"))
    ledger.accept(ADMIN, RegisterKey(ISSUER.public_key, (), ("usd-issuer", "bond-issuer")))
    ledger.accept(ADMIN, RegisterKey(ALICE.public_key, (), ("alice-usd", "alice-bond")))
    ledger.accept(ADMIN, RegisterKey(BOB.public_key, (), ("bob-usd", "bob-bond")))
    ledger.accept(ADMIN, RegisterKey(CAROL.public_key, (), ("carol-usd",)))
    ledger.advance(1_000)
    ledger.accept(ISSUER, pay("usd-issuer", "alice-usd", "USD", 10_000))
    ledger.accept(ISSUER, pay("bond-issuer", "bob-bond", "BOND", 5))
    ledger.advance(1_000)
    return ledger


# ---- real seals, for Reverse -------------------------------------------------------------


def real_key(name: str) -> Signer:
    """A real Ed25519 key, the same for the same ``name`` (tests stay deterministic)."""
    return Signer.from_private_bytes(hashlib.sha256(b"real private key " + name.encode()).digest())


def register_sealer(
    ledger: Ledger, name: str = "sealer", roles: tuple[str, ...] = ("sealer",)
) -> Signer:
    """A real key registered by ADMIN with ``roles`` (the sealer role by default); accepted."""
    signer = real_key(name)
    ledger.accept(ADMIN, RegisterKey(signer.public_key, roles, ()))
    return signer


def envelope_of(tx: Tx) -> bytes:
    """The envelope bytes of ``tx`` as a block would hold them. The signatures are zeros: decide
    checks that an original was sealed, not its signatures (the verify stage did)."""
    body = tx.body
    envelope = Envelope(
        body=codec.encode_tx_body(body),
        public_key=tx.public_key,
        signature=bytes(64),
        body_version=codec.body_version_of(body),
        cosigners=tuple(Cosigner(public_key, bytes(64)) for _, public_key in tx.cosigners),
    )
    return codec.encode_envelope(envelope)


def seal_block(
    sealer: Signer,
    envelopes: Sequence[bytes],
    *,
    sealed_at_ms: int,
    ledger: str = "test",
    previous: ChainCheckpoint | None = None,
) -> Block:
    """A real block of ``envelopes`` sealed by ``sealer`` (after ``previous``; None: genesis)."""
    block, _ = blocks.build_block(
        previous,
        ledger=ledger,
        envelopes=envelopes,
        sealed_at_ms=sealed_at_ms,
        source_partition=0,
        source_offset_end=1,
        signing_key=sealer,
    )
    return block


def proof_of(block: Block, index: int, postings: Sequence[Posting] = ()) -> Reverse:
    """The Reverse of transaction ``index`` of ``block``: its envelope, the block's header and
    seal, and its audit path in the block's tx_root."""
    leaf_hashes = blocks.tx_leaf_hashes(block.transactions)
    return Reverse(
        original=block.transactions[index].envelope,
        block_header=codec.encode_block_header(block.header),
        seal=block.seal,
        tx_index=index,
        audit_path=tuple(merkle.inclusion_proof(index, leaf_hashes)),
        postings=tuple(postings),
    )


def recorded_block_of(ledger: Ledger, tx: Tx) -> tuple[int, list[Tx]]:
    """The recorded block (block time, accepted transactions) that holds ``tx``."""
    for recorded in ledger.blocks:
        if tx in recorded[1]:
            return recorded
    raise AssertionError(f"{tx} was not accepted")


def reverse_of(
    ledger: Ledger,
    sealer: Signer,
    tx: Tx,
    postings: Sequence[Posting] = (),
    *,
    sealed_at_ms: int | None = None,
) -> Reverse:
    """A Reverse of accepted ``tx`` (``postings``: the reversing ones; none: all that remains),
    proven by its recorded block, sealed by ``sealer`` at that block's time (or
    ``sealed_at_ms``) with every transaction the block accepted, in order. The recorded blocks
    before it are chained in front, so its height and seq numbers are the ledger's own."""
    target = recorded_block_of(ledger, tx)
    previous = None
    for recorded in ledger.blocks:
        now_ms, accepted = recorded
        if recorded is target and sealed_at_ms is not None:
            now_ms = sealed_at_ms
        block, previous = blocks.build_block(
            previous,
            ledger="test",
            envelopes=[envelope_of(other) for other in accepted],
            sealed_at_ms=now_ms,
            source_partition=0,
            source_offset_end=1,
            signing_key=sealer,
        )
        if recorded is target:
            return proof_of(block, accepted.index(tx), postings)
    raise AssertionError("unreachable: recorded_block_of found it")


def original_seq(proof: Reverse) -> int:
    """The seq of the transaction ``proof`` reverses: how the state names it."""
    return codec.decode_block_header(proof.block_header).first_seq + proof.tx_index
