"""``decide``: accept or reject one verified transaction, without changing the state.

Checks run in the precedence order of ``RejectionCode`` and the first failing one wins:

1. time: VALIDITY_TOO_LONG, EXPIRED, NOT_YET_VALID; then DUPLICATE (replay window);
2. identity: UNKNOWN_KEY, KEY_REVOKED, for the submitting key then each cosigner (genesis
   bootstrap is one exception, below; the other is a RotateSealer's successor, which cosigns
   before it is registered, because its rotation registers it);
3. the operation's own checks (``decide_admin``, ``decide_money``): UNAUTHORIZED first, then
   INVALID_OPERATION ... CAPTURE_EXCEEDS_HOLD. Each module documents where one operation must
   deviate (a Capture cannot be authorized before its hold is found).

Genesis bootstrap: while the state has no keys at all, a RegisterKey that gives the "admin" role
to the very key that signs it is accepted; that is how block 0 starts. Everything else signed by
an unknown key is UNKNOWN_KEY.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.limits import clock_skew_ms_max, validity_window_ms_max
from ledger.model import (
    Attest,
    Capture,
    DefineAsset,
    Hold,
    OpenAccount,
    RegisterKey,
    Reverse,
    RevokeKey,
    RotateSealer,
    SetAccountMetadata,
    SetAccountPolicy,
    SetAccountStatus,
    SetFinality,
    SetIssuanceCap,
    Transfer,
    Tx,
    UpdateKey,
    Void,
)
from ledger.rejections import Rejected, RejectionCode
from ledger.state import decide_admin, decide_money, decide_reverse
from ledger.state.effects import Accepted
from ledger.state.state import Key, State, StateError, key_id_of

Decision = Accepted | Rejected

_HANDLERS: dict[type, Callable[[State, Tx, Key, Any, int], Decision]] = {
    Transfer: decide_money.decide_transfer,
    Hold: decide_money.decide_hold,
    Capture: decide_money.decide_capture,
    Void: decide_money.decide_void,
    OpenAccount: decide_admin.decide_open_account,
    SetAccountStatus: decide_admin.decide_set_account_status,
    DefineAsset: decide_admin.decide_define_asset,
    RegisterKey: decide_admin.decide_register_key,
    RevokeKey: decide_admin.decide_revoke_key,
    Attest: decide_admin.decide_attest,
    SetFinality: decide_admin.decide_set_finality,
    SetAccountPolicy: decide_admin.decide_set_account_policy,
    UpdateKey: decide_admin.decide_update_key,
    RotateSealer: decide_admin.decide_rotate_sealer,
    Reverse: decide_reverse.decide_reverse,
    SetIssuanceCap: decide_admin.decide_set_issuance_cap,
    SetAccountMetadata: decide_admin.decide_set_account_metadata,
}


def decide(state: State, tx: Tx, now_ms: int) -> Decision:
    """Accept or reject ``tx`` at block time ``now_ms``; pure: ``state`` is only read.

    ``now_ms`` is the time passed to the latest ``begin_block``. Apply an ``Accepted`` (with
    ``apply``) before deciding the next transaction: its effects carry after-values.
    """
    if now_ms < state.now_ms:
        raise StateError(f"decide at {now_ms} ms, before the current block's {state.now_ms} ms")
    body = tx.body
    created_at_ms = body.created_at_ms
    expires_at_ms = body.expires_at_ms
    if expires_at_ms < created_at_ms or expires_at_ms - created_at_ms > validity_window_ms_max:
        return Rejected(
            RejectionCode.VALIDITY_TOO_LONG,
            f"validity window {created_at_ms}..{expires_at_ms} ms is not within "
            f"0..{validity_window_ms_max} ms",
        )
    if now_ms > expires_at_ms:
        return Rejected(RejectionCode.EXPIRED, f"expired at {expires_at_ms} ms, now {now_ms} ms")
    if created_at_ms > now_ms + clock_skew_ms_max:
        return Rejected(
            RejectionCode.NOT_YET_VALID,
            f"created at {created_at_ms} ms, more than {clock_skew_ms_max} ms after {now_ms} ms",
        )
    if body.tx_id in state.recent_tx_ids:
        return Rejected(RejectionCode.DUPLICATE, f"tx_id {body.tx_id.hex()} already accepted")
    op = body.op
    key = state.keys.get(tx.key_id)
    if not state.keys and isinstance(op, RegisterKey) and _is_genesis_key(tx, op):
        return decide_admin.decide_genesis_key(state, tx, op, now_ms)
    if (refused := _signer_rejection("key", tx.key_id, tx.public_key, key)) is not None:
        return refused
    for cosigner_id, public_key in tx.cosigners:  # every signer is a registered, live key
        if isinstance(op, RotateSealer) and public_key == op.successor:
            continue  # the one signer that cannot be registered yet: its own rotation does it
        cosigner = state.keys.get(cosigner_id)
        if refused := _signer_rejection("cosigning key", cosigner_id, public_key, cosigner):
            return refused
    assert key is not None
    handler = _HANDLERS.get(type(op))
    if handler is None:
        return Rejected(RejectionCode.INVALID_OPERATION, f"unknown operation {type(op).__name__}")
    return handler(state, tx, key, op, now_ms)


def _signer_rejection(
    what: str, key_id: str, public_key: bytes, key: Key | None
) -> Rejected | None:
    """UNKNOWN_KEY or KEY_REVOKED for one signer (``key``: the state's key of that id)."""
    if key is None or key.public_key != public_key:
        return Rejected(RejectionCode.UNKNOWN_KEY, f"{what} {key_id} is not registered")
    if key.revoked_at_ms is not None:
        return Rejected(
            RejectionCode.KEY_REVOKED, f"{what} {key_id} was revoked at {key.revoked_at_ms} ms"
        )
    return None


def _is_genesis_key(tx: Tx, op: RegisterKey) -> bool:
    return (
        op.public_key == tx.public_key
        and tx.key_id == key_id_of(tx.public_key)
        and decide_admin.ADMIN_ROLE in op.roles
    )
