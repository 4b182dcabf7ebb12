-- Blocks keep their seal, so a proof can be served from PostgreSQL alone, and the moment the
-- projector wrote them, so "visible in PostgreSQL" latency can be measured (ledger bench).
ALTER TABLE ledger.blocks
    ADD COLUMN seal bytea NOT NULL CHECK (octet_length(seal) = 64),
    ADD COLUMN projected_at timestamptz NOT NULL DEFAULT clock_timestamp();
