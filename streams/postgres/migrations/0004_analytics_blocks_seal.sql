-- 0004_analytics_blocks_seal: analysts see the columns 0003 added to ledger.blocks: the seal
-- (so a block can be checked against the sealer's public key from SQL exports alone) and
-- projected_at (so "sealed to visible in PostgreSQL" latency is one subtraction).
-- CREATE OR REPLACE keeps the view's grants; new columns may only go at the end.

CREATE OR REPLACE VIEW analytics.blocks AS
SELECT ledger, height, hash, prev_hash, tx_root, blocks_root, tx_count, first_seq, sealed_at,
       sealer_key, source_partition, source_offset_end, size_bytes, seal, projected_at
FROM ledger.blocks;
