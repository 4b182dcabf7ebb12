"""SetIssuanceCap: a capped asset is issued only by issuer-role keys, within its cap."""

from __future__ import annotations

from support_state import (
    ADMIN,
    ALICE,
    BOB,
    ISSUER,
    FakeKey,
    Ledger,
    cosigned,
    pay,
    replay,
    replay_decisions,
    standard_ledger,
)

from ledger.limits import int64_max
from ledger.model import (
    Capture,
    Hold,
    Posting,
    RegisterKey,
    SetAccountPolicy,
    SetIssuanceCap,
    Transfer,
    Void,
)
from ledger.rejections import RejectionCode
from ledger.state import Accepted, IssuanceCapSet, restore, snapshot_bytes
from ledger.state.decide_money import decide_transfer, decide_transfer_ordered

MINTER = FakeKey.named("minter")
"""Owns both issuer accounts and has the issuer role (ISSUER owns them without it)."""
ROLELESS_ISSUER = FakeKey.named("issuer role, no accounts")

OUTSTANDING = 10_000
"""USD issued by standard_ledger (to alice-usd)."""


def capped_ledger(cap: int | None = 20_000) -> Ledger:
    """standard_ledger with MINTER registered and USD capped at ``cap`` (None: not capped)."""
    ledger = standard_ledger()
    ledger.accept(ADMIN, RegisterKey(MINTER.public_key, ("issuer",), ("usd-issuer", "bond-issuer")))
    ledger.accept(ADMIN, RegisterKey(ROLELESS_ISSUER.public_key, ("issuer",), ()))
    if cap is not None:
        ledger.accept(ADMIN, SetIssuanceCap("USD", cap))
    ledger.advance(1_000)
    return ledger


def issue(amount: int, target: str = "bob-usd") -> Transfer:
    return pay("usd-issuer", target, "USD", amount)


def hold(ledger: Ledger, amount: int) -> Hold:
    return Hold("usd-issuer", "bob-usd", "USD", amount, ledger.now_ms + 5_000)


# ---- SetIssuanceCap itself -----------------------------------------------------------------


def test_setting_a_cap_is_admin_only() -> None:
    """Only an admin key sets a cap; even the issuer-role key cannot (UNAUTHORIZED)."""
    ledger = capped_ledger(None)
    assert ledger.reject(ALICE, SetIssuanceCap("USD", 1)) is RejectionCode.UNAUTHORIZED
    assert ledger.reject(MINTER, SetIssuanceCap("USD", 1)) is RejectionCode.UNAUTHORIZED
    accepted = ledger.accept(ADMIN, SetIssuanceCap("USD", 20_000))
    assert accepted.effects == (IssuanceCapSet("USD", 20_000),)
    assert ledger.state.assets["USD"].issuance_cap == 20_000


def test_an_unknown_asset_has_no_cap() -> None:
    """Capping an asset nobody defined is UNKNOWN_ASSET."""
    ledger = capped_ledger(None)
    assert ledger.reject(ADMIN, SetIssuanceCap("EUR", 100)) is RejectionCode.UNKNOWN_ASSET


def test_a_cap_that_changes_nothing_or_is_out_of_range_is_invalid() -> None:
    """The current cap again, None on an uncapped asset, a negative cap or one above int64 are
    INVALID_OPERATION."""
    ledger = capped_ledger(20_000)
    assert ledger.reject(ADMIN, SetIssuanceCap("USD", 20_000)) is RejectionCode.INVALID_OPERATION
    assert ledger.reject(ADMIN, SetIssuanceCap("BOND", None)) is RejectionCode.INVALID_OPERATION
    assert ledger.reject(ADMIN, SetIssuanceCap("BOND", -1)) is RejectionCode.INVALID_OPERATION
    assert ledger.reject(ADMIN, SetIssuanceCap("BOND", int64_max + 1)) is (
        RejectionCode.INVALID_OPERATION
    )
    ledger.accept(ADMIN, SetIssuanceCap("BOND", int64_max))
    ledger.accept(ADMIN, SetIssuanceCap("BOND", 0))


def test_a_cap_below_what_is_outstanding_stops_issuing_but_not_redeeming() -> None:
    """A cap under the outstanding issuance is accepted; nothing more is issued, and
    redemptions are still taken until the outstanding amount is under the cap again."""
    ledger = capped_ledger(5_000)
    assert ledger.reject(MINTER, issue(1)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    ledger.accept(ALICE, pay("alice-usd", "usd-issuer", "USD", 5_000))
    assert ledger.balance("usd-issuer") == (-5_000, 0)
    assert ledger.reject(MINTER, issue(1)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    ledger.accept(ALICE, pay("alice-usd", "usd-issuer", "USD", 1))
    ledger.accept(MINTER, issue(1))


# ---- issuing under a cap -------------------------------------------------------------------


def test_issuing_within_the_cap_with_the_issuer_role_is_accepted() -> None:
    """An issuer-role key that owns the issuer account issues up to the cap, exactly."""
    ledger = capped_ledger(20_000)
    ledger.accept(MINTER, issue(4_000))
    ledger.accept(MINTER, issue(6_000, "alice-usd"))
    assert ledger.balance("usd-issuer") == (-20_000, 0)


def test_issuing_without_the_issuer_role_is_unauthorized() -> None:
    """While USD is capped, the issuer account's owner without the role cannot issue; a
    cosigning issuer-role key lends it; the role without owning the account is not enough."""
    ledger = capped_ledger(20_000)
    assert ledger.reject(ISSUER, issue(1)) is RejectionCode.UNAUTHORIZED
    assert ledger.reject(ISSUER, hold(ledger, 1)) is RejectionCode.UNAUTHORIZED
    assert ledger.reject(ROLELESS_ISSUER, issue(1)) is RejectionCode.UNAUTHORIZED
    assert isinstance(ledger.submit_tx(cosigned(ledger.tx(ISSUER, issue(1)), MINTER)), Accepted)
    assert isinstance(
        ledger.submit_tx(cosigned(ledger.tx(ROLELESS_ISSUER, issue(1)), ISSUER)), Accepted
    )
    assert ledger.balance("usd-issuer") == (-10_002, 0)


def test_the_role_is_checked_before_the_cap() -> None:
    """An issue above the cap by a key without the role is UNAUTHORIZED (precedence)."""
    ledger = capped_ledger(20_000)
    assert ledger.reject(ISSUER, issue(50_000)) is RejectionCode.UNAUTHORIZED


def test_issuing_above_the_cap_is_refused_for_transfers_and_holds() -> None:
    """One unit above the cap is ISSUANCE_CAP_EXCEEDED, by transfer and by hold alike."""
    ledger = capped_ledger(20_000)
    assert ledger.reject(MINTER, issue(10_001)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    assert ledger.reject(MINTER, hold(ledger, 10_001)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    assert ledger.balance("usd-issuer") == (-OUTSTANDING, 0)


def test_an_open_hold_counts_as_outstanding_until_it_is_resolved() -> None:
    """A hold on the issuer account reserves room under the cap: a capture keeps it used, a
    void or an expiry frees it."""
    ledger = capped_ledger(20_000)
    held = ledger.accept(MINTER, hold(ledger, 4_000)).tx.body.tx_id
    assert ledger.balance("usd-issuer") == (-OUTSTANDING, 4_000)
    assert ledger.reject(MINTER, issue(6_001)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    assert ledger.reject(MINTER, hold(ledger, 6_001)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    ledger.accept(MINTER, Void(held))
    ledger.accept(MINTER, issue(6_001))
    ledger.accept(MINTER, hold(ledger, 3_999))  # outstanding 16,001 + 3,999 = the cap
    assert ledger.reject(MINTER, hold(ledger, 1)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    ledger.advance(10_000)  # the hold expires
    ledger.accept(MINTER, issue(3_998))
    captured = ledger.accept(MINTER, hold(ledger, 1)).tx.body.tx_id
    assert ledger.reject(MINTER, issue(1)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    ledger.accept(BOB, Capture(captured))
    assert ledger.balance("usd-issuer") == (-20_000, 0)
    assert ledger.reject(MINTER, issue(1)) is RejectionCode.ISSUANCE_CAP_EXCEEDED


def test_redemption_frees_room_under_the_cap() -> None:
    """Money paid back into the issuer account can be issued again."""
    ledger = capped_ledger(20_000)
    ledger.accept(MINTER, issue(10_000))
    assert ledger.reject(MINTER, issue(1)) is RejectionCode.ISSUANCE_CAP_EXCEEDED
    ledger.accept(BOB, pay("bob-usd", "usd-issuer", "USD", 700))
    ledger.accept(MINTER, issue(700, "alice-usd"))
    assert ledger.reject(MINTER, issue(1)) is RejectionCode.ISSUANCE_CAP_EXCEEDED


def test_insufficient_funds_wins_over_the_cap_and_the_cap_over_the_limit() -> None:
    """Precedence inside one transfer: INSUFFICIENT_FUNDS < ISSUANCE_CAP_EXCEEDED <
    LIMIT_EXCEEDED."""
    ledger = capped_ledger(20_000)
    over_cap_and_broke = Transfer(
        (
            Posting("usd-issuer", "USD", -10_001),
            Posting("alice-usd", "USD", 10_001),
            Posting("bob-bond", "BOND", -6),
            Posting("alice-bond", "BOND", 6),
        )
    )
    tx = cosigned(ledger.tx(MINTER, over_cap_and_broke), BOB)
    assert ledger.reject_tx(tx) is RejectionCode.INSUFFICIENT_FUNDS
    over_cap_and_limit = issue(10_001, "carol-usd")  # carol-usd holds at most 1,000
    assert ledger.reject(MINTER, over_cap_and_limit) is RejectionCode.ISSUANCE_CAP_EXCEEDED


def test_a_policy_on_the_issuer_account_still_needs_the_issuer_role() -> None:
    """With a policy on the capped issuer account, its keys decide who signs, and one of the
    signers must still hold the issuer role."""
    ledger = capped_ledger(20_000)
    ledger.accept(ADMIN, SetAccountPolicy("usd-issuer", (ISSUER.key_id, MINTER.key_id), 1))
    assert ledger.reject(ISSUER, issue(1)) is RejectionCode.UNAUTHORIZED
    ledger.accept(MINTER, issue(1))


def test_the_fast_path_defers_to_the_ordered_checks_for_capped_issuance() -> None:
    """decide_transfer equals decide_transfer_ordered for capped issues, in and above the cap,
    with and without the role."""
    ledger = capped_ledger(20_000)
    state = ledger.state
    for signer in (MINTER, ISSUER):
        for amount in (1, 10_000, 10_001):
            op = issue(amount)
            tx = ledger.tx(signer, op)
            key = state.keys[signer.key_id]
            assert decide_transfer(state, tx, key, op, ledger.now_ms) == (
                decide_transfer_ordered(state, tx, key, op, ledger.now_ms)
            )


# ---- without a cap -------------------------------------------------------------------------


def test_removing_the_cap_restores_the_old_behaviour() -> None:
    """After SetIssuanceCap(None), the role-less owner issues again, beyond the old cap."""
    ledger = capped_ledger(20_000)
    assert ledger.reject(ISSUER, issue(1)) is RejectionCode.UNAUTHORIZED
    assert ledger.accept(ADMIN, SetIssuanceCap("USD", None)).effects == (
        IssuanceCapSet("USD", None),
    )
    assert ledger.state.assets["USD"].issuance_cap is None
    ledger.accept(ISSUER, issue(50_000))
    ledger.accept(ISSUER, hold(ledger, 50_000))
    assert ledger.balance("usd-issuer") == (-60_000, 50_000)


def test_an_uncapped_asset_issues_exactly_as_before() -> None:
    """Capping USD changes nothing for BOND: the same issues and holds get the same decisions
    as on a ledger without any cap, signed by a key without the issuer role."""
    capped = capped_ledger(20_000)
    uncapped = capped_ledger(None)
    for ledger in (capped, uncapped):
        ledger.serial = 1_000  # the same tx_ids on both
    for amount in (1, 70, int64_max):
        ops = (
            pay("bond-issuer", "alice-bond", "BOND", amount),
            Hold("bond-issuer", "bob-bond", "BOND", amount, capped.now_ms + 5_000),
        )
        for op in ops:
            decisions = [ledger.submit(ISSUER, op) for ledger in (capped, uncapped)]
            assert decisions[0] == _at_revision(decisions[1], decisions[0])
    assert capped.balance("bond-issuer") == uncapped.balance("bond-issuer")
    assert capped.balance("bond-issuer") != (-5, 0)  # it did issue


def _at_revision(decision: object, like: object) -> object:
    """``decision`` with ``like``'s revision (the two ledgers differ by the cap transaction)."""
    if isinstance(decision, Accepted) and isinstance(like, Accepted):
        return Accepted(decision.tx, decision.now_ms, decision.effects, like.revision)
    return decision


# ---- snapshots and replay ------------------------------------------------------------------


def history_with_caps() -> Ledger:
    """Caps set, changed, hit, freed by redemption and removed, with refusals of each kind."""
    ledger = capped_ledger(12_000)
    ledger.accept(MINTER, issue(1_500))
    ledger.reject(MINTER, issue(501))
    ledger.reject(ISSUER, issue(1))
    ledger.accept(MINTER, hold(ledger, 500))
    ledger.advance(1_000)
    ledger.accept(ADMIN, SetIssuanceCap("BOND", 0))
    ledger.reject(ISSUER, pay("bond-issuer", "alice-bond", "BOND", 1))
    ledger.reject(MINTER, pay("bond-issuer", "alice-bond", "BOND", 1))
    ledger.accept(BOB, pay("bob-bond", "bond-issuer", "BOND", 5))
    ledger.reject(MINTER, Hold("bond-issuer", "alice-bond", "BOND", 1, ledger.now_ms + 5_000))
    ledger.advance(10_000)
    ledger.accept(MINTER, issue(500))
    ledger.accept(ADMIN, SetIssuanceCap("USD", None))
    ledger.accept(ISSUER, issue(9_999))
    return ledger


def test_snapshot_round_trip_keeps_the_caps() -> None:
    """A snapshot restores every cap (0 included) and a restored replica decides the same."""
    ledger = history_with_caps()
    ledger.accept(ADMIN, SetIssuanceCap("USD", 25_000))
    restored = restore(snapshot_bytes(ledger.state))
    assert restored == ledger.state
    assert restored.assets["USD"].issuance_cap == 25_000
    assert restored.assets["BOND"].issuance_cap == 0
    assert snapshot_bytes(restored) == snapshot_bytes(ledger.state)


def test_replay_reproduces_every_decision() -> None:
    """Replaying every submission, refused ones included, gives the same decisions and the live
    state; replaying the accepted ones alone gives the same state."""
    ledger = history_with_caps()
    refused = [
        decision for _, _, decision in ledger.decisions if not isinstance(decision, Accepted)
    ]
    assert {decision.code for decision in refused} == {  # type: ignore[union-attr]
        RejectionCode.UNAUTHORIZED,
        RejectionCode.ISSUANCE_CAP_EXCEEDED,
    }
    assert replay_decisions(ledger) == ledger.state
    assert replay(ledger.blocks) == ledger.state
