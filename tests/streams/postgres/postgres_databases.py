"""Throwaway databases on the local stack's PostgreSQL, for the schema tests (imported by the
conftest and by tests that need a database of their own)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DATABASE_PREFIX = "ledger_test_"


def url_for_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


class ThrowawayDatabases:
    """Creates databases on demand and drops every one it created."""

    def __init__(self, superuser_url: str, label: str) -> None:
        self.superuser_url = superuser_url
        self.label = label
        self.names: list[str] = []

    async def create(self) -> str:
        name = f"{DATABASE_PREFIX}{self.label[:30]}_{uuid.uuid4().hex[:8]}"
        connection = await asyncpg.connect(self.superuser_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self.names.append(name)
        return url_for_database(self.superuser_url, name)

    async def drop_all(self) -> None:
        connection = await asyncpg.connect(self.superuser_url)
        try:
            for name in self.names:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
        self.names.clear()
