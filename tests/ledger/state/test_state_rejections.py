"""One scenario per sequence-stage rejection code, reached the way a user would reach it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from support_state import (
    ADMIN,
    ALICE,
    BOB,
    CAROL,
    ISSUER,
    STRANGER,
    FakeKey,
    Ledger,
    cosigned,
    pay,
    register_sealer,
    reverse_of,
    standard_ledger,
    treasury_policy,
)

from ledger.limits import clock_skew_ms_max, int64_max, validity_window_ms_max
from ledger.model import (
    AccountStatus,
    Capture,
    Hold,
    OpenAccount,
    Posting,
    RegisterKey,
    RevokeKey,
    SetAccountStatus,
    SetIssuanceCap,
    Transfer,
    Void,
)
from ledger.rejections import RejectionCode

SCENARIOS: dict[RejectionCode, Callable[[], None]] = {}


def reaches(code: RejectionCode) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(test: Callable[[], None]) -> Callable[[], None]:
        SCENARIOS[code] = test
        return test

    return register


def open_hold(ledger: Ledger, amount: int = 100, ttl_ms: int = 5_000) -> bytes:
    accepted = ledger.accept(
        ALICE, Hold("alice-usd", "bob-usd", "USD", amount, ledger.now_ms + ttl_ms)
    )
    return accepted.tx.body.tx_id


@reaches(RejectionCode.VALIDITY_TOO_LONG)
def test_validity_too_long() -> None:
    """A transaction valid for longer than the replay window is refused."""
    ledger = standard_ledger()
    code = ledger.reject(
        ALICE,
        pay("alice-usd", "bob-usd", "USD", 1),
        expires_at_ms=ledger.now_ms + validity_window_ms_max + 1,
    )
    assert code is RejectionCode.VALIDITY_TOO_LONG


@reaches(RejectionCode.EXPIRED)
def test_expired() -> None:
    """A payment that sat in a queue past its expiry is refused."""
    ledger = standard_ledger()
    tx = ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 1))
    ledger.advance(61_000)
    assert ledger.reject_tx(tx) is RejectionCode.EXPIRED


@reaches(RejectionCode.NOT_YET_VALID)
def test_not_yet_valid() -> None:
    """A client whose clock runs ahead of the sequencer by more than the skew is refused."""
    ledger = standard_ledger()
    code = ledger.reject(
        ALICE,
        pay("alice-usd", "bob-usd", "USD", 1),
        created_at_ms=ledger.now_ms + clock_skew_ms_max + 1,
    )
    assert code is RejectionCode.NOT_YET_VALID


@reaches(RejectionCode.DUPLICATE)
def test_duplicate() -> None:
    """Retrying an accepted payment with the same tx_id does not pay twice."""
    ledger = standard_ledger()
    tx = ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 10))
    ledger.submit_tx(tx)
    ledger.advance(1_000)
    assert ledger.reject_tx(tx) is RejectionCode.DUPLICATE
    assert ledger.balance("bob-usd") == (10, 0)


@reaches(RejectionCode.UNKNOWN_KEY)
def test_unknown_key() -> None:
    """A key the admin never registered cannot do anything."""
    ledger = standard_ledger()
    assert ledger.reject(STRANGER, pay("alice-usd", "bob-usd", "USD", 1)) is (
        RejectionCode.UNKNOWN_KEY
    )


@reaches(RejectionCode.KEY_REVOKED)
def test_key_revoked() -> None:
    """A key the admin revoked signs nothing afterwards."""
    ledger = standard_ledger()
    ledger.accept(ADMIN, RevokeKey(BOB.key_id))
    ledger.advance(1_000)
    assert ledger.reject(BOB, pay("bob-usd", "alice-usd", "USD", 1)) is (RejectionCode.KEY_REVOKED)


@reaches(RejectionCode.UNAUTHORIZED)
def test_unauthorized() -> None:
    """Bob cannot spend from Alice's account."""
    ledger = standard_ledger()
    assert ledger.reject(BOB, pay("alice-usd", "bob-usd", "USD", 1)) is (RejectionCode.UNAUTHORIZED)


@reaches(RejectionCode.TOO_FEW_SIGNATURES)
def test_too_few_signatures() -> None:
    """Above its policy's high_amount, alice-usd needs both ALICE and CAROL: one is refused."""
    ledger = standard_ledger()
    treasury_policy(ledger)
    large = pay("alice-usd", "bob-usd", "USD", 1_001)
    assert ledger.reject(ALICE, large) is RejectionCode.TOO_FEW_SIGNATURES
    ledger.submit_tx(cosigned(ledger.tx(ALICE, large), CAROL))
    assert ledger.balance("bob-usd") == (1_001, 0)


@reaches(RejectionCode.OVER_POLICY_LIMIT)
def test_over_policy_limit() -> None:
    """However many sign, one debit may not exceed the policy's max_amount."""
    ledger = standard_ledger()
    treasury_policy(ledger, max_amount=5_000)
    large = ledger.tx(ALICE, pay("alice-usd", "bob-usd", "USD", 5_001))
    assert ledger.reject_tx(cosigned(large, CAROL)) is RejectionCode.OVER_POLICY_LIMIT


@reaches(RejectionCode.COUNTERPARTY_NOT_ALLOWED)
def test_counterparty_not_allowed() -> None:
    """alice-usd may pay bob-usd only: a payment to carol-usd is refused."""
    ledger = standard_ledger()
    treasury_policy(ledger, counterparties=("bob-usd",))
    assert ledger.reject(ALICE, pay("alice-usd", "carol-usd", "USD", 5)) is (
        RejectionCode.COUNTERPARTY_NOT_ALLOWED
    )
    ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 5))


@reaches(RejectionCode.INVALID_OPERATION)
def test_invalid_operation() -> None:
    """A transfer with a single posting is meaningless."""
    ledger = standard_ledger()
    code = ledger.reject(ALICE, Transfer((Posting("alice-usd", "USD", -5),)))
    assert code is RejectionCode.INVALID_OPERATION


@reaches(RejectionCode.ALREADY_EXISTS)
def test_already_exists() -> None:
    """Opening an account that is already open is refused."""
    ledger = standard_ledger()
    assert ledger.reject(ADMIN, OpenAccount("alice-usd", "USD")) is RejectionCode.ALREADY_EXISTS


@reaches(RejectionCode.UNKNOWN_ACCOUNT)
def test_unknown_account() -> None:
    """Paying an account that was never opened (a typo) is refused."""
    ledger = standard_ledger()
    assert ledger.reject(ALICE, pay("alice-usd", "dave-usd", "USD", 1)) is (
        RejectionCode.UNKNOWN_ACCOUNT
    )


@reaches(RejectionCode.UNKNOWN_ASSET)
def test_unknown_asset() -> None:
    """Opening an account in an asset nobody defined is refused."""
    ledger = standard_ledger()
    assert ledger.reject(ADMIN, OpenAccount("alice-eur", "EUR")) is RejectionCode.UNKNOWN_ASSET


@reaches(RejectionCode.ACCOUNT_CLOSED)
def test_account_closed() -> None:
    """Paying into a closed account is refused."""
    ledger = standard_ledger()
    ledger.accept(ADMIN, SetAccountStatus("carol-usd", AccountStatus.CLOSED))
    assert ledger.reject(ALICE, pay("alice-usd", "carol-usd", "USD", 1)) is (
        RejectionCode.ACCOUNT_CLOSED
    )


@reaches(RejectionCode.ACCOUNT_FROZEN)
def test_account_frozen() -> None:
    """A frozen account cannot receive (nor send)."""
    ledger = standard_ledger()
    ledger.accept(ADMIN, SetAccountStatus("bob-usd", AccountStatus.FROZEN))
    assert ledger.reject(ALICE, pay("alice-usd", "bob-usd", "USD", 1)) is (
        RejectionCode.ACCOUNT_FROZEN
    )


@reaches(RejectionCode.ASSET_MISMATCH)
def test_asset_mismatch() -> None:
    """Dollars cannot be posted to a bond account."""
    ledger = standard_ledger()
    assert ledger.reject(ALICE, pay("alice-usd", "bob-bond", "USD", 1)) is (
        RejectionCode.ASSET_MISMATCH
    )


@reaches(RejectionCode.INVALID_AMOUNT)
def test_invalid_amount() -> None:
    """A hold of nothing is refused."""
    ledger = standard_ledger()
    code = ledger.reject(ALICE, Hold("alice-usd", "bob-usd", "USD", 0, ledger.now_ms + 5_000))
    assert code is RejectionCode.INVALID_AMOUNT


@reaches(RejectionCode.UNBALANCED)
def test_unbalanced() -> None:
    """A transfer whose postings do not sum to zero would create money."""
    ledger = standard_ledger()
    postings = (Posting("alice-usd", "USD", -100), Posting("bob-usd", "USD", 99))
    assert ledger.reject(ALICE, Transfer(postings)) is RejectionCode.UNBALANCED


@reaches(RejectionCode.ACCOUNT_NOT_EMPTY)
def test_account_not_empty() -> None:
    """An account with money in it cannot be closed."""
    ledger = standard_ledger()
    code = ledger.reject(ADMIN, SetAccountStatus("alice-usd", AccountStatus.CLOSED))
    assert code is RejectionCode.ACCOUNT_NOT_EMPTY


@reaches(RejectionCode.INSUFFICIENT_FUNDS)
def test_insufficient_funds() -> None:
    """Alice cannot pay more than she has."""
    ledger = standard_ledger()
    assert ledger.reject(ALICE, pay("alice-usd", "bob-usd", "USD", 10_001)) is (
        RejectionCode.INSUFFICIENT_FUNDS
    )


@reaches(RejectionCode.ISSUANCE_CAP_EXCEEDED)
def test_issuance_cap_exceeded() -> None:
    """With USD capped at 12,000 outstanding, the issuer may issue 2,000 more, not 2,001."""
    ledger = standard_ledger()
    minter = FakeKey.named("minter")
    ledger.accept(ADMIN, RegisterKey(minter.public_key, ("issuer",), ("usd-issuer",)))
    ledger.accept(ADMIN, SetIssuanceCap("USD", 12_000))
    assert ledger.reject(minter, pay("usd-issuer", "bob-usd", "USD", 2_001)) is (
        RejectionCode.ISSUANCE_CAP_EXCEEDED
    )
    ledger.accept(minter, pay("usd-issuer", "bob-usd", "USD", 2_000))


@reaches(RejectionCode.LIMIT_EXCEEDED)
def test_limit_exceeded() -> None:
    """Carol's account refuses credits above its maximum balance."""
    ledger = standard_ledger()
    assert ledger.reject(ALICE, pay("alice-usd", "carol-usd", "USD", 1_001)) is (
        RejectionCode.LIMIT_EXCEEDED
    )


@reaches(RejectionCode.OVERFLOW)
def test_overflow() -> None:
    """Issuing beyond what int64 can hold is refused."""
    ledger = standard_ledger()
    ledger.accept(ISSUER, pay("usd-issuer", "bob-usd", "USD", int64_max - 10_000))
    assert ledger.reject(ISSUER, pay("usd-issuer", "bob-usd", "USD", 10_001)) is (
        RejectionCode.OVERFLOW
    )


@reaches(RejectionCode.HOLD_NOT_FOUND)
def test_hold_not_found() -> None:
    """Capturing a hold that never existed is refused."""
    ledger = standard_ledger()
    assert ledger.reject(BOB, Capture(b"\x42" * 16)) is RejectionCode.HOLD_NOT_FOUND


@reaches(RejectionCode.HOLD_EXPIRED)
def test_hold_expired() -> None:
    """A merchant who captures too late finds the hold expired."""
    ledger = standard_ledger()
    hold_id = open_hold(ledger, ttl_ms=5_000)
    ledger.advance(10_000)
    assert ledger.reject(BOB, Capture(hold_id)) is RejectionCode.HOLD_EXPIRED


@reaches(RejectionCode.HOLD_ALREADY_RESOLVED)
def test_hold_already_resolved() -> None:
    """A hold voided by the payer cannot be captured afterwards."""
    ledger = standard_ledger()
    hold_id = open_hold(ledger)
    ledger.accept(ALICE, Void(hold_id))
    assert ledger.reject(BOB, Capture(hold_id)) is RejectionCode.HOLD_ALREADY_RESOLVED


@reaches(RejectionCode.CAPTURE_EXCEEDS_HOLD)
def test_capture_exceeds_hold() -> None:
    """A merchant cannot capture more than was authorised."""
    ledger = standard_ledger()
    hold_id = open_hold(ledger, amount=100)
    assert ledger.reject(BOB, Capture(hold_id, 150)) is RejectionCode.CAPTURE_EXCEEDS_HOLD


@reaches(RejectionCode.ORIGINAL_NOT_PROVEN)
def test_original_not_proven() -> None:
    """A Reverse whose block seal does not verify proves nothing: the payment stays."""
    ledger = standard_ledger()
    sealer = register_sealer(ledger)
    original = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 100)).tx
    forged = dataclasses.replace(reverse_of(ledger, sealer, original), seal=bytes(64))
    assert ledger.reject(BOB, forged) is RejectionCode.ORIGINAL_NOT_PROVEN
    assert ledger.balance("bob-usd") == (100, 0)


@reaches(RejectionCode.REVERSAL_EXCEEDS_ORIGINAL)
def test_reversal_exceeds_original() -> None:
    """A payment reversed once cannot be reversed again."""
    ledger = standard_ledger()
    sealer = register_sealer(ledger)
    original = ledger.accept(ALICE, pay("alice-usd", "bob-usd", "USD", 100)).tx
    ledger.accept(BOB, reverse_of(ledger, sealer, original))
    assert ledger.reject(BOB, reverse_of(ledger, sealer, original)) is (
        RejectionCode.REVERSAL_EXCEEDS_ORIGINAL
    )


def test_every_sequence_code_has_a_scenario() -> None:
    """Each code the sequencer can return (everything after UNKNOWN_LEDGER) has a scenario."""
    sequence_codes = {code for code in RejectionCode if code > RejectionCode.UNKNOWN_LEDGER}
    assert set(SCENARIOS) == sequence_codes
