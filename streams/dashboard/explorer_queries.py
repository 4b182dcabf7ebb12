"""The block explorer's PostgreSQL queries and the limits that bound them
(``explorer_json`` turns their rows into JSON, ``explorer`` serves them).

Tables grow forever, so every query reaches its rows through an index and reads a bounded
number of them (checked with EXPLAIN ANALYZE against a ledger of 4.4 million transactions):

- blocks newest first through the primary key (ledger, height), backwards, with a LIMIT;
- a block's transactions as a range of the primary key (ledger, seq): a block holds the seqs
  first_seq .. first_seq + tx_count - 1, so a page starts at a seq, never at an OFFSET;
- a statement through postings_statement (ledger, account, seq), keyset-paged (see STATEMENT_OLDER);
- a transaction through transactions_tx_id_key (tx_id, ledger) and rejections_tx_id;
- search through the same keys plus transactions_external_ref, rejections_external_ref,
  blocks_hash and the primary keys of blocks and accounts, each with a LIMIT.

Nothing here counts the rows of a table.
"""

from __future__ import annotations

from typing import Final

from ledger import limits

# ---- limits ---------------------------------------------------------------------------------

page_rows_default = 50
page_rows_max = 200
"""Rows of a statement or of a block's transactions in one answer: read through an index in
well under a millisecond, and more than anyone reads on one screen."""

blocks_page_default = 20
blocks_page_max = 100

search_matches_max_count = 50
"""Matches listed for one search: an external reference may be reused, but a list longer than
this is not an answer; the page says the list was cut."""

running_balance_lookback_max_count = 10_000
"""Postings newer than a page that are summed to give its rows' running balance (from the
account's balance now): an index-only scan of 10,000 entries takes about 5 ms. Deeper pages
show no running balance rather than read the account's whole history."""

cosignatures_max_count = 256
"""Cosignatures listed for one block: one per witness, and a policy needs at most
limits.finality_threshold_max of them."""

sealed_copies_max_count = 64
"""Ledgers one tx_id may be sealed in: the key is (tx_id, ledger), so at most one per shard."""

rejections_listed_max_count = 20
"""Rejections shown for one tx_id: resubmissions are refused as DUPLICATE, each one a row."""

witness_keys_max_count = 1_024
"""Registered witness keys read to check a proof's finality: far more than any policy uses."""

height_max: Final = limits.int64_max
seq_max: Final = limits.int64_max

assert page_rows_default <= page_rows_max and blocks_page_default <= blocks_page_max
assert cosignatures_max_count >= limits.finality_threshold_max

# ---- queries --------------------------------------------------------------------------------

BLOCK_COLUMNS = """
height, hash, prev_hash, tx_root, blocks_root, tx_count, first_seq, sealed_at, sealer_key,
source_partition, source_offset_end, size_bytes, seal, projected_at
"""

LATEST_BLOCKS = f"""
SELECT {BLOCK_COLUMNS}
FROM ledger.blocks
WHERE ledger = $1 AND height < $2
ORDER BY height DESC
LIMIT $3
"""
"""Newest blocks below height $2: the primary key read backwards, $3 rows."""

FINALITY = """
SELECT coalesce((SELECT threshold FROM ledger.finality_policies WHERE ledger = $1), 0)
           AS threshold,
       analytics.final_height($1) AS final_height,
       (SELECT max(height) FROM ledger.blocks WHERE ledger = $1) AS head_height
"""
"""A ledger's finality threshold, final height (one index probe per witness, migration 0007)
and newest projected block (one probe: max() of a primary key prefix)."""

BLOCK = f"SELECT {BLOCK_COLUMNS} FROM ledger.blocks WHERE ledger = $1 AND height = $2"

BLOCK_TRANSACTIONS = """
SELECT seq, index_in_block, tx_id, kind, key_id, external_ref, memo, created_at
FROM ledger.transactions
WHERE ledger = $1 AND seq >= $2 AND seq < $3
ORDER BY seq
LIMIT $4
"""
"""A page of a block's transactions: seqs $2 .. $3 - 1 through the primary key (ledger, seq)."""

COSIGNATURES = """
SELECT witness_key_id, witness_key, block_hash, signature, signed_at, received_at
FROM ledger.cosignatures
WHERE ledger = $1 AND height = $2
ORDER BY witness_key_id
LIMIT $3
"""
"""Who co-signed this very block: cosignatures_height (ledger, height)."""

TRANSACTION = """
SELECT t.ledger, t.seq, t.height, t.index_in_block, t.kind, t.key_id, t.created_at,
       t.expires_at, t.sealed_at, t.external_ref, t.memo, t.envelope, b.hash AS block_hash,
       (SELECT o.tx_id FROM ledger.transactions AS o
        WHERE o.ledger = t.ledger AND o.seq = t.reverses) AS reverses,
       ARRAY(SELECT r.tx_id FROM ledger.transactions AS r
             WHERE r.ledger = t.ledger AND r.reverses = t.seq ORDER BY r.seq) AS reversed_by
FROM ledger.transactions AS t
JOIN ledger.blocks AS b ON b.ledger = t.ledger AND b.height = t.height
WHERE t.tx_id = $1
ORDER BY t.ledger
LIMIT $2
"""

REJECTIONS = """
SELECT ledger, code, detail, stage, key_id, source_topic, source_partition, source_offset,
       rejected_at, height, external_ref
FROM ledger.rejections
WHERE tx_id = $1
ORDER BY id
LIMIT $2
"""

PROOF_STATE = """
SELECT t.height, (SELECT max(b.height) FROM ledger.blocks AS b WHERE b.ledger = $1) AS head_height
FROM ledger.transactions AS t
WHERE t.tx_id = $2 AND t.ledger = $1
"""
"""Whether a proof can be built: the transaction's block and the newest projected one."""

PROOF_KEYS = """
SELECT (SELECT sealer_key FROM ledger.blocks WHERE ledger = $1 AND height = 0) AS sealer_key,
       coalesce((SELECT threshold FROM ledger.finality_policies WHERE ledger = $1), 0)
           AS threshold,
       ARRAY(SELECT public_key FROM ledger.keys
             WHERE ledger = $1 AND 'witness' = ANY (roles) AND revoked_height IS NULL
             ORDER BY key_id LIMIT $2) AS witness_keys
"""
"""What the server checks a proof against: the key that sealed block 0 (as the dashboard's
chain watcher trusts it; a proof's ``rotations`` lead from it to any later sealer), and the
registered witnesses with the ledger's threshold."""

ACCOUNT = """
SELECT a.asset, a.status, a.max_balance, a.allow_negative, a.opened_height, a.opened_seq,
       a.metadata, s.scale, coalesce(b.balance, 0) AS balance, coalesce(b.held, 0) AS held,
       coalesce(b.available, 0) AS available, b.updated_height, b.updated_seq
FROM ledger.accounts AS a
LEFT JOIN ledger.balances AS b ON b.ledger = a.ledger AND b.account = a.account
LEFT JOIN ledger.assets AS s ON s.ledger = a.ledger AND s.asset = a.asset
WHERE a.ledger = $1 AND a.account = $2
"""

STATEMENT_OLDER = """
SELECT p.seq, p.posting_index, p.height, p.sealed_at, p.asset, p.amount,
       t.tx_id, t.kind, t.external_ref, t.memo
FROM (
    SELECT seq, posting_index, height, sealed_at, asset, amount
    FROM ledger.postings
    WHERE ledger = $1 AND account = $2 AND (seq, posting_index) < ($3, $4)
    ORDER BY seq DESC, posting_index DESC
    LIMIT $5
) AS p
JOIN ledger.transactions AS t ON t.ledger = $1 AND t.seq = p.seq
ORDER BY p.seq DESC, p.posting_index DESC
"""
"""Up to $5 postings of an account older than the cursor ($3, $4), newest first.

Keyset paging: PostgreSQL turns the row comparison into the index condition ``seq <= $3`` on
postings_statement (ledger, account, seq) read backwards, and checks posting_index on the rows
of seq $3 only; an Incremental Sort orders the postings of one seq. EXPLAIN ANALYZE on an
account of 95,000 postings: "Index Scan Backward using postings_statement, Index Cond: ((ledger
= 'main') AND (account = ...) AND (seq <= 3000000)), Filter: (ROW(seq, posting_index) <
ROW(3000000, 0))", 52 rows read, 1 ms, however deep the page. Each row's transaction is one
primary-key probe (Memoize over transactions_pkey). Not analytics.v_account_statement: its
running-balance window would read the account from its first posting.
"""

STATEMENT_NEWER = """
SELECT p.seq, p.posting_index, p.height, p.sealed_at, p.asset, p.amount,
       t.tx_id, t.kind, t.external_ref, t.memo
FROM (
    SELECT seq, posting_index, height, sealed_at, asset, amount
    FROM ledger.postings
    WHERE ledger = $1 AND account = $2 AND (seq, posting_index) > ($3, $4)
    ORDER BY seq, posting_index
    LIMIT $5
) AS p
JOIN ledger.transactions AS t ON t.ledger = $1 AND t.seq = p.seq
ORDER BY p.seq, p.posting_index
"""
"""Up to $5 postings newer than the cursor, oldest first (the caller reverses them): the same
index read forwards from ``seq >= $3``."""

LATER_POSTINGS = """
SELECT count(*) AS later_count,
       coalesce(sum(later.amount), 0)
       + (SELECT coalesce(sum(same.amount), 0) FROM ledger.postings AS same
          WHERE same.ledger = $1 AND same.account = $2 AND same.seq = $3
            AND same.posting_index > $4) AS later_amount
FROM (
    SELECT amount FROM ledger.postings
    WHERE ledger = $1 AND account = $2 AND seq > $3
    LIMIT $5
) AS later
"""
"""The sum of an account's postings after the cursor ($3, $4), from at most $5 index entries:
EXPLAIN ANALYZE shows an Index Only Scan of postings_statement (amount rides in its INCLUDE),
10,000 entries in about 5 ms warm. No ORDER BY: when fewer than $5 rows come back they are all
of them, whatever their order; when $5 come back the caller shows no running balance."""

SEARCH_TX_ID = """
SELECT ledger, seq, height, kind FROM ledger.transactions WHERE tx_id = $1 ORDER BY ledger LIMIT $2
"""
SEARCH_REJECTED_TX_ID = """
SELECT ledger, code, stage FROM ledger.rejections WHERE tx_id = $1 ORDER BY id LIMIT $2
"""
SEARCH_BLOCK_HASH = """
SELECT ledger, height FROM ledger.blocks WHERE hash = $1 AND ledger = ANY ($2::text[])
ORDER BY ledger LIMIT $3
"""
SEARCH_HEIGHT = """
SELECT ledger, height FROM ledger.blocks WHERE ledger = ANY ($1::text[]) AND height = $2
ORDER BY ledger
"""
SEARCH_EXTERNAL_REF = """
SELECT ledger, seq, height, kind, tx_id FROM ledger.transactions
WHERE external_ref = $1 ORDER BY external_ref, ledger LIMIT $2
"""
SEARCH_REJECTED_EXTERNAL_REF = """
SELECT ledger, code, stage, tx_id FROM ledger.rejections
WHERE external_ref = $1 ORDER BY external_ref LIMIT $2
"""
SEARCH_ACCOUNT = """
SELECT ledger, account, asset, status FROM ledger.accounts
WHERE ledger = ANY ($1::text[]) AND account = $2
ORDER BY ledger
"""
