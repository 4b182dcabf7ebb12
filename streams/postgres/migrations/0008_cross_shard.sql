-- 0008: cross-shard transfers for analysts (ledger/crossshard.py, docs/crossshard.md).
-- A cross-shard transfer is a Hold whose memo names the destination; its credit and refund are
-- transactions whose memos name the hold. The partial index finds those few among all rows.
CREATE INDEX transactions_cross_shard_memo ON ledger.transactions (memo)
    WHERE memo LIKE 'xshard:v1:%';

-- One row per cross-shard transfer: where it started and should end, and how far it got:
-- completed (captured and credited), refunded (captured, the destination refused, given back),
-- expired (the hold ran out uncaptured: nothing moved) or pending.
CREATE VIEW analytics.v_cross_shard AS
SELECT h.ledger AS source_ledger,
       h.hold_id,
       h.payer,
       h.asset,
       h.amount,
       split_part(substr(t.memo, 11), ':', 1) AS destination_ledger,
       substr(substr(t.memo, 11), length(split_part(substr(t.memo, 11), ':', 1)) + 2)
           AS destination_account,
       t.sealed_at AS held_at,
       credit.ledger AS credited_on,
       credit.height AS credit_height,
       refund.height AS refund_height,
       CASE
           WHEN h.status = 'captured' AND credit.tx_id IS NOT NULL THEN 'completed'
           WHEN h.status = 'captured' AND refund.tx_id IS NOT NULL THEN 'refunded'
           WHEN h.status IN ('expired', 'voided') THEN 'expired'
           ELSE 'pending'
       END AS state
FROM ledger.holds AS h
JOIN ledger.transactions AS t ON t.ledger = h.ledger AND t.tx_id = h.hold_id
LEFT JOIN LATERAL (
    SELECT c.ledger, c.height, c.tx_id FROM ledger.transactions AS c
    WHERE c.memo = 'xshard:v1:from:' || h.ledger || ':' || encode(h.hold_id, 'hex')
    ORDER BY c.seq LIMIT 1
) AS credit ON true
LEFT JOIN LATERAL (
    SELECT r.height, r.tx_id FROM ledger.transactions AS r
    WHERE r.ledger = h.ledger AND r.memo = 'xshard:v1:refund:' || encode(h.hold_id, 'hex')
    ORDER BY r.seq LIMIT 1
) AS refund ON true
WHERE t.memo LIKE 'xshard:v1:%' AND t.memo NOT LIKE 'xshard:v1:from:%'
  AND t.memo NOT LIKE 'xshard:v1:refund:%';

GRANT SELECT ON analytics.v_cross_shard TO ledger_analyst;
