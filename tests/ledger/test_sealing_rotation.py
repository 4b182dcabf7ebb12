"""The sequencer's side of a sealer rotation (``ledger.sealing.seal_block``): a RotateSealer is
decided after every other envelope of its block, so an accepted one ends the block; the block is
sealed by the old key and the next by the successor; a rotation the sequencer cannot follow (it
lacks the successor's private key) or not signed by the key sealing the block is refused; a
replica replays across the rotation and keeps the successor through a snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from test_sealing import (
    ADMIN,
    ALICE,
    GENESIS_MS,
    LEDGER,
    SEALER,
    genesis_replica,
    open_block,
    pay,
    replayed,
    signed,
)

from ledger.blocks import build_block
from ledger.errors import ChainError
from ledger.model import RegisterKey, Role, RotateSealer
from ledger.replica import restore_snapshot, snapshot
from ledger.sealing import seal_block
from ledger.signing import Signer, build_tx_body

SUCCESSOR = Signer.generate()
NOW_MS = GENESIS_MS + 1_000


def rotation(signer: Signer = SEALER, successor: Signer = SUCCESSOR, cosign: bool = True) -> bytes:
    body = build_tx_body(LEDGER, RotateSealer(successor.public_key), now_ms=NOW_MS)
    return signer.sign(body, cosigners=[successor] if cosign else [])


def holding(*signers: Signer) -> Callable[[bytes], Signer | None]:
    """The sequencer's keyring lookup, holding ``signers``."""
    keys = {signer.public_key: signer for signer in signers}
    return keys.get


def test_a_rotation_ends_its_block_and_the_next_block_is_sealed_by_the_successor() -> None:
    replica = genesis_replica()
    before = signed(ALICE, pay("alice", "bob", 1), NOW_MS)
    turn = rotation()
    after = signed(ALICE, pay("alice", "bob", 2), NOW_MS)
    sealed = seal_block(
        replica,
        open_block([(0, 0, before), (0, 1, turn), (0, 2, after)]),
        NOW_MS,
        0,
        SEALER,
        holding(SUCCESSOR),
    )
    assert [tx.envelope for tx in sealed.block.transactions] == [before, after, turn]
    assert sealed.block.header.sealer_key == SEALER.public_key
    assert sealed.next_signer is SUCCESSOR and sealed.rejections == ()
    assert replica.trusted_sealer_key == SUCCESSOR.public_key

    following = seal_block(
        replica,
        open_block([(0, 3, signed(ALICE, pay("alice", "bob", 3), NOW_MS))], first_offset=1),
        NOW_MS,
        0,
        SUCCESSOR,
    )
    assert following.block.header.sealer_key == SUCCESSOR.public_key
    again = replayed(sealed, following)
    assert again.state == replica.state and again.trusted_sealer_key == SUCCESSOR.public_key


def test_a_block_after_the_rotation_sealed_by_the_old_key_does_not_replay() -> None:
    replica = genesis_replica()
    sealed = seal_block(
        replica, open_block([(0, 0, rotation())]), NOW_MS, 0, SEALER, holding(SUCCESSOR)
    )
    stale = seal_block(
        replica,
        open_block([(0, 1, signed(ALICE, pay("alice", "bob", 1), NOW_MS))], first_offset=1),
        NOW_MS,
        0,
        SEALER,  # should have been SUCCESSOR
    )
    follower = replayed(sealed)
    with pytest.raises(ChainError):
        follower.apply_block(stale.block)


def test_a_rotation_to_a_key_the_sequencer_does_not_hold_is_refused() -> None:
    replica = genesis_replica()
    sealed = seal_block(replica, open_block([(0, 0, rotation())]), NOW_MS, 0, SEALER)
    assert sealed.block.transactions == () and sealed.next_signer is None
    [refusal] = sealed.rejections
    assert refusal.code == "INVALID_OPERATION" and "keyring" in refusal.detail
    assert replica.trusted_sealer_key == SEALER.public_key


def test_a_rotation_signed_by_another_sealer_role_key_is_refused() -> None:
    """Only the key sealing this block hands sealing on; the state would accept any key with
    the sealer role, the sequencer does not. The state's own checks come first: an unknown
    signer is UNKNOWN_KEY, as for any transaction."""
    other = Signer.generate()
    replica = genesis_replica()
    register = signed(ADMIN, RegisterKey(other.public_key, (Role.SEALER.value,), ()), NOW_MS)
    unknown = rotation(signer=Signer.generate())
    sealed = seal_block(
        replica,
        open_block([(0, 0, register), (0, 1, rotation(signer=other)), (0, 2, unknown)]),
        NOW_MS,
        0,
        SEALER,
        holding(SUCCESSOR),
    )
    assert [tx.envelope for tx in sealed.block.transactions] == [register]
    assert [refusal.code for refusal in sealed.rejections] == ["UNAUTHORIZED", "UNKNOWN_KEY"]
    assert sealed.next_signer is None


def test_a_rotation_without_the_successors_cosignature_is_refused() -> None:
    replica = genesis_replica()
    sealed = seal_block(
        replica,
        open_block([(0, 0, rotation(cosign=False))]),
        NOW_MS,
        0,
        SEALER,
        holding(SUCCESSOR),
    )
    [refusal] = sealed.rejections
    assert refusal.code == "INVALID_OPERATION" and "cosign" in refusal.detail


def test_two_rotations_in_one_block_the_second_is_refused() -> None:
    third = Signer.generate()
    replica = genesis_replica()
    sealed = seal_block(
        replica,
        open_block([(0, 0, rotation()), (0, 1, rotation(successor=third))]),
        NOW_MS,
        0,
        SEALER,
        holding(SUCCESSOR, third),
    )
    assert sealed.next_signer is SUCCESSOR and len(sealed.block.transactions) == 1
    [refusal] = sealed.rejections
    assert refusal.code == "KEY_REVOKED"


def test_a_rotation_mid_block_does_not_replay() -> None:
    """A block with a RotateSealer before another transaction is a sequencer bug or forgery."""
    replica = genesis_replica()
    sealed = seal_block(
        replica,
        open_block([(0, 0, rotation()), (0, 1, signed(ALICE, pay("alice", "bob", 1), NOW_MS))]),
        NOW_MS,
        0,
        SEALER,
        holding(SUCCESSOR),
    )
    transfer, turn = (tx.envelope for tx in sealed.block.transactions)
    forged, _ = build_block(
        genesis_replica().checkpoint,
        ledger=LEDGER,
        envelopes=[turn, transfer],
        sealed_at_ms=NOW_MS,
        source_partition=0,
        source_offset_end=1,
        signing_key=SEALER,
    )
    with pytest.raises(ChainError, match="mid-block"):
        genesis_replica().apply_block(forged)


def test_a_snapshot_after_the_rotation_remembers_the_successor() -> None:
    replica = genesis_replica()
    seal_block(replica, open_block([(0, 0, rotation())]), NOW_MS, 0, SEALER, holding(SUCCESSOR))
    restored = restore_snapshot(snapshot(replica, 1, 2), trusted_sealer_key=SEALER.public_key)
    assert restored.replica.trusted_sealer_key == SUCCESSOR.public_key
    assert restored.replica.state == replica.state


def test_a_snapshot_from_before_rotation_existed_trusts_the_given_key() -> None:
    replica = genesis_replica()
    data = snapshot(replica, 1, 2)
    size = int.from_bytes(data[:4], "big")
    header = json.loads(data[4 : 4 + size])
    del header["sealer_key"]
    old = json.dumps(header, sort_keys=True).encode()
    legacy = len(old).to_bytes(4, "big") + old + data[4 + size :]
    restored = restore_snapshot(legacy, trusted_sealer_key=SEALER.public_key)
    assert restored.replica.trusted_sealer_key == SEALER.public_key
