-- 0010_metadata_reversals_caps: what issue 12's operations add to the projection.
-- - transactions: the body's metadata (jsonb, NULL when it has none), the key_ids of an
--   envelope's cosigners (NULL when it has none), and for a Reverse the seq of the transaction
--   it reverses (a tx_id is unique only within the replay window, a seq always);
-- - accounts: their metadata (from the OpenAccount transaction, then SetAccountMetadata);
-- - assets: their issuance cap (SetIssuanceCap; NULL: none).
-- Rows projected before keep NULL, which is what they were: no metadata, no cosigners.
-- CREATE OR REPLACE keeps the views' grants; new columns may only go at the end.

ALTER TABLE ledger.transactions
    ADD COLUMN metadata jsonb,
    ADD COLUMN cosigners text[],
    ADD COLUMN reverses bigint CHECK (reverses >= 0);

ALTER TABLE ledger.accounts ADD COLUMN metadata jsonb;

ALTER TABLE ledger.assets ADD COLUMN issuance_cap bigint CHECK (issuance_cap >= 0);

-- "Which reversals undo this transaction?": a handful of rows among millions.
CREATE INDEX transactions_reverses ON ledger.transactions (ledger, reverses)
    WHERE reverses IS NOT NULL;

-- Metadata queries (metadata @> '{"batch": "2026-11-30"}') on the transactions that have any.
CREATE INDEX transactions_metadata ON ledger.transactions USING gin (metadata jsonb_path_ops)
    WHERE metadata IS NOT NULL;

CREATE OR REPLACE VIEW analytics.transactions AS
SELECT ledger, seq, tx_id, height, index_in_block, kind, key_id, created_at, expires_at,
       sealed_at, external_ref, memo, envelope, metadata, cosigners, reverses
FROM ledger.transactions;

CREATE OR REPLACE VIEW analytics.accounts AS
SELECT ledger, account, asset, status, max_balance, allow_negative, opened_height, opened_seq,
       metadata
FROM ledger.accounts;

CREATE OR REPLACE VIEW analytics.assets AS
SELECT ledger, asset, scale, issuer_account, defined_height, defined_seq, issuance_cap
FROM ledger.assets;

-- Each reversal with the transaction it undoes and what it moved back, per account.
CREATE VIEW analytics.v_reversals AS
SELECT r.ledger, r.tx_id AS reversal_tx_id, r.seq AS reversal_seq, r.sealed_at AS reversed_at,
       r.key_id AS reversed_by, o.tx_id AS original_tx_id, o.seq AS original_seq,
       o.sealed_at AS original_sealed_at, o.external_ref AS original_external_ref,
       p.account, p.asset, p.amount
FROM ledger.transactions r
JOIN ledger.transactions o ON o.ledger = r.ledger AND o.seq = r.reverses
JOIN ledger.postings p ON p.ledger = r.ledger AND p.seq = r.seq
WHERE r.reverses IS NOT NULL;

-- Issuance per capped or uncapped asset: outstanding is what the issuer account is below zero.
CREATE VIEW analytics.v_issuance AS
SELECT a.ledger, a.asset, a.issuer_account, a.issuance_cap, -(b.balance - b.held) AS outstanding,
       CASE WHEN a.issuance_cap IS NULL THEN NULL
            ELSE a.issuance_cap + (b.balance - b.held) END AS room
FROM ledger.assets a
JOIN ledger.balances b ON b.ledger = a.ledger AND b.account = a.issuer_account;

GRANT SELECT ON analytics.v_reversals, analytics.v_issuance TO ledger_analyst;
