"""Decisions that move or reserve money: Transfer, Hold, Capture, Void.

Frozen accounts can neither send nor receive (ACCOUNT_FROZEN): a freeze stops all movement, so
an investigation sees a still picture. Releasing a reservation (Void, expiry) moves nothing and
is always allowed. A payer with open holds cannot close (its ``held`` is not 0); a payee can,
and a later Capture into it is ACCOUNT_CLOSED.

Check order per operation (``RejectionCode`` precedence, except where an object must be found
before it can be checked):

- Transfer and Hold: strictly by precedence. Every check covers all postings before the next
  check starts, so the code does not depend on the order of the postings.
- Capture and Void: HOLD_NOT_FOUND first (there is nothing to authorize without the hold), then
  UNAUTHORIZED, then the hold's own state (HOLD_EXPIRED, HOLD_ALREADY_RESOLVED), then the
  capture amount against the hold (INVALID_AMOUNT, CAPTURE_EXCEEDS_HOLD), and only then the
  movement itself (ACCOUNT_CLOSED, ACCOUNT_FROZEN, LIMIT_EXCEEDED, OVERFLOW): an amount the
  hold does not cover is wrong whatever the accounts would say.
"""

from __future__ import annotations

from ledger.limits import int64_max, int64_min, postings_max_count, postings_min_count
from ledger.model import (
    AccountStatus,
    Capture,
    Hold,
    Posting,
    Role,
    Transfer,
    Tx,
    Void,
)
from ledger.rejections import Rejected, RejectionCode
from ledger.state.effects import (
    Accepted,
    BalanceChanged,
    Effect,
    HoldOpened,
    HoldResolved,
    Posted,
)
from ledger.state.state import Account, HoldRecord, HoldStatus, Key, State

ISSUER_ROLE = Role.ISSUER.value
SEALER_ROLE = Role.SEALER.value

_ACTIVE = AccountStatus.ACTIVE
_CLOSED = AccountStatus.CLOSED
_OPEN = HoldStatus.OPEN
_EXPIRED = HoldStatus.EXPIRED


def decide_transfer(
    state: State, tx: Tx, key: Key, op: Transfer, now_ms: int
) -> Accepted | Rejected:
    """2..16 postings on distinct, active accounts, balanced per asset (two assets = DvP).

    One pass accepts the common case; at the first sign of trouble, ``decide_transfer_ordered``
    runs the checks one by one in precedence order to find the code that wins. The fast pass
    accepts only what every ordered check accepts (a property test holds them together).
    """
    postings = op.postings
    count = len(postings)
    if count < postings_min_count or count > postings_max_count or tx.cosigners:
        return decide_transfer_ordered(state, tx, key, op, now_ms)
    owned = key.accounts
    known = state.accounts
    seen: set[str] = set()
    sums: dict[str, int] = {}
    credits: dict[str, int] = {}
    posted: list[Effect] = []
    balances: list[Effect] = []
    for posting in postings:
        name = posting.account
        amount = posting.amount
        account = known.get(name)
        if (
            account is None
            or account.status is not _ACTIVE
            or account.asset != posting.asset  # an account's asset is always defined
            or name in seen
            or not int64_min <= amount <= int64_max
        ):
            break
        seen.add(name)
        balance = account.balance + amount
        available = balance - account.held
        if amount < 0:
            if name not in owned or account.policy is not None or available < int64_min:
                break
            if account.allow_negative:  # issuing: the ordered checks know about caps
                if state.assets[posting.asset].issuance_cap is not None:
                    break
            elif available < 0:
                break
        else:
            limit = account.max_balance
            if amount == 0 or balance > int64_max or (limit is not None and balance > limit):
                break
            credited = credits.get(posting.asset, 0) + amount
            if credited > int64_max:
                break
            credits[posting.asset] = credited
        sums[posting.asset] = sums.get(posting.asset, 0) + amount
        posted.append(Posted(name, posting.asset, amount))
        balances.append(BalanceChanged(name, posting.asset, balance, account.held))
    else:
        for total in sums.values():
            if total != 0:
                return decide_transfer_ordered(state, tx, key, op, now_ms)
        return Accepted(tx, now_ms, (*posted, *balances), state.revision)
    return decide_transfer_ordered(state, tx, key, op, now_ms)


def authority_rejection(
    state: State,
    tx: Tx,
    key: Key,
    debits: list[tuple[str, int]],
    credited: list[str],
) -> Rejected | None:
    """Whether the signers may debit these accounts, in precedence order; None if they may.

    ``debits`` are (account, amount debited, positive) and ``credited`` the accounts the money
    goes to. An account without a policy needs a signer that owns it (UNAUTHORIZED); one with a
    policy needs enough of the policy's keys among the signers (TOO_FEW_SIGNATURES), a debit
    within its maximum (OVER_POLICY_LIMIT) and only allowed counterparties
    (COUNTERPARTY_NOT_ALLOWED). Each check covers every debit before the next one starts.
    """
    accounts = state.accounts
    policies = []
    signers = [key, *(state.keys[cosigner_id] for cosigner_id, _ in tx.cosigners)]
    for name, amount in debits:
        account = accounts.get(name)
        policy = account.policy if account is not None else None
        if policy is None:
            if not any(name in signer.accounts for signer in signers):
                detail = (
                    f"none of the signing keys owns debited account {name}"
                    if tx.cosigners
                    else f"key {tx.key_id} does not own debited account {name}"
                )
                return Rejected(RejectionCode.UNAUTHORIZED, detail)
        else:
            policies.append((name, amount, policy))
        if (
            account is not None
            and _capped_issuer(state, account) is not None
            and not any(ISSUER_ROLE in signer.roles for signer in signers)
        ):
            return Rejected(
                RejectionCode.UNAUTHORIZED,
                f"issuing {account.asset} (capped) needs a signing key with the issuer role",
            )
    signed = {tx.key_id, *(cosigner_id for cosigner_id, _ in tx.cosigners)}
    for name, amount, policy in policies:
        required = policy.required(amount)
        approved = len(signed & policy.key_ids)
        if approved < required:
            return Rejected(
                RejectionCode.TOO_FEW_SIGNATURES,
                f"account {name} needs {required} of its {len(policy.key_ids)} policy keys "
                f"to debit {amount}; {approved} signed",
            )
    for name, amount, policy in policies:
        if policy.max_amount is not None and amount > policy.max_amount:
            return Rejected(
                RejectionCode.OVER_POLICY_LIMIT,
                f"account {name} may pay at most {policy.max_amount} in one transaction, "
                f"not {amount}",
            )
    for name, _, policy in policies:
        if policy.counterparties:
            for payee in credited:
                if payee not in policy.counterparties:
                    return Rejected(
                        RejectionCode.COUNTERPARTY_NOT_ALLOWED,
                        f"account {name} may not pay {payee} (not among its counterparties)",
                    )
    return None


def decide_transfer_ordered(
    state: State, tx: Tx, key: Key, op: Transfer, now_ms: int
) -> Accepted | Rejected:
    """The Transfer checks one at a time, in precedence order (the reference for the fast pass)."""
    postings = op.postings
    debits = [(posting.account, -posting.amount) for posting in postings if posting.amount < 0]
    credited = [posting.account for posting in postings if posting.amount > 0]
    refused = authority_rejection(state, tx, key, debits, credited)
    if refused is not None:
        return refused
    count = len(postings)
    if count < postings_min_count or count > postings_max_count:
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            f"{count} postings, not {postings_min_count}..{postings_max_count}",
        )
    if len({posting.account for posting in postings}) != count:
        return Rejected(RejectionCode.INVALID_OPERATION, "an account appears twice")
    known = state.accounts
    accounts: list[Account] = []
    for posting in postings:
        account = known.get(posting.account)
        if account is None:
            return Rejected(
                RejectionCode.UNKNOWN_ACCOUNT, f"account {posting.account} does not exist"
            )
        accounts.append(account)
    assets = state.assets
    for posting in postings:
        if posting.asset not in assets:
            return Rejected(RejectionCode.UNKNOWN_ASSET, f"asset {posting.asset} is not defined")
    for account in accounts:
        if account.status is not _ACTIVE:
            return _status_rejection(postings, accounts)
    for posting, account in zip(postings, accounts, strict=True):
        if account.asset != posting.asset:
            return Rejected(
                RejectionCode.ASSET_MISMATCH,
                f"account {posting.account} holds {account.asset}, not {posting.asset}",
            )
    for posting in postings:
        if posting.amount == 0:
            return Rejected(RejectionCode.INVALID_AMOUNT, f"zero posting to {posting.account}")
    # Credits of an asset summing to at most int64_max keep every partial sum of its (balanced)
    # postings inside int64 in any order, so an int64 consumer can add them up as it likes.
    out_of_range = False
    sums: dict[str, int] = {}
    credits: dict[str, int] = {}
    for posting in postings:
        amount = posting.amount
        sums[posting.asset] = sums.get(posting.asset, 0) + amount
        if amount > 0:
            credits[posting.asset] = credits.get(posting.asset, 0) + amount
        if not int64_min <= amount <= int64_max:
            out_of_range = True
    if any(credited > int64_max for credited in credits.values()):
        out_of_range = True
    for asset, total in sums.items():
        if total != 0:
            return Rejected(RejectionCode.UNBALANCED, f"postings of {asset} sum to {total}")
    for posting, account in zip(postings, accounts, strict=True):
        if (
            posting.amount < 0
            and not account.allow_negative
            and account.balance - account.held + posting.amount < 0
        ):
            return Rejected(
                RejectionCode.INSUFFICIENT_FUNDS,
                f"account {posting.account} has {account.balance - account.held} available, "
                f"needs {-posting.amount}",
            )
    for posting, account in zip(postings, accounts, strict=True):
        if posting.amount < 0 and (
            refused := _issuance_rejection(state, account, account.held - posting.amount)
        ):
            return refused
    for posting, account in zip(postings, accounts, strict=True):
        limit = account.max_balance
        if posting.amount > 0 and limit is not None and account.balance + posting.amount > limit:
            return Rejected(
                RejectionCode.LIMIT_EXCEEDED,
                f"account {posting.account} would hold {account.balance + posting.amount}, "
                f"above its maximum {limit}",
            )
    for posting, account in zip(postings, accounts, strict=True):
        balance = account.balance + posting.amount
        if balance > int64_max or balance - account.held < int64_min:
            out_of_range = True
    if out_of_range:
        return Rejected(RejectionCode.OVERFLOW, "a balance or a sum of postings leaves int64")
    effects: list[Effect] = [Posted(p.account, p.asset, p.amount) for p in postings]
    for posting, account in zip(postings, accounts, strict=True):
        effects.append(
            BalanceChanged(
                posting.account, posting.asset, account.balance + posting.amount, account.held
            )
        )
    return Accepted(tx, now_ms, tuple(effects), state.revision)


def _capped_issuer(state: State, account: Account) -> int | None:
    """The issuance cap when ``account`` is the issuer account of a capped asset, else None."""
    if not account.allow_negative:
        return None
    asset = state.assets.get(account.asset)
    return None if asset is None else asset.issuance_cap


def _issuance_rejection(state: State, account: Account, held: int) -> Rejected | None:
    """ISSUANCE_CAP_EXCEEDED when the issuer ``account`` of a capped asset would have more
    than the cap outstanding with ``held`` reserved (outstanding = -(balance - held): money
    issued or promised by an open hold)."""
    cap = _capped_issuer(state, account)
    if cap is None:
        return None
    outstanding = held - account.balance
    if outstanding <= cap:
        return None
    return Rejected(
        RejectionCode.ISSUANCE_CAP_EXCEEDED,
        f"{account.asset} would have {outstanding} outstanding, above its issuance cap {cap}",
    )


def _status_rejection(postings: tuple[Posting, ...], accounts: list[Account]) -> Rejected:
    """ACCOUNT_CLOSED if any posting's account is closed, else ACCOUNT_FROZEN."""
    pairs = list(zip(postings, accounts, strict=True))
    for posting, account in pairs:
        if account.status is _CLOSED:
            return Rejected(RejectionCode.ACCOUNT_CLOSED, f"account {posting.account} is closed")
    for posting, account in pairs:
        if account.status is not _ACTIVE:
            return Rejected(RejectionCode.ACCOUNT_FROZEN, f"account {posting.account} is frozen")
    raise AssertionError("_status_rejection called with only active accounts")


def _accounts_status_rejection(
    names: tuple[str, ...], accounts: tuple[Account, ...]
) -> Rejected | None:
    for name, account in zip(names, accounts, strict=True):
        if account.status is _CLOSED:
            return Rejected(RejectionCode.ACCOUNT_CLOSED, f"account {name} is closed")
    for name, account in zip(names, accounts, strict=True):
        if account.status is not _ACTIVE:
            return Rejected(RejectionCode.ACCOUNT_FROZEN, f"account {name} is frozen")
    return None


def decide_hold(state: State, tx: Tx, key: Key, op: Hold, now_ms: int) -> Accepted | Rejected:
    """Reserve ``amount`` of the payer's available funds for the payee until ``expires_at_ms``."""
    hold_id = tx.body.tx_id
    refused = authority_rejection(state, tx, key, [(op.payer, op.amount)], [op.payee])
    if refused is not None:
        return refused
    if op.payer == op.payee:
        return Rejected(RejectionCode.INVALID_OPERATION, "payer and payee are the same account")
    if op.expires_at_ms <= now_ms:
        return Rejected(
            RejectionCode.INVALID_OPERATION,
            f"hold expires at {op.expires_at_ms} ms, not after now ({now_ms} ms)",
        )
    if hold_id in state.holds:
        return Rejected(RejectionCode.ALREADY_EXISTS, f"hold {hold_id.hex()} already exists")
    payer = state.accounts.get(op.payer)
    payee = state.accounts.get(op.payee)
    if payer is None or payee is None:
        missing = op.payer if payer is None else op.payee
        return Rejected(RejectionCode.UNKNOWN_ACCOUNT, f"account {missing} does not exist")
    if op.asset not in state.assets:
        return Rejected(RejectionCode.UNKNOWN_ASSET, f"asset {op.asset} is not defined")
    refused = _accounts_status_rejection((op.payer, op.payee), (payer, payee))
    if refused is not None:
        return refused
    for name, account in ((op.payer, payer), (op.payee, payee)):
        if account.asset != op.asset:
            return Rejected(
                RejectionCode.ASSET_MISMATCH,
                f"account {name} holds {account.asset}, not {op.asset}",
            )
    amount = op.amount
    if amount <= 0:
        return Rejected(RejectionCode.INVALID_AMOUNT, f"hold amount {amount} is not positive")
    if not payer.allow_negative and payer.balance - payer.held < amount:
        return Rejected(
            RejectionCode.INSUFFICIENT_FUNDS,
            f"account {op.payer} has {payer.balance - payer.held} available, needs {amount}",
        )
    held = payer.held + amount
    if refused := _issuance_rejection(state, payer, held):
        return refused
    if amount > int64_max or held > int64_max or payer.balance - held < int64_min:
        return Rejected(RejectionCode.OVERFLOW, f"held amount of {op.payer} would leave int64")
    effects = (
        BalanceChanged(op.payer, op.asset, payer.balance, held),
        HoldOpened(hold_id, op.payer, op.payee, op.asset, amount, op.expires_at_ms, tx.key_id),
    )
    return Accepted(tx, now_ms, effects, state.revision)


def _find_hold(state: State, hold_id: bytes) -> HoldRecord | Rejected:
    hold = state.holds.get(hold_id)
    if hold is None:
        return Rejected(RejectionCode.HOLD_NOT_FOUND, f"hold {hold_id.hex()} does not exist")
    return hold


def _hold_state_rejection(hold: HoldRecord, hold_id: bytes, now_ms: int) -> Rejected | None:
    # An open hold past its expiry counts as expired even before begin_block releases it.
    if hold.status is _EXPIRED or (hold.status is _OPEN and hold.expires_at_ms < now_ms):
        return Rejected(
            RejectionCode.HOLD_EXPIRED, f"hold {hold_id.hex()} expired at {hold.expires_at_ms} ms"
        )
    if hold.status is not _OPEN:
        return Rejected(
            RejectionCode.HOLD_ALREADY_RESOLVED,
            f"hold {hold_id.hex()} is already {hold.status.value}",
        )
    return None


def decide_capture(state: State, tx: Tx, key: Key, op: Capture, now_ms: int) -> Accepted | Rejected:
    """Move all (amount None) or part of a hold from payer to payee and release the rest.

    The payee's owner or the key that created the hold may capture. A partial capture resolves
    the hold: the remainder goes back to the payer's available funds.
    """
    found = _find_hold(state, op.hold_id)
    if isinstance(found, Rejected):
        return found
    hold = found
    if hold.payee not in key.accounts and tx.key_id != hold.creator_key_id:
        return Rejected(
            RejectionCode.UNAUTHORIZED,
            f"key {tx.key_id} neither owns payee {hold.payee} nor created the hold",
        )
    refused = _hold_state_rejection(hold, op.hold_id, now_ms)
    if refused is not None:
        return refused
    amount = hold.amount if op.amount is None else op.amount
    if amount <= 0:
        return Rejected(RejectionCode.INVALID_AMOUNT, f"capture amount {amount} is not positive")
    if amount > hold.amount:
        return Rejected(
            RejectionCode.CAPTURE_EXCEEDS_HOLD, f"capture {amount} exceeds hold {hold.amount}"
        )
    payer = state.accounts[hold.payer]
    payee = state.accounts[hold.payee]
    refused = _accounts_status_rejection((hold.payer, hold.payee), (payer, payee))
    if refused is not None:
        return refused
    payee_balance = payee.balance + amount
    if payee.max_balance is not None and payee_balance > payee.max_balance:
        return Rejected(
            RejectionCode.LIMIT_EXCEEDED,
            f"account {hold.payee} would hold {payee_balance}, above its maximum "
            f"{payee.max_balance}",
        )
    payer_balance = payer.balance - amount
    payer_held = payer.held - hold.amount
    if payee_balance > int64_max or payer_balance - payer_held < int64_min:
        return Rejected(RejectionCode.OVERFLOW, "a balance would leave int64")
    effects = (
        Posted(hold.payer, hold.asset, -amount),
        Posted(hold.payee, hold.asset, amount),
        BalanceChanged(hold.payer, hold.asset, payer_balance, payer_held),
        BalanceChanged(hold.payee, hold.asset, payee_balance, payee.held),
        HoldResolved(op.hold_id, HoldStatus.CAPTURED, amount),
    )
    return Accepted(tx, now_ms, effects, state.revision)


def decide_void(state: State, tx: Tx, key: Key, op: Void, now_ms: int) -> Accepted | Rejected:
    """Release a hold without moving money; the payer's or payee's owner or its creator may."""
    found = _find_hold(state, op.hold_id)
    if isinstance(found, Rejected):
        return found
    hold = found
    owned = key.accounts
    if hold.payer not in owned and hold.payee not in owned and tx.key_id != hold.creator_key_id:
        return Rejected(
            RejectionCode.UNAUTHORIZED,
            f"key {tx.key_id} owns neither party of the hold and did not create it",
        )
    refused = _hold_state_rejection(hold, op.hold_id, now_ms)
    if refused is not None:
        return refused
    payer = state.accounts[hold.payer]
    effects = (
        BalanceChanged(hold.payer, hold.asset, payer.balance, payer.held - hold.amount),
        HoldResolved(op.hold_id, HoldStatus.VOIDED, 0),
    )
    return Accepted(tx, now_ms, effects, state.revision)
