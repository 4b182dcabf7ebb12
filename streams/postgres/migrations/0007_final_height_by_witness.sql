-- 0007: analytics.final_height reads one index entry per registered witness (its highest
-- cosignature, through the primary key (ledger, witness_key_id, height)) instead of grouping
-- every cosignature of the ledger, whose number grows with the chain. Same result.
CREATE OR REPLACE FUNCTION analytics.final_height(p_ledger text)
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH policy AS (
        SELECT coalesce(
            (SELECT threshold FROM ledger.finality_policies WHERE ledger = p_ledger), 0
        ) AS threshold
    ),
    witness_heads AS (
        SELECT (
            SELECT c.height
            FROM ledger.cosignatures AS c
            WHERE c.ledger = k.ledger AND c.witness_key_id = k.key_id
            ORDER BY c.height DESC
            LIMIT 1
        ) AS height
        FROM ledger.keys AS k
        WHERE k.ledger = p_ledger AND 'witness' = ANY (k.roles) AND k.revoked_height IS NULL
    )
    SELECT CASE
        WHEN policy.threshold = 0 THEN (SELECT max(height) FROM ledger.blocks WHERE ledger = p_ledger)
        ELSE (
            SELECT height FROM witness_heads WHERE height IS NOT NULL
            ORDER BY height DESC OFFSET policy.threshold - 1 LIMIT 1
        )
    END
    FROM policy
$$;
