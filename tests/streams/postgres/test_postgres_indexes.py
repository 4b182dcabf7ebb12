"""The queries analysts run are served by indexes: EXPLAIN on tables filled like a real ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

pytestmark = pytest.mark.services

BLOCK_COUNT = 5_000
TX_PER_BLOCK = 5
TX_COUNT = BLOCK_COUNT * TX_PER_BLOCK  # 25,000 transfers of two postings: 50,000 postings
ACCOUNT_COUNT = 100
REJECTION_CODE_COUNT = 20
REJECTION_COUNT = 20_000

FILL_SQL = f"""
INSERT INTO ledger.blocks (ledger, height, hash, prev_hash, tx_root, blocks_root, tx_count,
                           first_seq, sealed_at, sealer_key, source_partition,
                           source_offset_end, size_bytes, seal)
SELECT 'main', h, sha256(('block ' || h)::bytea), sha256(('block ' || (h - 1))::bytea),
       sha256(('root ' || h)::bytea), sha256(('blocks ' || h)::bytea), {TX_PER_BLOCK},
       h * {TX_PER_BLOCK}, timestamptz '2025-01-01 00:00:00+00' + h * interval '30 minutes',
       sha256('sealer'::bytea), 0, h, 4096,
       decode(repeat('00', 64), 'hex')
FROM generate_series(0, {BLOCK_COUNT - 1}) AS h;

INSERT INTO ledger.transactions
SELECT 'main', s, substring(sha256(('tx ' || s)::bytea) FROM 1 FOR 16), s / {TX_PER_BLOCK},
       s % {TX_PER_BLOCK}, 'Transfer', repeat('ab', 16), b.sealed_at, b.sealed_at, b.sealed_at,
       CASE WHEN s % 2 = 0 THEN 'ref-' || s END, NULL, '\\x00'::bytea
FROM generate_series(0, {TX_COUNT - 1}) AS s
JOIN ledger.blocks AS b ON b.ledger = 'main' AND b.height = s / {TX_PER_BLOCK};

-- Leg 0 debits account s % 100, leg 1 credits (7s + 1) % 100, never the same account.
INSERT INTO ledger.postings
SELECT t.ledger, t.seq, leg, 'acct-' || CASE leg WHEN 0 THEN t.seq % {ACCOUNT_COUNT}
                                            ELSE (7 * t.seq + 1) % {ACCOUNT_COUNT} END,
       'USD', CASE leg WHEN 0 THEN -(t.seq % 1000 + 1) ELSE t.seq % 1000 + 1 END,
       t.height, t.sealed_at
FROM ledger.transactions AS t, generate_series(0, 1) AS leg;

-- One transaction in 50 is confidential: to one of 10 parties' keys and an auditor's.
UPDATE ledger.transactions
SET confidential_to = ARRAY[lpad(to_hex(seq % 10), 32, '0'), repeat('f', 32)]
WHERE seq % 50 = 1;

INSERT INTO ledger.rejections (tx_id, ledger, code, detail, stage, source_topic,
                               source_partition, source_offset, rejected_at)
SELECT substring(sha256(('rejected ' || i)::bytea) FROM 1 FOR 16), 'main',
       'CODE_' || i % {REJECTION_CODE_COUNT}, 'detail', 'sequence', 'ledger.verified', 0, i,
       timestamptz '2025-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(0, {REJECTION_COUNT - 1}) AS i;

ANALYZE ledger.blocks, ledger.transactions, ledger.postings, ledger.rejections;
"""


@pytest.fixture(scope="module")
async def filled_url(migrated_url: str) -> str:
    connection = await asyncpg.connect(migrated_url)
    try:
        await connection.execute(FILL_SQL)
        assert await connection.fetchval("SELECT count(*) FROM ledger.postings") == 2 * TX_COUNT
    finally:
        await connection.close()
    return migrated_url


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


async def explain(url: str, query: str, *args: object) -> list[dict[str, Any]]:
    """The plan's nodes, as ledger_analyst would get them (through the views)."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE ledger_analyst")
            raw = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
    finally:
        await connection.close()
    return list(plan_nodes(json.loads(raw)[0]["Plan"]))


def indexes_used(nodes: list[dict[str, Any]]) -> set[str]:
    return {node["Index Name"] for node in nodes if "Index Name" in node}


def seq_scanned(nodes: list[dict[str, Any]]) -> set[str]:
    return {node["Relation Name"] for node in nodes if node["Node Type"] == "Seq Scan"}


def describe(nodes: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{n['Node Type']} {n.get('Relation Name', '')} {n.get('Index Name', '')}".strip()
        for n in nodes
    )


async def test_statement_of_one_account_uses_the_statement_index(filled_url: str) -> None:
    """One account out of 100 (about 1,000 of 50,000 postings): an index, no seq scan on postings."""
    nodes = await explain(
        filled_url,
        "SELECT * FROM analytics.v_account_statement WHERE ledger = 'main' AND account = 'acct-42'",
    )
    assert "postings_statement" in indexes_used(nodes), describe(nodes)
    assert "postings" not in seq_scanned(nodes), describe(nodes)


async def test_transaction_by_tx_id_uses_the_unique_index(filled_url: str) -> None:
    """A tx_id lookup, with or without its ledger, is one probe of the unique index."""
    tx_id = bytes.fromhex("00" * 16)
    for query in (
        "SELECT * FROM analytics.transactions WHERE ledger = 'main' AND tx_id = $1",
        "SELECT * FROM analytics.transactions WHERE tx_id = $1",
    ):
        nodes = await explain(filled_url, query, tx_id)
        assert "transactions_tx_id_key" in indexes_used(nodes), describe(nodes)
        assert not seq_scanned(nodes), describe(nodes)


async def test_transaction_by_external_ref_uses_the_partial_index(filled_url: str) -> None:
    """Reconciliation's lookup by the payment system's reference, with or without the ledger."""
    for query in (
        "SELECT * FROM analytics.transactions WHERE ledger = 'main' AND external_ref = 'ref-1234'",
        "SELECT * FROM analytics.transactions WHERE external_ref = 'ref-1234'",
    ):
        nodes = await explain(filled_url, query)
        assert "transactions_external_ref" in indexes_used(nodes), describe(nodes)
        assert not seq_scanned(nodes), describe(nodes)


async def test_a_keys_confidential_transactions_use_the_recipient_index(filled_url: str) -> None:
    """What a party reconciling with its key reads first (50 of 25,000 rows): the GIN index."""
    party = "0" * 31 + "3"
    for query in (
        "SELECT seq FROM analytics.transactions"
        " WHERE ledger = 'main' AND confidential_to @> ARRAY[$1]::text[]",
        "SELECT t.seq, p.amount FROM ledger.transactions t JOIN ledger.postings p"
        " USING (ledger, seq) WHERE t.ledger = 'main' AND t.confidential_to @> ARRAY[$1]::text[]"
        " AND p.account = ANY($2::text[])",
    ):
        arguments = (party, ["acct-1"])[: query.count("$")]
        nodes = await explain(filled_url, query, *arguments)
        assert "transactions_confidential_to" in indexes_used(nodes), describe(nodes)
        assert "transactions" not in seq_scanned(nodes), describe(nodes)


async def test_rejections_of_one_code_use_the_code_index(filled_url: str) -> None:
    """One code of 20 (5% of 20,000 rejections), through the by-code view and the raw view."""
    for query in (
        "SELECT * FROM analytics.v_rejections_by_code WHERE code = 'CODE_7'",
        "SELECT * FROM analytics.rejections WHERE code = 'CODE_7' "
        "AND rejected_at >= '2025-01-05' ORDER BY rejected_at LIMIT 50",
    ):
        nodes = await explain(filled_url, query)
        assert "rejections_code" in indexes_used(nodes), describe(nodes)
        assert "rejections" not in seq_scanned(nodes), describe(nodes)


async def test_daily_volume_of_one_day_uses_the_day_index(filled_url: str) -> None:
    """A filter on v_daily_volume.day reaches the expression index (one day of about 104)."""
    nodes = await explain(
        filled_url,
        "SELECT * FROM analytics.v_daily_volume "
        "WHERE ledger = 'main' AND asset = 'USD' AND day = '2025-02-01'",
    )
    assert "postings_daily_volume" in indexes_used(nodes), describe(nodes)
    assert "postings" not in seq_scanned(nodes), describe(nodes)


async def test_block_stats_for_a_height_range_use_the_primary_key(filled_url: str) -> None:
    """Eleven blocks of 5,000, each with its predecessor, by primary key: no scan of the chain."""
    nodes = await explain(
        filled_url,
        "SELECT * FROM analytics.v_block_stats WHERE ledger = 'main' AND height BETWEEN 100 AND 110",
    )
    assert "blocks_pkey" in indexes_used(nodes), describe(nodes)
    assert "blocks" not in seq_scanned(nodes), describe(nodes)


async def test_balance_at_query_uses_the_statement_index(filled_url: str) -> None:
    """balance_at's sum over one account's postings up to a height reads the statement index."""
    connection = await asyncpg.connect(filled_url)
    try:
        body = await connection.fetchval(
            "SELECT prosrc FROM pg_proc WHERE oid = "
            "'analytics.balance_at(text, text, bigint)'::regprocedure"
        )
        raw = await connection.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT coalesce(sum(p.amount), 0)::bigint "
            "FROM ledger.postings AS p "
            "WHERE p.ledger = 'main' AND p.account = 'acct-42' AND p.height <= 2500"
        )
        assert "p.height <= balance_at.height" in body, "the query below mirrors balance_at's"
        balance = await connection.fetchval("SELECT analytics.balance_at('main', 'acct-42', 2500)")
        assert balance is None  # no ledger.accounts rows in this data set: not open
    finally:
        await connection.close()
    nodes = list(plan_nodes(json.loads(raw)[0]["Plan"]))
    assert "postings_statement" in indexes_used(nodes), describe(nodes)
    assert "postings" not in seq_scanned(nodes), describe(nodes)
