"""The treasury flow on the real stack, through the CLI: an admin sets an account policy (1 of
keys {A, B}, 2 of them above 100,000, at most 1,000,000 a debit, only to bob); one signature
pays small amounts but not large ones; a large payment prepared by A, signed offline by B and
published, or signed by both in one command, is sealed; the policy's limits refuse the rest;
the policy shows in ``analytics.v_account_policies`` and can be removed."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support.cli import assert_one_line_error, run_ledger
from support.ledger_fixture import TestLedger
from support.waiting import eventually_sync

from ledger.client.publisher import Publisher, Sealed
from ledger.kafka.principals import ADMIN
from ledger.model import OpenAccount, Operation, Posting, RegisterKey, Transfer
from ledger.settings import Settings
from ledger.signing import Signer, build_tx_body, save_private_key

pytestmark = pytest.mark.services

high_amount = 100_000
max_amount = 1_000_000
funding_amount = 10_000_000
large_amount = 250_000
"""Above ``high_amount``: needs both keys."""

submit_wait_s = 60.0


@dataclass(frozen=True)
class Treasury:
    """A funded account of its own, and two registered keys that own nothing."""

    account: str
    first_key: Path
    second_key: Path
    first_id: str
    second_id: str


def open_treasury(settings: Settings, ledger: TestLedger, directory: Path) -> Treasury:
    """A new USD account funded by the issuer, and keys A and B registered without accounts:
    only a policy lets them debit it."""
    account = f"treasury-{os.urandom(4).hex()}"
    first, second = Signer.generate(), Signer.generate()
    paths = (directory / f"{account}-a.key", directory / f"{account}-b.key")
    for path, signer in zip(paths, (first, second), strict=True):
        save_private_key(path, signer, ledger.passphrase.encode())
    admin, issuer = ledger.signer("admin"), ledger.signer("usd-issuer")

    def signed(signer: Signer, op: Operation) -> bytes:
        return signer.sign(build_tx_body(ledger.ledger, op))

    funding = Transfer(
        (Posting("usd.issuer", "USD", -funding_amount), Posting(account, "USD", funding_amount))
    )
    asyncio.run(
        _sealed(
            settings,
            [
                signed(admin, OpenAccount(account, "USD")),
                signed(admin, RegisterKey(first.public_key, (), ())),
                signed(admin, RegisterKey(second.public_key, (), ())),
            ],
        )
    )
    asyncio.run(_sealed(settings, [signed(issuer, funding)]))
    return Treasury(account, paths[0], paths[1], first.key_id, second.key_id)


async def _sealed(settings: Settings, envelopes: list[bytes]) -> None:
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        outcomes = await publisher.submit_and_wait(envelopes, timeout_s=submit_wait_s)
    assert all(isinstance(outcome, Sealed) for outcome in outcomes), outcomes


def ledger_json(ledger: TestLedger, *args: str) -> dict[str, Any]:
    """``ledger ARGS --json`` that must succeed; its JSON."""
    result = run_ledger(*args, "--json", env=ledger.passphrase_env)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def pay(ledger: TestLedger, keys: list[Path], payer: str, payee: str, amount: int) -> Any:
    key_options = [option for key in keys for option in ("--key", str(key))]
    return run_ledger(
        "submit", "transfer", *key_options, "--from", payer, "--to", payee,
        "--asset", "USD", "--amount", str(amount), "--json",
        env=ledger.passphrase_env,
    )  # fmt: skip


def sealed(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["status"] == "sealed", document
    return document


def refused_with(result: Any, code: str) -> str:
    line = assert_one_line_error(result, 1)
    assert json.loads(result.stdout)["code"] == code and code in line, line
    return line


def set_policy(ledger: TestLedger, account: str, *options: str) -> dict[str, Any]:
    admin_key = str(ledger.key_file("admin"))
    return ledger_json(
        ledger, "submit", "set-policy", "--key", admin_key, "--account", account, *options
    )


@pytest.fixture(scope="module")
def treasury(
    settings: Settings, test_ledger: TestLedger, tmp_path_factory: pytest.TempPathFactory
) -> Treasury:
    """The treasury account with its policy, set by the admin through ``ledger submit``."""
    treasury = open_treasury(settings, test_ledger, tmp_path_factory.mktemp("treasury"))
    outcome = set_policy(
        test_ledger, treasury.account,
        "--policy-key", treasury.first_id, "--policy-key", treasury.second_id,
        "--threshold", "1", "--high-threshold", "2", "--high-amount", str(high_amount),
        "--max-amount", str(max_amount), "--counterparty", test_ledger.bob,
    )  # fmt: skip
    assert outcome["status"] == "sealed", outcome
    return treasury


def query(settings: Settings, sql: str, *args: object) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(settings.database_url)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(fetch())


def policies_in_view(settings: Settings, account: str) -> list[asyncpg.Record]:
    return query(settings, "select * from analytics.v_account_policies where account = $1", account)


def test_the_policy_shows_in_the_analytics_view(settings: Settings, treasury: Treasury) -> None:
    """The projector writes the policy; analysts read it from v_account_policies."""
    [row] = eventually_sync(
        lambda: policies_in_view(settings, treasury.account), what="the treasury policy projected"
    )
    assert sorted(row["key_ids"]) == sorted([treasury.first_id, treasury.second_id])
    assert (row["threshold"], row["high_threshold"]) == (1, 2)
    assert (row["high_amount"], row["max_amount"]) == (high_amount, max_amount)
    assert row["counterparties"] == ["bob"]


def test_one_key_pays_small_amounts_only(test_ledger: TestLedger, treasury: Treasury) -> None:
    """1 of {A, B} below the high amount is sealed; above it A alone is TOO_FEW_SIGNATURES."""
    sealed(pay(test_ledger, [treasury.first_key], treasury.account, "bob", high_amount))
    line = refused_with(
        pay(test_ledger, [treasury.first_key], treasury.account, "bob", large_amount),
        "TOO_FEW_SIGNATURES",
    )
    assert "needs 2" in line and "1 signed" in line, line


def test_prepared_signed_offline_and_published_is_sealed(
    test_ledger: TestLedger, treasury: Treasury, tmp_path: Path
) -> None:
    """A prepares (nothing published), B reviews and signs with ``ledger sign``, anyone
    publishes with ``ledger submit envelope``: sealed, under the tx_id A prepared. B cannot
    sign a second time."""
    path = tmp_path / "payment.envelope"
    prepared = ledger_json(
        test_ledger, "submit", "transfer", "--key", str(treasury.first_key),
        "--from", treasury.account, "--to", "bob", "--asset", "USD",
        "--amount", str(large_amount), "--validity-s", "600", "--envelope-out", str(path),
    )  # fmt: skip
    assert prepared["status"] == "prepared" and prepared["signers"] == [treasury.first_id]

    shown = run_ledger(
        "sign", str(path), "--key", str(treasury.second_key), env=test_ledger.passphrase_env
    )
    assert shown.returncode == 0, shown.stderr
    assert f"tx {prepared['tx_id']} on ledger main: Transfer" in shown.stdout
    assert f"-{large_amount}" in shown.stdout and f"+{large_amount}" in shown.stdout

    outcome = sealed(run_ledger("submit", "envelope", str(path), "--json"))
    assert outcome["tx_id"] == prepared["tx_id"]

    again = run_ledger(
        "sign", str(path), "--key", str(treasury.second_key), env=test_ledger.passphrase_env
    )
    assert "already signed" in assert_one_line_error(again, 4)


def test_both_keys_in_one_command_are_sealed(test_ledger: TestLedger, treasury: Treasury) -> None:
    """--key A --key B: the second key cosigns, and the large payment is sealed."""
    keys = [treasury.first_key, treasury.second_key]
    sealed(pay(test_ledger, keys, treasury.account, "bob", large_amount))


def test_the_policy_limits_refuse_the_rest(test_ledger: TestLedger, treasury: Treasury) -> None:
    """Both keys still may not pay over max_amount (OVER_POLICY_LIMIT), and one key may not
    pay an account that is no counterparty of the policy (COUNTERPARTY_NOT_ALLOWED)."""
    both = [treasury.first_key, treasury.second_key]
    refused_with(
        pay(test_ledger, both, treasury.account, "bob", max_amount + 1), "OVER_POLICY_LIMIT"
    )
    refused_with(
        pay(test_ledger, [treasury.first_key], treasury.account, test_ledger.alice, 10),
        "COUNTERPARTY_NOT_ALLOWED",
    )


def test_a_policy_is_removed(settings: Settings, test_ledger: TestLedger, tmp_path: Path) -> None:
    """set-policy --remove: A, which owns nothing, may no longer debit the account
    (UNAUTHORIZED), and the view no longer lists it (its table row keeps threshold 0)."""
    treasury = open_treasury(settings, test_ledger, tmp_path)
    policy = ["--policy-key", treasury.first_id, "--threshold", "1"]
    assert set_policy(test_ledger, treasury.account, *policy)["status"] == "sealed"
    sealed(pay(test_ledger, [treasury.first_key], treasury.account, "bob", 10))
    assert set_policy(test_ledger, treasury.account, "--remove")["status"] == "sealed"
    refused_with(
        pay(test_ledger, [treasury.first_key], treasury.account, "bob", 10), "UNAUTHORIZED"
    )
    eventually_sync(
        lambda: query(
            settings,
            "select threshold from ledger.account_policies where account = $1",
            treasury.account,
        ),
        lambda rows: [row["threshold"] for row in rows] == [0],
        what="the removal projected",
    )
    assert policies_in_view(settings, treasury.account) == []


def test_a_key_is_rotated_without_downtime(
    settings: Settings, test_ledger: TestLedger, tmp_path: Path
) -> None:
    """update-key --successor: in one transaction the successor takes A's policy seat and A is
    revoked. Payments keep flowing: A's last one is sealed before, the successor's right after,
    A's next one is refused KEY_REVOKED; the keys table shows the hand-over."""
    treasury = open_treasury(settings, test_ledger, tmp_path)
    policy = ["--policy-key", treasury.first_id, "--policy-key", treasury.second_id]
    assert set_policy(test_ledger, treasury.account, *policy, "--threshold", "1")["status"] == (
        "sealed"
    )
    sealed(pay(test_ledger, [treasury.first_key], treasury.account, "bob", 10))
    successor = Signer.generate()
    successor_key = tmp_path / "successor.key"
    save_private_key(successor_key, successor, test_ledger.passphrase.encode())
    admin_key = str(test_ledger.key_file("admin"))
    rotated = ledger_json(
        test_ledger, "submit", "update-key", "--key", admin_key, "--key-id", treasury.first_id,
        "--successor", successor.public_key.hex(),
    )  # fmt: skip
    assert rotated["status"] == "sealed", rotated
    sealed(pay(test_ledger, [successor_key], treasury.account, "bob", 11))
    refused_with(pay(test_ledger, [treasury.first_key], treasury.account, "bob", 12), "KEY_REVOKED")
    [row] = eventually_sync(
        lambda: policies_in_view(settings, treasury.account),
        lambda rows: rows and successor.key_id in rows[0]["key_ids"],
        what="the successor's policy seat projected",
    )
    assert sorted(row["key_ids"]) == sorted([successor.key_id, treasury.second_id])
    revoked = query(
        settings,
        "select key_id, revoked_height from ledger.keys where key_id = any($1::text[])",
        [treasury.first_id, successor.key_id],
    )
    by_id = {record["key_id"]: record["revoked_height"] for record in revoked}
    assert by_id[successor.key_id] is None and by_id[treasury.first_id] is not None
