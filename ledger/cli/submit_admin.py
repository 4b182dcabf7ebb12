"""``ledger submit`` admin operations: assets and accounts, keys (and their rotation), the
finality policy, account policies, issuance caps and account metadata.

Signed by a key with the admin role, published and awaited like every ``ledger submit``
operation (``ledger.cli.submit``), and refused by the ledger when the key is no admin.
"""

from __future__ import annotations

from typing import Any

import click

from ledger import signing
from ledger.cli.chain import hex_option_callback, parse_hex
from ledger.cli.submit import Common, parse_metadata, submit, submit_operation, submit_options
from ledger.model import (
    AccountStatus,
    DefineAsset,
    OpenAccount,
    RegisterKey,
    RevokeKey,
    Role,
    SetAccountMetadata,
    SetAccountPolicy,
    SetAccountStatus,
    SetFinality,
    SetIssuanceCap,
    UpdateKey,
)


@submit.command("register-key")
@click.option(
    "--public-key",
    required=True,
    callback=hex_option_callback(signing.public_key_bytes, "--public-key"),
    help="The new key's Ed25519 public key (64 hex digits).",
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice([role.value for role in Role]),
    help="A role of the key (repeat for several): admin, sealer, witness, operator (freezes and "
    "unfreezes accounts), auditor (attests; no other role, no account), issuer (issues an asset "
    "that has an issuance cap).",
)
@click.option("--account", "accounts", multiple=True, help="An account the key may spend from.")
@submit_options
def register_key(
    public_key: bytes, roles: tuple[str, ...], accounts: tuple[str, ...], **arguments: Any
) -> None:
    """Register a key (admin only): its roles and the accounts it may spend from."""
    submit_operation(Common.pop_from(arguments), RegisterKey(public_key, roles, accounts))


@submit.command("revoke-key")
@click.option("--key-id", required=True, help="The key's id (32 hex digits).")
@submit_options
def revoke_key(key_id: str, **arguments: Any) -> None:
    """Revoke a key for good (admin only): it signs nothing after this block."""
    submit_operation(Common.pop_from(arguments), RevokeKey(key_id))


@submit.command("update-key")
@click.option("--key-id", required=True, help="The key's id (32 hex digits).")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="An account the key (or its successor) owns from now on (repeat; none: no account).",
)
@click.option(
    "--successor",
    default=None,
    callback=hex_option_callback(signing.public_key_bytes, "--successor"),
    help="Rotate: this public key (64 hex digits) takes over the key's roles, the accounts and "
    "its account-policy seats, and the key is revoked, in one transaction.",
)
@submit_options
def update_key(
    key_id: str, accounts: tuple[str, ...], successor: bytes | None, **arguments: Any
) -> None:
    """Change the accounts a key owns, or rotate it to a successor (admin only)."""
    key_id = parse_hex(key_id, 16, "--key-id").hex()
    submit_operation(Common.pop_from(arguments), UpdateKey(key_id, accounts, successor))


@submit.command("set-finality")
@click.option(
    "--threshold",
    required=True,
    type=click.IntRange(min=0),
    help="Registered witnesses that must co-sign a block for it to be final (0: final when sealed).",
)
@submit_options
def set_finality(threshold: int, **arguments: Any) -> None:
    """Set the ledger's finality policy (admin only; at most the registered witnesses)."""
    submit_operation(Common.pop_from(arguments), SetFinality(threshold))


def _key_ids(context: click.Context, parameter: click.Parameter, values: tuple[str, ...]) -> Any:
    """Key ids as the ledger spells them: 32 lowercase hex digits."""
    return tuple(parse_hex(value, 16, "--policy-key").hex() for value in values)


@submit.command("set-policy")
@click.option("--account", required=True, help="The account whose debits the policy governs.")
@click.option(
    "--policy-key",
    "key_ids",
    multiple=True,
    metavar="KEY_ID",
    callback=_key_ids,
    help="A key whose signature counts (32 hex digits, `ledger key-info`); repeat for each.",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    help="How many of the policy keys must sign a debit of the account.",
)
@click.option(
    "--high-threshold",
    type=click.IntRange(min=2),
    help="How many must sign a debit above --high-amount (dual control for large payments).",
)
@click.option(
    "--high-amount",
    type=click.IntRange(min=1),
    help="Debits above this (minor units) need --high-threshold signatures.",
)
@click.option(
    "--max-amount",
    type=click.IntRange(min=1),
    help="Largest debit of one transaction (minor units); above it: OVER_POLICY_LIMIT.",
)
@click.option(
    "--counterparty",
    "counterparties",
    multiple=True,
    metavar="ACCOUNT",
    help="An account the money may go to (repeat; default: any account).",
)
@click.option(
    "--remove",
    is_flag=True,
    help="Remove the account's policy: the keys that own it debit it alone again.",
)
@submit_options
def set_policy(
    account: str,
    key_ids: tuple[str, ...],
    threshold: int | None,
    high_threshold: int | None,
    high_amount: int | None,
    max_amount: int | None,
    counterparties: tuple[str, ...],
    remove: bool,
    **arguments: Any,
) -> None:
    """Set who must sign an account's debits, how much one may be and to whom (admin only).

    With a policy, THRESHOLD of the policy keys must be among a debit's signers (the keys that
    own the account no longer suffice); the ledger refuses what the policy does not allow
    (TOO_FEW_SIGNATURES, OVER_POLICY_LIMIT, COUNTERPARTY_NOT_ALLOWED).
    """
    common = Common.pop_from(arguments)
    numbers = (threshold, high_threshold, high_amount, max_amount)
    if remove:
        if key_ids or counterparties or any(number is not None for number in numbers):
            raise click.UsageError("--remove takes no other policy option")
        submit_operation(common, SetAccountPolicy(account, (), 0))
        return
    if not key_ids or threshold is None:
        raise click.UsageError("give --policy-key (once or more) and --threshold, or --remove")
    if (high_threshold is None) != (high_amount is None):
        raise click.UsageError("--high-threshold and --high-amount go together")
    policy = SetAccountPolicy(
        account, key_ids, threshold, high_threshold, high_amount, max_amount, counterparties
    )
    submit_operation(common, policy)


@submit.command("set-issuance-cap")
@click.option("--asset", required=True, help="The asset whose issuance the cap bounds.")
@click.option(
    "--cap",
    type=click.IntRange(min=0),
    help="Most that may be outstanding (minor units): what the issuer account may be below 0.",
)
@click.option("--remove", is_flag=True, help="Remove the cap: issuance is unbounded again.")
@submit_options
def set_issuance_cap(asset: str, cap: int | None, remove: bool, **arguments: Any) -> None:
    """Bound an asset's outstanding issuance (admin only). While capped, only keys with the
    issuer role issue it (``--role issuer``), and never beyond the cap."""
    if (cap is None) != remove:
        raise click.UsageError("give --cap N or --remove")
    submit_operation(Common.pop_from(arguments), SetIssuanceCap(asset, cap))


@submit.command("set-metadata")
@click.option("--account", required=True, help="The account whose metadata is replaced.")
@click.argument("items", nargs=-1, metavar="KEY=VALUE...")
@submit_options
def set_metadata(account: str, items: tuple[str, ...], **arguments: Any) -> None:
    """Replace an account's metadata (admin only; none given: clear it)."""
    metadata = parse_metadata(items, "KEY=VALUE")
    submit_operation(Common.pop_from(arguments), SetAccountMetadata(account, metadata))


@submit.command("define-asset")
@click.option("--asset", required=True, help="The asset's name.")
@click.option(
    "--scale",
    required=True,
    type=click.IntRange(0, 18),
    help="Decimal places of the minor unit (2: amounts are hundredths).",
)
@click.option(
    "--issuer-account",
    required=True,
    help="The account it is issued from (opened with it; it may go below zero).",
)
@submit_options
def define_asset(asset: str, scale: int, issuer_account: str, **arguments: Any) -> None:
    """Define an asset and open its issuer account (admin only)."""
    submit_operation(Common.pop_from(arguments), DefineAsset(asset, scale, issuer_account))


@submit.command("open-account")
@click.option("--account", required=True, help="The new account's name.")
@click.option("--asset", required=True, help="The one asset it holds.")
@click.option("--max-balance", type=click.IntRange(min=0), help="Credits above this are refused.")
@submit_options
def open_account(account: str, asset: str, max_balance: int | None, **arguments: Any) -> None:
    """Open an account (admin only); --meta KEY=VALUE becomes the account's metadata."""
    submit_operation(Common.pop_from(arguments), OpenAccount(account, asset, max_balance))


@submit.command("set-status")
@click.option("--account", required=True, help="The account.")
@click.argument("status", type=click.Choice([status.value.lower() for status in AccountStatus]))
@submit_options
def set_status(account: str, status: str, **arguments: Any) -> None:
    """Freeze, unfreeze (active) or close an account: admin, or an operator key for freezing
    and unfreezing."""
    op = SetAccountStatus(account, AccountStatus(status.upper()))
    submit_operation(Common.pop_from(arguments), op)
