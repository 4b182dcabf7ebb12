-- The projector's replica of each ledger, saved in the same transaction as the rows it wrote,
-- so a restart resumes from here instead of replaying the chain from genesis.
CREATE TABLE ledger.replica_snapshots (
    ledger    text        PRIMARY KEY,
    height    bigint      NOT NULL CHECK (height >= 0),
    snapshot  bytea       NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);
