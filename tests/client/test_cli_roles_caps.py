"""Roles and issuance caps on the real stack, through ``ledger submit``: an operator freezes
and unfreezes but does nothing else an admin does; an auditor attests and nothing more; an
admin defines assets and opens accounts; while an asset is capped only the issuer role issues
it, never beyond the cap (open holds from the issuer account count), and ``analytics.v_issuance``
shows cap, outstanding and room. Every test opens its own accounts, assets and keys."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.accounts import (
    Party,
    concurrently,
    new_key,
    open_parties,
    pay_cli,
    publish_stages,
    query,
    refused_with,
    sealed,
    submit_cli,
    unique,
)
from support.cli import assert_one_line_error
from support.ledger_fixture import LEDGER, TestLedger
from support.waiting import eventually_sync

from ledger.model import DefineAsset, OpenAccount, RegisterKey
from ledger.settings import Settings

pytestmark = pytest.mark.services

funding_amount = 1_000
cap_amount = 1_000
hold_expiry_s = 600
"""Far beyond the test: the hold is voided, never expired."""


@dataclass(frozen=True)
class Staff:
    """A funded account, an empty one, and keys with one role each that own nothing."""

    payer: Party
    empty: Party
    operator_key: Path
    auditor_key: Path
    auditor_id: str


@pytest.fixture
def staff(settings: Settings, test_ledger: TestLedger, tmp_path: Path) -> Staff:
    payer, empty = open_parties(
        settings, test_ledger, tmp_path, {"staff-payer": funding_amount, "staff-empty": 0}
    )
    operator_key, operator = new_key(test_ledger, tmp_path, unique("operator"))
    auditor_key, auditor = new_key(test_ledger, tmp_path, unique("auditor"))
    admin = test_ledger.signer("admin")
    publish_stages(
        settings,
        test_ledger,
        [
            [
                (admin, RegisterKey(operator.public_key, ("operator",), ())),
                (admin, RegisterKey(auditor.public_key, ("auditor",), ())),
            ]
        ],
    )
    return Staff(payer, empty, operator_key, auditor_key, auditor.key_id)


@dataclass(frozen=True)
class IssuedAsset:
    """A new asset (scale 2), an account of it, and keys: ``owner_key`` owns the issuer account
    without a role, ``issuer_key`` owns it with the issuer role, ``cosigner_key`` has the issuer
    role and owns nothing, ``holder_key`` owns the holder account."""

    asset: str
    issuer_account: str
    holder: str
    owner_key: Path
    issuer_key: Path
    cosigner_key: Path
    holder_key: Path


@pytest.fixture
def issued(settings: Settings, test_ledger: TestLedger, tmp_path: Path) -> IssuedAsset:
    asset = unique("CAP").upper()
    issuer_account = f"{asset.lower()}.issuer"
    holder = unique("holder")
    keys = {
        name: new_key(test_ledger, tmp_path, f"{asset}-{name}")
        for name in ("owner", "issuer", "cosigner", "holder")
    }
    admin = test_ledger.signer("admin")

    def register(name: str, roles: tuple[str, ...], accounts: tuple[str, ...]) -> RegisterKey:
        return RegisterKey(keys[name][1].public_key, roles, accounts)

    publish_stages(
        settings,
        test_ledger,
        [
            [(admin, DefineAsset(asset, 2, issuer_account))],
            [(admin, OpenAccount(holder, asset))],
            [
                (admin, register("owner", (), (issuer_account,))),
                (admin, register("issuer", ("issuer",), (issuer_account,))),
                (admin, register("cosigner", ("issuer",), ())),
                (admin, register("holder", (), (holder,))),
            ],
        ],
    )
    return IssuedAsset(
        asset, issuer_account, holder,
        keys["owner"][0], keys["issuer"][0], keys["cosigner"][0], keys["holder"][0],
    )  # fmt: skip


def admin_submit(ledger: TestLedger, command: str, *arguments: str) -> dict[str, object]:
    """An admin operation through the CLI that must be sealed."""
    return sealed(submit_cli(ledger, command, *arguments, keys=[ledger.key_file("admin")]))


def set_cap(ledger: TestLedger, asset: str, cap: int | None) -> None:
    """``ledger submit set-issuance-cap`` by the admin: --cap N, or --remove for None."""
    given = ("--cap", str(cap)) if cap is not None else ("--remove",)
    admin_submit(ledger, "set-issuance-cap", "--asset", asset, *given)


def issue(
    ledger: TestLedger, issued: IssuedAsset, keys: list[Path], amount: int
) -> subprocess.CompletedProcess[str]:
    return pay_cli(ledger, keys, issued.issuer_account, issued.holder, issued.asset, amount)


def account_status(settings: Settings, account: str) -> list[str]:
    rows = query(
        settings,
        "select status from analytics.accounts where ledger = $1 and account = $2",
        LEDGER,
        account,
    )
    return [row["status"] for row in rows]


def issuance(settings: Settings, asset: str) -> tuple[object, ...] | None:
    """(issuance_cap, outstanding, room) of ``asset`` in ``analytics.v_issuance``."""
    rows = query(
        settings,
        "select issuance_cap, outstanding, room from analytics.v_issuance "
        "where ledger = $1 and asset = $2",
        LEDGER,
        asset,
    )
    return tuple(rows[0]) if rows else None


def issuance_becomes(settings: Settings, asset: str, expected: tuple[object, ...]) -> None:
    eventually_sync(
        lambda: issuance(settings, asset),
        lambda seen: seen == expected,
        what=f"v_issuance of {asset} at (cap, outstanding, room) = {expected}",
    )


def test_an_operator_freezes_and_unfreezes(
    settings: Settings, test_ledger: TestLedger, staff: Staff
) -> None:
    """An operator key that owns nothing freezes an account (its payments are ACCOUNT_FROZEN,
    the view says frozen) and makes it active again (it pays again)."""
    operator = [staff.operator_key]
    account = staff.payer.account
    sealed(submit_cli(test_ledger, "set-status", "--account", account, "frozen", keys=operator))
    payment = (staff.payer.account, staff.empty.account, "USD", 10)
    refused_with(pay_cli(test_ledger, [staff.payer.key_file], *payment), "ACCOUNT_FROZEN")
    eventually_sync(
        lambda: account_status(settings, account),
        lambda seen: seen == ["frozen"],
        what=f"{account} frozen in analytics.accounts",
    )
    sealed(submit_cli(test_ledger, "set-status", "--account", account, "active", keys=operator))
    sealed(pay_cli(test_ledger, [staff.payer.key_file], *payment))


def test_an_operator_neither_closes_nor_administers(
    settings: Settings, test_ledger: TestLedger, staff: Staff
) -> None:
    """Closing takes an admin (the operator is UNAUTHORIZED, the admin closes the same empty
    account), and so do opening accounts, setting metadata and registering keys."""
    empty = staff.empty.account
    never_opened = unique("by-operator")
    refusals = [
        ("set-status", "--account", empty, "closed"),
        ("open-account", "--account", never_opened, "--asset", "USD"),
        ("set-metadata", "--account", staff.payer.account, "owner=operator"),
        ("register-key", "--public-key", os.urandom(32).hex()),
    ]
    results = concurrently(
        *(
            functools.partial(submit_cli, test_ledger, *refusal, keys=[staff.operator_key])
            for refusal in refusals
        )
    )
    for result in results:
        assert "needs an admin key" in refused_with(result, "UNAUTHORIZED")
    admin_submit(test_ledger, "set-status", "--account", empty, "closed")
    eventually_sync(
        lambda: account_status(settings, empty),
        lambda seen: seen == ["closed"],
        what=f"{empty} closed in analytics.accounts",
    )
    assert account_status(settings, never_opened) == []


def test_an_auditor_attests_and_does_nothing_else(
    settings: Settings, test_ledger: TestLedger, staff: Staff
) -> None:
    """An auditor key attests a digest (projected under its key_id) and is UNAUTHORIZED for
    admin operations, freezing included."""
    digest = os.urandom(32)
    commands = [
        ("attest", "--digest", digest.hex()),
        ("set-status", "--account", staff.payer.account, "frozen"),
        ("open-account", "--account", unique("by-auditor"), "--asset", "USD"),
    ]
    attested, *refused = concurrently(
        *(
            functools.partial(submit_cli, test_ledger, *command, keys=[staff.auditor_key])
            for command in commands
        )
    )
    outcome = sealed(attested)
    for result in refused:
        refused_with(result, "UNAUTHORIZED")
    [row] = eventually_sync(
        lambda: query(
            settings,
            "select key_id, tx_id from analytics.attestations where ledger = $1 and digest = $2",
            LEDGER,
            digest,
        ),
        what="the auditor's attestation projected",
    )
    assert (row["key_id"], row["tx_id"].hex()) == (staff.auditor_id, outcome["tx_id"])


def test_an_auditor_key_has_no_other_role_and_owns_no_account(
    settings: Settings, test_ledger: TestLedger, staff: Staff
) -> None:
    """RegisterKey --role auditor with an account or with a second role is INVALID_OPERATION;
    alone (the fixture's auditor) it is registered with exactly that role."""
    invalid = [
        ("--role", "auditor", "--account", staff.empty.account),
        ("--role", "auditor", "--role", "operator"),
    ]
    admin = [test_ledger.key_file("admin")]
    results = concurrently(
        *(
            functools.partial(
                submit_cli,
                test_ledger,
                "register-key",
                "--public-key",
                os.urandom(32).hex(),
                *options,
                keys=admin,
            )  # fmt: skip
            for options in invalid
        )
    )
    for result in results:
        assert "auditor" in refused_with(result, "INVALID_OPERATION")
    [row] = eventually_sync(
        lambda: query(
            settings,
            "select roles, accounts from ledger.keys where ledger = $1 and key_id = $2",
            LEDGER,
            staff.auditor_id,
        ),
        what="the auditor key projected",
    )
    assert (row["roles"], row["accounts"]) == (["auditor"], [])


def test_an_admin_defines_an_asset_and_opens_accounts(
    settings: Settings, test_ledger: TestLedger, tmp_path: Path
) -> None:
    """define-asset and open-account --max-balance show in analytics.assets and .accounts;
    without a cap a key that owns the issuer account issues it, no role needed, up to the
    holder's max balance (LIMIT_EXCEEDED beyond, whichever of the two is sequenced first)."""
    asset = unique("DEF").upper()
    issuer_account, holder = f"{asset.lower()}.issuer", unique("capped-holder")
    admin_submit(
        test_ledger, "define-asset", "--asset", asset, "--scale", "3",
        "--issuer-account", issuer_account,
    )  # fmt: skip
    issuer_key, issuer = new_key(test_ledger, tmp_path, f"{asset}-owner")
    opened_and_registered = concurrently(
        functools.partial(
            admin_submit, test_ledger, "open-account", "--account", holder, "--asset", asset,
            "--max-balance", "500",
        ),
        functools.partial(
            admin_submit, test_ledger, "register-key", "--public-key", issuer.public_key.hex(),
            "--account", issuer_account,
        ),
    )  # fmt: skip
    assert len(opened_and_registered) == 2
    full, beyond = concurrently(
        functools.partial(pay_cli, test_ledger, [issuer_key], issuer_account, holder, asset, 500),
        functools.partial(pay_cli, test_ledger, [issuer_key], issuer_account, holder, asset, 501),
    )
    sealed(full)
    refused_with(beyond, "LIMIT_EXCEEDED")
    [defined] = query(
        settings,
        "select scale, issuer_account, issuance_cap from analytics.assets "
        "where ledger = $1 and asset = $2",
        LEDGER,
        asset,
    )
    assert tuple(defined) == (3, issuer_account, None)
    [opened] = query(
        settings,
        "select asset, status, max_balance, allow_negative from analytics.accounts "
        "where ledger = $1 and account = $2",
        LEDGER,
        holder,
    )
    assert tuple(opened) == (asset, "active", 500, False)
    issuance_becomes(settings, asset, (None, 500, None))


def test_a_capped_asset_is_issued_by_the_issuer_role_within_the_cap(
    settings: Settings, test_ledger: TestLedger, issued: IssuedAsset
) -> None:
    """Once capped, the issuer account's owner without the issuer role is UNAUTHORIZED; the
    issuer key issues up to the cap exactly, beyond it is ISSUANCE_CAP_EXCEEDED; a redemption
    makes room again. The views show the cap, outstanding and room."""
    set_cap(test_ledger, issued.asset, cap_amount)
    issuer = [issued.issuer_key]
    unauthorized, first = concurrently(
        functools.partial(issue, test_ledger, issued, [issued.owner_key], 1),
        functools.partial(issue, test_ledger, issued, issuer, 600),
    )
    assert "issuer role" in refused_with(unauthorized, "UNAUTHORIZED")
    sealed(first)
    # 600 + 400 is the cap; 401 more is beyond it before or after the 400.
    rest, beyond = concurrently(
        functools.partial(issue, test_ledger, issued, issuer, 400),
        functools.partial(issue, test_ledger, issued, issuer, 401),
    )
    sealed(rest)
    assert f"above its issuance cap {cap_amount}" in refused_with(beyond, "ISSUANCE_CAP_EXCEEDED")
    issuance_becomes(settings, issued.asset, (cap_amount, cap_amount, 0))
    [row] = query(
        settings,
        "select issuance_cap from analytics.assets where ledger = $1 and asset = $2",
        LEDGER,
        issued.asset,
    )
    assert row["issuance_cap"] == cap_amount
    refused_with(issue(test_ledger, issued, issuer, 1), "ISSUANCE_CAP_EXCEEDED")
    redemption = (issued.holder, issued.issuer_account, issued.asset, 100)
    sealed(pay_cli(test_ledger, [issued.holder_key], *redemption))
    issuance_becomes(settings, issued.asset, (cap_amount, cap_amount - 100, 100))
    sealed(issue(test_ledger, issued, issuer, 100))


def hold_from_issuer(
    ledger: TestLedger, issued: IssuedAsset, amount: int
) -> subprocess.CompletedProcess[str]:
    return submit_cli(
        ledger, "hold", "--payer", issued.issuer_account, "--payee", issued.holder,
        "--asset", issued.asset, "--amount", str(amount), "--expires-in-s", str(hold_expiry_s),
        keys=[issued.issuer_key],
    )  # fmt: skip


def test_a_hold_from_the_issuer_account_counts_as_outstanding(
    settings: Settings, test_ledger: TestLedger, issued: IssuedAsset
) -> None:
    """An open hold from the capped issuer account is outstanding: it leaves room for the rest
    of the cap only (issuing or holding more is ISSUANCE_CAP_EXCEEDED) until it is voided."""
    set_cap(test_ledger, issued.asset, cap_amount)
    issuer = [issued.issuer_key]
    held = sealed(hold_from_issuer(test_ledger, issued, 700))
    issuance_becomes(settings, issued.asset, (cap_amount, 700, 300))
    issued_more, held_more = concurrently(
        functools.partial(issue, test_ledger, issued, issuer, 301),
        functools.partial(hold_from_issuer, test_ledger, issued, 301),
    )
    refused_with(issued_more, "ISSUANCE_CAP_EXCEEDED")
    refused_with(held_more, "ISSUANCE_CAP_EXCEEDED")
    sealed(submit_cli(test_ledger, "void", "--hold", held["tx_id"], keys=issuer))
    sealed(issue(test_ledger, issued, issuer, cap_amount))


def test_an_issuer_cosigner_lets_the_owner_issue(
    settings: Settings, test_ledger: TestLedger, issued: IssuedAsset
) -> None:
    """The issuer role may come from a cosigner: the account's owner submits, a key with the
    issuer role that owns nothing cosigns, and the capped asset is issued; that key alone owns
    nothing to issue from (UNAUTHORIZED)."""
    set_cap(test_ledger, issued.asset, cap_amount)
    cosigned, alone = concurrently(
        functools.partial(issue, test_ledger, issued, [issued.owner_key, issued.cosigner_key], 10),
        functools.partial(issue, test_ledger, issued, [issued.cosigner_key], 10),
    )
    sealed(cosigned)
    refused_with(alone, "UNAUTHORIZED")


def test_a_removed_cap_lets_any_owner_issue_again(
    settings: Settings, test_ledger: TestLedger, issued: IssuedAsset
) -> None:
    """A removed cap: analytics shows no cap and no room, and the owner without the issuer
    role issues beyond the old cap."""
    set_cap(test_ledger, issued.asset, cap_amount)
    refused_with(issue(test_ledger, issued, [issued.owner_key], 1), "UNAUTHORIZED")
    set_cap(test_ledger, issued.asset, None)
    sealed(issue(test_ledger, issued, [issued.owner_key], cap_amount + 1))
    issuance_becomes(settings, issued.asset, (None, cap_amount + 1, None))


def test_set_issuance_cap_sets_and_removes_a_cap(
    settings: Settings, test_ledger: TestLedger, issued: IssuedAsset
) -> None:
    """set-issuance-cap --cap N is sealed and shows in analytics.assets; --remove clears it."""
    asset = ("--asset", issued.asset)
    admin_submit(test_ledger, "set-issuance-cap", *asset, "--cap", str(cap_amount))
    eventually_sync(
        lambda: issuance(settings, issued.asset),
        lambda seen: seen is not None and seen[0] == cap_amount,
        what=f"the cap of {issued.asset} projected",
    )
    admin_submit(test_ledger, "set-issuance-cap", *asset, "--remove")
    issuance_becomes(settings, issued.asset, (None, 0, None))


def test_set_issuance_cap_takes_a_cap_or_remove(test_ledger: TestLedger) -> None:
    """--cap and --remove together, or neither, is a one-line usage error. The assets do not
    exist: should the command publish anyway, the sequencer refuses it and no cap changes."""
    options = [("--cap", "5", "--remove"), ()]
    results = concurrently(
        *(
            functools.partial(
                submit_cli,
                test_ledger,
                "set-issuance-cap",
                "--asset",
                unique("NO-SUCH-ASSET"),
                *given,
                keys=[test_ledger.key_file("admin")],
            )  # fmt: skip
            for given in options
        )
    )
    for result in results:
        assert "give --cap N or --remove" in assert_one_line_error(result, 2)
