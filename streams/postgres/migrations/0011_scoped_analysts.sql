-- 0011_scoped_analysts: analysts scoped to ledgers and accounts by PostgreSQL row-level
-- security (issue 13). ledger_analyst keeps reading everything, as fast as before; a member of
-- the new group ledger_scoped_analyst reads, through the same views, only what
-- ledger.analyst_scopes grants it (`ledger db grant-analyst`; docs/views.md, "Access").
--
-- Design: the analytics views become security_invoker views, and the tables they read get
-- row-level security with two policies each: `USING (true)` for ledger_analyst and the scope's
-- predicate for ledger_scoped_analyst. Analysts therefore need USAGE on schema ledger and
-- SELECT on those tables (under their policies), and nothing else there.
--
-- Why not the other way, owner's-rights views owned by a non-owner role on whose behalf the
-- policies apply, with analysts kept out of schema ledger: PostgreSQL 15 does pass the querying
-- role as current_user into a policy reached through such a view (the probe in
-- tests/streams/postgres/test_postgres_scoped_analysts.py shows it), but the policies that
-- apply are then the view owner's, for every reader: ledger_analyst's queries carry the scope
-- predicate too, and PostgreSQL may not evaluate a filter that is not leakproof before it. Such
-- filters then stop serving as index conditions: v_daily_volume's day (AT TIME ZONE),
-- v_block_stats's previous block (height - 1), a metadata @> search. test_postgres_indexes
-- failed that way (a sequential scan of postings for one day, of blocks for the previous ones).
-- Here the policies follow the querying role, the planner drops ledger_analyst's `true`, and
-- its plans are as before; only scoped roles pay for their predicate.
--
-- What a scoped role sees (its rows in ledger.analyst_scopes; with none, nothing at all):
-- - a whole-ledger scope (accounts NULL): every row of that ledger;
-- - an account scope: the rows that name one of its accounts (postings, balances, accounts,
--   account policies, holds as payer or payee, transactions that post to one of them), the
--   chain facts of that ledger (blocks, assets, cosignatures, evidence, the finality policy,
--   keys that own no account; a key that owns accounts when one of them is in scope), and no
--   attestations or rejections (they may name other tenants);
-- - nothing of a ledger it has no scope in. Views that aggregate (v_daily_volume,
--   v_rejections_by_code) aggregate the rows the role sees.
-- The table owner (the migrating role: the projector) is exempt from RLS, which is not FORCEd:
-- its COPY and upserts are as before and pay nothing; superusers bypass it too. Any other role
-- reading these tables sees no row unless a policy names it.
--
-- balance_at and final_height become SECURITY INVOKER (same bodies): they read the tables with
-- their caller's rights and policies, so an account or ledger out of scope gives NULL.
--
-- A future view in analytics must be security_invoker, and a table it reads needs SELECT for
-- both groups, RLS and both policies: otherwise the view reads with its owner's rights (exempt
-- from RLS) and shows scoped analysts everything. test_postgres_permissions and
-- test_postgres_scoped_analysts fail on such a view.

-- Cluster-wide: create it once, as 0002 creates ledger_analyst.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ledger_scoped_analyst') THEN
        BEGIN
            CREATE ROLE ledger_scoped_analyst NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

-- One row per (role, ledger): the accounts of that ledger the role may read, NULL for all of
-- them. `role` is a name, not a reference: roles are cluster-wide, this table is per database.
-- The policies read it with the scoped analyst's rights, so each one may read its own rows.
CREATE TABLE ledger.analyst_scopes (
    role        name        NOT NULL,
    ledger      text        NOT NULL,
    accounts    text[],
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, ledger),
    CHECK (accounts IS NULL
           OR (cardinality(accounts) > 0 AND array_position(accounts, NULL) IS NULL))
);
COMMENT ON TABLE ledger.analyst_scopes IS
    'What each member of ledger_scoped_analyst may read; accounts NULL: the whole ledger.';
ALTER TABLE ledger.analyst_scopes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_scopes ON ledger.analyst_scopes FOR SELECT TO ledger_scoped_analyst
    USING (role = current_user);

GRANT USAGE ON SCHEMA ledger TO ledger_analyst, ledger_scoped_analyst;
GRANT SELECT ON ledger.analyst_scopes TO ledger_scoped_analyst;

-- Per table the views read: SELECT for both groups, RLS, everything for ledger_analyst, and
-- the scope's predicate for ledger_scoped_analyst. The scope sets are uncorrelated subqueries:
-- hashed once per query. Only transactions and keys need a correlated one; see there.
DO $$
DECLARE
    -- Chain facts: any scope in the ledger shows them.
    any_scope constant text := $predicate$
        ledger IN (SELECT s.ledger FROM ledger.analyst_scopes AS s WHERE s.role = current_user)
    $predicate$;
    -- Attestations and rejections may name other tenants (a document's owner, a refused
    -- payer): whole-ledger scopes only. A rejection whose bytes did not decode has no ledger.
    whole_ledger constant text := $predicate$
        ledger IN (SELECT s.ledger FROM ledger.analyst_scopes AS s
                   WHERE s.role = current_user AND s.accounts IS NULL)
    $predicate$;
    scope_accounts constant text := $predicate$
        (SELECT s.ledger, a.account
         FROM ledger.analyst_scopes AS s CROSS JOIN LATERAL unnest(s.accounts) AS a(account)
         WHERE s.role = current_user)
    $predicate$;
    target record;
BEGIN
    FOR target IN
        SELECT * FROM (VALUES
            ('blocks', any_scope),
            ('assets', any_scope),
            ('cosignatures', any_scope),
            ('evidence', any_scope),
            ('finality_policies', any_scope),
            ('attestations', whole_ledger),
            ('rejections', whole_ledger),
            ('postings', whole_ledger || ' OR (ledger, account) IN ' || scope_accounts),
            ('balances', whole_ledger || ' OR (ledger, account) IN ' || scope_accounts),
            ('accounts', whole_ledger || ' OR (ledger, account) IN ' || scope_accounts),
            ('account_policies', whole_ledger || ' OR (ledger, account) IN ' || scope_accounts),
            ('holds', whole_ledger || ' OR (ledger, payer) IN ' || scope_accounts
                      || ' OR (ledger, payee) IN ' || scope_accounts),
            -- A transaction is an account's when it posts to it. Correlated on purpose: per
            -- transaction one probe of postings' primary key (or a hash of the scope's
            -- postings, as the planner chooses), never a set of all the scope's postings
            -- that could outgrow work_mem. The planner costs that probe for every row, so a
            -- large scan of transactions by a scoped role is estimated dearer than it runs
            -- (docs/views.md, "Access", on JIT).
            ('transactions', whole_ledger || $predicate$
                OR EXISTS (SELECT 1 FROM ledger.postings AS p
                           WHERE p.ledger = transactions.ledger AND p.seq = transactions.seq
                             AND (p.ledger, p.account) IN $predicate$ || scope_accounts || ')'),
            -- Keys that own no account are the ledger's (witness, sealer, admin, operator,
            -- auditor); one that owns accounts is shown when one of them is in scope.
            ('keys', $predicate$
                EXISTS (SELECT 1 FROM ledger.analyst_scopes AS s
                        WHERE s.role = current_user AND s.ledger = keys.ledger
                          AND (s.accounts IS NULL OR keys.accounts = '{}'
                               OR keys.accounts && s.accounts))
            $predicate$)
        ) AS t(table_name, scoped_predicate)
    LOOP
        EXECUTE format('ALTER TABLE ledger.%I ENABLE ROW LEVEL SECURITY', target.table_name);
        EXECUTE format('GRANT SELECT ON ledger.%I TO ledger_analyst, ledger_scoped_analyst',
                       target.table_name);
        EXECUTE format('CREATE POLICY analysts ON ledger.%I FOR SELECT TO ledger_analyst '
                       'USING (true)', target.table_name);
        EXECUTE format('CREATE POLICY scoped_analysts ON ledger.%I FOR SELECT '
                       'TO ledger_scoped_analyst USING (%s)',
                       target.table_name, target.scoped_predicate);
    END LOOP;
END
$$;

-- The views read the tables with their reader's rights and policies.
DO $$
DECLARE
    view_name name;
BEGIN
    FOR view_name IN
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind = 'v'
    LOOP
        EXECUTE format('ALTER VIEW analytics.%I SET (security_invoker = true)', view_name);
    END LOOP;
END
$$;
ALTER FUNCTION analytics.balance_at(text, text, bigint) SECURITY INVOKER;
ALTER FUNCTION analytics.final_height(text) SECURITY INVOKER;

GRANT USAGE ON SCHEMA analytics TO ledger_scoped_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO ledger_scoped_analyst;
GRANT EXECUTE ON FUNCTION analytics.balance_at(text, text, bigint), analytics.final_height(text)
    TO ledger_scoped_analyst;
