-- 0006_finality: witnesses and finality (ledger/witnessing.py).
-- The policy comes from the chain (SetFinality, projected with the blocks); cosignatures and
-- evidence come from ledger.cosignatures and ledger.evidence (streams/finality.py), which keeps
-- only cosignatures that verify, by a key registered as a witness, over the block the chain has.
-- analytics.final_height(ledger) turns them into the final height.

CREATE TABLE ledger.finality_policies (
    ledger      text   PRIMARY KEY,
    threshold   int    NOT NULL CHECK (threshold >= 0),
    set_height  bigint NOT NULL CHECK (set_height >= 0)
);

CREATE TABLE ledger.cosignatures (
    ledger          text        NOT NULL,
    height          bigint      NOT NULL CHECK (height >= 0),
    witness_key_id  text        NOT NULL CHECK (witness_key_id ~ '^[0-9a-f]{32}$'),
    witness_key     bytea       NOT NULL CHECK (octet_length(witness_key) = 32),
    block_hash      bytea       NOT NULL CHECK (octet_length(block_hash) = 32),
    signature       bytea       NOT NULL CHECK (octet_length(signature) = 64),
    signed_at       timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ledger, witness_key_id, height)
);
-- "Who co-signed block h?" (proofs carry the anchor's cosignatures).
CREATE INDEX cosignatures_height ON ledger.cosignatures (ledger, height);

CREATE TABLE ledger.evidence (
    ledger          text        NOT NULL,
    height          bigint      NOT NULL,
    kind            text        NOT NULL,
    detail          text        NOT NULL,
    witness_key_id  text        NOT NULL,
    observed_at     timestamptz NOT NULL,
    message         bytea       NOT NULL,  -- the signed ledger.v1.Evidence, as published
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ledger, witness_key_id, height, kind)
);

-- Messages of ledger.cosignatures and ledger.evidence that do not count, and why.
CREATE TABLE ledger.ignored_messages (
    topic       text        NOT NULL,
    partition   int         NOT NULL,
    "offset"    bigint      NOT NULL,
    reason      text        NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);

-- The highest final height of a ledger: with threshold k, the k-th highest of the registered
-- witnesses' highest cosigned heights (a cosignature vouches for every block below it); with
-- k = 0 (no policy) every projected block is final. NULL: nothing final yet. An analyst
-- function like balance_at: SECURITY DEFINER with a fixed search_path, EXECUTE for
-- ledger_analyst only.
CREATE FUNCTION analytics.final_height(p_ledger text)
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
        SELECT max(c.height) AS height
        FROM ledger.cosignatures AS c
        JOIN ledger.keys AS k ON k.ledger = c.ledger AND k.key_id = c.witness_key_id
        WHERE c.ledger = p_ledger AND 'witness' = ANY (k.roles) AND k.revoked_height IS NULL
        GROUP BY c.witness_key_id
    )
    SELECT CASE
        WHEN policy.threshold = 0 THEN (SELECT max(height) FROM ledger.blocks WHERE ledger = p_ledger)
        ELSE (SELECT height FROM witness_heads ORDER BY height DESC OFFSET policy.threshold - 1 LIMIT 1)
    END
    FROM policy
$$;

CREATE VIEW analytics.cosignatures AS
SELECT ledger, height, witness_key_id, witness_key, block_hash, signature, signed_at, received_at
FROM ledger.cosignatures;

CREATE VIEW analytics.evidence AS
SELECT ledger, height, kind, detail, witness_key_id, observed_at, received_at
FROM ledger.evidence;

-- Per ledger: its policy, its newest projected block and its newest final one.
CREATE VIEW analytics.v_finality AS
SELECT b.ledger,
       coalesce(p.threshold, 0) AS threshold,
       b.head_height,
       analytics.final_height(b.ledger) AS final_height
FROM (SELECT ledger, max(height) AS head_height FROM ledger.blocks GROUP BY ledger) AS b
LEFT JOIN ledger.finality_policies AS p USING (ledger);

REVOKE EXECUTE ON FUNCTION analytics.final_height(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics.final_height(text) TO ledger_analyst;
GRANT SELECT ON analytics.cosignatures, analytics.evidence, analytics.v_finality TO ledger_analyst;
