-- 0012_confidential: transactions with confidential fields (issue 13, part 1; docs/confidential.md).
-- Their memo, external_ref and metadata are encrypted to named keys inside the body, so the
-- projector, which holds no key, keeps those columns NULL as for any transaction without them;
-- confidential_to lists the key_ids that can read them, in the order the body names them (NULL:
-- not confidential). The envelope column keeps the exact bytes, ciphertext included: a
-- recipient reads them (`ledger tx TX_ID --decrypt`, `ledger reconcile --key`) and decrypts
-- on its own machine. Rows projected before stay NULL, which is what they were.
-- CREATE OR REPLACE VIEW keeps the view's grants but replaces its options: security_invoker
-- (0011) is named again, else the view would read with its owner's rights and show scoped
-- analysts every row. New columns may only go at the end.

ALTER TABLE ledger.transactions ADD COLUMN confidential_to text[]
    CHECK (confidential_to IS NULL OR cardinality(confidential_to) > 0);

-- "My confidential transactions" (confidential_to @> ARRAY['<key_id>']): reconciliation by a
-- party holding a key, among the few rows that have any.
CREATE INDEX transactions_confidential_to ON ledger.transactions USING gin (confidential_to)
    WHERE confidential_to IS NOT NULL;

CREATE OR REPLACE VIEW analytics.transactions WITH (security_invoker = true) AS
SELECT ledger, seq, tx_id, height, index_in_block, kind, key_id, created_at, expires_at,
       sealed_at, external_ref, memo, envelope, metadata, cosigners, reverses, confidential_to
FROM ledger.transactions;
