"""Metadata and cosigners on the real stack, through ``ledger submit``: --meta on a transfer is
projected to ``analytics.transactions.metadata`` and found with ``@>``; --meta on open-account
becomes the account's metadata, which set-metadata replaces; malformed metadata is a one-line
usage error before anything is published; a second --key shows as the transaction's cosigner.
Every test opens its own accounts and keys."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.accounts import (
    Party,
    balances_become,
    concurrently,
    new_key,
    open_parties,
    pay_cli,
    projected_transaction,
    publish_stages,
    query,
    sealed,
    submit_cli,
    unique,
)
from support.cli import assert_one_line_error
from support.ledger_fixture import LEDGER, TestLedger
from support.waiting import eventually_sync

from ledger import limits
from ledger.model import RegisterKey
from ledger.settings import Settings

pytestmark = pytest.mark.services

funding_amount = 1_000


@dataclass(frozen=True)
class Pair:
    """A funded payer and an empty payee."""

    payer: Party
    payee: Party


@pytest.fixture
def pair(settings: Settings, test_ledger: TestLedger, tmp_path: Path) -> Pair:
    payer, payee = open_parties(
        settings, test_ledger, tmp_path, {"meta-payer": funding_amount, "meta-payee": 0}
    )
    return Pair(payer, payee)


def meta_options(metadata: dict[str, str]) -> list[str]:
    return meta_options_of([f"{key}={value}" for key, value in metadata.items()])


def meta_options_of(items: list[str]) -> list[str]:
    return [option for item in items for option in ("--meta", item)]


def as_dict(jsonb: str | None) -> dict[str, Any] | None:
    """A jsonb column as asyncpg returns it (text) decoded."""
    return None if jsonb is None else dict(json.loads(jsonb))


def account_metadata(settings: Settings, account: str) -> list[dict[str, Any] | None]:
    rows = query(
        settings,
        "select metadata from analytics.accounts where ledger = $1 and account = $2",
        LEDGER,
        account,
    )
    return [as_dict(row["metadata"]) for row in rows]


def account_metadata_becomes(
    settings: Settings, account: str, expected: dict[str, str] | None
) -> None:
    eventually_sync(
        lambda: account_metadata(settings, account),
        lambda seen: seen == [expected],
        what=f"metadata of {account} projected as {expected}",
    )


def test_transfer_metadata_is_projected_and_queryable(
    settings: Settings, test_ledger: TestLedger, pair: Pair
) -> None:
    """--meta KEY=VALUE (repeated) on a transfer lands in analytics.transactions.metadata as
    jsonb, and ``metadata @> '{"batch": ...}'`` finds exactly that transaction."""
    metadata = {"batch": unique("batch"), "purpose": "rent = march", "empty": ""}
    outcome = sealed(
        pay_cli(
            test_ledger, [pair.payer.key_file], pair.payer.account, pair.payee.account, "USD", 10,
            *meta_options(metadata),
        )
    )  # fmt: skip
    row = projected_transaction(settings, outcome["tx_id"])
    assert as_dict(row["metadata"]) == metadata
    assert row["cosigners"] is None
    found = query(
        settings,
        "select tx_id from analytics.transactions where ledger = $1 and metadata @> $2::jsonb",
        LEDGER,
        json.dumps({"batch": metadata["batch"]}),
    )
    assert [record["tx_id"].hex() for record in found] == [outcome["tx_id"]]


def test_account_metadata_is_set_at_opening_and_replaced(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """open-account --meta: the account's metadata (and its transaction's); set-metadata
    replaces it as a whole (keys not given are gone); set-metadata with no items clears it."""
    admin = [test_ledger.key_file("admin")]
    account = unique("meta-account")
    opening = {"owner": "treasury", "region": "eu"}
    outcome = sealed(
        submit_cli(
            test_ledger, "open-account", "--account", account, "--asset", "USD",
            *meta_options(opening), keys=admin,
        )
    )  # fmt: skip
    account_metadata_becomes(settings, account, opening)
    assert as_dict(projected_transaction(settings, outcome["tx_id"])["metadata"]) == opening
    sealed(submit_cli(test_ledger, "set-metadata", "--account", account, "tier=gold", keys=admin))
    account_metadata_becomes(settings, account, {"tier": "gold"})
    sealed(submit_cli(test_ledger, "set-metadata", "--account", account, keys=admin))
    account_metadata_becomes(settings, account, {})


too_many = [f"key{index}=value" for index in range(limits.metadata_entries_max_count + 1)]
long_key = "k" * (limits.metadata_key_chars_max + 1) + "=value"
long_value = "key=" + "v" * (limits.metadata_value_chars_max + 1)


def test_malformed_metadata_is_a_usage_error_before_publishing(
    settings: Settings, test_ledger: TestLedger, pair: Pair
) -> None:
    """Too many entries, an empty or too long key, a too long value, a repeated key or no '='
    is a one-line usage error (exit 2) on transfer, open-account and set-metadata. Nothing is
    published: no tx_id is printed, no account opens, and once a later transfer is projected
    the payer's balance shows only that one."""
    admin = [test_ledger.key_file("admin")]
    payer = pair.payer
    transfer = functools.partial(
        pay_cli, test_ledger, [payer.key_file], payer.account, pair.payee.account, "USD", 100
    )
    unopened = unique("meta-unopened")
    open_account = functools.partial(
        submit_cli, test_ledger, "open-account", "--account", unopened, "--asset", "USD", keys=admin
    )
    set_metadata = functools.partial(
        submit_cli, test_ledger, "set-metadata", "--account", payer.account, keys=admin
    )
    bad_metadata = [too_many, ["=value"], [long_key], [long_value], ["a=1", "a=2"], ["novalue"]]
    calls = [
        *(functools.partial(transfer, *meta_options_of(items)) for items in bad_metadata),
        *(functools.partial(open_account, *meta_options_of(items)) for items in bad_metadata),
        *(functools.partial(set_metadata, *items) for items in bad_metadata),
    ]
    for result in concurrently(*calls):
        line = assert_one_line_error(result, 2)
        assert "--meta" in line or "KEY=VALUE" in line, line
        assert result.stdout == ""
    sealed(transfer())
    balances_become(settings, {payer.account: funding_amount - 100, pair.payee.account: 100})
    assert account_metadata(settings, unopened) == []
    assert account_metadata(settings, payer.account) == [None]


def test_a_cosigner_is_projected(
    settings: Settings, test_ledger: TestLedger, pair: Pair, tmp_path: Path
) -> None:
    """A transfer signed with two --key: the first key submits (key_id), the second cosigns
    and its key_id is in analytics.transactions.cosigners."""
    cosigner_key, cosigner = new_key(test_ledger, tmp_path, unique("cosigner"))
    registration = RegisterKey(cosigner.public_key, (), ())
    publish_stages(settings, test_ledger, [[(test_ledger.signer("admin"), registration)]])
    outcome = sealed(
        pay_cli(
            test_ledger, [pair.payer.key_file, cosigner_key], pair.payer.account,
            pair.payee.account, "USD", 10,
        )
    )  # fmt: skip
    row = projected_transaction(settings, outcome["tx_id"])
    assert (row["key_id"], row["cosigners"]) == (pair.payer.key_id, [cosigner.key_id])
    assert row["metadata"] is None
