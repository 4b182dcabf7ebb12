"""Account policies, multi-signature authority and the operator and auditor roles, decided the
way the sequencer decides them (see also the scenarios of test_state_rejections)."""

from __future__ import annotations

from support_state import (
    ADMIN,
    ALICE,
    BOB,
    CAROL,
    STRANGER,
    FakeKey,
    cosigned,
    pay,
    replay,
    standard_ledger,
    treasury_policy,
)

from ledger.model import (
    AccountStatus,
    Attest,
    Hold,
    RegisterKey,
    SetAccountPolicy,
    SetAccountStatus,
    UpdateKey,
)
from ledger.rejections import RejectionCode
from ledger.state import restore, snapshot_bytes


def test_a_policy_replaces_ownership_and_counts_distinct_policy_keys() -> None:
    """With a 1-of-{ALICE, CAROL} policy CAROL may debit alice-usd though she does not own it;
    BOB, who is not named, may not even with ALICE's key beside his above the threshold."""
    ledger = standard_ledger()
    treasury_policy(ledger)
    ledger.accept(CAROL, pay("alice-usd", "bob-usd", "USD", 10))
    big = ledger.tx(BOB, pay("alice-usd", "bob-usd", "USD", 2_000))
    assert ledger.reject_tx(cosigned(big, ALICE)) is RejectionCode.TOO_FEW_SIGNATURES
    assert ledger.reject(BOB, pay("alice-usd", "bob-usd", "USD", 5)) is (
        RejectionCode.TOO_FEW_SIGNATURES
    )
    ledger.submit_tx(cosigned(ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 2_000)), CAROL))
    assert ledger.balance("bob-usd") == (2_010, 0)


def test_holds_follow_the_payer_policy() -> None:
    ledger = standard_ledger()
    treasury_policy(ledger, counterparties=("bob-usd",))
    hold = Hold("alice-usd", "carol-usd", "USD", 5, ledger.now_ms + 5_000)
    assert ledger.reject(ALICE, hold) is RejectionCode.COUNTERPARTY_NOT_ALLOWED
    ledger.accept(ALICE, Hold("alice-usd", "bob-usd", "USD", 5, ledger.now_ms + 5_000))


def test_cosigners_must_be_registered_and_live() -> None:
    ledger = standard_ledger()
    tx = ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 1))
    assert ledger.reject_tx(cosigned(tx, STRANGER)) is RejectionCode.UNKNOWN_KEY


def test_removing_a_policy_gives_the_account_back_to_its_owners() -> None:
    ledger = standard_ledger()
    treasury_policy(ledger)
    ledger.accept(ADMIN, SetAccountPolicy("alice-usd", (), 0))
    assert ledger.state.accounts["alice-usd"].policy is None
    assert ledger.reject(CAROL, pay("alice-usd", "bob-usd", "USD", 1)) is (
        RejectionCode.UNAUTHORIZED
    )
    assert ledger.reject(ADMIN, SetAccountPolicy("alice-usd", (), 0)) is (
        RejectionCode.INVALID_OPERATION
    )


def test_bad_policies_are_refused() -> None:
    ledger = standard_ledger()
    keys = (ALICE.key_id, CAROL.key_id)
    for op, code in (
        (SetAccountPolicy("alice-usd", keys, 3), RejectionCode.INVALID_OPERATION),
        (SetAccountPolicy("alice-usd", keys, 1, 2, None), RejectionCode.INVALID_OPERATION),
        (SetAccountPolicy("alice-usd", keys, 2, 2, 10), RejectionCode.INVALID_OPERATION),
        (SetAccountPolicy("alice-usd", keys, 1, max_amount=0), RejectionCode.INVALID_OPERATION),
        (SetAccountPolicy("alice-usd", (STRANGER.key_id,), 1), RejectionCode.UNKNOWN_KEY),
        (SetAccountPolicy("nobody", keys, 1), RejectionCode.UNKNOWN_ACCOUNT),
        (
            SetAccountPolicy("alice-usd", keys, 1, counterparties=("x",)),
            RejectionCode.UNKNOWN_ACCOUNT,
        ),
    ):
        assert ledger.reject(ADMIN, op) is code, op
    assert ledger.reject(ALICE, SetAccountPolicy("alice-usd", keys, 1)) is (
        RejectionCode.UNAUTHORIZED
    )


def test_policies_survive_snapshots_and_replays() -> None:
    ledger = standard_ledger()
    treasury_policy(ledger, max_amount=9_000, counterparties=("bob-usd", "carol-usd"))
    restored = restore(snapshot_bytes(ledger.state))
    assert restored == ledger.state
    assert restored.accounts["alice-usd"].policy == ledger.state.accounts["alice-usd"].policy
    assert snapshot_bytes(restored) == snapshot_bytes(ledger.state)
    assert replay(ledger.blocks) == ledger.state


def test_an_operator_freezes_and_unfreezes_but_does_not_close() -> None:
    ledger = standard_ledger()
    operator = STRANGER
    ledger.accept(ADMIN, RegisterKey(operator.public_key, ("operator",), ()))
    ledger.accept(operator, SetAccountStatus("bob-usd", AccountStatus.FROZEN))
    ledger.accept(operator, SetAccountStatus("bob-usd", AccountStatus.ACTIVE))
    assert ledger.reject(operator, SetAccountStatus("carol-usd", AccountStatus.CLOSED)) is (
        RejectionCode.UNAUTHORIZED
    )


def test_an_auditor_attests_and_moves_no_money() -> None:
    ledger = standard_ledger()
    auditor = STRANGER
    assert ledger.reject(ADMIN, RegisterKey(auditor.public_key, ("auditor",), ("bob-usd",))) is (
        RejectionCode.INVALID_OPERATION
    )
    assert ledger.reject(ADMIN, RegisterKey(auditor.public_key, ("auditor", "operator"), ())) is (
        RejectionCode.INVALID_OPERATION
    )
    ledger.accept(ADMIN, RegisterKey(auditor.public_key, ("auditor",), ()))
    ledger.accept(auditor, Attest(bytes(32)))
    assert ledger.reject(auditor, pay("bob-usd", "alice-usd", "USD", 1)) is (
        RejectionCode.UNAUTHORIZED
    )
    assert ledger.reject(ADMIN, SetAccountPolicy("alice-usd", (auditor.key_id,), 1)) is (
        RejectionCode.INVALID_OPERATION
    )
    assert ledger.reject(auditor, SetAccountStatus("bob-usd", AccountStatus.FROZEN)) is (
        RejectionCode.UNAUTHORIZED
    )


def test_update_key_changes_what_a_key_owns() -> None:
    ledger = standard_ledger()
    ledger.accept(ADMIN, UpdateKey(BOB.key_id, ("bob-usd", "carol-usd")))
    assert ledger.state.keys[BOB.key_id].accounts == {"bob-usd", "carol-usd"}
    assert ledger.reject(BOB, pay("bob-bond", "alice-bond", "BOND", 1)) is (
        RejectionCode.UNAUTHORIZED
    )
    assert ledger.reject(ADMIN, UpdateKey(BOB.key_id, ("nobody",))) is RejectionCode.UNKNOWN_ACCOUNT
    assert ledger.reject(ADMIN, UpdateKey(STRANGER.key_id, ())) is RejectionCode.UNKNOWN_KEY
    assert ledger.reject(BOB, UpdateKey(BOB.key_id, ())) is RejectionCode.UNAUTHORIZED


def test_rotation_hands_roles_accounts_and_policy_seats_to_the_successor() -> None:
    """ALICE's key is rotated to a successor in one transaction: the old key signs nothing more,
    the successor spends alice's accounts and sits in alice-usd's policy in her place; a
    replay from the blocks and a snapshot reach the same state."""
    ledger = standard_ledger()
    treasury_policy(ledger)
    successor = FakeKey.named("alice-2")
    ledger.accept(ADMIN, UpdateKey(ALICE.key_id, ("alice-usd", "alice-bond"), successor.public_key))
    assert ledger.reject(ALICE, pay("alice-usd", "bob-usd", "USD", 1)) is RejectionCode.KEY_REVOKED
    ledger.accept(successor, pay("alice-usd", "bob-usd", "USD", 1))
    policy = ledger.state.accounts["alice-usd"].policy
    assert policy is not None and policy.key_ids == {successor.key_id, CAROL.key_id}
    big = ledger.tx(successor, pay("alice-usd", "bob-usd", "USD", 2_000))
    ledger.submit_tx(cosigned(big, CAROL))
    assert ledger.balance("bob-usd") == (2_001, 0)
    assert replay(ledger.blocks) == ledger.state
    assert restore(snapshot_bytes(ledger.state)) == ledger.state
    assert ledger.reject(ADMIN, UpdateKey(BOB.key_id, (), successor.public_key)) is (
        RejectionCode.ALREADY_EXISTS
    )
