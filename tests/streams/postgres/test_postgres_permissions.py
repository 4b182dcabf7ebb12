"""ledger_analyst reads every analytics view and calls balance_at, and can do nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

pytestmark = pytest.mark.services

ANALYST = "ledger_analyst"
FORBIDDEN_STATEMENTS = [
    "SELECT * FROM ledger.postings",
    "SELECT * FROM ledger.balances",
    "SELECT * FROM ledger.tracking",
    "SELECT * FROM ledger.schema_migrations",
    "INSERT INTO ledger.postings VALUES ('main', 9, 0, 'x', 'USD', 1, 0, now())",
    "DELETE FROM ledger.rejections",
    # The mirror views are simple, hence auto-updatable: only SELECT is granted on them.
    "INSERT INTO analytics.postings VALUES ('main', 9, 0, 'x', 'USD', 1, 0, now())",
    "UPDATE analytics.balances SET balance = 0",
    "DELETE FROM analytics.accounts",
    "CREATE TABLE analytics.scratch (id int)",
    "CREATE VIEW analytics.scratch AS SELECT 1",
    "CREATE TABLE public.scratch (id int)",
    "CREATE SCHEMA scratch",
    "CREATE ROLE scratch",
    "TRUNCATE ledger.blocks",
]


@asynccontextmanager
async def as_analyst(connection: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """Act as ledger_analyst inside a transaction that is always rolled back."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f"SET LOCAL ROLE {ANALYST}")
        yield connection
    finally:
        await transaction.rollback()


@pytest.fixture(scope="module")
async def seeded_url(migrated_url: str) -> str:
    """One account with one posting, so reading through the views returns rows."""
    connection = await asyncpg.connect(migrated_url)
    try:
        await connection.execute(
            """
            INSERT INTO ledger.accounts VALUES ('main', 'alice', 'USD', 'active', NULL, false, 0, 0);
            INSERT INTO ledger.transactions VALUES ('main', 0, '\\x000102030405060708090a0b0c0d0e0f',
                0, 0, 'Transfer', repeat('ab', 16), now(), now(), now(), 'ref-0', NULL, '\\x00');
            INSERT INTO ledger.postings VALUES ('main', 0, 0, 'alice', 'USD', 42, 0, now());
            """
        )
    finally:
        await connection.close()
    return migrated_url


async def analytics_relations(connection: asyncpg.Connection) -> list[str]:
    rows = await connection.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'analytics' ORDER BY c.relname"
    )
    return [row["relname"] for row in rows]


async def test_the_role_is_nologin_and_unprivileged(connection: asyncpg.Connection) -> None:
    """ledger_analyst cannot log in and has no superuser, role, database or bypass powers."""
    row = await connection.fetchrow("SELECT * FROM pg_roles WHERE rolname = $1", ANALYST)
    assert row is not None
    assert not any(
        row[name]
        for name in (
            "rolcanlogin",
            "rolsuper",
            "rolcreaterole",
            "rolcreatedb",
            "rolreplication",
            "rolbypassrls",
        )
    )


async def test_every_analytics_relation_is_a_readable_view(seeded_url: str) -> None:
    """Everything in schema analytics is a view the analyst can SELECT (a future migration that
    forgets its GRANT fails here)."""
    connection = await asyncpg.connect(seeded_url)
    try:
        relations = await analytics_relations(connection)
        assert set(relations) >= {
            "v_account_statement",
            "v_daily_volume",
            "v_block_stats",
            "v_rejections_by_code",
            "postings",
            "balances",
        }
        kinds = await connection.fetch(
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'analytics'"
        )
        assert {row["relkind"] for row in kinds} == {"v"}
        for relation in relations:
            async with as_analyst(connection):
                await connection.fetch(f"SELECT * FROM analytics.{relation} LIMIT 1")
        async with as_analyst(connection):
            statement = await connection.fetch(
                "SELECT amount, running_balance FROM analytics.v_account_statement "
                "WHERE ledger = 'main' AND account = 'alice'"
            )
            assert [tuple(row) for row in statement] == [(42, 42)]
            assert (
                await connection.fetchval("SELECT analytics.balance_at('main', 'alice', 0)") == 42
            )
    finally:
        await connection.close()


@pytest.mark.parametrize("statement", FORBIDDEN_STATEMENTS)
async def test_the_analyst_cannot_touch_tables_or_write(
    connection: asyncpg.Connection, statement: str
) -> None:
    """Reading ledger.* tables, writing anywhere, or creating objects is refused."""
    async with as_analyst(connection):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)


async def test_no_privilege_on_the_ledger_schema_or_its_tables(
    connection: asyncpg.Connection,
) -> None:
    """The catalog agrees: no USAGE on schema ledger, no privilege on any of its tables or
    sequences, and EXECUTE on no analytics function but balance_at and final_height."""
    assert not await connection.fetchval(
        "SELECT has_schema_privilege($1, 'ledger', 'USAGE, CREATE')", ANALYST
    )
    assert not await connection.fetchval(
        "SELECT has_schema_privilege($1, 'analytics', 'CREATE')", ANALYST
    )
    granted = await connection.fetch(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'ledger' AND c.relkind IN ('r', 'v', 'S', 'p', 'm')
          AND (has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
               OR (c.relkind = 'S' AND has_sequence_privilege($1, c.oid, 'USAGE, SELECT, UPDATE')))
        """,
        ANALYST,
    )
    assert [row["relname"] for row in granted] == []
    functions = await connection.fetch(
        """
        SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('ledger', 'analytics') AND has_function_privilege($1, p.oid, 'EXECUTE')
        """,
        ANALYST,
    )
    assert sorted(row["proname"] for row in functions) == ["balance_at", "final_height"]


async def test_balance_at_is_security_definer_with_a_fixed_search_path(
    connection: asyncpg.Connection,
) -> None:
    """balance_at runs with its owner's rights, so its search_path is pinned against hijacking."""
    row = await connection.fetchrow(
        "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = "
        "'analytics.balance_at(text, text, bigint)'::regprocedure"
    )
    assert row["prosecdef"] is True
    assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"]
