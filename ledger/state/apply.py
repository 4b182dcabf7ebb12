"""The only writers of a ``State``: ``begin_block`` and ``apply``.

``apply`` does not decide anything: it writes the after-values an ``Accepted`` carries, so a
replica that applies the same decisions holds the same state. Assertions check the invariants
after each write (balances inside int64, no account without ``allow_negative`` below zero).
"""

from __future__ import annotations

import heapq

from ledger.limits import int64_max, int64_min
from ledger.model import AccountStatus
from ledger.state.effects import (
    Accepted,
    AccountMetadataSet,
    AccountOpened,
    AccountStatusChanged,
    AssetDefined,
    Attested,
    BalanceChanged,
    Effect,
    FinalitySet,
    HoldOpened,
    HoldResolved,
    IssuanceCapSet,
    KeyAccountsChanged,
    KeyRegistered,
    KeyRevoked,
    PolicySet,
    Posted,
    Reversed,
    SealerRotated,
)
from ledger.state.state import Account, Asset, HoldRecord, HoldStatus, Key, State, StateError

_ACTIVE = AccountStatus.ACTIVE
_OPEN = HoldStatus.OPEN
_EXPIRED = HoldStatus.EXPIRED


def begin_block(state: State, now_ms: int) -> list[Effect]:
    """Start a block at time ``now_ms`` (its ``sealed_at_ms``), before its transactions.

    1. Every open hold with ``expires_at_ms < now_ms`` expires: its amount is released on the
       payer (``BalanceChanged`` then ``HoldResolved(EXPIRED)``), in (expires_at_ms, hold_id)
       order.
    2. Every remembered tx_id whose ``expires_at_ms < now_ms`` is forgotten: such a transaction
       is EXPIRED anyway, so the replay window stays bounded.

    Deterministic: it depends only on the state and ``now_ms``. A replica that skips a block
    with no transactions reaches the same state at the next block (expiry only depends on time).
    Block times must not go backwards (``StateError``): a replayed window would reopen.
    """
    if now_ms < state.now_ms:
        raise StateError(f"block time {now_ms} ms is before the previous {state.now_ms} ms")
    state.now_ms = now_ms
    state.revision += 1
    effects: list[Effect] = []
    heap = state.hold_expiry_heap
    holds = state.holds
    accounts = state.accounts
    while heap and heap[0][0] < now_ms:
        _, hold_id = heapq.heappop(heap)
        hold = holds[hold_id]
        if hold.status is not _OPEN:
            continue  # captured or voided before it expired
        payer = accounts[hold.payer]
        payer.held -= hold.amount
        hold.status = _EXPIRED
        assert payer.held >= 0
        effects.append(BalanceChanged(hold.payer, hold.asset, payer.balance, payer.held))
        effects.append(HoldResolved(hold_id, _EXPIRED, 0))
    state.tx_expiry.forget_expired(state.recent_tx_ids, now_ms)
    return effects


def apply(state: State, accepted: Accepted) -> None:
    """Write the effects of ``accepted`` and remember its tx_id until it expires.

    Raises ``StateError`` if the state changed since the decision (its after-values would be
    stale): decide, apply, decide, apply, never two decisions ahead.
    """
    if accepted.revision != state.revision:
        raise StateError(
            f"decision made at revision {accepted.revision}, state is at {state.revision}"
        )
    accounts = state.accounts
    for effect in accepted.effects:
        if type(effect) is BalanceChanged:
            account = accounts[effect.account]
            account.balance = effect.balance
            account.held = effect.held
            assert int64_min <= effect.balance <= int64_max and 0 <= effect.held <= int64_max
            assert account.allow_negative or effect.balance - effect.held >= 0
        elif type(effect) is Posted:
            pass  # the balances carry the result; postings are for the projector
        else:
            _apply_rare(state, effect)
    body = accepted.tx.body
    state.recent_tx_ids[body.tx_id] = body.expires_at_ms
    state.tx_expiry.add(body.tx_id, body.expires_at_ms)
    state.tx_count += 1
    state.revision += 1


def _apply_rare(state: State, effect: Effect) -> None:
    """Everything but balances: kept out of ``apply``'s loop so transfers stay fast."""
    if isinstance(effect, HoldOpened):
        state.holds[effect.hold_id] = HoldRecord(
            effect.payer,
            effect.payee,
            effect.asset,
            effect.amount,
            effect.expires_at_ms,
            effect.creator_key_id,
        )
        heapq.heappush(state.hold_expiry_heap, (effect.expires_at_ms, effect.hold_id))
    elif isinstance(effect, HoldResolved):
        hold = state.holds[effect.hold_id]
        assert hold.status is _OPEN
        hold.status = effect.status
        hold.captured_amount = effect.captured_amount
    elif isinstance(effect, AccountOpened):
        assert effect.account not in state.accounts
        state.accounts[effect.account] = Account(
            effect.asset, _ACTIVE, effect.max_balance, effect.allow_negative
        )
    elif isinstance(effect, AccountStatusChanged):
        state.accounts[effect.account].status = effect.status
    elif isinstance(effect, AssetDefined):
        state.assets[effect.asset] = Asset(effect.scale, effect.issuer_account)
    elif isinstance(effect, KeyRegistered):
        state.keys[effect.key_id] = Key(
            effect.public_key, frozenset(effect.roles), frozenset(effect.accounts)
        )
    elif isinstance(effect, KeyRevoked):
        state.keys[effect.key_id].revoked_at_ms = effect.revoked_at_ms
    elif isinstance(effect, KeyAccountsChanged):
        state.keys[effect.key_id].accounts = frozenset(effect.accounts)
    elif isinstance(effect, FinalitySet):
        state.finality_threshold = effect.threshold
    elif isinstance(effect, PolicySet):
        state.accounts[effect.account].policy = effect.policy
    elif isinstance(effect, IssuanceCapSet):
        state.assets[effect.asset].issuance_cap = effect.cap
    elif isinstance(effect, Reversed):
        state.reversed.setdefault(effect.original_seq, {}).update(effect.undone)
    elif isinstance(effect, Attested | Posted | SealerRotated | AccountMetadataSet):
        pass  # nothing to decide on: these live in the blocks and the projection
    else:  # pragma: no cover - a new effect type without a writer is a bug
        raise AssertionError(f"no writer for {effect!r}")
