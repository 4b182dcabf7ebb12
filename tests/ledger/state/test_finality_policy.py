"""The finality policy on chain: SetFinality, witness revocations, snapshots and genesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support_state import ADMIN, ALICE, FakeKey, Ledger

from ledger.errors import ConfigError
from ledger.genesis import GenesisSpec, build_genesis
from ledger.limits import finality_threshold_max
from ledger.model import RegisterKey, RevokeKey, SetFinality
from ledger.rejections import RejectionCode
from ledger.replica import Replica, tx_from_envelope
from ledger.signing import Signer, save_private_key
from ledger.state import FinalitySet, restore, snapshot_bytes

WITNESSES = [FakeKey.named(f"witness-{number}") for number in range(3)]
W1, W2, W3 = WITNESSES
PASSPHRASE = b"finality test passphrase"
GENESIS_MS = 1_750_000_000_000


def witnessed_ledger(witnesses: list[FakeKey] = WITNESSES) -> Ledger:
    """ADMIN, ``witnesses`` with the witness role, and ALICE without roles; threshold 0."""
    ledger = Ledger()
    ledger.accept(ADMIN, RegisterKey(ADMIN.public_key, ("admin",), ()))
    for witness in witnesses:
        ledger.accept(ADMIN, RegisterKey(witness.public_key, ("witness",), ()))
    ledger.accept(ADMIN, RegisterKey(ALICE.public_key, (), ()))
    ledger.advance(1_000)
    return ledger


# ---- SetFinality ---------------------------------------------------------------------------------


def test_a_valid_threshold_is_accepted_and_applied() -> None:
    """An admin's SetFinality(2) with three witnesses is accepted and the state holds 2."""
    ledger = witnessed_ledger()
    accepted = ledger.accept(ADMIN, SetFinality(2))
    assert accepted.effects == (FinalitySet(2, 0),)
    assert ledger.state.finality_threshold == 2
    lowered = ledger.accept(ADMIN, SetFinality(0))
    assert lowered.effects == (FinalitySet(0, 2),)
    assert ledger.state.finality_threshold == 0


@pytest.mark.parametrize("signer", [ALICE, W1], ids=["key-without-roles", "witness"])
def test_only_an_admin_sets_the_policy(signer: FakeKey) -> None:
    """SetFinality by a registered non-admin key (even a witness) is UNAUTHORIZED."""
    ledger = witnessed_ledger()
    assert ledger.reject(signer, SetFinality(1)) is RejectionCode.UNAUTHORIZED
    assert ledger.state.finality_threshold == 0


def test_authorization_is_checked_before_the_threshold() -> None:
    """A non-admin's out-of-range threshold is UNAUTHORIZED, not INVALID_OPERATION."""
    ledger = witnessed_ledger()
    assert ledger.reject(ALICE, SetFinality(-1)) is RejectionCode.UNAUTHORIZED


@pytest.mark.parametrize("threshold", [-1, -(2**31)])
def test_a_negative_threshold_is_invalid(threshold: int) -> None:
    """A threshold below 0 is INVALID_OPERATION."""
    ledger = witnessed_ledger()
    assert ledger.reject(ADMIN, SetFinality(threshold)) is RejectionCode.INVALID_OPERATION


def test_the_threshold_is_bounded_even_with_enough_witnesses() -> None:
    """With finality_threshold_max + 1 witnesses, the maximum is accepted and one more is not."""
    many = [FakeKey.named(f"many-witness-{number}") for number in range(finality_threshold_max + 1)]
    ledger = witnessed_ledger(many)
    assert ledger.state.active_count_with_role("witness") == finality_threshold_max + 1
    refused = ledger.reject(ADMIN, SetFinality(finality_threshold_max + 1))
    assert refused is RejectionCode.INVALID_OPERATION
    ledger.accept(ADMIN, SetFinality(finality_threshold_max))
    assert ledger.state.finality_threshold == finality_threshold_max


def test_a_threshold_above_the_unrevoked_witnesses_is_invalid() -> None:
    """With three witnesses 4 is refused; after one is revoked, 3 is refused and 2 accepted."""
    ledger = witnessed_ledger()
    assert ledger.reject(ADMIN, SetFinality(4)) is RejectionCode.INVALID_OPERATION
    ledger.accept(ADMIN, RevokeKey(W3.key_id))
    assert ledger.reject(ADMIN, SetFinality(3)) is RejectionCode.INVALID_OPERATION
    ledger.accept(ADMIN, SetFinality(2))
    assert ledger.state.finality_threshold == 2


def test_keys_without_the_witness_role_do_not_count_as_witnesses() -> None:
    """With no witness keys, only ADMIN and ALICE, any threshold above 0 is invalid."""
    ledger = witnessed_ledger([])
    assert ledger.reject(ADMIN, SetFinality(1)) is RejectionCode.INVALID_OPERATION


@pytest.mark.parametrize("current", [0, 2])
def test_setting_the_current_threshold_again_is_invalid(current: int) -> None:
    """SetFinality to the threshold the ledger already has is INVALID_OPERATION."""
    ledger = witnessed_ledger()
    if current:
        ledger.accept(ADMIN, SetFinality(current))
    assert ledger.reject(ADMIN, SetFinality(current)) is RejectionCode.INVALID_OPERATION
    assert ledger.state.finality_threshold == current


# ---- witness keys ----------------------------------------------------------------------------------


def test_a_witness_key_is_registered_with_a_known_role() -> None:
    """RegisterKey with roles ["witness"] is accepted; an unknown role is not."""
    ledger = witnessed_ledger([])
    ledger.accept(ADMIN, RegisterKey(W1.public_key, ("witness",), ()))
    assert ledger.state.witness_keys() == {W1.public_key}
    stranger = FakeKey.named("observer")
    refused = ledger.reject(ADMIN, RegisterKey(stranger.public_key, ("observer",), ()))
    assert refused is RejectionCode.INVALID_OPERATION


def test_witness_keys_are_the_unrevoked_keys_with_the_witness_role() -> None:
    """witness_keys() leaves out ADMIN, ALICE and a revoked witness."""
    ledger = witnessed_ledger()
    assert ledger.state.witness_keys() == {witness.public_key for witness in WITNESSES}
    ledger.accept(ADMIN, RevokeKey(W2.key_id))
    assert ledger.state.witness_keys() == {W1.public_key, W3.public_key}
    assert ledger.state.active_count_with_role("witness") == 2


def test_revoking_a_witness_below_the_threshold_is_invalid_until_it_is_lowered() -> None:
    """With k = 3 of 3 no witness can go; at k = 2 one can, then the next needs k = 1."""
    ledger = witnessed_ledger()
    ledger.accept(ADMIN, SetFinality(3))
    assert ledger.reject(ADMIN, RevokeKey(W1.key_id)) is RejectionCode.INVALID_OPERATION
    assert not ledger.state.keys[W1.key_id].revoked
    ledger.accept(ADMIN, SetFinality(2))
    ledger.accept(ADMIN, RevokeKey(W1.key_id))
    assert ledger.reject(ADMIN, RevokeKey(W2.key_id)) is RejectionCode.INVALID_OPERATION
    ledger.accept(ADMIN, SetFinality(1))
    ledger.accept(ADMIN, RevokeKey(W2.key_id))
    assert ledger.state.witness_keys() == {W3.public_key}


def test_the_threshold_does_not_protect_keys_that_are_not_witnesses() -> None:
    """With k equal to the number of witnesses, a key without the witness role is still revoked."""
    ledger = witnessed_ledger()
    ledger.accept(ADMIN, SetFinality(3))
    ledger.accept(ADMIN, RevokeKey(ALICE.key_id))
    assert ledger.state.keys[ALICE.key_id].revoked


# ---- snapshots -------------------------------------------------------------------------------------


def test_a_snapshot_keeps_the_threshold() -> None:
    """snapshot_bytes/restore round-trips finality_threshold, and the bytes are stable."""
    ledger = witnessed_ledger()
    ledger.accept(ADMIN, SetFinality(2))
    data = snapshot_bytes(ledger.state)
    restored = restore(data)
    assert restored.finality_threshold == 2
    assert restored == ledger.state
    assert snapshot_bytes(restored) == data


def test_states_differing_only_in_the_threshold_differ() -> None:
    """State equality and the snapshot bytes both see the finality threshold."""
    ledger = witnessed_ledger()
    ledger.accept(ADMIN, SetFinality(2))
    other = restore(snapshot_bytes(ledger.state))
    other.finality_threshold = 1
    assert other != ledger.state
    assert snapshot_bytes(other) != snapshot_bytes(ledger.state)


def test_a_version_3_snapshot_restores_with_no_policy() -> None:
    """A snapshot written before version 4 (no finality_threshold field) restores with 0."""
    ledger = witnessed_ledger()
    data = snapshot_bytes(ledger.state)
    # Version 6 is version 3 plus a trailing int (the threshold, 0) and three trailing arrays
    # (account policies, issuance caps, reversals: none): cut them and write the version as 3
    # (zigzag 6).
    assert data[:1] == b"\x0c" and data[-4:] == b"\x00\x00\x00\x00"
    version_3 = b"\x06" + data[1:-4]
    restored = restore(version_3)
    assert restored == ledger.state and restored.finality_threshold == 0
    # and a version 4 snapshot's threshold is read as such: version 3 does not carry one
    ledger.accept(ADMIN, SetFinality(2))
    assert restore(snapshot_bytes(ledger.state)).finality_threshold == 2


# ---- genesis ---------------------------------------------------------------------------------------


def _spec(tmp_path: Path, witnesses: list[Signer], threshold: int) -> GenesisSpec:
    admin_key_file = tmp_path / "admin.key"
    if not admin_key_file.exists():
        save_private_key(admin_key_file, Signer.generate(), PASSPHRASE)
    return GenesisSpec(
        ledger="main",
        admin_key_file=admin_key_file,
        assets=[],
        accounts=[],
        keys=[
            {"public_key": witness.public_key.hex(), "roles": ["witness"], "accounts": []}
            for witness in witnesses
        ],
        finality_threshold=threshold,
    )


def test_a_genesis_with_witnesses_and_a_threshold_replays_to_that_policy(tmp_path: Path) -> None:
    """Three witness keys and finality_threshold 2 give a replayed state with both."""
    witnesses = [Signer.generate() for _ in range(3)]
    block = build_genesis(
        _spec(tmp_path, witnesses, 2), PASSPHRASE, Signer.generate(), GENESIS_MS, 0
    )
    replica = Replica("main")
    replica.apply_block(block)
    assert replica.state.finality_threshold == 2
    assert replica.state.witness_keys() == {witness.public_key for witness in witnesses}
    ops = [tx_from_envelope(sealed.envelope).body.op for sealed in block.transactions]
    # the admin, the sealer, the three witnesses, then the policy
    assert [type(op).__name__ for op in ops] == ["RegisterKey"] * 5 + ["SetFinality"]
    assert ops[-1] == SetFinality(2)


def test_a_genesis_without_a_threshold_has_no_policy_transaction(tmp_path: Path) -> None:
    """finality_threshold 0 (the default) adds no SetFinality: blocks are final when sealed."""
    witnesses = [Signer.generate() for _ in range(3)]
    block = build_genesis(
        _spec(tmp_path, witnesses, 0), PASSPHRASE, Signer.generate(), GENESIS_MS, 0
    )
    ops = [tx_from_envelope(sealed.envelope).body.op for sealed in block.transactions]
    assert not any(isinstance(op, SetFinality) for op in ops)
    replica = Replica("main")
    replica.apply_block(block)
    assert replica.state.finality_threshold == 0


def test_a_genesis_threshold_above_its_witnesses_is_refused(tmp_path: Path) -> None:
    """finality_threshold 4 with three witnesses fails the genesis check with ConfigError."""
    witnesses = [Signer.generate() for _ in range(3)]
    spec = _spec(tmp_path, witnesses, 4)
    with pytest.raises(ConfigError, match="SetFinality"):
        build_genesis(spec, PASSPHRASE, Signer.generate(), GENESIS_MS, 0)


def test_a_genesis_file_reads_the_threshold_and_refuses_a_malformed_one(tmp_path: Path) -> None:
    """GenesisSpec.load takes finality_threshold (default 0) and refuses a non-number."""
    path = tmp_path / "genesis.json"
    base = {"ledger": "main", "admin_key_file": "admin.key"}
    path.write_text(json.dumps({**base, "finality_threshold": 2}))
    assert GenesisSpec.load(path).finality_threshold == 2
    path.write_text(json.dumps(base))
    assert GenesisSpec.load(path).finality_threshold == 0
    path.write_text(json.dumps({**base, "finality_threshold": "two"}))
    with pytest.raises(ConfigError, match="malformed"):
        GenesisSpec.load(path)
