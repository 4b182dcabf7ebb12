"""Properties of the state machine over random histories of a small economy (Hypothesis)."""

from __future__ import annotations

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
    pay,
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
    RevokeKey,
    SetAccountPolicy,
    SetAccountStatus,
    Transfer,
    Tx,
    Void,
)
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

KEYS = (ADMIN, ISSUER, ALICE, BOB, CAROL, STRANGER)
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
spenders = st.sampled_from((ALICE, BOB, ISSUER, CAROL))
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


def owner_or_anyone(draw: st.DrawFn, account: str) -> FakeKey:
    """Usually the account's owner, sometimes a key that may not spend from it."""
    return OWNERS[account] if draw(st.sampled_from([True] * 9 + [False])) else draw(keys)


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
            apply(ledger.state, decision)
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
    return OWNERS[source], op


@property_settings
@given(
    history=steps,
    probes=st.lists(
        st.tuples(payments() | owner_payments(), st.lists(keys, max_size=2, unique=True)),
        min_size=1,
        max_size=20,
    ),
    whale=st.integers(0, 3_000) | st.none(),
)
def test_fast_transfer_path_agrees_with_ordered_checks(
    history: list[Advance | Submit | Resubmit],
    probes: list[tuple[tuple[FakeKey, Transfer], list[FakeKey]]],
    whale: int | None,
) -> None:
    """The one-pass Transfer decision equals the check-by-check reference on any input, also
    next to the int64 bounds (``whale``: Bob holds nearly int64_max, the issuer nearly -int64)."""
    run = execute(history, checkpoint_at=1_000)
    ledger = run.ledger
    if whale is not None:  # take Bob or the issuer to within ``whale`` of an int64 bound
        bob, issuer = ledger.state.accounts["bob-usd"], ledger.state.accounts["usd-issuer"]
        amount = min(int64_max - bob.balance, issuer.balance - issuer.held - int64_min) - whale
        ledger.submit(ISSUER, pay("usd-issuer", "bob-usd", "USD", amount))
    state = ledger.state
    for (signer, op), cosigners in probes:
        key = state.keys.get(signer.key_id)
        helpers = [cosigner for cosigner in cosigners if cosigner != signer]
        if key is None or any(cosigner.key_id not in state.keys for cosigner in helpers):
            continue  # decide refuses these before the Transfer checks
        tx = cosigned(ledger.tx(signer, op), *helpers)
        fast = decide_transfer(state, tx, key, op, ledger.now_ms)
        assert fast == decide_transfer_ordered(state, tx, key, op, ledger.now_ms)
