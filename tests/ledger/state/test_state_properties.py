"""Properties of the state machine over random histories of a small economy (Hypothesis)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    original_seq,
    pay,
    register_sealer,
    replay,
    reverse_of,
    standard_ledger,
)

from ledger.limits import int64_max, int64_min
from ledger.model import (
    AccountStatus,
    Attest,
    Capture,
    Hold,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    RevokeKey,
    SetAccountPolicy,
    SetAccountStatus,
    SetIssuanceCap,
    Transfer,
    Tx,
    Void,
)
from ledger.rejections import Rejected, RejectionCode
from ledger.state import (
    Accepted,
    Effect,
    State,
    apply,
    begin_block,
    decide,
    restore,
    snapshot_bytes,
)
from ledger.state.decide_money import decide_transfer, decide_transfer_ordered

MINTER = FakeKey.named("minter")
"""Owns both issuer accounts like ISSUER, and has the issuer role that ISSUER lacks: it may
issue a capped asset."""
KEYS = (ADMIN, ISSUER, MINTER, ALICE, BOB, CAROL, STRANGER)
ACCOUNTS = (
    "usd-issuer",
    "alice-usd",
    "bob-usd",
    "carol-usd",
    "bond-issuer",
    "alice-bond",
    "bob-bond",
    "dave-usd",
)
ASSETS = ("USD", "BOND", "EUR")
FUNDED = ACCOUNTS[:-1]  # every account but the one that does not exist
ISSUER_ACCOUNTS = {"USD": "usd-issuer", "BOND": "bond-issuer"}
BIG = (int64_max, int64_max - 3, 2**62, int64_min + 1, -(2**62))


@dataclass(frozen=True)
class Advance:
    delta_ms: int


@dataclass(frozen=True)
class Submit:
    key: FakeKey
    op: Operation | None  # None: a Capture or Void of the hold named by hold_index
    hold_index: int = 0
    resolver: str = "any"  # for op None: "payee", "payer", "creator" or "any" (= key)
    capture: bool = True
    capture_amount: int | None = None
    created_offset_ms: int = 0
    ttl_ms: int = 60_000


@dataclass(frozen=True)
class Resubmit:
    index: int


OWNERS = {
    "usd-issuer": ISSUER,
    "bond-issuer": ISSUER,
    "alice-usd": ALICE,
    "alice-bond": ALICE,
    "bob-usd": BOB,
    "bob-bond": BOB,
    "carol-usd": CAROL,
    "dave-usd": STRANGER,
}
amounts = st.one_of(
    st.integers(-300, 300),
    st.integers(-20_000, 20_000),
    st.sampled_from(BIG),
    st.sampled_from(BIG).map(lambda amount: -amount),
)
usual_amounts = st.one_of(st.integers(1, 3_000), st.integers(1, 3_000), amounts)
positive_amounts = st.one_of(
    st.integers(1, 3_000), st.integers(0, 400), st.sampled_from((int64_max, 2**62))
)
keys = st.sampled_from(KEYS)
spenders = st.sampled_from((ALICE, BOB, ISSUER, MINTER, CAROL))
issuing_keys = st.sampled_from((ISSUER, MINTER))
"""Who signs for an issuer account: its owner without the issuer role, or with it."""
caps = st.one_of(st.none(), st.integers(0, 40_000), st.sampled_from((0, int64_max, 15_500, 16_000)))
"""Issuance caps, near the USD the economy issues (15,500) and at the bounds."""
account_names = st.sampled_from(ACCOUNTS)
asset_names = st.sampled_from(ASSETS)
VALID_TIMING = (0, 60_000)
timings = st.sampled_from(
    [VALID_TIMING] * 12
    + [
        (-70_000, 60_000),  # expired in a queue
        (6_000, 60_000),  # client clock ahead
        (0, 600_001),  # window too long
        (-1_000, 5_000),  # short window
    ]
)
"""(created_offset_ms, ttl_ms) of a submission: mostly valid."""


def owner_of(draw: st.DrawFn, account: str) -> FakeKey:
    """The key that owns ``account``; for an issuer account, either of the two that do."""
    return draw(issuing_keys) if account in ISSUER_ACCOUNTS.values() else OWNERS[account]


def owner_or_anyone(draw: st.DrawFn, account: str) -> FakeKey:
    """Usually the account's owner, sometimes a key that may not spend from it."""
    return owner_of(draw, account) if draw(st.sampled_from([True] * 9 + [False])) else draw(keys)


@st.composite
def payments(draw: st.DrawFn) -> tuple[FakeKey, Transfer]:
    """Mostly balanced transfers between two accounts of one asset, sometimes anything."""
    if draw(st.sampled_from([True] * 5 + [False])):
        asset = draw(st.sampled_from(("USD", "BOND")))
        pool = [name for name in ACCOUNTS if asset.lower() in name]
        source, target = draw(st.permutations(pool))[:2]
        amount = draw(usual_amounts)
        op = Transfer((Posting(source, asset, -amount), Posting(target, asset, amount)))
        return owner_or_anyone(draw, source), op
    legs = draw(st.lists(st.tuples(account_names, asset_names, amounts), min_size=1, max_size=5))
    op = Transfer(tuple(Posting(account, asset, amount) for account, asset, amount in legs))
    return draw(spenders), op


policies = st.builds(
    SetAccountPolicy,
    account_names,
    st.lists(st.sampled_from([key.key_id for key in KEYS]), max_size=3, unique=True).map(tuple),
    st.integers(0, 3),
    st.none() | st.integers(1, 3),
    st.none() | st.integers(1, 2_000),
    st.none() | st.integers(1, 3_000),
    st.lists(account_names, max_size=2, unique=True).map(tuple),
)
"""Account policies, valid or not: k of up to 3 keys, limits, counterparties."""


@st.composite
def submissions(draw: st.DrawFn) -> Submit:
    kind = draw(
        st.sampled_from(("pay",) * 5 + ("hold",) * 3 + ("resolve",) * 3 + ("admin", "attest"))
    )
    created_offset_ms, ttl_ms = draw(timings)
    if kind == "pay":
        signer, transfer = draw(payments())
        return Submit(signer, transfer, created_offset_ms=created_offset_ms, ttl_ms=ttl_ms)
    if kind == "hold":
        asset = draw(st.sampled_from(("USD", "BOND")))
        pool = [name for name in FUNDED if asset.lower() in name]
        payer, payee = draw(st.permutations(pool))[:2]
        expires_in_ms = draw(st.sampled_from((1, 2_000, 5_000, 30_000, 30_000, 30_000, 0)))
        op = Hold(payer, payee, asset, draw(positive_amounts), expires_in_ms)
        return Submit(
            owner_or_anyone(draw, payer), op, created_offset_ms=created_offset_ms, ttl_ms=ttl_ms
        )
    if kind == "resolve":
        return Submit(
            draw(spenders),
            None,
            hold_index=draw(st.integers(0, 8)),
            resolver=draw(st.sampled_from(("payee", "payee", "payer", "creator", "any"))),
            capture=draw(st.booleans()),
            capture_amount=draw(st.one_of(st.none(), st.integers(1, 400), st.integers(-5, 5))),
            created_offset_ms=created_offset_ms,
            ttl_ms=ttl_ms,
        )
    if kind == "attest":
        return Submit(
            draw(keys), Attest(bytes(32)), created_offset_ms=created_offset_ms, ttl_ms=ttl_ms
        )
    admin_op = draw(
        st.one_of(
            st.builds(SetAccountStatus, account_names, st.sampled_from(list(AccountStatus))),
            st.builds(OpenAccount, st.sampled_from(("dave-usd", "erin-bond")), asset_names),
            st.builds(RevokeKey, st.sampled_from([key.key_id for key in KEYS])),
            policies,
            st.builds(SetIssuanceCap, asset_names, caps),
        )
    )
    return Submit(
        draw(st.sampled_from((ADMIN, ADMIN, ADMIN, ALICE))),
        admin_op,
        created_offset_ms=created_offset_ms,
        ttl_ms=ttl_ms,
    )


steps = st.lists(
    st.one_of(
        submissions(),
        submissions(),
        st.builds(Advance, st.sampled_from((0, 1, 1_000, 5_000, 20_000, 70_000))),
        submissions(),
        st.builds(Resubmit, st.integers(0, 1_000)),
    ),
    min_size=10,
    max_size=60,
)


@dataclass
class Run:
    ledger: Ledger
    hold_ids: list[bytes]
    submitted: list[Tx]
    checkpoint: tuple[bytes, int] | None = None  # (snapshot at a block start, block index)


def absolute(op: Operation, now_ms: int) -> Operation:
    """Holds are generated with a relative expiry."""
    if isinstance(op, Hold):
        return Hold(op.payer, op.payee, op.asset, op.amount, now_ms + op.expires_at_ms)
    return op


def build_tx(run: Run, step: Submit) -> Tx:
    ledger = run.ledger
    key = step.key
    if step.op is None:
        hold_ids = [*reversed(run.hold_ids), b"\x99" * 16]  # recent holds first
        hold_id = hold_ids[step.hold_index % len(hold_ids)]
        op: Operation = Capture(hold_id, step.capture_amount) if step.capture else Void(hold_id)
        hold = ledger.state.holds.get(hold_id)
        if hold is not None and step.resolver != "any":
            key = {
                "payee": OWNERS[hold.payee],
                "payer": OWNERS[hold.payer],
                "creator": next(k for k in KEYS if k.key_id == hold.creator_key_id),
            }[step.resolver]
    else:
        op = absolute(step.op, ledger.now_ms)
    created = ledger.now_ms + step.created_offset_ms
    return ledger.tx(key, op, created_at_ms=created, expires_at_ms=created + step.ttl_ms)


def decide_checked(state: State, tx: Tx, now_ms: int) -> Accepted | object:
    """decide twice: the same answer, and the state untouched (same snapshot bytes)."""
    before = snapshot_bytes(state)
    first = decide(state, tx, now_ms)
    second = decide(state, tx, now_ms)
    assert first == second
    assert snapshot_bytes(state) == before
    return first


def outstanding(state: State, asset: str) -> int:
    """What ``asset``'s issuer account has issued or promised by open holds."""
    issuer = state.accounts[ISSUER_ACCOUNTS[asset]]
    return issuer.held - issuer.balance


def check_issuance(state: State, tx: Tx, outstanding_before: dict[str, int]) -> None:
    """An accepted transaction that raised a capped asset's outstanding issuance was signed by
    an issuer-role key and stayed within the cap."""
    for asset, previous in outstanding_before.items():
        cap = state.assets[asset].issuance_cap
        if cap is None or outstanding(state, asset) <= previous:
            continue
        assert outstanding(state, asset) <= cap
        signers = [tx.key_id, *(key_id for key_id, _ in tx.cosigners)]
        assert any("issuer" in state.keys[key_id].roles for key_id in signers)


def check_invariants(state: State) -> None:
    supply: dict[str, int] = defaultdict(int)
    for name, account in state.accounts.items():
        supply[account.asset] += account.balance
        assert int64_min <= account.balance <= int64_max
        assert 0 <= account.held <= int64_max
        assert account.available == account.balance - account.held
        assert account.held == state.held_by_open_holds(name)
        if not account.allow_negative:
            assert account.available >= 0
            assert account.balance >= 0
    assert all(total == 0 for total in supply.values()), dict(supply)


def execute(history: list[Advance | Submit | Resubmit], checkpoint_at: int) -> Run:
    run = Run(standard_ledger(), [], [])
    ledger = run.ledger
    ledger.accept(ISSUER, pay("usd-issuer", "bob-usd", "USD", 5_000))
    ledger.accept(ISSUER, pay("usd-issuer", "carol-usd", "USD", 500))
    ledger.accept(ISSUER, pay("bond-issuer", "alice-bond", "BOND", 50))
    ledger.accept(
        ADMIN, RegisterKey(MINTER.public_key, ("issuer",), tuple(ISSUER_ACCOUNTS.values()))
    )
    for index, step in enumerate(history):
        if isinstance(step, Advance):
            ledger.advance(step.delta_ms)
            if run.checkpoint is None and index >= checkpoint_at:
                run.checkpoint = (snapshot_bytes(ledger.state), len(ledger.blocks) - 1)
            check_invariants(ledger.state)
            continue
        if isinstance(step, Resubmit):
            if not run.submitted:
                continue
            tx = run.submitted[step.index % len(run.submitted)]
        else:
            tx = build_tx(run, step)
            run.submitted.append(tx)
        decision = decide_checked(ledger.state, tx, ledger.now_ms)
        if isinstance(decision, Accepted):
            before = {asset: outstanding(ledger.state, asset) for asset in ISSUER_ACCOUNTS}
            apply(ledger.state, decision)
            check_issuance(ledger.state, tx, before)
            ledger.blocks[-1][1].append(tx)
            ledger.effects.extend(decision.effects)
            if isinstance(tx.body.op, Hold):
                run.hold_ids.append(tx.body.tx_id)
        check_invariants(ledger.state)
    return run


def replay_with_effects(
    state: State, blocks: list[tuple[int, list[Tx]]]
) -> tuple[State, list[Effect]]:
    effects: list[Effect] = []
    for now_ms, txs in blocks:
        effects.extend(begin_block(state, now_ms))
        for tx in txs:
            decision = decide(state, tx, now_ms)
            assert isinstance(decision, Accepted), decision
            apply(state, decision)
            effects.extend(decision.effects)
    return state, effects


property_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@property_settings
@given(history=steps, checkpoint_at=st.integers(0, 40))
def test_invariants_hold_over_any_history(
    history: list[Advance | Submit | Resubmit], checkpoint_at: int
) -> None:
    """Supply per asset stays 0, no ordinary account goes below 0, held = open holds, and
    decide is deterministic and pure, after every step of any history."""
    execute(history, checkpoint_at)  # the checks run inside, after each step


@property_settings
@given(history=steps, checkpoint_at=st.integers(0, 40))
def test_replay_equals_live(history: list[Advance | Submit | Resubmit], checkpoint_at: int) -> None:
    """Replaying the accepted transactions block by block gives the live state and effects."""
    run = execute(history, checkpoint_at)
    replayed, effects = replay_with_effects(State(), run.ledger.blocks)
    assert replayed == run.ledger.state
    assert effects == run.ledger.effects
    assert snapshot_bytes(replayed) == snapshot_bytes(run.ledger.state)


@property_settings
@given(history=steps, checkpoint_at=st.integers(0, 40))
def test_snapshot_round_trip_and_resume(
    history: list[Advance | Submit | Resubmit], checkpoint_at: int
) -> None:
    """A snapshot restores exactly, re-encodes to the same bytes, and a replica restored from a
    mid-history snapshot and fed the remaining blocks ends in the live state."""
    run = execute(history, checkpoint_at)
    live = run.ledger.state
    data = snapshot_bytes(live)
    restored = restore(data)
    assert restored == live
    assert snapshot_bytes(restored) == data
    if run.checkpoint is not None:
        checkpoint, block_index = run.checkpoint
        # begin_block of the checkpoint's own block runs again: it must be a no-op.
        resumed, _ = replay_with_effects(restore(checkpoint), run.ledger.blocks[block_index:])
        assert resumed == live


@st.composite
def owner_payments(draw: st.DrawFn) -> tuple[FakeKey, Transfer]:
    """A positive amount signed by the source's owner: what reaches the balance checks."""
    asset = draw(st.sampled_from(("USD", "BOND")))
    pool = [name for name in FUNDED if asset.lower() in name]
    source, target = draw(st.permutations(pool))[:2]
    amount = draw(st.integers(1, 5_000) | st.sampled_from(BIG[:3]))
    op = Transfer((Posting(source, asset, -amount), Posting(target, asset, amount)))
    return owner_of(draw, source), op


issued_amounts = st.one_of(
    *[st.integers(1, 3_000)] * 6, st.integers(-2, 2), st.sampled_from(BIG[:3])
)
"""Mostly amounts that a cap near the outstanding issuance lets through or just stops."""


@st.composite
def issues(draw: st.DrawFn) -> tuple[FakeKey, Transfer]:
    """An issue of USD or BOND signed by an issuer account's owner, with or without the role."""
    asset = draw(st.sampled_from(("USD", "BOND")))
    target = draw(st.sampled_from([name for name in FUNDED if name.endswith(asset.lower())]))
    amount = draw(issued_amounts)
    return draw(issuing_keys), pay(ISSUER_ACCOUNTS[asset], target, asset, amount)


cap_changes = st.one_of(
    st.none(),  # keep the cap the history left
    st.just("remove"),
    st.integers(-500, 3_000),  # relative to what is outstanding
    st.integers(-500, 3_000),
    st.sampled_from((-1, 0, 1)),
)
"""What the fast path test does to one asset's cap before its probes."""


def set_cap(ledger: Ledger, asset: str, change: int | str | None) -> None:
    if change is None:
        return
    cap = None if change == "remove" else outstanding(ledger.state, asset) + int(change)
    ledger.submit(
        ADMIN, SetIssuanceCap(asset, None if cap is None else min(max(cap, 0), int64_max))
    )


@property_settings
@given(
    history=steps,
    probes=st.lists(
        st.tuples(
            payments() | owner_payments() | issues() | issues(),
            st.lists(keys, max_size=2, unique=True),
        ),
        min_size=1,
        max_size=20,
    ),
    whale=st.integers(0, 3_000) | st.none(),
    usd_cap=cap_changes,
    bond_cap=cap_changes,
)
def test_fast_transfer_path_agrees_with_ordered_checks(
    history: list[Advance | Submit | Resubmit],
    probes: list[tuple[tuple[FakeKey, Transfer], list[FakeKey]]],
    whale: int | None,
    usd_cap: int | str | None,
    bond_cap: int | str | None,
) -> None:
    """The one-pass Transfer decision equals the check-by-check reference on any input, also
    next to the int64 bounds (``whale``: Bob holds nearly int64_max, the issuer nearly -int64)
    and for capped assets, issued by keys with and without the issuer role, near the cap."""
    run = execute(history, checkpoint_at=1_000)
    ledger = run.ledger
    if whale is not None:  # take Bob or the issuer to within ``whale`` of an int64 bound
        bob, issuer = ledger.state.accounts["bob-usd"], ledger.state.accounts["usd-issuer"]
        amount = min(int64_max - bob.balance, issuer.balance - issuer.held - int64_min) - whale
        ledger.submit(ADMIN, SetIssuanceCap("USD", None))
        ledger.submit(ISSUER, pay("usd-issuer", "bob-usd", "USD", amount))
    set_cap(ledger, "USD", usd_cap)
    set_cap(ledger, "BOND", bond_cap)
    state = ledger.state
    for (signer, op), cosigners in probes:
        key = state.keys.get(signer.key_id)
        helpers = [cosigner for cosigner in cosigners if cosigner != signer]
        if key is None or any(cosigner.key_id not in state.keys for cosigner in helpers):
            continue  # decide refuses these before the Transfer checks
        tx = cosigned(ledger.tx(signer, op), *helpers)
        fast = decide_transfer(state, tx, key, op, ledger.now_ms)
        assert fast == decide_transfer_ordered(state, tx, key, op, ledger.now_ms)


# ---- Reverse ---------------------------------------------------------------------------------

REVERSED_ORIGINAL = {"alice-usd": -1_000, "bob-usd": 600, "carol-usd": 400}
"""The transfer the Reverse property undoes: Alice pays Bob and Carol."""
BEFORE_ORIGINAL = {"alice-usd": 10_000, "bob-usd": 0, "carol-usd": 0}


@dataclass(frozen=True)
class Reversal:
    """One attempt: Bob gives back ``bob``, Carol ``carol``, Alice gets their sum plus ``skew``
    (0: balanced). All zero: a full reversal (no postings). ``by_payer``: signed by Alice
    instead of by Bob cosigned by Carol."""

    bob: int
    carol: int
    skew: int = 0
    by_payer: bool = False

    def postings(self) -> tuple[Posting, ...]:
        amounts = {
            "bob-usd": -self.bob,
            "carol-usd": -self.carol,
            "alice-usd": self.bob + self.carol + self.skew,
        }
        return tuple(Posting(name, "USD", amount) for name, amount in amounts.items() if amount)


reversals = st.builds(
    Reversal,
    st.integers(0, 700) | st.integers(0, 30) | st.just(0),
    st.integers(0, 500) | st.integers(0, 30) | st.just(0),
    st.sampled_from((0,) * 8 + (-1, 1)),
    st.sampled_from((False,) * 9 + (True,)),
)


def expected_code(attempt: Reversal, undone: dict[str, int]) -> RejectionCode | None:
    """What decide_reverse should answer, from the documented order of its checks."""
    remaining = {name: abs(amount) - undone[name] for name, amount in REVERSED_ORIGINAL.items()}
    postings = attempt.postings()
    if not postings:
        if not any(remaining.values()):
            return RejectionCode.REVERSAL_EXCEEDS_ORIGINAL
        return RejectionCode.UNAUTHORIZED if attempt.by_payer else None
    for posting in postings:
        if (posting.amount < 0) == (REVERSED_ORIGINAL[posting.account] < 0):
            return RejectionCode.INVALID_OPERATION  # the same sign as the original
    if any(abs(posting.amount) > remaining[posting.account] for posting in postings):
        return RejectionCode.REVERSAL_EXCEEDS_ORIGINAL
    if attempt.by_payer and any(posting.amount < 0 for posting in postings):
        return RejectionCode.UNAUTHORIZED
    if len(postings) < 2:
        return RejectionCode.INVALID_OPERATION
    if sum(posting.amount for posting in postings):
        return RejectionCode.UNBALANCED
    return None


@property_settings
@given(attempts=st.lists(st.tuples(reversals, st.booleans()), min_size=1, max_size=12))
def test_partial_reversals_never_undo_more_than_the_original(
    attempts: list[tuple[Reversal, bool]],
) -> None:
    """Over any sequence of partial and full reversals, each decision is the documented one, the
    amount undone per account never exceeds the original posting, each balance is the original's
    result minus what is undone, and replay gives the same state."""
    ledger = standard_ledger()
    sealer = register_sealer(ledger)
    original = ledger.accept(
        ALICE,
        Transfer(tuple(Posting(name, "USD", amount) for name, amount in REVERSED_ORIGINAL.items())),
    ).tx
    ledger.advance(1_000)
    proof = reverse_of(ledger, sealer, original)
    undone = dict.fromkeys(REVERSED_ORIGINAL, 0)
    for attempt, new_block in attempts:
        if new_block:
            ledger.advance(1_000)
        op = dataclasses.replace(proof, postings=attempt.postings())
        tx = ledger.tx(ALICE, op) if attempt.by_payer else cosigned(ledger.tx(BOB, op), CAROL)
        expected = expected_code(attempt, undone)
        decision = ledger.submit_tx(tx)
        if expected is None:
            assert isinstance(decision, Accepted), (attempt, decision)
            for name, amount in REVERSED_ORIGINAL.items():
                reversing = attempt.postings() or ()
                moved = sum(abs(p.amount) for p in reversing if p.account == name)
                undone[name] = abs(amount) if not reversing else undone[name] + moved
        else:
            assert isinstance(decision, Rejected), (attempt, decision)
            assert decision.code is expected, (attempt, decision)
        recorded = ledger.state.reversed.get(original_seq(proof), {})
        assert recorded == {name: amount for name, amount in undone.items() if amount}
        for name, amount in REVERSED_ORIGINAL.items():
            assert 0 <= undone[name] <= abs(amount)
            sign = 1 if amount > 0 else -1
            assert ledger.balance(name) == (
                BEFORE_ORIGINAL[name] + sign * (abs(amount) - undone[name]),
                0,
            )
    assert undone["alice-usd"] == undone["bob-usd"] + undone["carol-usd"]
    assert replay(ledger.blocks) == ledger.state
