"""Throwaway PostgreSQL databases for the schema tests: created from the superuser URL of the
local stack, dropped afterwards. The cluster-wide role ledger_analyst is left in place."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from postgres_databases import ThrowawayDatabases

from ledger.local import stack
from ledger.settings import Settings
from streams.postgres import migrate


@pytest.fixture(scope="session")
def superuser_url() -> str:
    """The local stack's PostgreSQL, started if needed; nothing else of the stack is needed here."""
    settings = Settings.from_env()
    if settings.local_postgres:
        stack.postgres_cluster(settings).up()
    return settings.database_url


@pytest.fixture(scope="module")
async def databases(
    superuser_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[ThrowawayDatabases]:
    """A factory of fresh databases for this test module; all of them dropped at its end."""
    label = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    factory = ThrowawayDatabases(superuser_url, label.lower())
    yield factory
    await factory.drop_all()


@pytest.fixture(scope="module")
async def database_url(databases: ThrowawayDatabases) -> str:
    """One fresh, empty database for this test module."""
    return await databases.create()


@pytest.fixture(scope="module")
async def migrated_url(database_url: str) -> str:
    """The module's database with every migration applied."""
    await migrate(database_url)
    return database_url


@pytest.fixture()
async def connection(migrated_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the module's migrated database."""
    connection = await asyncpg.connect(migrated_url)
    yield connection
    await connection.close()
