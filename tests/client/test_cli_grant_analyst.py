"""``ledger db grant-analyst`` and ``revoke-analyst``: on the live stack's database a granted role
logs in with the password from --password-env and reads only its account; bad role names are
one-line usage errors; the password is on no command line, in no output, and never sent."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from support.cli import (
    LEDGER_COMMAND,
    assert_one_line_error,
    command_timeout_s,
    run_ledger,
    unreachable_services_env,
)
from support.ledger_fixture import TestLedger
from support.waiting import eventually_sync

from ledger.cli.db import saslprep, scram_verifier
from ledger.settings import REPO_ROOT, Settings

services = pytest.mark.services

PASSWORD_VARIABLE = "LEDGER_TEST_ANALYST_PASSWORD"
BAD_ROLE_NAMES = [
    "Alice",  # upper case: the name would differ quoted and unquoted
    "1st",
    "a-b",
    "x'; DROP TABLE ledger.postings; --",
    'x" SUPERUSER',
    "pg_monitor",
    "public",
    "ledger_analyst",
    "ledger_scoped_analyst",
    "a" * 64,  # PostgreSQL would truncate it to 63 bytes
    "",
]


def test_the_verifier_answers_the_exchange_of_rfc_7677() -> None:
    """RFC 7677's example (user "user", password "pencil", its salt): the verifier's StoredKey
    accepts the client's proof and its ServerKey gives the server's signature."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt, 4096)
    scheme, iterations_and_salt, keys = verifier.split("$")
    assert (scheme, iterations_and_salt) == ("SCRAM-SHA-256", "4096:W22ZaJ0SNY7soEsUEjb6gQ==")
    stored_key, server_key = (base64.b64decode(part) for part in keys.split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (
        f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    ).encode()
    server_signature = hmac.new(server_key, auth_message, "sha256").digest()
    assert base64.b64encode(server_signature) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    client_signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    mutated = scram_verifier("pencil", salt[:-1] + bytes([salt[-1] ^ 1]), 4096)
    assert mutated.split("$")[2] != keys


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("I\u00adX", b"IX"),  # RFC 4013's examples: soft hyphen mapped to nothing
        ("user", b"user"),
        ("USER", b"USER"),
        ("\u00aa", b"a"),  # NFKC
        ("\u2168", b"IX"),
        ("\u0007", b"\x07"),  # prohibited: PostgreSQL and its clients then hash the raw bytes
        ("\u0627\u0031", "\u0627\u0031".encode()),  # bidi rule broken: raw bytes too
        ("it's \ufb01ne", b"it's fine"),
    ],
)
def test_saslprep_prepares_passwords_as_postgresql_does(password: str, prepared: bytes) -> None:
    """SASLprep as PostgreSQL's pg_saslprep applies it, falling back to the raw UTF-8."""
    assert saslprep(password) == prepared


@pytest.mark.parametrize("name", BAD_ROLE_NAMES)
@pytest.mark.parametrize("command", ["grant-analyst", "revoke-analyst"])
def test_a_bad_role_name_is_a_one_line_usage_error(command: str, name: str) -> None:
    """Exit 2 and one line before any connection: the database here is unreachable, which
    would be exit 3."""
    result = run_ledger("db", command, name, "--ledger", "main", env=unreachable_services_env())
    line = assert_one_line_error(result, 2)
    assert "ROLE" in line and result.stdout == ""


def test_a_missing_password_variable_is_bad_input_before_any_connection() -> None:
    """--password-env naming an unset variable: exit 4, one line naming it, nothing done."""
    environment = {**unreachable_services_env(), PASSWORD_VARIABLE: ""}
    result = run_ledger(
        "db", "grant-analyst", "somebody", "--ledger", "main", "--password-env",
        PASSWORD_VARIABLE, env=environment,
    )  # fmt: skip
    assert PASSWORD_VARIABLE in assert_one_line_error(result, 4)


def test_an_unreachable_database_is_exit_3() -> None:
    """One line naming the database without its password."""
    result = run_ledger(
        "db", "grant-analyst", "somebody", "--ledger", "main", env=unreachable_services_env()
    )
    line = assert_one_line_error(result, 3)
    assert "cannot connect to PostgreSQL" in line and "nothing@" not in line


async def _superuser_fetch(database_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


@pytest.fixture()
def analyst_role(settings: Settings) -> Iterator[str]:
    """A fresh role name; the role and its scopes are gone afterwards, whatever happened."""
    name = f"analyst_test_{uuid.uuid4().hex[:12]}"
    yield name
    asyncio.run(
        _superuser_fetch(
            settings.database_url, "DELETE FROM ledger.analyst_scopes WHERE role = $1", name
        )
    )
    asyncio.run(_superuser_fetch(settings.database_url, f'DROP ROLE IF EXISTS "{name}"'))


def run_watching_ps(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``ledger ARGS``, and every command line ``ps`` lists while it runs."""
    process = subprocess.Popen(
        [*LEDGER_COMMAND, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        cwd=REPO_ROOT,
    )
    listed: list[str] = []
    deadline = time.monotonic() + command_timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        # -ww: whole command lines, however long (ps cuts them to a width otherwise).
        ps = subprocess.run(
            ["ps", "-e", "-ww", "-o", "args"], capture_output=True, text=True, check=True
        )
        listed.extend(ps.stdout.splitlines())
    stdout, stderr = process.communicate(timeout=command_timeout_s)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), listed


async def _login(database_url: str, role: str, password: str) -> asyncpg.Connection:
    parts = urlsplit(database_url)
    connection: asyncpg.Connection = await asyncpg.connect(
        host=parts.hostname,
        port=parts.port,
        database=parts.path.lstrip("/"),
        user=role,
        password=password,
        ssl=False,
    )
    return connection


async def _read_as(database_url: str, role: str, password: str) -> dict[str, object]:
    connection = await _login(database_url, role, password)
    try:
        return {
            "search_path": await connection.fetchval("SHOW search_path"),
            "read_only": await connection.fetchval("SHOW default_transaction_read_only"),
            "accounts": {
                tuple(row)
                for row in await connection.fetch("SELECT ledger, account FROM analytics.accounts")
            },
            "posting_accounts": {
                row["account"]
                for row in await connection.fetch("SELECT account FROM analytics.postings")
            },
            "blocks": await connection.fetchval("SELECT count(*) FROM analytics.blocks"),
            "rejections": await connection.fetchval("SELECT count(*) FROM analytics.rejections"),
        }
    finally:
        await connection.close()


@services
def test_a_granted_role_logs_in_with_its_password_and_reads_only_its_account(
    settings: Settings, test_ledger: TestLedger, analyst_role: str
) -> None:
    """grant-analyst --password-env creates a LOGIN role; logged in over TCP with that password
    (the local pg_hba asks for scram-sha-256 on 127.0.0.1) it reads its account and the
    ledger's blocks, no other account and no rejection; revoke-analyst takes it all away."""
    url, ledger, account = settings.database_url, test_ledger.ledger, test_ledger.alice
    eventually_sync(
        lambda: asyncio.run(
            _superuser_fetch(
                url, "SELECT 1 FROM ledger.accounts WHERE ledger = $1 AND account = $2",
                ledger, account,
            )
        ),
        what=f"account {account} projected",
    )  # fmt: skip
    others = asyncio.run(
        _superuser_fetch(url, "SELECT 1 FROM ledger.accounts WHERE account <> $1", account)
    )
    assert others, "the database has no other account to hide"
    password = "it's \ufb01ne-" + secrets.token_urlsafe(12)  # a quote, and SASLprep's "fi"
    result, listed = run_watching_ps(
        ["db", "grant-analyst", analyst_role, "--ledger", ledger, "--account", account,
         "--password-env", PASSWORD_VARIABLE, "--json"],
        env={PASSWORD_VARIABLE: password},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "role": analyst_role, "ledger": ledger, "accounts": [account], "created": True,
    }  # fmt: skip
    secret = password.split("-", 1)[1]
    assert secret not in result.stdout + result.stderr
    assert any(analyst_role in line for line in listed), "ps never saw the command running"
    assert not any(secret in line for line in listed)
    (stored,) = asyncio.run(
        _superuser_fetch(url, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", analyst_role)
    )
    assert stored["rolpassword"].startswith("SCRAM-SHA-256$4096:")

    seen = asyncio.run(_read_as(url, analyst_role, password))
    assert (seen["search_path"], seen["read_only"]) == ("analytics", "on")
    assert seen["accounts"] == {(ledger, account)}
    assert seen["posting_accounts"] <= {account}
    assert seen["rejections"] == 0 and int(str(seen["blocks"])) > 0
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(_read_as(url, analyst_role, password + "x"))

    revoked = run_ledger("db", "revoke-analyst", analyst_role, "--json")
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout) == {
        "role": analyst_role, "removed": [ledger], "remaining": [], "member": False,
    }  # fmt: skip
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(_read_as(url, analyst_role, password))


@services
def test_a_role_that_sees_everything_is_refused(settings: Settings) -> None:
    """The stack's own role (superuser, the tables' owner) cannot be scoped: exit 4, one line."""
    owner = urlsplit(settings.database_url).username or "ledger"
    result = run_ledger("db", "grant-analyst", owner, "--ledger", "main", "--account", "alice")
    assert "sees every row already" in assert_one_line_error(result, 4)


@services
def test_revoking_a_role_that_does_not_exist_is_bad_input(settings: Settings) -> None:
    """Exit 4 and one line naming it."""
    name = f"analyst_test_{uuid.uuid4().hex[:12]}"
    result = run_ledger("db", "revoke-analyst", name)
    assert name in assert_one_line_error(result, 4)
