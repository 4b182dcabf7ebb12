-- 0009_account_policies: who must sign an account's debits, and its limits (SetAccountPolicy,
-- projected with the blocks). One row per account that ever had a policy; a removed policy is
-- a row with threshold 0 and no keys, so the upsert of the projector keeps its history height.

CREATE TABLE ledger.account_policies (
    ledger          text     NOT NULL,
    account         text     NOT NULL,
    key_ids         text[]   NOT NULL,
    threshold       int      NOT NULL CHECK (threshold >= 0),
    high_threshold  int,
    high_amount     bigint   CHECK (high_amount > 0),
    max_amount      bigint   CHECK (max_amount > 0),
    counterparties  text[]   NOT NULL,
    set_height      bigint   NOT NULL CHECK (set_height >= 0),
    set_seq         bigint   NOT NULL CHECK (set_seq >= 0),
    PRIMARY KEY (ledger, account)
);

-- The policies in force: an account not listed is debited by any key that owns it.
CREATE VIEW analytics.v_account_policies AS
SELECT ledger, account, key_ids, threshold, high_threshold, high_amount, max_amount,
       counterparties, set_height, set_seq
FROM ledger.account_policies
WHERE threshold > 0;

GRANT SELECT ON analytics.v_account_policies TO ledger_analyst;
