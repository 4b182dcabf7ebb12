"""``ledger db``: the PostgreSQL schema, and who may read it.

- ``migrate``: bring the schema up to date;
- ``grant-analyst`` / ``revoke-analyst``: analysts scoped to ledgers or accounts by row-level
  security (migration 0011, docs/views.md "Access"): a login role, its membership of
  ``ledger_scoped_analyst`` and its rows in ``ledger.analyst_scopes``.

asyncpg is imported inside the commands, so the rest of the CLI, and ``ledger/`` as a whole,
never loads a database driver. Role names go into SQL only after ``check_role_name`` and
through ``quote_identifier``; every other value is a query parameter, except a password, which
never reaches the server: it goes as a SCRAM-SHA-256 verifier computed here (so no statement
log, activity view or error report can show it), as ``psql``'s ``\\password`` does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from ledger import limits
from ledger.cli import cli
from ledger.errors import ConfigError, InfraError
from ledger.settings import Settings

if TYPE_CHECKING:
    import asyncpg

SCOPED_GROUP = "ledger_scoped_analyst"
"""Members of this role read the analytics views through their scope (migration 0011)."""

ROLE_NAME_PATTERN = re.compile(r"[a-z_][a-z0-9_]*")
"""An unquoted PostgreSQL identifier, lower case: the name means the same quoted or not."""

role_name_bytes_max = 63
"""PostgreSQL's NAMEDATALEN - 1: a longer name is silently truncated, so refuse it instead."""

RESERVED_ROLE_NAMES = frozenset(
    {
        # PostgreSQL's own: reserved, or meaning another role in a role specification.
        "public",
        "none",
        "current_user",
        "current_role",
        "session_user",
        # The project's groups: scoping one of them would scope (or unscope) its members.
        "ledger_analyst",
        SCOPED_GROUP,
    }
)

ROLE_SETTINGS = (
    "search_path = analytics",  # "v_daily_volume" needs no prefix
    "default_transaction_read_only = on",
    # The policies' subplans make the planner cost a scoped role's large scans far above what
    # they run (every row's probe is counted), and JIT compilation then takes longer than the
    # query: 0.3 s against 14 ms for a count of 100,000 transactions.
    "jit = off",
)
"""What a role created by grant-analyst starts with (ALTER ROLE ... SET: defaults it may change)."""

scram_iterations = 4096
"""PostgreSQL's default scram_iterations: what the server would use for a plain password."""

scram_salt_bytes = 16
"""PostgreSQL's SCRAM_DEFAULT_SALT_LEN."""

connect_timeout_s = 10.0
"""As ``ledger db migrate``: a database that does not answer in this long is unreachable."""

grant_lock_name = b"ledger.analyst_scopes"
"""Grants and revocations take turns on an advisory lock derived from this name, so two of them
never race to create the same role or to drop a membership the other still needs."""


def check_role_name(name: str) -> str:
    """``name`` when it is a plain lower-case identifier PostgreSQL lets us create; else
    ``ConfigError`` saying why (the command turns it into a usage error)."""
    if not ROLE_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a role name: lower-case letters, digits and _, "
            "starting with a letter or _"
        )
    if len(name.encode()) > role_name_bytes_max:
        raise ConfigError(f"role name {name!r} is longer than {role_name_bytes_max} bytes")
    if name in RESERVED_ROLE_NAMES or name.startswith("pg_"):
        raise ConfigError(f"role name {name!r} is reserved")
    return name


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (a checked name has no quote; doubled if it had)."""
    return '"' + name.replace('"', '""') + '"'


def saslprep(password: str) -> bytes:
    """The bytes SCRAM hashes for ``password``: RFC 4013 SASLprep as PostgreSQL's
    ``pg_saslprep`` and its clients apply it, falling back to the raw UTF-8 when the result
    would be empty or holds a prohibited character, as they do."""
    raw = password.encode()
    if password.isascii():
        return raw
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in password
        if not stringprep.in_table_b1(char)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_a1,
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    if not prepared or any(check(char) for char in prepared for check in prohibited):
        return raw
    if any(stringprep.in_table_d1(char) for char in prepared) and (
        any(stringprep.in_table_d2(char) for char in prepared)
        or not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1]))
    ):
        return raw
    return prepared.encode()


def scram_verifier(password: str, salt: bytes, iterations: int = scram_iterations) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores for ``password`` (RFC 5802, 7677)."""
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


SCRAM_VERIFIER_PATTERN = re.compile(r"SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=:]+")
"""What a verifier looks like: base64, digits and separators, never a quote."""


@dataclass(frozen=True, slots=True)
class Grant:
    role: str
    ledger: str
    accounts: list[str] | None  # None: the whole ledger
    created: bool  # the role did not exist and was created (LOGIN)


@dataclass(frozen=True, slots=True)
class Revocation:
    role: str
    removed: list[str]  # the ledgers whose scope was removed
    remaining: list[str]  # the ledgers the role still has a scope in
    member: bool  # still a member of ledger_scoped_analyst (false once no scope remains)


async def grant_analyst(
    database_url: str,
    role: str,
    ledger: str,
    accounts: Sequence[str] | None,
    password: str | None,
) -> Grant:
    """Give ``role`` the scope ``accounts`` of ``ledger`` (None: the whole ledger).

    Steps, in one transaction, under the grants' advisory lock:
    1. refuse a role that row-level security does not restrict, or that could SET ROLE to one
       that it does not (a superuser, BYPASSRLS, a member of ledger_analyst or of the tables'
       owner): a scope would promise what it cannot;
    2. create the role (LOGIN, with ROLE_SETTINGS) when missing, or set its password when one
       is given;
    3. make it a member of ledger_scoped_analyst;
    4. insert its scope for ``ledger``, replacing the one it had.
    """
    check_role_name(role)
    verifier = None
    if password is not None:
        verifier = scram_verifier(password, secrets.token_bytes(scram_salt_bytes))
        assert SCRAM_VERIFIER_PATTERN.fullmatch(verifier), "a verifier is quoted as is below"
    quoted = quote_identifier(role)
    connection = await _connect(database_url)
    try:
        async with connection.transaction():
            await _prepare(connection)
            found = await connection.fetchrow(
                "SELECT r.rolsuper OR r.rolbypassrls "
                "OR pg_has_role(r.oid, 'ledger_analyst', 'MEMBER') "
                "OR pg_has_role(r.oid, c.relowner, 'MEMBER') AS sees_all "
                "FROM pg_roles AS r, pg_class AS c "
                "WHERE r.rolname = $1 AND c.oid = 'ledger.analyst_scopes'::regclass",
                role,
            )
            if found is not None and found["sees_all"]:
                raise ConfigError(
                    f"role {role} sees every row already (superuser, BYPASSRLS, or a member of "
                    "ledger_analyst or of the tables' owner): a scope cannot restrict it"
                )
            created = found is None
            if created:
                password_clause = "" if verifier is None else f" PASSWORD '{verifier}'"
                await connection.execute(f"CREATE ROLE {quoted} LOGIN{password_clause}")
                for setting in ROLE_SETTINGS:
                    await connection.execute(f"ALTER ROLE {quoted} SET {setting}")
            elif verifier is not None:
                await connection.execute(f"ALTER ROLE {quoted} PASSWORD '{verifier}'")
            if not await _is_direct_member(connection, role):
                await connection.execute(f"GRANT {SCOPED_GROUP} TO {quoted}")
            await connection.execute(
                "INSERT INTO ledger.analyst_scopes (role, ledger, accounts) VALUES ($1, $2, $3) "
                "ON CONFLICT (role, ledger) DO UPDATE "
                "SET accounts = EXCLUDED.accounts, granted_at = now()",
                role,
                ledger,
                None if accounts is None else list(accounts),
            )
    except _database_errors() as exc:
        raise InfraError(f"cannot grant {role} a scope: {_reason(exc)}") from exc
    finally:
        await connection.close()
    return Grant(
        role=role,
        ledger=ledger,
        accounts=None if accounts is None else list(accounts),
        created=created,
    )


async def revoke_analyst(database_url: str, role: str, ledger: str | None) -> Revocation:
    """Remove ``role``'s scope in ``ledger`` (None: in every ledger); once none remains in this
    database, drop its membership of ledger_scoped_analyst. The role itself stays."""
    check_role_name(role)
    quoted = quote_identifier(role)
    connection = await _connect(database_url)
    try:
        async with connection.transaction():
            await _prepare(connection)
            if await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role) is None:
                raise ConfigError(f"there is no role {role}")
            removed = await connection.fetch(
                "DELETE FROM ledger.analyst_scopes WHERE role = $1 "
                "AND ($2::text IS NULL OR ledger = $2) RETURNING ledger",
                role,
                ledger,
            )
            remaining = await connection.fetch(
                "SELECT ledger FROM ledger.analyst_scopes WHERE role = $1 ORDER BY ledger", role
            )
            member = await _is_direct_member(connection, role)
            if member and not remaining:
                await connection.execute(f"REVOKE {SCOPED_GROUP} FROM {quoted}")
                member = False
    except _database_errors() as exc:
        raise InfraError(f"cannot revoke the scope of {role}: {_reason(exc)}") from exc
    finally:
        await connection.close()
    return Revocation(
        role=role,
        removed=sorted(str(row["ledger"]) for row in removed),
        remaining=[str(row["ledger"]) for row in remaining],
        member=bool(member),
    )


async def _connect(database_url: str) -> asyncpg.Connection:
    import asyncpg

    from streams.postgres import redact_url

    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            database_url,
            timeout=connect_timeout_s,
            server_settings={"application_name": "ledger-db-grant"},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise InfraError(
            f"cannot connect to PostgreSQL at {redact_url(database_url)}: {_reason(exc)}"
        ) from exc
    return connection


async def _is_direct_member(connection: asyncpg.Connection, role: str) -> bool:
    """Whether ``role`` was granted ledger_scoped_analyst itself (not through another role)."""
    found = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members AS m "
        "JOIN pg_roles AS g ON g.oid = m.roleid JOIN pg_roles AS r ON r.oid = m.member "
        "WHERE g.rolname = $1 AND r.rolname = $2)",
        SCOPED_GROUP,
        role,
    )
    return bool(found)


async def _prepare(connection: asyncpg.Connection) -> None:
    """Take the grants' lock (held to the end of the transaction) and check the schema."""
    key = int.from_bytes(hashlib.sha256(grant_lock_name).digest()[:8], "big", signed=True)
    await connection.execute("SELECT pg_advisory_xact_lock($1)", key)
    if await connection.fetchval("SELECT to_regclass('ledger.analyst_scopes')") is None:
        raise InfraError("the database has no ledger.analyst_scopes: run `ledger db migrate`")


def _database_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _reason(exc: BaseException) -> str:
    """The library's message on one line, or the exception's type when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _role_argument(context: click.Context, parameter: click.Parameter, value: str) -> str:
    try:
        return check_role_name(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


NameCallback = Callable[[click.Context, click.Parameter, Any], Any]


def _name_option(label: str) -> NameCallback:
    """A click callback for ledger and account names: non-empty, at most identifier_chars_max;
    a repeated option keeps each name once, in order."""

    def check(name: str) -> str:
        if not name or len(name) > limits.identifier_chars_max:
            raise click.BadParameter(
                f"{label} {name!r} must have 1 to {limits.identifier_chars_max} characters"
            )
        return name

    def callback(
        context: click.Context, parameter: click.Parameter, value: str | tuple[str, ...] | None
    ) -> str | tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(dict.fromkeys(check(name) for name in value))
        return check(value)

    return callback


@cli.group()
def db() -> None:
    """The PostgreSQL database the projector writes and analysts read."""


@db.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a line.")
def migrate(as_json: bool) -> None:
    """Apply the pending schema migrations in order (a second call is a no-op).

    The database is LEDGER_DATABASE_URL (default: the local stack's).
    """
    from streams.postgres import migrate as migrate_database
    from streams.postgres import redact_url

    database_url = Settings.from_env().database_url
    applied = asyncio.run(migrate_database(database_url))
    if as_json:
        click.echo(json.dumps({"database": redact_url(database_url), "applied": applied}))
        return
    click.echo("applied: " + ", ".join(applied) if applied else "up to date")


@db.command("grant-analyst")
@click.argument("role", callback=_role_argument)
@click.option("--ledger", required=True, callback=_name_option("ledger"), help="Ledger (shard).")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    callback=_name_option("account"),
    help="An account the role may read (repeatable); none: the whole ledger.",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="Set the role's password from this environment variable (never from the command line).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a line.")
def grant_analyst_command(
    role: str, ledger: str, accounts: tuple[str, ...], password_env: str | None, as_json: bool
) -> None:
    """Let ROLE read LEDGER, or only its --account(s), through the analytics views.

    Creates ROLE (LOGIN) when it does not exist, makes it a member of ledger_scoped_analyst and
    replaces its scope in LEDGER. Its other ledgers' scopes stay. The database is
    LEDGER_DATABASE_URL.
    """
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise ConfigError(f"environment variable {password_env} is not set or empty")
    grant = asyncio.run(
        grant_analyst(
            Settings.from_env().database_url, role, ledger, list(accounts) or None, password
        )
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "role": grant.role,
                    "ledger": grant.ledger,
                    "accounts": grant.accounts,
                    "created": grant.created,
                }
            )
        )
        return
    scope = (
        "the whole ledger" if grant.accounts is None else "accounts " + ", ".join(grant.accounts)
    )
    created = " (role created)" if grant.created else ""
    click.echo(f"{grant.role} reads ledger {grant.ledger}: {scope}{created}")


@db.command("revoke-analyst")
@click.argument("role", callback=_role_argument)
@click.option(
    "--ledger",
    callback=_name_option("ledger"),
    help="Remove the scope in this ledger only (default: in every ledger).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a line.")
def revoke_analyst_command(role: str, ledger: str | None, as_json: bool) -> None:
    """Remove ROLE's scope in --ledger (or all of them); with none left, ROLE stops being a
    member of ledger_scoped_analyst and reads nothing. ROLE itself is not dropped."""
    revocation = asyncio.run(revoke_analyst(Settings.from_env().database_url, role, ledger))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "role": revocation.role,
                    "removed": revocation.removed,
                    "remaining": revocation.remaining,
                    "member": revocation.member,
                }
            )
        )
        return
    removed = ", ".join(revocation.removed) or "none"
    left = (
        "still reads " + ", ".join(revocation.remaining)
        if revocation.remaining
        else f"no scope left, not a member of {SCOPED_GROUP}"
    )
    click.echo(f"{revocation.role}: scopes removed: {removed}; {left}")
