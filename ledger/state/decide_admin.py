"""Decisions on accounts, assets, keys and attestations (everything but money).

All of these but Attest need a key with the "admin" role (UNAUTHORIZED otherwise), except
that an "operator" key may freeze and unfreeze (not close) accounts. An "auditor" key has no
other role, owns no account and may be named by no account policy: it attests and moves no
money. Per operation, the checks follow ``RejectionCode`` precedence except where a check needs an object
that an earlier one looks up:

- SetAccountStatus: UNKNOWN_ACCOUNT, ACCOUNT_CLOSED (nothing leaves CLOSED), then
  INVALID_OPERATION for a status the account already has, then ACCOUNT_NOT_EMPTY.
- RevokeKey: the target key's UNKNOWN_KEY and KEY_REVOKED (it must be found first), then
  INVALID_OPERATION when it is the last unrevoked admin key (the ledger would be locked forever)
  or a witness whose loss leaves fewer witnesses than the finality threshold (nothing would be
  final again).
- SetFinality: INVALID_OPERATION for a threshold outside 0..finality_threshold_max, above the
  number of unrevoked witness keys (a policy nobody can meet), or equal to the current one.
"""

from __future__ import annotations

import dataclasses

from ledger.limits import (
    asset_scale_max,
    finality_threshold_max,
    identifier_chars_max,
    int64_max,
    owned_accounts_max_count,
    policy_counterparties_max_count,
    policy_keys_max_count,
    roles_max_count,
)
from ledger.model import (
    AccountStatus,
    Attest,
    DefineAsset,
    OpenAccount,
    RegisterKey,
    RevokeKey,
    Role,
    RotateSealer,
    SetAccountMetadata,
    SetAccountPolicy,
    SetAccountStatus,
    SetFinality,
    SetIssuanceCap,
    Tx,
    UpdateKey,
)
from ledger.rejections import Rejected, RejectionCode
from ledger.state.effects import (
    Accepted,
    AccountMetadataSet,
    AccountOpened,
    AccountStatusChanged,
    AssetDefined,
    Attested,
    Effect,
    FinalitySet,
    IssuanceCapSet,
    KeyAccountsChanged,
    KeyRegistered,
    KeyRevoked,
    PolicySet,
    SealerRotated,
)
from ledger.state.state import AccountPolicy, Key, State, key_id_of

ADMIN_ROLE = Role.ADMIN.value
WITNESS_ROLE = Role.WITNESS.value
SEALER_ROLE = Role.SEALER.value
OPERATOR_ROLE = Role.OPERATOR.value
AUDITOR_ROLE = Role.AUDITOR.value
KNOWN_ROLES = frozenset(role.value for role in Role)
public_key_bytes = 32
digest_bytes = 32

_CLOSED = AccountStatus.CLOSED


def _unauthorized_unless_admin(tx: Tx, key: Key, what: str) -> Rejected | None:
    if ADMIN_ROLE in key.roles:
        return None
    return Rejected(RejectionCode.UNAUTHORIZED, f"{what} needs an admin key, {tx.key_id} is not")


def _bad_identifier(name: str) -> bool:
    return not name or len(name) > identifier_chars_max


def decide_open_account(
    state: State, tx: Tx, key: Key, op: OpenAccount, now_ms: int
) -> Accepted | Rejected:
    """Open ``op.account`` for an existing asset; ``max_balance`` caps credits. The
    transaction's metadata becomes the account's."""
    if (refused := _unauthorized_unless_admin(tx, key, "OpenAccount")) is not None:
        return refused
    if _bad_identifier(op.account):
        return Rejected(RejectionCode.INVALID_OPERATION, f"bad account name {op.account!r}")
    if op.max_balance is not None and not 0 <= op.max_balance <= int64_max:
        return Rejected(
            RejectionCode.INVALID_OPERATION, f"max_balance {op.max_balance} outside 0..int64"
        )
    if op.account in state.accounts:
        return Rejected(RejectionCode.ALREADY_EXISTS, f"account {op.account} already exists")
    if op.asset not in state.assets:
        return Rejected(RejectionCode.UNKNOWN_ASSET, f"asset {op.asset} is not defined")
    effects: tuple[Effect, ...] = (AccountOpened(op.account, op.asset, op.max_balance, False),)
    if tx.body.metadata:  # the transaction's metadata is the new account's
        effects += (AccountMetadataSet(op.account, tuple(tx.body.metadata.items())),)
    return Accepted(tx, now_ms, effects, state.revision)


def decide_set_account_status(
    state: State, tx: Tx, key: Key, op: SetAccountStatus, now_ms: int
) -> Accepted | Rejected:
    """Freeze, unfreeze or close. Frozen accounts neither send nor receive; closed ones never
    come back, and only an account with balance 0 and nothing held may close. An operator key
    may freeze and unfreeze; closing takes an admin."""
    operating = OPERATOR_ROLE in key.roles and op.status is not _CLOSED
    if (
        not operating
        and (refused := _unauthorized_unless_admin(tx, key, "SetAccountStatus")) is not None
    ):
        return refused
    account = state.accounts.get(op.account)
    if account is None:
        return Rejected(RejectionCode.UNKNOWN_ACCOUNT, f"account {op.account} does not exist")
    if account.status is _CLOSED:
        return Rejected(RejectionCode.ACCOUNT_CLOSED, f"account {op.account} is closed")
    if account.status is op.status:
        return Rejected(
            RejectionCode.INVALID_OPERATION, f"account {op.account} is already {op.status.value}"
        )
    if op.status is _CLOSED and (account.balance != 0 or account.held != 0):
        return Rejected(
            RejectionCode.ACCOUNT_NOT_EMPTY,
            f"account {op.account} has balance {account.balance} and held {account.held}",
        )
    effects = (AccountStatusChanged(op.account, op.status, account.status),)
    return Accepted(tx, now_ms, effects, state.revision)


def decide_define_asset(
    state: State, tx: Tx, key: Key, op: DefineAsset, now_ms: int
) -> Accepted | Rejected:
    """Define an asset and open its issuer account, the only kind that may go negative."""
    if (refused := _unauthorized_unless_admin(tx, key, "DefineAsset")) is not None:
        return refused
    if _bad_identifier(op.asset) or _bad_identifier(op.issuer_account):
        return Rejected(
            RejectionCode.INVALID_OPERATION, f"bad name {op.asset!r} or {op.issuer_account!r}"
        )
    if not 0 <= op.scale <= asset_scale_max:
        return Rejected(
            RejectionCode.INVALID_OPERATION, f"scale {op.scale} outside 0..{asset_scale_max}"
        )
    if op.asset in state.assets:
        return Rejected(RejectionCode.ALREADY_EXISTS, f"asset {op.asset} already exists")
    if op.issuer_account in state.accounts:
        return Rejected(RejectionCode.ALREADY_EXISTS, f"account {op.issuer_account} already exists")
    effects = (
        AssetDefined(op.asset, op.scale, op.issuer_account),
        AccountOpened(op.issuer_account, op.asset, None, True),
    )
    return Accepted(tx, now_ms, effects, state.revision)


def decide_genesis_key(state: State, tx: Tx, op: RegisterKey, now_ms: int) -> Accepted | Rejected:
    """The first key of a ledger registers itself as admin (``decide`` checked the signer)."""
    return _register(state, tx, op, now_ms)


def decide_register_key(
    state: State, tx: Tx, key: Key, op: RegisterKey, now_ms: int
) -> Accepted | Rejected:
    """Register a key with roles (admin, sealer) and the accounts it may spend from."""
    if (refused := _unauthorized_unless_admin(tx, key, "RegisterKey")) is not None:
        return refused
    return _register(state, tx, op, now_ms)


def _register(state: State, tx: Tx, op: RegisterKey, now_ms: int) -> Accepted | Rejected:
    if len(op.public_key) != public_key_bytes:
        return Rejected(RejectionCode.INVALID_OPERATION, "a public key has 32 bytes")
    roles = frozenset(op.roles)
    if len(roles) != len(op.roles) or not roles <= KNOWN_ROLES or len(roles) > roles_max_count:
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            f"roles {list(op.roles)} are not distinct roles of {sorted(KNOWN_ROLES)}",
        )
    accounts = frozenset(op.accounts)
    if len(accounts) != len(op.accounts) or len(accounts) > owned_accounts_max_count:
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            f"owned accounts must be distinct and at most {owned_accounts_max_count}",
        )
    if AUDITOR_ROLE in roles and (accounts or roles != {AUDITOR_ROLE}):
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            "an auditor key has no other role and owns no account: it moves no money",
        )
    key_id = key_id_of(op.public_key)
    if key_id in state.keys:
        return Rejected(RejectionCode.ALREADY_EXISTS, f"key {key_id} already registered")
    for account in sorted(accounts):
        if account not in state.accounts:
            return Rejected(RejectionCode.UNKNOWN_ACCOUNT, f"account {account} does not exist")
    effects = (KeyRegistered(key_id, op.public_key, tuple(sorted(roles)), tuple(sorted(accounts))),)
    return Accepted(tx, now_ms, effects, state.revision)


def decide_revoke_key(
    state: State, tx: Tx, key: Key, op: RevokeKey, now_ms: int
) -> Accepted | Rejected:
    """Revoke a key for good; the last unrevoked admin key cannot be revoked."""
    if (refused := _unauthorized_unless_admin(tx, key, "RevokeKey")) is not None:
        return refused
    target = state.keys.get(op.key_id)
    if target is None:
        return Rejected(RejectionCode.UNKNOWN_KEY, f"key {op.key_id} is not registered")
    if target.revoked_at_ms is not None:
        return Rejected(RejectionCode.KEY_REVOKED, f"key {op.key_id} is already revoked")
    if ADMIN_ROLE in target.roles and state.active_admin_count() == 1:
        return Rejected(RejectionCode.INVALID_OPERATION, f"key {op.key_id} is the last admin key")
    if (
        WITNESS_ROLE in target.roles
        and state.active_count_with_role(WITNESS_ROLE) <= state.finality_threshold
    ):
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            f"revoking witness {op.key_id} leaves fewer witnesses than the finality threshold "
            f"{state.finality_threshold}: lower it first",
        )
    effects = (KeyRevoked(op.key_id, now_ms),)
    return Accepted(tx, now_ms, effects, state.revision)


def decide_attest(state: State, tx: Tx, key: Key, op: Attest, now_ms: int) -> Accepted | Rejected:
    """Anchor a digest; any registered, unrevoked key may (``decide`` checked that)."""
    if len(op.digest) != digest_bytes:
        return Rejected(RejectionCode.INVALID_OPERATION, f"a digest has {digest_bytes} bytes")
    if _bad_identifier(op.algorithm):
        return Rejected(RejectionCode.INVALID_OPERATION, f"bad algorithm {op.algorithm!r}")
    effects = (Attested(op.digest, op.algorithm, tx.key_id),)
    return Accepted(tx, now_ms, effects, state.revision)


def decide_set_finality(
    state: State, tx: Tx, key: Key, op: SetFinality, now_ms: int
) -> Accepted | Rejected:
    """Set how many registered witnesses must co-sign a block for it to be final."""
    if (refused := _unauthorized_unless_admin(tx, key, "SetFinality")) is not None:
        return refused
    if not 0 <= op.threshold <= finality_threshold_max:
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            f"threshold {op.threshold} outside 0..{finality_threshold_max}",
        )
    witnesses = state.active_count_with_role(WITNESS_ROLE)
    if op.threshold > witnesses:
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            f"threshold {op.threshold} is more than the {witnesses} registered witnesses",
        )
    if op.threshold == state.finality_threshold:
        return Rejected(
            RejectionCode.INVALID_OPERATION, f"the finality threshold is already {op.threshold}"
        )
    effects = (FinalitySet(op.threshold, state.finality_threshold),)
    return Accepted(tx, now_ms, effects, state.revision)


def decide_set_account_policy(
    state: State, tx: Tx, key: Key, op: SetAccountPolicy, now_ms: int
) -> Accepted | Rejected:
    """Set or remove who must sign ``op.account``'s debits and its limits (admin only).

    The named keys must be registered and live (UNKNOWN_KEY, KEY_REVOKED) and the allowed
    counterparties must exist (UNKNOWN_ACCOUNT); the numbers must make sense
    (INVALID_OPERATION): 1 <= threshold <= keys, threshold < high_threshold <= keys with a
    positive high_amount (both or neither), a positive max_amount.
    """
    if (refused := _unauthorized_unless_admin(tx, key, "SetAccountPolicy")) is not None:
        return refused
    account = state.accounts.get(op.account)
    if account is None:
        return Rejected(RejectionCode.UNKNOWN_ACCOUNT, f"account {op.account} does not exist")
    removing = op.threshold == 0 and not op.key_ids
    if removing:
        if op.high_threshold is not None or op.max_amount is not None or op.counterparties:
            return Rejected(
                RejectionCode.INVALID_OPERATION,
                "a policy without keys (threshold 0, to remove it) cannot have limits",
            )
        if account.policy is None:
            return Rejected(
                RejectionCode.INVALID_OPERATION, f"account {op.account} has no policy to remove"
            )
        return Accepted(tx, now_ms, (PolicySet(op.account, None),), state.revision)
    problem = _policy_problem(op)
    if problem is not None:
        return Rejected(RejectionCode.INVALID_OPERATION, problem)
    for key_id in op.key_ids:
        named = state.keys.get(key_id)
        if named is None:
            return Rejected(RejectionCode.UNKNOWN_KEY, f"policy key {key_id} is not registered")
        if named.revoked:
            return Rejected(RejectionCode.KEY_REVOKED, f"policy key {key_id} is revoked")
        if AUDITOR_ROLE in named.roles:
            return Rejected(RejectionCode.INVALID_OPERATION, f"policy key {key_id} is an auditor's")
    for counterparty in op.counterparties:
        if counterparty not in state.accounts:
            return Rejected(
                RejectionCode.UNKNOWN_ACCOUNT, f"counterparty {counterparty} does not exist"
            )
    policy = AccountPolicy(
        frozenset(op.key_ids),
        op.threshold,
        op.high_threshold,
        op.high_amount,
        op.max_amount,
        frozenset(op.counterparties),
    )
    return Accepted(tx, now_ms, (PolicySet(op.account, policy),), state.revision)


def _policy_problem(op: SetAccountPolicy) -> str | None:
    keys = len(op.key_ids)
    if keys > policy_keys_max_count or len(set(op.key_ids)) != keys:
        return f"{keys} policy keys: at most {policy_keys_max_count}, each once"
    if not 1 <= op.threshold <= keys:
        return f"threshold {op.threshold} outside 1..{keys} (the keys named)"
    if (op.high_threshold is None) != (op.high_amount is None):
        return "high_threshold and high_amount go together"
    if op.high_threshold is not None and not op.threshold < op.high_threshold <= keys:
        return f"high_threshold {op.high_threshold} outside {op.threshold + 1}..{keys}"
    if op.high_amount is not None and not 0 < op.high_amount <= int64_max:
        return f"high_amount {op.high_amount} is not a positive amount"
    if op.max_amount is not None and not 0 < op.max_amount <= int64_max:
        return f"max_amount {op.max_amount} is not a positive amount"
    counterparties = len(op.counterparties)
    if counterparties > policy_counterparties_max_count:
        return f"{counterparties} counterparties, at most {policy_counterparties_max_count}"
    if len(set(op.counterparties)) != counterparties:
        return "a counterparty appears twice"
    return None


def decide_update_key(
    state: State, tx: Tx, key: Key, op: UpdateKey, now_ms: int
) -> Accepted | Rejected:
    """Change what a key owns and, with a successor, rotate it (see ``ledger.model.UpdateKey``).

    The key must exist and be live (UNKNOWN_KEY, KEY_REVOKED); the accounts must be distinct,
    at most owned_accounts_max_count and exist (UNKNOWN_ACCOUNT); an auditor key owns none and
    the sealer's key is not rotated this way (INVALID_OPERATION); the successor is a new 32-byte
    key (INVALID_OPERATION, ALREADY_EXISTS).
    """
    if (refused := _unauthorized_unless_admin(tx, key, "UpdateKey")) is not None:
        return refused
    target = state.keys.get(op.key_id)
    if target is None:
        return Rejected(RejectionCode.UNKNOWN_KEY, f"key {op.key_id} is not registered")
    if target.revoked:
        return Rejected(RejectionCode.KEY_REVOKED, f"key {op.key_id} is revoked")
    accounts = frozenset(op.accounts)
    if len(accounts) != len(op.accounts) or len(accounts) > owned_accounts_max_count:
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            f"owned accounts must be distinct and at most {owned_accounts_max_count}",
        )
    if accounts and AUDITOR_ROLE in target.roles:
        return Rejected(RejectionCode.INVALID_OPERATION, "an auditor key owns no account")
    owned = tuple(sorted(accounts))
    if op.successor is None:
        if accounts == target.accounts:
            return Rejected(
                RejectionCode.INVALID_OPERATION, f"key {op.key_id} already owns exactly these"
            )
        refused = _unknown_account(state, owned)
        if refused is not None:
            return refused
        return Accepted(tx, now_ms, (KeyAccountsChanged(op.key_id, owned),), state.revision)
    if SEALER_ROLE in target.roles:
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            "the sealer key is not rotated by UpdateKey: blocks are verified against it",
        )
    if refused := _not_a_new_key(state, op.successor):
        return refused
    refused = _unknown_account(state, owned)
    if refused is not None:
        return refused
    effects = _handover(state, op.key_id, target, op.successor, owned, now_ms)
    return Accepted(tx, now_ms, effects, state.revision)


def _not_a_new_key(state: State, public_key: bytes) -> Rejected | None:
    """INVALID_OPERATION for a public key of the wrong size, ALREADY_EXISTS for a known one."""
    if len(public_key) != public_key_bytes:
        return Rejected(RejectionCode.INVALID_OPERATION, "a public key has 32 bytes")
    key_id = key_id_of(public_key)
    if key_id in state.keys:
        return Rejected(RejectionCode.ALREADY_EXISTS, f"key {key_id} already registered")
    return None


def _handover(
    state: State, key_id: str, key: Key, successor: bytes, accounts: tuple[str, ...], now_ms: int
) -> tuple[Effect, ...]:
    """``successor`` takes over ``key``'s roles, ``accounts`` and policy seats; ``key`` is revoked."""
    successor_id = key_id_of(successor)
    effects: list[Effect] = [
        KeyRegistered(successor_id, successor, tuple(sorted(key.roles)), accounts),
        KeyRevoked(key_id, now_ms),
    ]
    for name, account in sorted(state.accounts.items()):
        policy = account.policy
        if policy is not None and key_id in policy.key_ids:
            seats = (policy.key_ids - {key_id}) | {successor_id}
            effects.append(PolicySet(name, dataclasses.replace(policy, key_ids=seats)))
    return tuple(effects)


def decide_rotate_sealer(
    state: State, tx: Tx, key: Key, op: RotateSealer, now_ms: int
) -> Accepted | Rejected:
    """Hand block sealing to ``op.successor`` (``ledger.model.RotateSealer``).

    Signed by a sealer key (UNAUTHORIZED otherwise) and cosigned by the successor, a new key
    (INVALID_OPERATION, ALREADY_EXISTS). The successor takes over the key's roles, accounts and
    policy seats and the key is revoked, like an UpdateKey handover; the sequencer ends the block
    here and seals the next one with the successor.
    """
    if SEALER_ROLE not in key.roles:
        return Rejected(
            RejectionCode.UNAUTHORIZED, f"RotateSealer needs the sealer's key, {tx.key_id} is not"
        )
    if all(public_key != op.successor for _, public_key in tx.cosigners):
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            "the successor must cosign its rotation: that proves it holds the new key",
        )
    if refused := _not_a_new_key(state, op.successor):
        return refused
    owned = tuple(sorted(key.accounts))
    effects = _handover(state, tx.key_id, key, op.successor, owned, now_ms)
    rotated = SealerRotated(key.public_key, op.successor)
    return Accepted(tx, now_ms, (*effects, rotated), state.revision)


def decide_set_issuance_cap(
    state: State, tx: Tx, key: Key, op: SetIssuanceCap, now_ms: int
) -> Accepted | Rejected:
    """Set or remove an asset's issuance cap (admin only).

    The asset must exist (UNKNOWN_ASSET); the cap is 0..int64_max and differs from the current
    one (INVALID_OPERATION). A cap below what is already outstanding is allowed: nothing more
    is issued until redemptions bring it under.
    """
    if (refused := _unauthorized_unless_admin(tx, key, "SetIssuanceCap")) is not None:
        return refused
    asset = state.assets.get(op.asset)
    if asset is None:
        return Rejected(RejectionCode.UNKNOWN_ASSET, f"asset {op.asset} is not defined")
    if op.cap is not None and not 0 <= op.cap <= int64_max:
        return Rejected(RejectionCode.INVALID_OPERATION, f"cap {op.cap} outside 0..{int64_max}")
    if op.cap == asset.issuance_cap:
        return Rejected(
            RejectionCode.INVALID_OPERATION, f"{op.asset}'s issuance cap is already {op.cap}"
        )
    return Accepted(tx, now_ms, (IssuanceCapSet(op.asset, op.cap),), state.revision)


def decide_set_account_metadata(
    state: State, tx: Tx, key: Key, op: SetAccountMetadata, now_ms: int
) -> Accepted | Rejected:
    """Replace an account's metadata (admin only; UNKNOWN_ACCOUNT). The codec bounds it."""
    if (refused := _unauthorized_unless_admin(tx, key, "SetAccountMetadata")) is not None:
        return refused
    if op.account not in state.accounts:
        return Rejected(RejectionCode.UNKNOWN_ACCOUNT, f"account {op.account} does not exist")
    metadata = tuple(op.metadata.items())
    return Accepted(tx, now_ms, (AccountMetadataSet(op.account, metadata),), state.revision)


def _unknown_account(state: State, accounts: tuple[str, ...]) -> Rejected | None:
    for account in accounts:
        if account not in state.accounts:
            return Rejected(RejectionCode.UNKNOWN_ACCOUNT, f"account {account} does not exist")
    return None
