-- 0002_views: what analysts see. Everything an analyst may read lives in schema `analytics`;
-- the role ledger_analyst has USAGE on `analytics` only, never on `ledger`, so the tables stay
-- out of reach even if a future migration grants too much inside `ledger`.
--
-- The views are owned by the migrating role and read the tables with its rights (ordinary,
-- not security_invoker, views); balance_at is SECURITY DEFINER with a fixed search_path.
-- Every relation in `analytics` is granted to ledger_analyst: a test checks that.

-- ledger_analyst is cluster-wide: create it once, and survive another database's migration
-- creating it at the same moment (unique_violation) or before us (duplicate_object).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ledger_analyst') THEN
        BEGIN
            CREATE ROLE ledger_analyst NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

CREATE SCHEMA analytics;
COMMENT ON SCHEMA analytics IS 'Read-only views of the ledger for analysts (role ledger_analyst).';

-- One view per table, same name, same columns: analysts never touch ledger.* directly, so the
-- tables can change behind these views. Simple views: filters reach the tables' indexes.

CREATE VIEW analytics.blocks AS
SELECT ledger, height, hash, prev_hash, tx_root, blocks_root, tx_count, first_seq, sealed_at,
       sealer_key, source_partition, source_offset_end, size_bytes
FROM ledger.blocks;

CREATE VIEW analytics.transactions AS
SELECT ledger, seq, tx_id, height, index_in_block, kind, key_id, created_at, expires_at,
       sealed_at, external_ref, memo, envelope
FROM ledger.transactions;

CREATE VIEW analytics.postings AS
SELECT ledger, seq, posting_index, account, asset, amount, height, sealed_at
FROM ledger.postings;

CREATE VIEW analytics.balances AS
SELECT ledger, account, asset, balance, held, available, updated_height, updated_seq
FROM ledger.balances;

CREATE VIEW analytics.accounts AS
SELECT ledger, account, asset, status, max_balance, allow_negative, opened_height, opened_seq
FROM ledger.accounts;

CREATE VIEW analytics.assets AS
SELECT ledger, asset, scale, issuer_account, defined_height, defined_seq
FROM ledger.assets;

CREATE VIEW analytics.keys AS
SELECT ledger, key_id, public_key, roles, accounts, registered_height, registered_seq,
       revoked_height
FROM ledger.keys;

CREATE VIEW analytics.holds AS
SELECT ledger, hold_id, payer, payee, asset, amount, captured_amount, status, expires_at,
       created_seq, resolved_seq, resolved_height
FROM ledger.holds;

CREATE VIEW analytics.attestations AS
SELECT ledger, digest, algorithm, seq, tx_id, key_id, height, sealed_at
FROM ledger.attestations;

CREATE VIEW analytics.rejections AS
SELECT id, tx_id, ledger, code, detail, stage, key_id, source_topic, source_partition,
       source_offset, rejected_at, height, external_ref
FROM ledger.rejections;

-- Statement: every posting of an account in ledger order, with its transaction and the balance
-- after it. A filter on (ledger, account) is pushed below the window (they are its partition),
-- so a statement reads one account's postings through postings_statement.
CREATE VIEW analytics.v_account_statement AS
SELECT p.ledger,
       p.account,
       p.asset,
       p.seq,
       p.posting_index,
       p.height,
       p.sealed_at,
       t.kind,
       t.tx_id,
       t.external_ref,
       t.memo,
       p.amount,
       -- Balances stay inside int64 (the state machine refuses OVERFLOW), so the sum does too.
       sum(p.amount) OVER (
           PARTITION BY p.ledger, p.account
           ORDER BY p.seq, p.posting_index
           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
       )::bigint AS running_balance
FROM ledger.postings AS p
JOIN ledger.transactions AS t ON t.ledger = p.ledger AND t.seq = p.seq;

-- Daily volume per asset, days in UTC: transactions that moved the asset, and the money moved
-- (the positive legs; the negative ones mirror them). numeric: a day's volume may exceed int64.
CREATE VIEW analytics.v_daily_volume AS
SELECT ledger,
       asset,
       (sealed_at AT TIME ZONE 'UTC')::date AS day,
       count(DISTINCT seq) AS tx_count,
       coalesce(sum(amount) FILTER (WHERE amount > 0), 0)::numeric AS volume
FROM ledger.postings
GROUP BY ledger, asset, (sealed_at AT TIME ZONE 'UTC')::date;

-- Block stats. Heights are contiguous, so the previous block is a primary-key probe rather than
-- a window: filters on height reach the index instead of scanning the whole chain.
CREATE VIEW analytics.v_block_stats AS
SELECT b.ledger,
       b.height,
       b.tx_count,
       b.size_bytes,
       b.sealed_at,
       extract(epoch FROM b.sealed_at - previous.sealed_at) AS seconds_since_previous,
       CASE WHEN b.sealed_at > previous.sealed_at
            THEN round(b.tx_count / extract(epoch FROM b.sealed_at - previous.sealed_at), 3)
       END AS tx_per_second
FROM ledger.blocks AS b
LEFT JOIN ledger.blocks AS previous
       ON previous.ledger = b.ledger AND previous.height = b.height - 1;

CREATE VIEW analytics.v_rejections_by_code AS
SELECT code,
       stage,
       count(*) AS count,
       min(rejected_at) AS first_at,
       max(rejected_at) AS last_at
FROM ledger.rejections
GROUP BY code, stage;

-- The balance of an account after block `height` (its postings up to that height): NULL when the
-- account was not open yet at that height. Past the tip it is the current balance.
CREATE FUNCTION analytics.balance_at(ledger text, account text, height bigint)
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN EXISTS (
            SELECT 1
            FROM ledger.accounts AS a
            WHERE a.ledger = balance_at.ledger
              AND a.account = balance_at.account
              AND a.opened_height <= balance_at.height
        )
        THEN (
            SELECT coalesce(sum(p.amount), 0)::bigint
            FROM ledger.postings AS p
            WHERE p.ledger = balance_at.ledger
              AND p.account = balance_at.account
              AND p.height <= balance_at.height
        )
    END
$$;
COMMENT ON FUNCTION analytics.balance_at(text, text, bigint) IS
    'Balance of an account after block height (sum of its postings up to it); NULL before it opened.';

-- Grants: USAGE on analytics, SELECT on its views, EXECUTE on balance_at; nothing else.
REVOKE ALL ON SCHEMA analytics FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION analytics.balance_at(text, text, bigint) FROM PUBLIC;
GRANT USAGE ON SCHEMA analytics TO ledger_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO ledger_analyst;
GRANT EXECUTE ON FUNCTION analytics.balance_at(text, text, bigint) TO ledger_analyst;
