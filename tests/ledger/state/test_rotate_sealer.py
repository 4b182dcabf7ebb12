"""RotateSealer: the sealer hands its role, accounts and policy seats to a cosigning successor."""

from __future__ import annotations

from support_state import (
    ADMIN,
    ALICE,
    BOB,
    STRANGER,
    FakeKey,
    Ledger,
    cosigned,
    envelope_of,
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

from ledger.model import RegisterKey, RevokeKey, RotateSealer, SetAccountPolicy, Tx
from ledger.rejections import RejectionCode
from ledger.state import (
    Accepted,
    KeyRegistered,
    KeyRevoked,
    PolicySet,
    SealerRotated,
    restore,
    snapshot_bytes,
)
from ledger.state.state import AccountPolicy

SEALER = FakeKey.named("sealer")
SUCCESSOR = FakeKey.named("successor")
THIRD = FakeKey.named("third sealer")


def sealer_ledger() -> Ledger:
    """standard_ledger with SEALER registered as sealer owning carol-usd, and a policy on
    alice-usd with a seat for SEALER."""
    ledger = standard_ledger()
    ledger.accept(ADMIN, RegisterKey(SEALER.public_key, ("sealer",), ("carol-usd",)))
    ledger.accept(ADMIN, SetAccountPolicy("alice-usd", (ALICE.key_id, SEALER.key_id), 1))
    ledger.advance(1_000)
    return ledger


def rotation(ledger: Ledger, signer: FakeKey, successor: FakeKey, *cosigners: FakeKey) -> Tx:
    return cosigned(ledger.tx(signer, RotateSealer(successor.public_key)), *cosigners)


def test_rotation_hands_over_roles_accounts_and_seats() -> None:
    """The successor is registered with the old key's roles and accounts, the old key is revoked
    at the block's time, its policy seats move, and SealerRotated names both keys."""
    ledger = sealer_ledger()
    decision = ledger.submit_tx(rotation(ledger, SEALER, SUCCESSOR, SUCCESSOR))
    assert isinstance(decision, Accepted)
    assert decision.effects == (
        KeyRegistered(SUCCESSOR.key_id, SUCCESSOR.public_key, ("sealer",), ("carol-usd",)),
        KeyRevoked(SEALER.key_id, ledger.now_ms),
        PolicySet(
            "alice-usd", AccountPolicy(frozenset({ALICE.key_id, SUCCESSOR.key_id}), threshold=1)
        ),
        SealerRotated(SEALER.public_key, SUCCESSOR.public_key),
    )
    keys = ledger.state.keys
    assert keys[SEALER.key_id].revoked_at_ms == ledger.now_ms
    assert keys[SEALER.key_id].roles == frozenset({"sealer"})  # it was a sealer until then
    assert keys[SUCCESSOR.key_id].roles == frozenset({"sealer"})
    assert keys[SUCCESSOR.key_id].accounts == frozenset({"carol-usd"})
    assert ledger.state.accounts["alice-usd"].policy == AccountPolicy(
        frozenset({ALICE.key_id, SUCCESSOR.key_id}), 1
    )


def test_after_the_rotation_the_successor_acts_and_the_old_key_cannot() -> None:
    """The old key signs nothing more (KEY_REVOKED); the successor spends carol-usd and rotates
    on to a third key."""
    ledger = sealer_ledger()
    ledger.accept(ALICE, pay("alice-usd", "carol-usd", "USD", 100))
    ledger.submit_tx(rotation(ledger, SEALER, SUCCESSOR, SUCCESSOR))
    ledger.advance(1_000)
    assert ledger.reject(SEALER, pay("carol-usd", "bob-usd", "USD", 1)) is (
        RejectionCode.KEY_REVOKED
    )
    assert ledger.reject_tx(rotation(ledger, SEALER, THIRD, THIRD)) is RejectionCode.KEY_REVOKED
    ledger.accept(SUCCESSOR, pay("carol-usd", "bob-usd", "USD", 1))
    assert isinstance(ledger.submit_tx(rotation(ledger, SUCCESSOR, THIRD, THIRD)), Accepted)
    assert ledger.state.keys[THIRD.key_id].roles == frozenset({"sealer"})


def test_only_a_sealer_rotates() -> None:
    """An admin or an account owner signing RotateSealer is UNAUTHORIZED, even cosigned by the
    successor."""
    ledger = sealer_ledger()
    assert ledger.reject_tx(rotation(ledger, ADMIN, SUCCESSOR, SUCCESSOR)) is (
        RejectionCode.UNAUTHORIZED
    )
    assert ledger.reject_tx(rotation(ledger, ALICE, SUCCESSOR, SUCCESSOR)) is (
        RejectionCode.UNAUTHORIZED
    )
    assert ledger.reject_tx(rotation(ledger, ADMIN, SUCCESSOR)) is RejectionCode.UNAUTHORIZED


def test_the_successor_must_cosign() -> None:
    """Without the successor's cosignature the rotation is INVALID_OPERATION, also when another
    registered key cosigns."""
    ledger = sealer_ledger()
    assert ledger.reject_tx(rotation(ledger, SEALER, SUCCESSOR)) is RejectionCode.INVALID_OPERATION
    assert ledger.reject_tx(rotation(ledger, SEALER, SUCCESSOR, BOB)) is (
        RejectionCode.INVALID_OPERATION
    )
    assert SUCCESSOR.key_id not in ledger.state.keys
    assert ledger.state.keys[SEALER.key_id].revoked_at_ms is None


def test_only_the_successor_may_cosign_unregistered() -> None:
    """decide skips the registration check for the successor alone: another unregistered
    cosigner is UNKNOWN_KEY, and an unregistered cosigner of another operation too."""
    ledger = sealer_ledger()
    assert ledger.reject_tx(rotation(ledger, SEALER, SUCCESSOR, SUCCESSOR, STRANGER)) is (
        RejectionCode.UNKNOWN_KEY
    )
    assert ledger.reject_tx(rotation(ledger, SEALER, SUCCESSOR, THIRD)) is (
        RejectionCode.UNKNOWN_KEY
    )
    transfer = cosigned(ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 1)), SUCCESSOR)
    assert ledger.reject_tx(transfer) is RejectionCode.UNKNOWN_KEY


def test_the_successor_must_be_a_new_key() -> None:
    """A successor that is registered (live or revoked) is ALREADY_EXISTS; one that is not 32
    bytes is INVALID_OPERATION."""
    ledger = sealer_ledger()
    assert ledger.reject_tx(rotation(ledger, SEALER, BOB, BOB)) is RejectionCode.ALREADY_EXISTS
    ledger.accept(ADMIN, RegisterKey(THIRD.public_key, (), ()))
    ledger.accept(ADMIN, RevokeKey(THIRD.key_id))
    assert ledger.reject_tx(rotation(ledger, SEALER, THIRD, THIRD)) is RejectionCode.ALREADY_EXISTS
    short = FakeKey(SUCCESSOR.public_key[:31], SUCCESSOR.key_id)
    assert ledger.reject_tx(rotation(ledger, SEALER, short, short)) is (
        RejectionCode.INVALID_OPERATION
    )


def test_replay_and_snapshot_reproduce_the_rotation() -> None:
    """Replaying every submission and restoring a snapshot give the state after the rotation."""
    ledger = sealer_ledger()
    ledger.reject_tx(rotation(ledger, SEALER, SUCCESSOR))
    ledger.submit_tx(rotation(ledger, SEALER, SUCCESSOR, SUCCESSOR))
    ledger.advance(1_000)
    ledger.accept(SUCCESSOR, pay("alice-usd", "carol-usd", "USD", 5))  # its policy seat
    assert replay(ledger.blocks) == ledger.state
    assert replay_decisions(ledger) == ledger.state
    assert restore(snapshot_bytes(ledger.state)) == ledger.state


# ---- Reverse across a rotation --------------------------------------------------------------


def test_blocks_sealed_by_the_old_key_before_the_rotation_still_prove_originals() -> None:
    """After a rotation, a Reverse of a transfer sealed by the old key before it is proven,
    also one sealed in the rotation's own block (at the revocation time); a block the old key
    "seals" after its revocation is ORIGINAL_NOT_PROVEN, the successor's blocks prove."""
    ledger = standard_ledger()
    old = register_sealer(ledger, "old sealer")
    new = real_key("new sealer")
    earlier = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 1_000)).tx
    ledger.advance(1_000)
    same_block = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 300)).tx
    rotated_at_ms = ledger.now_ms
    tx = rotation(ledger, FakeKey.of(old), FakeKey.of(new), FakeKey.of(new))
    assert isinstance(ledger.submit_tx(tx), Accepted)
    ledger.advance(1_000)
    later = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 200)).tx
    ledger.advance(1_000)

    ledger.accept(BOB, reverse_of(ledger, old, earlier))
    ledger.accept(BOB, reverse_of(ledger, old, same_block))
    assert ledger.state.keys[old.key_id].revoked_at_ms == rotated_at_ms
    forged = reverse_of(ledger, old, later)
    assert ledger.reject(BOB, forged) is RejectionCode.ORIGINAL_NOT_PROVEN
    ledger.accept(BOB, reverse_of(ledger, new, later))
    assert ledger.balance("bob-usd") == (0, 0)
    assert replay(ledger.blocks) == ledger.state


def test_the_old_keys_seals_prove_up_to_its_revocation_time() -> None:
    """A block the old key seals one millisecond after its revocation does not prove, even for
    a transaction accepted before the rotation; one dated at the revocation time does (a seal
    counts while revoked_at_ms >= sealed_at_ms)."""
    ledger = standard_ledger()
    old = register_sealer(ledger, "old sealer")
    new = real_key("new sealer")
    original = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 1_000)).tx
    ledger.advance(1_000)
    ledger.submit_tx(rotation(ledger, FakeKey.of(old), FakeKey.of(new), FakeKey.of(new)))
    late = seal_block(old, [envelope_of(original)], sealed_at_ms=ledger.now_ms + 1)
    assert ledger.reject(BOB, proof_of(late, 0)) is RejectionCode.ORIGINAL_NOT_PROVEN
    on_time = seal_block(old, [envelope_of(original)], sealed_at_ms=ledger.now_ms)
    ledger.accept(BOB, proof_of(on_time, 0))
    assert ledger.balance("bob-usd") == (0, 0)
