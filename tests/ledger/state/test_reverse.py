"""Reverse: undoing a sealed Transfer in full or in part, proven by its block (decide_reverse)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support_state import (
    ADMIN,
    ALICE,
    BOB,
    CAROL,
    ISSUER,
    Ledger,
    cosigned,
    envelope_of,
    original_seq,
    pay,
    proof_of,
    real_key,
    register_sealer,
    replay,
    replay_decisions,
    reverse_of,
    seal_block,
    standard_ledger,
)

from ledger import blocks, codec
from ledger.model import (
    AccountStatus,
    Attest,
    Posting,
    Reverse,
    RevokeKey,
    SetAccountStatus,
    Transfer,
    Tx,
)
from ledger.rejections import Rejected, RejectionCode
from ledger.signing import Signer
from ledger.state import (
    Accepted,
    BalanceChanged,
    Posted,
    Reversed,
    decide,
    restore,
    snapshot_bytes,
)


@dataclass
class Scene:
    """alice-usd paid bob-usd 1,000 (``original``), the third of four transactions of its block;
    ``sealer`` is a real key with the sealer role. Before it: alice 9,990, bob 0."""

    ledger: Ledger
    sealer: Signer
    original: Tx


def scene() -> Scene:
    ledger = standard_ledger()
    sealer = register_sealer(ledger)
    ledger.accept(ALICE, pay("alice-usd", "carol-usd", "USD", 10))
    original = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 1_000)).tx
    ledger.accept(BOB, pay("bob-bond", "alice-bond", "BOND", 1))
    ledger.advance(1_000)
    return Scene(ledger, sealer, original)


def back(amount: int) -> tuple[Posting, Posting]:
    """Reversing postings of ``amount`` of the scene's original: Bob pays Alice back."""
    return Posting("bob-usd", "USD", -amount), Posting("alice-usd", "USD", amount)


def reverse(case: Scene, postings: tuple[Posting, ...] = ()) -> Reverse:
    return reverse_of(case.ledger, case.sealer, case.original, postings)


def test_full_reversal_restores_both_balances() -> None:
    """Empty postings undo the whole original: both balances are as before it, and the effects
    post the opposite amounts and record how much of each posting is undone."""
    case = scene()
    proof = reverse(case)
    accepted = case.ledger.accept(BOB, proof)
    tx_id, seq = case.original.body.tx_id, original_seq(proof)
    assert accepted.effects == (
        Posted("alice-usd", "USD", 1_000),
        Posted("bob-usd", "USD", -1_000),
        BalanceChanged("alice-usd", "USD", 9_990, 0),
        BalanceChanged("bob-usd", "USD", 0, 0),
        Reversed(seq, tx_id, (("alice-usd", 1_000), ("bob-usd", 1_000))),
    )
    assert case.ledger.balance("alice-usd") == (9_990, 0)
    assert case.ledger.balance("bob-usd") == (0, 0)
    assert case.ledger.state.reversed == {seq: {"alice-usd": 1_000, "bob-usd": 1_000}}


def test_partial_reversal_then_the_rest_then_nothing_left() -> None:
    """A partial reversal undoes part; a full one then undoes what remains; a third finds
    nothing left (REVERSAL_EXCEEDS_ORIGINAL), in full or in part."""
    case = scene()
    ledger = case.ledger
    tx_id, seq = case.original.body.tx_id, original_seq(reverse(case))
    ledger.accept(BOB, reverse(case, back(300)))
    assert ledger.balance("alice-usd") == (9_290, 0)
    assert ledger.balance("bob-usd") == (700, 0)
    assert ledger.state.reversed == {seq: {"alice-usd": 300, "bob-usd": 300}}
    ledger.advance(1_000)
    rest = ledger.accept(BOB, reverse(case))
    assert rest.effects[-1] == Reversed(seq, tx_id, (("alice-usd", 1_000), ("bob-usd", 1_000)))
    assert ledger.balance("alice-usd") == (9_990, 0)
    assert ledger.balance("bob-usd") == (0, 0)
    assert ledger.reject(BOB, reverse(case)) is RejectionCode.REVERSAL_EXCEEDS_ORIGINAL
    assert ledger.reject(BOB, reverse(case, back(1))) is RejectionCode.REVERSAL_EXCEEDS_ORIGINAL


def test_reversing_more_than_remains_is_refused() -> None:
    """More than the original, or more than what a partial reversal left, is refused; exactly
    what remains is accepted."""
    case = scene()
    ledger = case.ledger
    ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 5_000))  # Bob could pay it
    assert ledger.reject(BOB, reverse(case, back(1_001))) is (
        RejectionCode.REVERSAL_EXCEEDS_ORIGINAL
    )
    ledger.accept(BOB, reverse(case, back(300)))
    assert ledger.reject(BOB, reverse(case, back(701))) is RejectionCode.REVERSAL_EXCEEDS_ORIGINAL
    ledger.accept(BOB, reverse(case, back(700)))
    assert list(ledger.state.reversed.values()) == [{"alice-usd": 1_000, "bob-usd": 1_000}]


def test_one_posting_above_what_remains_is_refused_even_if_balanced_by_the_other() -> None:
    """Each posting is held to what remains of its own account's posting."""
    case = scene()
    postings = (Posting("bob-usd", "USD", -1_000), Posting("alice-usd", "USD", 1_001))
    assert case.ledger.reject(BOB, reverse(case, postings)) is (
        RejectionCode.REVERSAL_EXCEEDS_ORIGINAL
    )


# ---- ORIGINAL_NOT_PROVEN ------------------------------------------------------------------


def _header(proof: Reverse, **changes: object) -> bytes:
    header = dataclasses.replace(codec.decode_block_header(proof.block_header), **changes)
    return codec.encode_block_header(header)


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def _sealed_by(case: Scene, sealer: Signer) -> Reverse:
    return reverse_of(case.ledger, sealer, case.original)


def _unregistered_sealer(case: Scene) -> Reverse:
    return _sealed_by(case, real_key("never registered"))


def _sealer_without_the_role(case: Scene) -> Reverse:
    return _sealed_by(case, register_sealer(case.ledger, "not a sealer", ("witness", "admin")))


def _sealer_revoked_before_the_block(case: Scene) -> Reverse:
    case.ledger.accept(ADMIN, RevokeKey(case.sealer.key_id))
    revoked_at_ms = case.ledger.now_ms
    return reverse_of(case.ledger, case.sealer, case.original, sealed_at_ms=revoked_at_ms + 1)


def _other_ledger(case: Scene) -> Reverse:
    block = seal_block(
        case.sealer, [envelope_of(case.original)], sealed_at_ms=case.ledger.now_ms, ledger="other"
    )
    return proof_of(block, 0)


def _envelope_not_in_the_block(case: Scene) -> Reverse:
    elsewhere = case.ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 2_000)).tx
    return dataclasses.replace(reverse(case), original=envelope_of(elsewhere))


def _original_with_another_signature(case: Scene) -> Reverse:
    proof = reverse(case)
    return dataclasses.replace(proof, original=_flip(proof.original, len(proof.original) - 1))


def _seal_of_another_block(case: Scene) -> Reverse:
    other = seal_block(case.sealer, [b"another block"], sealed_at_ms=case.ledger.now_ms)
    return dataclasses.replace(reverse(case), seal=other.seal)


def _seal_by_another_key(case: Scene) -> Reverse:
    proof = reverse(case)
    forger = real_key("forger")
    seal = forger.sign_message(blocks.block_hash(codec.decode_block_header(proof.block_header)))
    return dataclasses.replace(proof, seal=seal)


NOT_PROVEN: dict[str, Callable[[Scene], Reverse]] = {
    "header of another ledger": _other_ledger,
    "header height changed": lambda case: dataclasses.replace(
        proof := reverse(case), block_header=_header(proof, height=7)
    ),
    "header time changed": lambda case: dataclasses.replace(
        proof := reverse(case), block_header=_header(proof, sealed_at_ms=1)
    ),
    "header tx_count changed": lambda case: dataclasses.replace(
        proof := reverse(case), block_header=_header(proof, tx_count=5)
    ),
    "header tx_root changed": lambda case: dataclasses.replace(
        proof := reverse(case), block_header=_header(proof, tx_root=bytes(32))
    ),
    "header bytes flipped": lambda case: dataclasses.replace(
        proof := reverse(case), block_header=_flip(proof.block_header, 10)
    ),
    "header is no header": lambda case: dataclasses.replace(reverse(case), block_header=b"\xff"),
    "header truncated": lambda case: dataclasses.replace(
        proof := reverse(case), block_header=proof.block_header[:-1]
    ),
    "index of a neighbour": lambda case: dataclasses.replace(
        proof := reverse(case), tx_index=proof.tx_index - 1
    ),
    "index past the block": lambda case: dataclasses.replace(reverse(case), tx_index=4),
    "negative index": lambda case: dataclasses.replace(reverse(case), tx_index=-1),
    "audit path node flipped": lambda case: dataclasses.replace(
        proof := reverse(case), audit_path=(_flip(proof.audit_path[0]), *proof.audit_path[1:])
    ),
    "audit path reordered": lambda case: dataclasses.replace(
        proof := reverse(case), audit_path=tuple(reversed(proof.audit_path))
    ),
    "audit path truncated": lambda case: dataclasses.replace(
        proof := reverse(case), audit_path=proof.audit_path[:-1]
    ),
    "audit path extended": lambda case: dataclasses.replace(
        proof := reverse(case), audit_path=(*proof.audit_path, bytes(32))
    ),
    "audit path empty": lambda case: dataclasses.replace(reverse(case), audit_path=()),
    "seal of zeros": lambda case: dataclasses.replace(reverse(case), seal=bytes(64)),
    "seal flipped": lambda case: dataclasses.replace(
        proof := reverse(case), seal=_flip(proof.seal, 5)
    ),
    "seal truncated": lambda case: dataclasses.replace(
        proof := reverse(case), seal=proof.seal[:-1]
    ),
    "seal of another block": _seal_of_another_block,
    "seal by another key than the header's": _seal_by_another_key,
    "sealer key not registered": _unregistered_sealer,
    "key registered without the sealer role": _sealer_without_the_role,
    "sealer revoked before the block": _sealer_revoked_before_the_block,
    "envelope not in the block": _envelope_not_in_the_block,
    "envelope re-signed": _original_with_another_signature,
}


@pytest.mark.parametrize("variant", sorted(NOT_PROVEN))
def test_a_proof_that_does_not_hold_is_original_not_proven(variant: str) -> None:
    """Every broken part of the proof (header, index, audit path, seal, sealer, envelope) is
    ORIGINAL_NOT_PROVEN, and nothing moves."""
    case = scene()
    proof = NOT_PROVEN[variant](case)
    before = (case.ledger.balance("alice-usd"), case.ledger.balance("bob-usd"))
    assert case.ledger.reject(BOB, proof) is RejectionCode.ORIGINAL_NOT_PROVEN
    assert (case.ledger.balance("alice-usd"), case.ledger.balance("bob-usd")) == before
    assert case.ledger.state.reversed == {}


def test_original_not_proven_comes_before_authority() -> None:
    """Without a proof there is nothing to authorize against: a payer's broken Reverse is
    ORIGINAL_NOT_PROVEN, not UNAUTHORIZED."""
    case = scene()
    proof = dataclasses.replace(reverse(case), seal=bytes(64))
    assert case.ledger.reject(ALICE, proof) is RejectionCode.ORIGINAL_NOT_PROVEN


def test_a_sealer_revoked_after_the_block_still_proves_it() -> None:
    """Revoking a sealer does not unseal its earlier blocks: revoked at or after the block's
    sealed_at_ms, its seal still proves the original."""
    case = scene()
    ledger = case.ledger
    sealed_at_ms = ledger.now_ms
    ledger.accept(ADMIN, RevokeKey(case.sealer.key_id))  # revoked at sealed_at_ms: the boundary
    proof = reverse_of(ledger, case.sealer, case.original, sealed_at_ms=sealed_at_ms)
    ledger.advance(1_000)
    ledger.accept(BOB, dataclasses.replace(proof, postings=back(100)))
    earlier = reverse_of(ledger, case.sealer, case.original, sealed_at_ms=sealed_at_ms - 1_000)
    ledger.accept(BOB, dataclasses.replace(earlier, postings=back(100)))
    assert ledger.balance("bob-usd") == (800, 0)


def test_a_proof_from_any_block_that_holds_the_original_counts() -> None:
    """The proof needs the original in a sealed block of this ledger, at any position: a block
    holding it alone (no audit path) proves it as well as its recorded block."""
    case = scene()
    block = seal_block(case.sealer, [envelope_of(case.original)], sealed_at_ms=case.ledger.now_ms)
    proof = proof_of(block, 0)
    assert proof.audit_path == ()
    case.ledger.accept(BOB, proof)
    assert case.ledger.balance("bob-usd") == (0, 0)


# ---- INVALID_OPERATION and the Transfer checks ------------------------------------------------


def test_only_a_transfer_is_reversed() -> None:
    """A sealed Attest, a sealed Reverse, or sealed bytes that are no transaction cannot be
    reversed (INVALID_OPERATION)."""
    case = scene()
    ledger = case.ledger
    attest = ledger.accept(ALICE, Attest(bytes(32))).tx
    reversal = ledger.accept(BOB, reverse(case, back(100))).tx
    ledger.advance(1_000)
    for sealed in (attest, reversal):
        assert ledger.reject(BOB, reverse_of(ledger, case.sealer, sealed)) is (
            RejectionCode.INVALID_OPERATION
        )
    junk = seal_block(case.sealer, [b"no envelope"], sealed_at_ms=ledger.now_ms)
    assert ledger.reject(BOB, proof_of(junk, 0)) is RejectionCode.INVALID_OPERATION


INVALID: dict[str, tuple[Posting, ...]] = {
    "an account the original did not post to": (
        Posting("carol-usd", "USD", -100),
        Posting("alice-usd", "USD", 100),
    ),
    "the right account in another asset": (
        Posting("bob-usd", "BOND", -100),
        Posting("alice-usd", "USD", 100),
    ),
    "the same sign as the original": (
        Posting("alice-usd", "USD", -100),
        Posting("bob-usd", "USD", 100),
    ),
    "a zero posting": (Posting("bob-usd", "USD", 0), Posting("alice-usd", "USD", 0)),
    "a single posting": (Posting("bob-usd", "USD", -100),),
    "an account twice": (
        Posting("bob-usd", "USD", -600),
        Posting("bob-usd", "USD", -600),
        Posting("alice-usd", "USD", 1_000),
    ),
}


@pytest.mark.parametrize("variant", sorted(INVALID))
def test_postings_that_do_not_reverse_the_original_are_invalid(variant: str) -> None:
    """A reversing posting must go to an account of the original, in its asset, with the
    opposite sign and a non-zero amount; the postings must make a transfer."""
    case = scene()
    assert case.ledger.reject(BOB, reverse(case, INVALID[variant])) is (
        RejectionCode.INVALID_OPERATION
    )


def test_invalid_postings_come_before_the_amount_check() -> None:
    """A posting to a stranger account with an amount above the original is INVALID_OPERATION:
    the postings are checked against the original before their amounts are."""
    case = scene()
    postings = (Posting("carol-usd", "USD", -5_000), Posting("alice-usd", "USD", 5_000))
    assert case.ledger.reject(BOB, reverse(case, postings)) is RejectionCode.INVALID_OPERATION


def test_the_payee_authorizes_not_the_payer() -> None:
    """A reversal debits the original's payee, so its owner signs: the payer alone is
    UNAUTHORIZED, the payer cosigned by the payee is accepted."""
    case = scene()
    ledger = case.ledger
    assert ledger.reject(ALICE, reverse(case)) is RejectionCode.UNAUTHORIZED
    assert ledger.reject(ALICE, reverse(case, back(1_001))) is (
        RejectionCode.REVERSAL_EXCEEDS_ORIGINAL
    )  # checked against the original before authority
    decision = ledger.submit_tx(cosigned(ledger.tx(ALICE, reverse(case)), BOB))
    assert isinstance(decision, Accepted)
    assert ledger.balance("bob-usd") == (0, 0)


def test_a_payee_who_spent_the_money_cannot_reverse_it_all() -> None:
    """The reversal needs the payee's available funds: after paying 600 on, Bob can reverse 400
    but not the whole 1,000 (INSUFFICIENT_FUNDS)."""
    case = scene()
    ledger = case.ledger
    ledger.accept(BOB, pay("bob-usd", "carol-usd", "USD", 600))
    assert ledger.reject(BOB, reverse(case)) is RejectionCode.INSUFFICIENT_FUNDS
    ledger.accept(BOB, reverse(case, back(400)))
    assert ledger.balance("bob-usd") == (0, 0)
    assert list(ledger.state.reversed.values()) == [{"alice-usd": 400, "bob-usd": 400}]


def test_a_frozen_account_cannot_take_part_in_a_reversal() -> None:
    """The reversing postings go through every Transfer check: a frozen payer is ACCOUNT_FROZEN."""
    case = scene()
    case.ledger.accept(ADMIN, SetAccountStatus("alice-usd", AccountStatus.FROZEN))
    assert case.ledger.reject(BOB, reverse(case)) is RejectionCode.ACCOUNT_FROZEN


def test_reversing_an_issuance_redeems_it() -> None:
    """Reversing the issuer's payment to Alice (signed by Alice) gives it back to the issuer
    account: the outstanding issuance shrinks and the supply still sums to zero."""
    ledger = standard_ledger()
    sealer = register_sealer(ledger)
    issued = ledger.accept(ISSUER, pay("usd-issuer", "bob-usd", "USD", 700)).tx
    ledger.advance(1_000)
    ledger.accept(BOB, reverse_of(ledger, sealer, issued))
    assert ledger.balance("usd-issuer") == (-10_000, 0)
    assert ledger.balance("bob-usd") == (0, 0)


def test_one_leg_of_a_delivery_versus_payment_can_be_reversed() -> None:
    """A DvP (USD one way, BOND the other) can be reversed one asset at a time, then in full."""
    ledger = standard_ledger()
    sealer = register_sealer(ledger)
    dvp = Transfer(
        (
            Posting("alice-usd", "USD", -500),
            Posting("bob-usd", "USD", 500),
            Posting("bob-bond", "BOND", -2),
            Posting("alice-bond", "BOND", 2),
        )
    )
    original = ledger.submit_tx(cosigned(ledger.tx(ALICE, dvp), BOB))
    assert isinstance(original, Accepted)
    ledger.advance(1_000)
    bond_leg = (Posting("alice-bond", "BOND", -2), Posting("bob-bond", "BOND", 2))
    ledger.accept(ALICE, reverse_of(ledger, sealer, original.tx, bond_leg))
    assert ledger.balance("bob-bond") == (5, 0)
    assert ledger.balance("bob-usd") == (500, 0)
    ledger.accept(BOB, reverse_of(ledger, sealer, original.tx))  # the USD leg remains
    assert ledger.balance("bob-usd") == (0, 0)
    assert ledger.balance("alice-usd") == (10_000, 0)
    assert list(ledger.state.reversed.values()) == [
        {"alice-usd": 500, "bob-usd": 500, "alice-bond": 2, "bob-bond": 2}
    ]


# ---- replay and snapshots ----------------------------------------------------------------------


def history_with_reversals() -> Ledger:
    """Two originals, partial and full reversals and refused ones, over several blocks."""
    case = scene()
    ledger = case.ledger
    second = ledger.accept(ALICE, pay("alice-usd", "carol-usd", "USD", 400)).tx
    ledger.advance(1_000)
    ledger.accept(BOB, reverse(case, back(250)))
    ledger.reject(BOB, reverse(case, back(751)))
    ledger.advance(1_000)
    ledger.accept(CAROL, reverse_of(ledger, case.sealer, second))
    ledger.accept(BOB, reverse(case))
    ledger.reject(BOB, reverse(case))
    return ledger


def test_replay_from_genesis_reproduces_the_reversals() -> None:
    """Replaying the recorded blocks re-proves every original and ends in the live state,
    ``reversed`` included; every refusal is refused again for the same reason."""
    ledger = history_with_reversals()
    assert len(ledger.state.reversed) == 2
    replayed = replay(ledger.blocks)
    assert replayed == ledger.state
    assert replayed.reversed == ledger.state.reversed
    assert replay_decisions(ledger) == ledger.state


def test_snapshot_round_trip_keeps_what_is_reversed() -> None:
    """A snapshot restores ``reversed`` exactly, so a restored replica refuses a second full
    reversal like the live one."""
    ledger = history_with_reversals()
    restored = restore(snapshot_bytes(ledger.state))
    assert restored == ledger.state
    assert restored.reversed == ledger.state.reversed
    assert snapshot_bytes(restored) == snapshot_bytes(ledger.state)


# ---- systematic mutations ------------------------------------------------------------------


PROOF_PARTS = ("original", "block_header", "seal", "audit_path")
mutation_scene = scene()
mutation_proof = reverse(mutation_scene)


@settings(max_examples=300, deadline=None)
@given(part=st.sampled_from(PROOF_PARTS), position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_bit_of_a_proof_is_original_not_proven(
    part: str, position: int, bit: int
) -> None:
    """Flipping any one bit of the original, the header, the seal or an audit path node makes
    the proof fail (and never raises)."""
    proof = mutation_proof
    if part == "audit_path":
        nodes = b"".join(proof.audit_path)
        index = position % len(nodes)
        flipped = nodes[:index] + bytes([nodes[index] ^ (1 << bit)]) + nodes[index + 1 :]
        mutated = dataclasses.replace(
            proof, audit_path=tuple(flipped[i : i + 32] for i in range(0, len(flipped), 32))
        )
    else:
        data: bytes = getattr(proof, part)
        index = position % len(data)
        flipped = data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]
        mutated = dataclasses.replace(proof, **{part: flipped})
    ledger = mutation_scene.ledger
    tx = ledger.tx(BOB, mutated)
    decision = decide(ledger.state, tx, ledger.now_ms)
    assert isinstance(decision, Rejected)
    assert decision.code is RejectionCode.ORIGINAL_NOT_PROVEN, decision


# ---- a tx_id used again after the replay window -------------------------------------------------


def test_a_transfer_reusing_a_forgotten_tx_id_can_be_reversed() -> None:
    """A tx_id may be used again once the first transaction left the replay window; reversing
    the second transfer undoes it, whatever happened to the first."""
    case = scene()
    ledger = case.ledger
    ledger.accept(BOB, reverse(case))  # the first transfer is reversed in full
    ledger.advance(200_000)  # its tx_id leaves the replay window
    again = ledger.accept(
        ALICE, pay("alice-usd", "bob-usd", "USD", 500), tx_id=case.original.body.tx_id
    ).tx
    ledger.advance(1_000)
    decision = ledger.submit(BOB, reverse_of(ledger, case.sealer, again))
    assert isinstance(decision, Accepted), decision
    assert ledger.balance("bob-usd") == (0, 0)
