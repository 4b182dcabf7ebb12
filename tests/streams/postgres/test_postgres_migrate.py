"""migrate(): applies every file once, in order, safely under concurrency; refuses a database
that differs from the files; reports infrastructure failures in one sentence."""

from __future__ import annotations

import asyncio
import importlib
import shutil
from pathlib import Path

import asyncpg
import pytest
from postgres_databases import ThrowawayDatabases, url_for_database

from ledger.errors import InfraError
from streams.postgres import MIGRATIONS_DIR, load_migrations, migrate

pytestmark = pytest.mark.services

# The package exports the function `migrate`, which hides the module of the same name.
migrate_module = importlib.import_module("streams.postgres.migrate")

ALL_NAMES = [migration.name for migration in load_migrations()]


async def fetch_applied(url: str) -> list[tuple[int, str, str]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT version, name, checksum FROM ledger.schema_migrations ORDER BY version"
        )
    finally:
        await connection.close()
    return [(row["version"], row["name"], row["checksum"]) for row in rows]


def copy_migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    return directory


async def test_migrate_applies_everything_then_is_a_noop(databases: ThrowawayDatabases) -> None:
    """A fresh database gets every migration with its checksum; the second run applies nothing."""
    url = await databases.create()
    assert await migrate(url) == ALL_NAMES
    expected = [(m.version, m.name, m.checksum) for m in load_migrations()]
    assert await fetch_applied(url) == expected
    assert await migrate(url) == []
    assert await fetch_applied(url) == expected


async def test_concurrent_migrations_apply_each_file_once(databases: ThrowawayDatabases) -> None:
    """Five processes' worth of concurrent migrate calls: one applies everything, four wait and see it done."""
    url = await databases.create()
    results = await asyncio.gather(*(migrate(url) for _ in range(5)))
    assert sorted(results, key=len) == [[], [], [], [], ALL_NAMES]
    assert [row[1] for row in await fetch_applied(url)] == ALL_NAMES


async def test_changed_checksum_in_the_database_is_refused(databases: ThrowawayDatabases) -> None:
    """An applied migration whose stored checksum differs from the file is refused by name."""
    url = await databases.create()
    await migrate(url)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "UPDATE ledger.schema_migrations SET checksum = repeat('0', 64) WHERE version = 1"
        )
    finally:
        await connection.close()
    with pytest.raises(InfraError, match=r"migration 0001_core was changed after it was applied"):
        await migrate(url)


async def test_edited_file_is_refused_and_a_new_file_is_applied(
    databases: ThrowawayDatabases, tmp_path: Path
) -> None:
    """A new file is applied alone; editing an applied file afterwards is refused."""
    url = await databases.create()
    directory = copy_migrations(tmp_path)
    assert await migrate(url, directory=directory) == ALL_NAMES
    extra = f"{len(ALL_NAMES) + 1:04d}_extra"
    (directory / f"{extra}.sql").write_text("CREATE TABLE ledger.extra (id int PRIMARY KEY);\n")
    assert await migrate(url, directory=directory) == [extra]
    core = directory / "0001_core.sql"
    core.write_text(core.read_text() + "\n-- an innocent-looking comment\n")
    with pytest.raises(InfraError, match="0001_core was changed"):
        await migrate(url, directory=directory)


async def test_failing_migration_is_rolled_back_whole(
    databases: ThrowawayDatabases, tmp_path: Path
) -> None:
    """A migration that fails halfway leaves neither its objects nor its row; fixed, it applies."""
    url = await databases.create()
    directory = copy_migrations(tmp_path)
    broken = f"{len(ALL_NAMES) + 1:04d}_broken"
    path = directory / f"{broken}.sql"
    path.write_text("CREATE TABLE ledger.partial (id int);\nSELECT 1 / 0;\n")
    with pytest.raises(
        InfraError, match=f"migration {broken} failed .* rolled back: division by zero"
    ):
        await migrate(url, directory=directory)
    assert [row[1] for row in await fetch_applied(url)] == ALL_NAMES
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT to_regclass('ledger.partial')") is None
    finally:
        await connection.close()
    path.write_text("CREATE TABLE ledger.partial (id int);\n")
    assert await migrate(url, directory=directory) == [broken]


async def test_database_ahead_of_the_code_is_refused(databases: ThrowawayDatabases) -> None:
    """A database holding a migration the files do not have is refused, naming it."""
    url = await databases.create()
    await migrate(url)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO ledger.schema_migrations (version, name, checksum) "
            "VALUES (99, '0099_future', repeat('a', 64))"
        )
    finally:
        await connection.close()
    with pytest.raises(InfraError, match="0099_future, which this code does not have"):
        await migrate(url)


async def test_lock_held_too_long_is_reported(
    databases: ThrowawayDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another session holds the migration lock past the wait limit, migrate gives up clearly."""
    url = await databases.create()
    monkeypatch.setattr(migrate_module, "lock_wait_ms", 200)
    holder = await asyncpg.connect(url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrate_module.migration_lock_key)
        with pytest.raises(InfraError, match="another process has held the migration lock"):
            await migrate(url)
    finally:
        await holder.close()
    assert await migrate(url) == ALL_NAMES


async def test_unreachable_server_is_one_sentence_without_the_password() -> None:
    """Nothing listening: InfraError naming the URL without its password."""
    url = "postgresql://ledger:sekrit-password@127.0.0.1:1/ledger"
    with pytest.raises(InfraError) as caught:
        await migrate(url)
    message = str(caught.value)
    assert message.startswith(
        "cannot connect to PostgreSQL at postgresql://ledger@127.0.0.1:1/ledger"
    )
    assert "sekrit" not in message
    assert "\n" not in message


async def test_wrong_password_and_missing_database_are_infra_errors(
    databases: ThrowawayDatabases,
) -> None:
    """Authentication failure and an unknown database both become InfraError, password hidden."""
    good = await databases.create()
    wrong_password = good.replace("ledger:ledger@", "ledger:not-the-password@")
    with pytest.raises(InfraError, match="cannot connect") as caught:
        await migrate(wrong_password)
    assert "not-the-password" not in str(caught.value)
    missing = url_for_database(good, "ledger_test_does_not_exist")
    with pytest.raises(InfraError, match='database "ledger_test_does_not_exist" does not exist'):
        await migrate(missing)
