"""Apply the ordered SQL files in ``migrations/`` to a PostgreSQL database, once each.

A migration is a file ``NNNN_name.sql``; versions start at 1 and leave no gaps. Each one runs in
its own transaction together with its ``ledger.schema_migrations`` row, so a failed migration
leaves nothing behind. An applied file must never change: its SHA-256 is stored and checked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ledger.errors import InfraError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

MIGRATION_FILE_PATTERN = re.compile(r"^(?P<version>\d{4})_(?P<label>[a-z0-9_]+)\.sql$")

migration_lock_key = int.from_bytes(
    hashlib.sha256(b"ledger.schema_migrations").digest()[:8], "big", signed=True
)
"""Advisory lock every migrating process takes: derived from a name, so it collides with nothing."""

connect_timeout_s = 10.0
"""A database that does not answer a connection in this long is down or unreachable."""

lock_wait_ms = 300_000
"""Longest wait for the migration lock (and for table locks a migration needs): long enough for
another process's migration to finish, short enough that a stuck one is reported."""

BOOTSTRAP_SQL = """
CREATE SCHEMA IF NOT EXISTS ledger;
CREATE TABLE IF NOT EXISTS ledger.schema_migrations (
    version     int         PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    checksum    text        NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # the file name without ".sql", e.g. "0001_core"
    sql: str
    checksum: str  # lowercase hex SHA-256 of the file's bytes


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read every ``NNNN_name.sql`` in ``directory``, in version order, checking the numbering."""
    migrations: list[Migration] = []
    try:
        paths = sorted(directory.glob("*.sql"))
        for path in paths:
            match = MIGRATION_FILE_PATTERN.match(path.name)
            if match is None:
                raise InfraError(
                    f"migration file {path.name} is not named NNNN_lowercase_words.sql"
                )
            content = path.read_bytes()
            migrations.append(
                Migration(
                    version=int(match["version"]),
                    name=path.stem,
                    sql=content.decode("utf-8"),
                    checksum=hashlib.sha256(content).hexdigest(),
                )
            )
    except (OSError, UnicodeDecodeError) as exc:
        raise InfraError(f"cannot read the migrations in {directory}: {exc}") from exc
    for expected_version, migration in enumerate(migrations, start=1):
        if migration.version != expected_version:
            raise InfraError(
                f"migration {migration.name} should be numbered {expected_version:04d}: "
                "versions start at 0001 and leave no gaps"
            )
    return migrations


def pending_migrations(
    migrations: Sequence[Migration], applied: Mapping[int, AppliedMigration]
) -> list[Migration]:
    """The migrations still to apply, after checking the applied ones against the files.

    Refuses a database that differs from the files: an applied file that changed (checksum), a
    version the files do not have, or applied versions that are not a prefix of the files.
    """
    by_version = {migration.version: migration for migration in migrations}
    for version, row in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise InfraError(
                f"the database has migration {row.name}, which this code does not have: "
                "run a newer release"
            )
        if migration.checksum != row.checksum or migration.name != row.name:
            raise InfraError(
                f"migration {migration.name} was changed after it was applied "
                f"(checksum {row.checksum[:12]} in the database, {migration.checksum[:12]} on "
                "disk): restore the file and put the change in a new migration"
            )
    pending = [migration for migration in migrations if migration.version not in applied]
    if pending and applied and pending[0].version < max(applied):
        raise InfraError(
            f"migration {pending[0].name} is older than the applied "
            f"{applied[max(applied)].name}: renumber it after the last applied one"
        )
    return pending


def redact_url(database_url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(database_url)
        credentials, _, host = parts.netloc.rpartition("@")
        user = credentials.partition(":")[0]
        query = urlencode(
            [
                (name, "***" if name == "password" else value)
                for name, value in parse_qsl(parts.query)
            ]
        )
    except ValueError:
        return "<unparseable database URL>"
    netloc = f"{user}@{host}" if user else host
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


async def migrate(database_url: str, *, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations; return their names in order ([] when up to date).

    Steps, in this order:
    1. read and check the files (before touching the database);
    2. connect, and take the session advisory lock, so concurrent callers apply in turn;
    3. create ``ledger.schema_migrations`` if missing (under the lock: CREATE IF NOT EXISTS
       races with itself);
    4. check the applied rows against the files and find the pending ones;
    5. apply each pending file and insert its row in one transaction;
    6. unlock and close (closing alone would also release the lock).
    """
    migrations = load_migrations(directory)
    where = redact_url(database_url)
    connection = await _connect(database_url, where)
    try:
        await _lock(connection, where)
        await _execute(connection, BOOTSTRAP_SQL, f"cannot create schema_migrations in {where}")
        pending = pending_migrations(migrations, await _applied(connection, where))
        for migration in pending:
            await _apply(connection, migration, where)
    finally:
        await _unlock_and_close(connection)
    return [migration.name for migration in pending]


async def _connect(database_url: str, where: str) -> asyncpg.Connection:
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            database_url,
            timeout=connect_timeout_s,
            server_settings={
                "application_name": "ledger-migrate",
                "lock_timeout": str(lock_wait_ms),
            },
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise InfraError(f"cannot connect to PostgreSQL at {where}: {_reason(exc)}") from exc
    return connection


async def _lock(connection: asyncpg.Connection, where: str) -> None:
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", migration_lock_key)
    except asyncpg.LockNotAvailableError as exc:
        raise InfraError(
            f"another process has held the migration lock in {where} for over "
            f"{lock_wait_ms // 1000} s: wait for it or end it"
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise InfraError(f"cannot take the migration lock in {where}: {_reason(exc)}") from exc


async def _applied(connection: asyncpg.Connection, where: str) -> dict[int, AppliedMigration]:
    try:
        rows = await connection.fetch(
            "SELECT version, name, checksum FROM ledger.schema_migrations ORDER BY version"
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise InfraError(f"cannot read schema_migrations in {where}: {_reason(exc)}") from exc
    return {
        int(row["version"]): AppliedMigration(
            version=int(row["version"]), name=str(row["name"]), checksum=str(row["checksum"])
        )
        for row in rows
    }


async def _apply(connection: asyncpg.Connection, migration: Migration, where: str) -> None:
    try:
        async with connection.transaction():
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO ledger.schema_migrations (version, name, checksum) "
                "VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.LockNotAvailableError as exc:
        raise InfraError(
            f"migration {migration.name} waited over {lock_wait_ms // 1000} s for a table lock "
            f"in {where}; nothing was applied from it"
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise InfraError(
            f"migration {migration.name} failed in {where} and was rolled back: {_reason(exc)}"
        ) from exc


async def _unlock_and_close(connection: asyncpg.Connection) -> None:
    """Best effort: the server releases a session lock when its connection ends anyway, and an
    error here must not hide the one that brought us here."""
    try:
        await connection.execute("SELECT pg_advisory_unlock_all()")
        await connection.close(timeout=connect_timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        connection.terminate()


async def _execute(connection: asyncpg.Connection, sql: str, failure: str) -> None:
    try:
        await connection.execute(sql)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise InfraError(f"{failure}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The library's message on one line, or the exception's type when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
