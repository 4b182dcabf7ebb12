"""Fresh parties on the shared demo ledger, for CLI tests that must not depend on each other.

Every name gets a random suffix, so a test opens its own accounts, assets and keys and can run
again on a stack with history. Setting up goes through ``Publisher`` directly (one connection,
a few stages); what a test is about goes through the ``ledger`` command (``submit_cli``).

Submissions are keyed by tx_id, so two transactions published together may be sequenced in any
order: whatever depends on another (a key owning an account, money into it) goes in a later
stage of ``publish_stages``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from ledger.client.publisher import Publisher, Sealed
from ledger.kafka.principals import ADMIN
from ledger.model import OpenAccount, Operation, Posting, RegisterKey, Transfer
from ledger.settings import Settings
from ledger.signing import Signer, build_tx_body, save_private_key
from support.cli import assert_one_line_error, run_ledger
from support.ledger_fixture import LEDGER, TestLedger
from support.waiting import eventually_sync

setup_wait_s = 60.0
"""Longest wait for one setup stage to be sealed; a stage is sealed within a block or two."""

concurrent_commands_max = 6
"""``ledger`` processes at once: each needs a fraction of a core to start (imports, key
decryption), and a test machine may have two."""

T = TypeVar("T")

Signed = tuple[Signer, Operation]
"""An operation and the key that submits it."""


@dataclass(frozen=True)
class Party:
    """An account of its own and a registered key file that owns it."""

    account: str
    key_file: Path
    key_id: str


def unique(prefix: str) -> str:
    """``prefix`` with a random suffix: a name no earlier run used."""
    return f"{prefix}-{os.urandom(4).hex()}"


def new_key(ledger: TestLedger, directory: Path, name: str) -> tuple[Path, Signer]:
    """A new key, saved encrypted with the test ledger's passphrase (not registered)."""
    signer = Signer.generate()
    path = directory / f"{name}.key"
    save_private_key(path, signer, ledger.passphrase.encode())
    return path, signer


def publish_stages(
    settings: Settings, ledger: TestLedger, stages: Sequence[Sequence[Signed]]
) -> None:
    """Publish each stage once the one before is sealed; every transaction must be sealed."""

    async def publish() -> None:
        async with Publisher(settings.kafka(ADMIN)) as publisher:
            for stage in stages:
                envelopes = [signer.sign(build_tx_body(ledger.ledger, op)) for signer, op in stage]
                outcomes = await publisher.submit_and_wait(envelopes, timeout_s=setup_wait_s)
                assert all(isinstance(outcome, Sealed) for outcome in outcomes), outcomes

    asyncio.run(publish())


def open_parties(
    settings: Settings,
    ledger: TestLedger,
    directory: Path,
    fundings: dict[str, int],
    asset: str = "USD",
) -> list[Party]:
    """One new ``asset`` account per prefix in ``fundings``, each owned by a new key and funded
    with its amount by the USD issuer (0: not funded; only USD is funded)."""
    admin = ledger.signer("admin")
    names = [unique(prefix) for prefix in fundings]
    keys = [new_key(ledger, directory, name) for name in names]
    stages: list[list[Signed]] = [
        [(admin, OpenAccount(name, asset)) for name in names],
        [
            (admin, RegisterKey(signer.public_key, (), (name,)))
            for name, (_, signer) in zip(names, keys, strict=True)
        ],
    ]
    issuer = ledger.signer("usd-issuer")
    funded = [
        (issuer, payment("usd.issuer", name, asset, amount))
        for name, amount in zip(names, fundings.values(), strict=True)
        if amount
    ]
    if funded:
        assert asset == ledger.asset, "only the demo's USD issuer key is at hand"
        stages.append(funded)
    publish_stages(settings, ledger, stages)
    return [
        Party(name, path, signer.key_id) for name, (path, signer) in zip(names, keys, strict=True)
    ]


def payment(payer: str, payee: str, asset: str, amount: int) -> Transfer:
    """A Transfer of ``amount`` from ``payer`` to ``payee``."""
    return Transfer((Posting(payer, asset, -amount), Posting(payee, asset, amount)))


def submit_cli(
    ledger: TestLedger, command: str, *arguments: str, keys: Sequence[Path]
) -> subprocess.CompletedProcess[str]:
    """``ledger submit COMMAND --key K... ARGUMENTS --json``, as a user runs it."""
    key_options = [option for key in keys for option in ("--key", str(key))]
    return run_ledger(
        "submit", command, *key_options, *arguments, "--json", env=ledger.passphrase_env
    )


def pay_cli(
    ledger: TestLedger, keys: Sequence[Path], payer: str, payee: str, asset: str, amount: int,
    *options: str,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``ledger submit transfer --from PAYER --to PAYEE ...`` signed by ``keys``."""
    return submit_cli(
        ledger, "transfer", "--from", payer, "--to", payee, "--asset", asset,
        "--amount", str(amount), *options, keys=keys,
    )  # fmt: skip


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Independent commands at once (each ``ledger`` command is a process that mostly waits),
    their results in order. Only for commands whose outcomes do not depend on their order."""
    with ThreadPoolExecutor(max_workers=min(len(calls), concurrent_commands_max)) as pool:
        return list(pool.map(lambda call: call(), calls))


def sealed(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON outcome of a submit that must be sealed."""
    assert result.returncode == 0, (result.stdout, result.stderr)
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["status"] == "sealed", document
    return document


def refused_with(result: subprocess.CompletedProcess[str], code: str) -> str:
    """The one-line error of a submit the sequencer refused with ``code``; that line."""
    line = assert_one_line_error(result, 1)
    document = json.loads(result.stdout)
    assert (document["status"], document["code"]) == ("refused", code), document
    expected = f"ledger: tx {document['tx_id']} refused at stage sequence: {code}: "
    assert line.startswith(expected), line
    return line


def query(settings: Settings, sql: str, *arguments: object) -> list[asyncpg.Record]:
    """The rows of one query on the projection."""

    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(settings.database_url)
        try:
            return list(await connection.fetch(sql, *arguments))
        finally:
            await connection.close()

    return asyncio.run(fetch())


def projected_transaction(settings: Settings, tx_id: str) -> asyncpg.Record:
    """The ``analytics.transactions`` row of a sealed ``tx_id`` (hex), once projected."""
    [row] = eventually_sync(
        lambda: query(
            settings,
            "select * from analytics.transactions where ledger = $1 and tx_id = $2",
            LEDGER,
            bytes.fromhex(tx_id),
        ),
        what=f"transaction {tx_id} projected",
    )
    return row


def balances_become(settings: Settings, expected: dict[str, int]) -> None:
    """Wait until ``analytics.balances`` shows exactly these balances of these accounts."""

    def current() -> dict[str, int]:
        rows = query(
            settings,
            "select account, balance from analytics.balances "
            "where ledger = $1 and account = any($2::text[])",
            LEDGER,
            list(expected),
        )
        return {row["account"]: row["balance"] for row in rows}

    eventually_sync(current, lambda seen: seen == expected, what=f"balances {expected}")
