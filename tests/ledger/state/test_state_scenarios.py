"""Scenarios of the state machine: genesis, DvP, holds, account life cycle, keys, guards."""

from __future__ import annotations

import itertools

import pytest
from support_state import (
    ADMIN,
    ALICE,
    BOB,
    CAROL,
    ISSUER,
    STRANGER,
    FakeKey,
    Ledger,
    pay,
    replay,
    standard_ledger,
)

from ledger.errors import DecodeError
from ledger.limits import int64_max, int64_min
from ledger.model import (
    AccountStatus,
    Attest,
    Capture,
    DefineAsset,
    Hold,
    OpenAccount,
    Posting,
    RegisterKey,
    RevokeKey,
    SetAccountStatus,
    Transfer,
    Void,
)
from ledger.rejections import RejectionCode
from ledger.state import (
    AccountOpened,
    AccountStatusChanged,
    AssetDefined,
    Attested,
    BalanceChanged,
    HoldOpened,
    HoldResolved,
    HoldStatus,
    KeyRegistered,
    KeyRevoked,
    Posted,
    State,
    StateError,
    apply,
    begin_block,
    decide,
    key_id_of,
    restore,
    snapshot_bytes,
)


def test_genesis_admin_registers_itself() -> None:
    """On an empty ledger, a key may register itself as admin; afterwards nobody else can."""
    ledger = Ledger()
    accepted = ledger.accept(ADMIN, RegisterKey(ADMIN.public_key, ("admin", "sealer"), ()))
    assert accepted.effects == (
        KeyRegistered(ADMIN.key_id, ADMIN.public_key, ("admin", "sealer"), ()),
    )
    self_registration = RegisterKey(STRANGER.public_key, ("admin",), ())
    assert ledger.reject(STRANGER, self_registration) is RejectionCode.UNKNOWN_KEY


def test_genesis_needs_admin_role_and_own_key() -> None:
    """Bootstrap accepts only an admin key registering itself, nothing else."""
    ledger = Ledger()
    assert ledger.reject(ADMIN, RegisterKey(ADMIN.public_key, ("sealer",), ())) is (
        RejectionCode.UNKNOWN_KEY
    )
    assert ledger.reject(ADMIN, RegisterKey(BOB.public_key, ("admin",), ())) is (
        RejectionCode.UNKNOWN_KEY
    )
    assert ledger.reject(ADMIN, DefineAsset("USD", 2, "usd-issuer")) is RejectionCode.UNKNOWN_KEY


def test_account_asset_and_key_operations_need_admin() -> None:
    """Only admin keys open accounts, define assets, set statuses and manage keys."""
    ledger = standard_ledger()
    for op in (
        OpenAccount("alice-2", "USD"),
        DefineAsset("EUR", 2, "eur-issuer"),
        SetAccountStatus("bob-usd", AccountStatus.FROZEN),
        RegisterKey(STRANGER.public_key, (), ()),
        RevokeKey(BOB.key_id),
    ):
        assert ledger.reject(ALICE, op) is RejectionCode.UNAUTHORIZED


def test_define_asset_opens_issuer_account_that_may_go_negative() -> None:
    """DefineAsset opens the issuer account; issuing takes it negative, redeeming brings it back."""
    ledger = standard_ledger()
    accepted = ledger.accept(ADMIN, DefineAsset("EUR", 2, "eur-issuer"))
    assert accepted.effects == (
        AssetDefined("EUR", 2, "eur-issuer"),
        AccountOpened("eur-issuer", "EUR", None, True),
    )
    assert ledger.balance("usd-issuer") == (-10_000, 0)
    ledger.accept(ALICE, pay("alice-usd", "usd-issuer", "USD", 4_000))
    assert ledger.balance("usd-issuer") == (-6_000, 0)
    assert ledger.reject(ADMIN, DefineAsset("JPY", 19, "jpy-issuer")) is (
        RejectionCode.INVALID_OPERATION
    )
    assert ledger.reject(ADMIN, DefineAsset("JPY", 0, "alice-usd")) is RejectionCode.ALREADY_EXISTS


def test_transfer_effects_carry_postings_and_balances() -> None:
    """An accepted transfer carries its postings and each account's balance and held after it."""
    ledger = standard_ledger()
    accepted = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 250))
    assert accepted.effects == (
        Posted("alice-usd", "USD", -250),
        Posted("bob-usd", "USD", 250),
        BalanceChanged("alice-usd", "USD", 9_750, 0),
        BalanceChanged("bob-usd", "USD", 250, 0),
    )
    assert accepted.now_ms == ledger.now_ms


def test_delivery_versus_payment() -> None:
    """Cash and bonds change hands in one atomic transfer, or not at all."""
    ledger = standard_ledger()
    agent = FakeKey.named("settlement agent")
    ledger.accept(ADMIN, RegisterKey(agent.public_key, (), ("alice-usd", "bob-bond")))
    dvp = Transfer(
        (
            Posting("alice-usd", "USD", -500),
            Posting("bob-usd", "USD", 500),
            Posting("bob-bond", "BOND", -2),
            Posting("alice-bond", "BOND", 2),
        )
    )
    ledger.accept(agent, dvp)
    assert ledger.balance("alice-usd") == (9_500, 0)
    assert ledger.balance("bob-usd") == (500, 0)
    assert ledger.balance("bob-bond") == (3, 0)
    assert ledger.balance("alice-bond") == (2, 0)
    too_many_bonds = Transfer(
        (
            Posting("alice-usd", "USD", -500),
            Posting("bob-usd", "USD", 500),
            Posting("bob-bond", "BOND", -4),
            Posting("alice-bond", "BOND", 4),
        )
    )
    assert ledger.reject(agent, too_many_bonds) is RejectionCode.INSUFFICIENT_FUNDS
    assert ledger.balance("alice-usd") == (9_500, 0)  # the cash leg did not move alone


def test_dvp_needs_the_owner_of_every_debited_account() -> None:
    """Alice alone cannot sign a DvP that debits Bob's bonds."""
    ledger = standard_ledger()
    dvp = Transfer(
        (
            Posting("alice-usd", "USD", -500),
            Posting("bob-usd", "USD", 500),
            Posting("bob-bond", "BOND", -2),
            Posting("alice-bond", "BOND", 2),
        )
    )
    assert ledger.reject(ALICE, dvp) is RejectionCode.UNAUTHORIZED


def test_account_twice_in_a_transfer_is_invalid() -> None:
    """The same account may not appear in two postings of one transfer."""
    ledger = standard_ledger()
    postings = (
        Posting("alice-usd", "USD", -5),
        Posting("alice-usd", "USD", 2),
        Posting("bob-usd", "USD", 3),
    )
    assert ledger.reject(ALICE, Transfer(postings)) is RejectionCode.INVALID_OPERATION


def test_precedence_first_failing_check_wins() -> None:
    """When several checks fail, the code with the highest precedence is returned."""
    ledger = standard_ledger()
    tx = ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 1))
    ledger.submit_tx(tx)
    ledger.advance(61_000)
    assert ledger.reject_tx(tx) is RejectionCode.EXPIRED  # also a duplicate
    unbalanced = Transfer((Posting("alice-usd", "USD", -5), Posting("dave-usd", "USD", 4)))
    assert ledger.reject(BOB, unbalanced) is RejectionCode.UNAUTHORIZED
    assert ledger.reject(ALICE, unbalanced) is RejectionCode.UNKNOWN_ACCOUNT


def test_rejection_code_does_not_depend_on_posting_order() -> None:
    """A transfer with two problems gives the same code whatever the order of its postings."""
    ledger = standard_ledger()
    ledger.accept(ADMIN, SetAccountStatus("bob-usd", AccountStatus.FROZEN))
    postings = [
        Posting("alice-usd", "USD", -20_000),  # insufficient funds
        Posting("bob-usd", "USD", 10_000),  # frozen
        Posting("carol-usd", "USD", 10_000),  # above its limit
    ]
    forward = ledger.reject(ALICE, Transfer(tuple(postings)))
    backward = ledger.reject(ALICE, Transfer(tuple(reversed(postings))))
    assert forward is backward is RejectionCode.ACCOUNT_FROZEN


def test_hold_reserves_funds() -> None:
    """Held funds are not available to transfers until the hold is resolved."""
    ledger = standard_ledger()
    accepted = ledger.accept(
        ALICE, Hold("alice-usd", "bob-usd", "USD", 9_000, ledger.now_ms + 5_000)
    )
    hold_id = accepted.tx.body.tx_id
    assert accepted.effects == (
        BalanceChanged("alice-usd", "USD", 10_000, 9_000),
        HoldOpened(
            hold_id, "alice-usd", "bob-usd", "USD", 9_000, ledger.now_ms + 5_000, ALICE.key_id
        ),
    )
    assert ledger.reject(ALICE, pay("alice-usd", "bob-usd", "USD", 1_001)) is (
        RejectionCode.INSUFFICIENT_FUNDS
    )
    ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 1_000))
    assert ledger.balance("alice-usd") == (9_000, 9_000)


def test_partial_capture_moves_part_and_releases_the_rest() -> None:
    """Capturing 120 of a 300 hold pays 120 to the payee and frees 180 for the payer."""
    ledger = standard_ledger()
    hold = ledger.accept(ALICE, Hold("alice-usd", "bob-usd", "USD", 300, ledger.now_ms + 5_000))
    hold_id = hold.tx.body.tx_id
    captured = ledger.accept(BOB, Capture(hold_id, 120))
    assert captured.effects == (
        Posted("alice-usd", "USD", -120),
        Posted("bob-usd", "USD", 120),
        BalanceChanged("alice-usd", "USD", 9_880, 0),
        BalanceChanged("bob-usd", "USD", 120, 0),
        HoldResolved(hold_id, HoldStatus.CAPTURED, 120),
    )
    record = ledger.state.holds[hold_id]
    assert (record.status, record.captured_amount) == (HoldStatus.CAPTURED, 120)
    assert ledger.reject(BOB, Capture(hold_id, 10)) is RejectionCode.HOLD_ALREADY_RESOLVED


def test_full_capture_by_the_hold_creator() -> None:
    """The key that created a hold may capture it in full (amount None)."""
    ledger = standard_ledger()
    hold = ledger.accept(ALICE, Hold("alice-usd", "bob-usd", "USD", 300, ledger.now_ms + 5_000))
    ledger.accept(ALICE, Capture(hold.tx.body.tx_id))
    assert ledger.balance("alice-usd") == (9_700, 0)
    assert ledger.balance("bob-usd") == (300, 0)


def test_capture_and_void_authorization() -> None:
    """A stranger to the hold may neither capture nor void it; the payee may void it."""
    ledger = standard_ledger()
    hold = ledger.accept(ALICE, Hold("alice-usd", "bob-usd", "USD", 300, ledger.now_ms + 5_000))
    hold_id = hold.tx.body.tx_id
    assert ledger.reject(CAROL, Capture(hold_id)) is RejectionCode.UNAUTHORIZED
    assert ledger.reject(CAROL, Void(hold_id)) is RejectionCode.UNAUTHORIZED
    voided = ledger.accept(BOB, Void(hold_id))
    assert voided.effects == (
        BalanceChanged("alice-usd", "USD", 10_000, 0),
        HoldResolved(hold_id, HoldStatus.VOIDED, 0),
    )


def test_capture_respects_payee_limit_and_freeze() -> None:
    """A capture is a credit: the payee's maximum balance and freeze apply."""
    ledger = standard_ledger()
    hold = ledger.accept(ALICE, Hold("alice-usd", "carol-usd", "USD", 2_000, ledger.now_ms + 5_000))
    hold_id = hold.tx.body.tx_id
    assert ledger.reject(CAROL, Capture(hold_id)) is RejectionCode.LIMIT_EXCEEDED
    ledger.accept(ADMIN, SetAccountStatus("carol-usd", AccountStatus.FROZEN))
    assert ledger.reject(CAROL, Capture(hold_id, 500)) is RejectionCode.ACCOUNT_FROZEN
    ledger.accept(ADMIN, SetAccountStatus("carol-usd", AccountStatus.ACTIVE))
    ledger.accept(CAROL, Capture(hold_id, 1_000))
    assert ledger.balance("carol-usd") == (1_000, 0)


def test_hold_expires_at_begin_block() -> None:
    """A hold is open through its expires_at_ms and released by the first block after it."""
    ledger = standard_ledger()
    expires_at_ms = ledger.now_ms + 5_000
    hold = ledger.accept(ALICE, Hold("alice-usd", "bob-usd", "USD", 300, expires_at_ms))
    hold_id = hold.tx.body.tx_id
    assert ledger.block(expires_at_ms) == []
    assert ledger.balance("alice-usd") == (10_000, 300)
    assert ledger.block(expires_at_ms + 1) == [
        BalanceChanged("alice-usd", "USD", 10_000, 0),
        HoldResolved(hold_id, HoldStatus.EXPIRED, 0),
    ]
    assert ledger.state.holds[hold_id].status is HoldStatus.EXPIRED
    assert ledger.reject(ALICE, Void(hold_id)) is RejectionCode.HOLD_EXPIRED


def test_hold_rules() -> None:
    """A hold needs distinct parties, a future expiry, the payer's owner and a fresh id."""
    ledger = standard_ledger()
    now_ms = ledger.now_ms
    assert ledger.reject(ALICE, Hold("alice-usd", "alice-usd", "USD", 1, now_ms + 5)) is (
        RejectionCode.INVALID_OPERATION
    )
    assert ledger.reject(ALICE, Hold("alice-usd", "bob-usd", "USD", 1, now_ms)) is (
        RejectionCode.INVALID_OPERATION
    )
    assert ledger.reject(BOB, Hold("alice-usd", "bob-usd", "USD", 1, now_ms + 5)) is (
        RejectionCode.UNAUTHORIZED
    )
    hold = ledger.accept(ALICE, Hold("alice-usd", "bob-usd", "USD", 1, now_ms + 5))
    ledger.advance(120_000)  # the Hold's tx_id has left the replay window
    reused = ledger.tx(
        ALICE, Hold("alice-usd", "bob-usd", "USD", 1, ledger.now_ms + 5), tx_id=hold.tx.body.tx_id
    )
    assert ledger.reject_tx(reused) is RejectionCode.ALREADY_EXISTS


def test_account_life_cycle() -> None:
    """ACTIVE <-> FROZEN; CLOSED only when empty and forever; frozen accounts cannot send."""
    ledger = standard_ledger()
    frozen = ledger.accept(ADMIN, SetAccountStatus("alice-usd", AccountStatus.FROZEN))
    assert frozen.effects == (
        AccountStatusChanged("alice-usd", AccountStatus.FROZEN, AccountStatus.ACTIVE),
    )
    assert ledger.reject(ALICE, pay("alice-usd", "bob-usd", "USD", 1)) is (
        RejectionCode.ACCOUNT_FROZEN
    )
    assert ledger.reject(ADMIN, SetAccountStatus("alice-usd", AccountStatus.FROZEN)) is (
        RejectionCode.INVALID_OPERATION
    )
    ledger.accept(ADMIN, SetAccountStatus("alice-usd", AccountStatus.ACTIVE))
    ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 1))
    ledger.accept(ADMIN, SetAccountStatus("carol-usd", AccountStatus.FROZEN))
    ledger.accept(ADMIN, SetAccountStatus("carol-usd", AccountStatus.CLOSED))
    assert ledger.reject(ADMIN, SetAccountStatus("carol-usd", AccountStatus.ACTIVE)) is (
        RejectionCode.ACCOUNT_CLOSED
    )


def test_open_holds_keep_an_account_open() -> None:
    """An issuer account at balance 0 with an open hold is not empty: it cannot close."""
    ledger = standard_ledger()
    ledger.accept(ADMIN, DefineAsset("EUR", 2, "eur-issuer"))
    ledger.accept(ADMIN, OpenAccount("alice-eur", "EUR"))
    treasurer = FakeKey.named("eur treasurer")
    ledger.accept(ADMIN, RegisterKey(treasurer.public_key, (), ("eur-issuer",)))
    ledger.accept(treasurer, Hold("eur-issuer", "alice-eur", "EUR", 50, ledger.now_ms + 5_000))
    assert ledger.balance("eur-issuer") == (0, 50)
    assert ledger.reject(ADMIN, SetAccountStatus("eur-issuer", AccountStatus.CLOSED)) is (
        RejectionCode.ACCOUNT_NOT_EMPTY
    )


def test_revocation_is_immediate_and_permanent() -> None:
    """A revoked key is refused from the next transaction on, in the same block too."""
    ledger = standard_ledger()
    revoked = ledger.accept(ADMIN, RevokeKey(BOB.key_id))
    assert revoked.effects == (KeyRevoked(BOB.key_id, ledger.now_ms),)
    assert ledger.reject(BOB, pay("bob-usd", "alice-usd", "USD", 1)) is RejectionCode.KEY_REVOKED
    assert ledger.reject(ADMIN, RevokeKey(BOB.key_id)) is RejectionCode.KEY_REVOKED
    assert ledger.reject(ADMIN, RegisterKey(BOB.public_key, (), ())) is (
        RejectionCode.ALREADY_EXISTS
    )
    assert ledger.reject(ADMIN, RevokeKey("00" * 16)) is RejectionCode.UNKNOWN_KEY


def test_last_admin_key_cannot_be_revoked() -> None:
    """Revoking the only admin key would lock the ledger forever, so it is refused."""
    ledger = standard_ledger()
    assert ledger.reject(ADMIN, RevokeKey(ADMIN.key_id)) is RejectionCode.INVALID_OPERATION
    second = FakeKey.named("second admin")
    ledger.accept(ADMIN, RegisterKey(second.public_key, ("admin",), ()))
    ledger.accept(second, RevokeKey(ADMIN.key_id))
    assert ledger.reject(ADMIN, OpenAccount("x", "USD")) is RejectionCode.KEY_REVOKED


def test_register_key_rules() -> None:
    """Roles must be known and distinct; owned accounts must exist."""
    ledger = standard_ledger()
    assert ledger.reject(ADMIN, RegisterKey(STRANGER.public_key, ("root",), ())) is (
        RejectionCode.INVALID_OPERATION
    )
    assert ledger.reject(ADMIN, RegisterKey(STRANGER.public_key, ("admin", "admin"), ())) is (
        RejectionCode.INVALID_OPERATION
    )
    assert ledger.reject(ADMIN, RegisterKey(STRANGER.public_key, (), ("nowhere",))) is (
        RejectionCode.UNKNOWN_ACCOUNT
    )
    assert ledger.reject(ADMIN, RegisterKey(b"short", (), ())) is RejectionCode.INVALID_OPERATION


def test_attest_by_any_registered_key() -> None:
    """Any registered key may anchor a 32-byte digest; no money moves."""
    ledger = standard_ledger()
    digest = bytes(range(32))
    accepted = ledger.accept(CAROL, Attest(digest))
    assert accepted.effects == (Attested(digest, "sha256", CAROL.key_id),)
    assert ledger.reject(CAROL, Attest(b"\x00" * 31)) is RejectionCode.INVALID_OPERATION
    assert ledger.reject(STRANGER, Attest(digest)) is RejectionCode.UNKNOWN_KEY


def test_replay_window_forgets_expired_tx_ids() -> None:
    """tx_ids are remembered until their expiry and forgotten by the first block after it."""
    ledger = standard_ledger()
    accepted = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 1))
    body = accepted.tx.body
    assert ledger.state.recent_tx_ids[body.tx_id] == body.expires_at_ms
    ledger.block(body.expires_at_ms)
    assert body.tx_id in ledger.state.recent_tx_ids
    ledger.block(body.expires_at_ms + 1)
    assert body.tx_id not in ledger.state.recent_tx_ids
    assert ledger.state.recent_tx_ids == {}


def test_time_must_not_go_backwards() -> None:
    """A block or decision earlier than the current block is a caller bug, not a rejection."""
    ledger = standard_ledger()
    tx = ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 1))
    with pytest.raises(StateError):
        begin_block(ledger.state, ledger.now_ms - 1)
    with pytest.raises(StateError):
        decide(ledger.state, tx, ledger.now_ms - 1)


def test_stale_decision_cannot_be_applied() -> None:
    """Applying a decision after the state changed would write stale balances: refused."""
    ledger = standard_ledger()
    first = decide(
        ledger.state, ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 1)), ledger.now_ms
    )
    second = decide(
        ledger.state, ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 2)), ledger.now_ms
    )
    apply(ledger.state, first)  # type: ignore[arg-type]
    with pytest.raises(StateError):
        apply(ledger.state, second)  # type: ignore[arg-type]


def test_key_id_matches_signing() -> None:
    """The state machine derives key ids exactly as ledger.signing does."""
    signing = pytest.importorskip("ledger.signing")
    assert key_id_of(ALICE.public_key) == signing.key_id(ALICE.public_key) == ALICE.key_id


def test_snapshot_round_trip_and_determinism() -> None:
    """A snapshot restores an equal state, re-encodes to the same bytes and replays on."""
    ledger = standard_ledger()
    hold = ledger.accept(ALICE, Hold("alice-usd", "bob-usd", "USD", 300, ledger.now_ms + 5_000))
    ledger.accept(ADMIN, RevokeKey(CAROL.key_id))
    data = snapshot_bytes(ledger.state)
    restored = restore(data)
    assert restored == ledger.state
    assert snapshot_bytes(restored) == data
    assert snapshot_bytes(replay(ledger.blocks)) == data
    expired_live = begin_block(ledger.state, ledger.now_ms + 10_000)
    expired_restored = begin_block(restored, ledger.now_ms + 10_000)
    assert expired_live == expired_restored != []
    assert restored.holds[hold.tx.body.tx_id].status is HoldStatus.EXPIRED
    assert restored == ledger.state


def test_restore_refuses_garbage() -> None:
    """Bytes that are not a snapshot raise DecodeError."""
    data = snapshot_bytes(State())
    with pytest.raises(DecodeError):
        restore(data + b"\x00")
    with pytest.raises(DecodeError):
        restore(b"\x02")
    with pytest.raises(DecodeError):
        restore(b"")


def test_credit_past_int64_max_overflows() -> None:
    """A credit that would take a balance past int64_max is refused though the debit is fine."""
    ledger = standard_ledger()
    ledger.accept(ISSUER, pay("usd-issuer", "bob-usd", "USD", 2**63 - 10_000))
    assert ledger.balance("usd-issuer") == (int64_min, 0)
    assert ledger.reject(ALICE, pay("alice-usd", "bob-usd", "USD", 10_000)) is (
        RejectionCode.OVERFLOW
    )
    ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 9_999))
    assert ledger.balance("bob-usd") == (int64_max, 0)


def test_credits_summing_past_int64_overflow_in_any_order() -> None:
    """Postings whose credits add up past int64_max are refused whatever their order, because
    some int64 running sum of them would overflow; one unit less is accepted."""
    ledger = standard_ledger()
    ledger.accept(ADMIN, DefineAsset("EUR", 2, "eur-issuer"))
    ledger.accept(ADMIN, OpenAccount("alice-eur", "EUR"))
    ledger.accept(ADMIN, OpenAccount("bob-eur", "EUR"))
    treasurer = FakeKey.named("eur treasurer")
    ledger.accept(ADMIN, RegisterKey(treasurer.public_key, (), ("eur-issuer",)))
    too_much = [
        Posting("eur-issuer", "EUR", int64_min),
        Posting("alice-eur", "EUR", int64_max),
        Posting("bob-eur", "EUR", 1),
    ]
    for order in itertools.permutations(too_much):
        assert ledger.reject(treasurer, Transfer(order)) is RejectionCode.OVERFLOW
    ledger.accept(
        treasurer,
        Transfer(
            (
                Posting("alice-eur", "EUR", int64_max - 1),
                Posting("bob-eur", "EUR", 1),
                Posting("eur-issuer", "EUR", -int64_max),
            )
        ),
    )
    assert ledger.balance("eur-issuer") == (-int64_max, 0)
