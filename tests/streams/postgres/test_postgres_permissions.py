"""ledger_analyst and ledger_scoped_analyst read every analytics view, the tables behind them
(under row-level security: migration 0011) and call balance_at and final_height, and can do
nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

pytestmark = pytest.mark.services

ANALYST = "ledger_analyst"
SCOPED_ANALYST = "ledger_scoped_analyst"
ANALYST_GROUPS = [ANALYST, SCOPED_ANALYST]
# The tables no view reads: the projector's position, the schema's history, its snapshots.
FORBIDDEN_STATEMENTS = [
    "SELECT * FROM ledger.tracking",
    "SELECT * FROM ledger.schema_migrations",
    "SELECT * FROM ledger.replica_snapshots",
    "SELECT * FROM ledger.ignored_messages",
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
    "UPDATE ledger.balances SET balance = 0",
    "INSERT INTO ledger.analyst_scopes (role, ledger) VALUES (current_user, 'main')",
    "DELETE FROM ledger.analyst_scopes",
    "ALTER TABLE ledger.postings DISABLE ROW LEVEL SECURITY",
    "DROP POLICY analysts ON ledger.postings",
]


@asynccontextmanager
async def as_analyst(
    connection: asyncpg.Connection, role: str = ANALYST
) -> AsyncIterator[asyncpg.Connection]:
    """Act as ``role`` inside a transaction that is always rolled back."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f"SET LOCAL ROLE {role}")
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


@pytest.mark.parametrize("role", ANALYST_GROUPS)
async def test_the_role_is_nologin_and_unprivileged(
    connection: asyncpg.Connection, role: str
) -> None:
    """Both groups cannot log in and have no superuser, role, database or bypass powers."""
    row = await connection.fetchrow("SELECT * FROM pg_roles WHERE rolname = $1", role)
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
    """Everything in schema analytics is a security_invoker view both groups can SELECT (a future
    migration that forgets its GRANT, or makes an owner's-rights view that would read past
    every scope, fails here)."""
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
            "SELECT c.relkind::text, c.reloptions FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'analytics'"
        )
        assert {row["relkind"] for row in kinds} == {"v"}
        assert all("security_invoker=true" in (row["reloptions"] or []) for row in kinds)
        for relation in relations:
            for role in ANALYST_GROUPS:
                async with as_analyst(connection, role):
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


@pytest.mark.parametrize("role", ANALYST_GROUPS)
@pytest.mark.parametrize("statement", FORBIDDEN_STATEMENTS)
async def test_the_analyst_cannot_touch_tables_or_write(
    connection: asyncpg.Connection, statement: str, role: str
) -> None:
    """Reading the tables no view reads, writing anywhere, creating objects or lifting row-level
    security is refused."""
    async with as_analyst(connection, role):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)


async def ledger_tables_read_by_views(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch(
        """
        SELECT DISTINCT t.relname FROM pg_rewrite r
        JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass
        JOIN pg_class v ON v.oid = r.ev_class
        JOIN pg_class t ON t.oid = d.refobjid
        WHERE v.relnamespace = 'analytics'::regnamespace
          AND t.relnamespace = 'ledger'::regnamespace AND t.relkind = 'r'
        """
    )
    return {row["relname"] for row in rows}


@pytest.mark.parametrize("role", ANALYST_GROUPS)
async def test_only_select_on_the_tables_behind_the_views(
    connection: asyncpg.Connection, role: str
) -> None:
    """The catalog agrees: USAGE on schema ledger (security_invoker views read the tables with
    their reader's rights), SELECT on exactly the tables the views read (the scoped group also
    on its scopes), nothing else there, no CREATE, and EXECUTE on no analytics function but
    balance_at and final_height."""
    behind_views = await ledger_tables_read_by_views(connection)
    assert {"postings", "transactions", "keys", "holds", "rejections"} <= behind_views
    assert await connection.fetchval("SELECT has_schema_privilege($1, 'ledger', 'USAGE')", role)
    for schema in ("ledger", "analytics"):
        assert not await connection.fetchval(
            "SELECT has_schema_privilege($1, $2, 'CREATE')", role, schema
        )
    granted = await connection.fetch(
        """
        SELECT c.relname,
               has_table_privilege($1, c.oid, 'SELECT') AS readable,
               has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                   OR (c.relkind = 'S' AND has_sequence_privilege($1, c.oid, 'USAGE, UPDATE'))
                   AS writable
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'ledger' AND c.relkind IN ('r', 'v', 'S', 'p', 'm')
        """,
        role,
    )
    readable = {row["relname"] for row in granted if row["readable"]}
    expected = behind_views | ({"analyst_scopes"} if role == SCOPED_ANALYST else set())
    assert readable == expected
    assert [row["relname"] for row in granted if row["writable"]] == []
    functions = await connection.fetch(
        """
        SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('ledger', 'analytics') AND has_function_privilege($1, p.oid, 'EXECUTE')
        """,
        role,
    )
    assert sorted(row["proname"] for row in functions) == ["balance_at", "final_height"]


async def test_every_readable_table_has_row_level_security_for_both_groups(
    connection: asyncpg.Connection,
) -> None:
    """A table an analyst group may read has RLS enabled (not forced: the owner, the projector,
    writes unfiltered) and one SELECT policy per group: `true` for ledger_analyst, the scope for
    ledger_scoped_analyst. A table granted without them would show scoped analysts every row."""
    tables = await connection.fetch(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               has_table_privilege('ledger_analyst', c.oid, 'SELECT') AS analyst,
               has_table_privilege('ledger_scoped_analyst', c.oid, 'SELECT') AS scoped,
               (SELECT array_agg(p.polname || ':' || pg_get_expr(p.polqual, p.polrelid)
                                 || ':' || array_to_string(p.polroles::regrole[], ',')
                                 ORDER BY p.polname)
                FROM pg_policy p WHERE p.polrelid = c.oid AND p.polcmd = 'r') AS policies
        FROM pg_class c WHERE c.relnamespace = 'ledger'::regnamespace AND c.relkind = 'r'
        """
    )
    checked = 0
    for table in tables:
        assert not table["relforcerowsecurity"], table
        if not (table["analyst"] or table["scoped"]):
            continue
        checked += 1
        assert table["relrowsecurity"], table
        policies = table["policies"] or []
        if table["analyst"]:
            assert "analysts:true:ledger_analyst" in policies, table
        assert any(
            policy.startswith("scoped_analysts:") or policy.startswith("own_scopes:")
            for policy in policies
        ), table
        assert all(
            policy.endswith(("ledger_analyst", "ledger_scoped_analyst")) for policy in policies
        )
    assert checked >= 15


@pytest.mark.parametrize(
    "function", ["analytics.balance_at(text, text, bigint)", "analytics.final_height(text)"]
)
async def test_the_functions_run_as_their_caller_with_a_fixed_search_path(
    connection: asyncpg.Connection, function: str
) -> None:
    """balance_at and final_height are SECURITY INVOKER, so the caller's policies filter what
    they read; their search_path is pinned all the same."""
    row = await connection.fetchrow(
        "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = $1::regprocedure", function
    )
    assert row["prosecdef"] is False
    assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"]
