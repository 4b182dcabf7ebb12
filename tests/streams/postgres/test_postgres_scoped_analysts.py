"""Scoped analysts (migration 0011): in every analytics view and both functions, a member of
ledger_scoped_analyst sees exactly the rows of its scope, ledger_analyst sees everything, and
a scoped statement still reads its indexes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from ledger.cli.db import grant_analyst, revoke_analyst
from ledger.errors import ConfigError

pytestmark = pytest.mark.services

Scope = dict[str, frozenset[str] | None]
"""Ledger -> the accounts in scope there; None: the whole ledger. A ledger not listed: none."""

FULL_ANALYST = "ledger_analyst"
SCOPES: dict[str, Scope] = {
    "whole": {"main": None},
    "account": {"main": frozenset({"alice"}), "bulk": frozenset({"bulk-0042"})},
    "none": {},
}
# JIT compiles the policies' expressions for ~1 s a query here; it changes no row.
SESSION_SETTINGS = {"jit": "off"}

T0 = dt.datetime(2025, 3, 1, 23, 0, tzinfo=dt.UTC)  # blocks every 30 min: two UTC days


def at(height: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=30 * height)


def digest(label: str, size: int = 32) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:size]


def tx_id(ledger: str, seq: int) -> bytes:
    return digest(f"{ledger} tx {seq}", 16)


def key_id(label: str) -> str:
    return digest(label, 16).hex()


# Per ledger: seq -> (height, kind, postings as (account, amount), memo, seq reversed).
HOLD_HEX = tx_id("main", 15).hex()
TRANSACTIONS: dict[str, dict[int, tuple[int, str, list[tuple[str, int]], str | None, int | None]]] = {
    "main": {
        0: (0, "DefineAsset", [], None, None),
        1: (0, "OpenAccount", [], None, None),
        2: (0, "OpenAccount", [], None, None),
        3: (0, "OpenAccount", [], None, None),
        4: (2, "OpenAccount", [], None, None),  # carol opens at height 2
        5: (1, "Transfer", [("issuer", -1000), ("alice", 1000)], None, None),
        6: (1, "Transfer", [("issuer", -800), ("bob", 800)], None, None),
        7: (2, "Transfer", [("alice", -300), ("bob", 300)], None, None),
        8: (2, "Transfer", [("bob", -50), ("carol", 50)], None, None),
        9: (2, "Hold", [], None, None),  # alice -> bob, open
        10: (2, "Hold", [], None, None),  # bob -> carol, open
        11: (3, "Reverse", [("bob", -100), ("alice", 100)], None, 7),  # part of seq 7
        12: (3, "Reverse", [("carol", -50), ("bob", 50)], None, 8),
        13: (3, "Attest", [], None, None),
        14: (3, "SetAccountPolicy", [], None, None),
        15: (3, "Hold", [], "xshard:v1:other:dave", None),  # alice -> bridge, captured
        16: (3, "Capture", [("alice", -70), ("xshard-bridge", 70)], None, None),
        17: (3, "Hold", [], None, None),  # carol -> alice, open: alice is the payee
    },
    "other": {
        0: (0, "DefineAsset", [], None, None),
        1: (0, "OpenAccount", [], None, None),
        2: (1, "Transfer", [("o-issuer", -500), ("alice", 500)], None, None),  # another alice
        3: (1, "Transfer", [("o-issuer", -300), ("dave", 300)], None, None),
        4: (1, "Transfer", [("xshard-bridge", -70), ("dave", 70)], f"xshard:v1:from:main:{HOLD_HEX}", None),
        5: (1, "Hold", [], None, None),  # dave -> alice, open
        6: (1, "Attest", [], None, None),
        7: (1, "Hold", [], "xshard:v1:main:bob", None),  # dave -> bridge, pending
        8: (1, "Reverse", [("dave", -100), ("o-issuer", 100)], None, 3),
    },
}  # fmt: skip
ACCOUNTS = {  # (ledger, account) -> (opened_height, allow_negative)
    ("main", "issuer"): (0, True),
    ("main", "alice"): (0, False),
    ("main", "bob"): (0, False),
    ("main", "carol"): (2, False),
    ("main", "xshard-bridge"): (0, True),
    ("other", "o-issuer"): (0, True),
    ("other", "alice"): (0, False),
    ("other", "dave"): (0, False),
    ("other", "xshard-bridge"): (0, True),
}
ASSETS = {"main": ("USD", "issuer", 1_000_000), "other": ("EUR", "o-issuer", None)}
HOLDS = {  # (ledger, seq of the Hold) -> (payer, payee, amount, captured, resolved seq)
    ("main", 9): ("alice", "bob", 100, None, None),
    ("main", 10): ("bob", "carol", 20, None, None),
    ("main", 15): ("alice", "xshard-bridge", 70, 70, 16),
    ("main", 17): ("carol", "alice", 10, None, None),
    ("other", 5): ("dave", "alice", 40, None, None),
    ("other", 7): ("dave", "xshard-bridge", 30, None, None),
}
KEYS = {  # (ledger, label) -> (roles, accounts)
    ("main", "alice"): ([], ["alice"]),
    ("main", "bob"): ([], ["bob"]),
    ("main", "shared"): ([], ["alice", "bob"]),
    ("main", "carol"): ([], ["carol"]),
    ("main", "witness"): (["witness"], []),
    ("main", "sealer"): (["sealer"], []),
    ("main", "admin"): (["admin"], []),
    ("other", "witness"): (["witness"], []),
    ("other", "dave"): ([], ["dave"]),
    ("other", "alice"): ([], ["alice"]),
}
ACCOUNT_POLICIES = {  # (ledger, account) -> threshold (0: removed, not in v_account_policies)
    ("main", "alice"): 2,
    ("main", "bob"): 1,
    ("main", "carol"): 0,
    ("other", "dave"): 1,
}
COSIGNED_HEIGHTS = {"main": [1, 3], "other": [1]}  # by each ledger's witness; threshold 1
REJECTIONS = [  # (ledger, code, stage, source offset)
    ("main", "INSUFFICIENT_FUNDS", "sequence", 0),
    ("main", "BAD_SIGNATURE", "verify", 1),
    ("other", "INSUFFICIENT_FUNDS", "sequence", 2),
    (None, "MALFORMED", "verify", 3),  # bytes that did not decode: no ledger
]

BULK_ACCOUNT_COUNT = 5_000
BULK_TX_COUNT = 20_000  # 40,000 postings, 8 per account: an account is 0.02% of them
BULK_SQL = f"""
INSERT INTO ledger.blocks (ledger, height, hash, prev_hash, tx_root, blocks_root, tx_count,
                           first_seq, sealed_at, sealer_key, source_partition,
                           source_offset_end, size_bytes, seal)
SELECT 'bulk', h, sha256(('bulk ' || h)::bytea), sha256(('bulk ' || (h - 1))::bytea),
       sha256(('root ' || h)::bytea), sha256(('blocks ' || h)::bytea), 100, h * 100,
       timestamptz '2025-03-01 00:00:00+00' + h * interval '1 minute', sha256('sealer'::bytea),
       0, h, 4096, decode(repeat('00', 64), 'hex')
FROM generate_series(0, {BULK_TX_COUNT // 100 - 1}) AS h;
INSERT INTO ledger.assets VALUES ('bulk', 'USD', 2, 'bulk-0000', 0, 0, NULL);
INSERT INTO ledger.accounts (ledger, account, asset, status, max_balance, allow_negative,
                             opened_height, opened_seq)
SELECT 'bulk', 'bulk-' || lpad(i::text, 4, '0'), 'USD', 'active', NULL, true, 0, 0
FROM generate_series(0, {BULK_ACCOUNT_COUNT - 1}) AS i;
INSERT INTO ledger.transactions (ledger, seq, tx_id, height, index_in_block, kind, key_id,
                                 created_at, expires_at, sealed_at, envelope)
SELECT 'bulk', s, substring(sha256(('bulk tx ' || s)::bytea) FROM 1 FOR 16), s / 100, s % 100,
       'Transfer', repeat('ab', 16), b.sealed_at, b.sealed_at, b.sealed_at, '\\x00'::bytea
FROM generate_series(0, {BULK_TX_COUNT - 1}) AS s
JOIN ledger.blocks AS b ON b.ledger = 'bulk' AND b.height = s / 100;
-- Leg 0 debits account s % N, leg 1 credits (7s + 1) % N: never the same account.
INSERT INTO ledger.postings
SELECT t.ledger, t.seq, leg,
       'bulk-' || lpad((CASE leg WHEN 0 THEN t.seq % {BULK_ACCOUNT_COUNT}
                        ELSE (7 * t.seq + 1) % {BULK_ACCOUNT_COUNT} END)::text, 4, '0'),
       'USD', CASE leg WHEN 0 THEN -1 ELSE 1 END, t.height, t.sealed_at
FROM ledger.transactions AS t, generate_series(0, 1) AS leg
WHERE t.ledger = 'bulk';
INSERT INTO ledger.balances (ledger, account, asset, balance, held, updated_height, updated_seq)
SELECT 'bulk', account, 'USD', sum(amount), 0, max(height), max(seq)
FROM ledger.postings WHERE ledger = 'bulk' GROUP BY account;
ANALYZE;
"""


async def load_ledgers(connection: asyncpg.Connection) -> None:
    """Writes what a projector would for ledgers main and other, then the bulk ledger."""
    for ledger, transactions in TRANSACTIONS.items():
        heights = sorted({height for height, *_ in transactions.values()})
        for height in heights:
            seqs = [seq for seq, (h, *_) in transactions.items() if h == height]
            await connection.execute(
                "INSERT INTO ledger.blocks (ledger, height, hash, prev_hash, tx_root, blocks_root, "
                "tx_count, first_seq, sealed_at, sealer_key, source_partition, source_offset_end, "
                "size_bytes, seal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $2, 1000, $11)",
                ledger, height, digest(f"{ledger} block {height}"),
                digest(f"{ledger} block {height - 1}"), digest(f"root {height}"),
                digest(f"blocks {height}"), len(seqs), min(seqs), at(height), digest("sealer"),
                b"\x00" * 64,
            )  # fmt: skip
        for seq, (height, kind, postings, memo, reverses) in transactions.items():
            await connection.execute(
                "INSERT INTO ledger.transactions (ledger, seq, tx_id, height, index_in_block, kind, "
                "key_id, created_at, expires_at, sealed_at, external_ref, memo, envelope, reverses) "
                "VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $7, $7, $8, $9, '\\x00', $10)",
                ledger, seq, tx_id(ledger, seq), height, kind, key_id(f"{ledger} admin"),
                at(height), f"ref-{ledger}-{seq}", memo, reverses,
            )  # fmt: skip
            for index, (account, amount) in enumerate(postings):
                await connection.execute(
                    "INSERT INTO ledger.postings VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    ledger, seq, index, account, ASSETS[ledger][0], amount, height, at(height),
                )  # fmt: skip
        asset, issuer, cap = ASSETS[ledger]
        await connection.execute(
            "INSERT INTO ledger.assets VALUES ($1, $2, 2, $3, 0, 0, $4)", ledger, asset, issuer, cap
        )
        await connection.execute("INSERT INTO ledger.finality_policies VALUES ($1, 1, 0)", ledger)
        witness = key_id(f"{ledger} witness")
        for height in COSIGNED_HEIGHTS[ledger]:
            await connection.execute(
                "INSERT INTO ledger.cosignatures (ledger, height, witness_key_id, witness_key, "
                "block_hash, signature, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                ledger, height, witness, digest(f"{ledger} witness public"),
                digest(f"{ledger} block {height}"), b"\x01" * 64, at(height),
            )  # fmt: skip
        await connection.execute(
            "INSERT INTO ledger.evidence (ledger, height, kind, detail, witness_key_id, "
            "observed_at, message) VALUES ($1, 1, 'equivocation', 'two blocks at 1', $2, $3, '\\x00')",
            ledger, witness, at(1),
        )  # fmt: skip
    for (ledger, account), (opened_height, allow_negative) in ACCOUNTS.items():
        await connection.execute(
            "INSERT INTO ledger.accounts VALUES ($1, $2, $3, 'active', NULL, $4, $5, 0, $6)",
            ledger, account, ASSETS[ledger][0], allow_negative, opened_height,
            json.dumps({"tenant": account}),
        )  # fmt: skip
        balance = sum(
            amount
            for seq, (_, _, postings, _, _) in TRANSACTIONS[ledger].items()
            for name, amount in postings
            if name == account
        )
        held = sum(
            amount
            for (hold_ledger, _), (payer, _, amount, captured, _) in HOLDS.items()
            if hold_ledger == ledger and payer == account and captured is None
        )
        await connection.execute(
            "INSERT INTO ledger.balances (ledger, account, asset, balance, held, updated_height, "
            "updated_seq) VALUES ($1, $2, $3, $4, $5, 3, 16)",
            ledger, account, ASSETS[ledger][0], balance, held,
        )  # fmt: skip
    for (ledger, seq), (payer, payee, amount, captured, resolved_seq) in HOLDS.items():
        await connection.execute(
            "INSERT INTO ledger.holds VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            ledger, tx_id(ledger, seq), payer, payee, ASSETS[ledger][0], amount, captured,
            "open" if captured is None else "captured", at(100), seq, resolved_seq,
            None if resolved_seq is None else 3,
        )  # fmt: skip
    for (ledger, label), (roles, accounts) in KEYS.items():
        await connection.execute(
            "INSERT INTO ledger.keys VALUES ($1, $2, $3, $4, $5, 0, 0, NULL)",
            ledger, key_id(f"{ledger} {label}"), digest(f"{ledger} {label} public"), roles,
            accounts,
        )  # fmt: skip
    for (ledger, account), threshold in ACCOUNT_POLICIES.items():
        await connection.execute(
            "INSERT INTO ledger.account_policies VALUES ($1, $2, $3, $4, NULL, NULL, NULL, '{}', 3, 14)",
            ledger, account, [key_id(f"{ledger} {account}")] if threshold else [], threshold,
        )  # fmt: skip
    for ledger, seq in (("main", 13), ("other", 6)):
        await connection.execute(
            "INSERT INTO ledger.attestations VALUES ($1, $2, 'sha-256', $3, $4, $5, $6, $7)",
            ledger, digest(f"{ledger} document"), seq, tx_id(ledger, seq),
            key_id(f"{ledger} admin"), TRANSACTIONS[ledger][seq][0], at(3),
        )  # fmt: skip
    for ledger, code, stage, offset in REJECTIONS:
        await connection.execute(
            "INSERT INTO ledger.rejections (tx_id, ledger, code, detail, stage, key_id, "
            "source_topic, source_partition, source_offset, rejected_at) "
            "VALUES ($1, $2, $3, 'detail', $4, $5, 'ledger.verified', 0, $6, $7)",
            None if ledger is None else digest(f"rejected {offset}", 16), ledger, code, stage,
            None if ledger is None else key_id(f"{ledger} alice"), offset, at(offset),
        )  # fmt: skip
    await connection.execute(BULK_SQL)


@dataclass(frozen=True)
class Facts:
    """What the tables hold, read by the superuser without row-level security: the rows each
    rule needs, and every analytics view evaluated from its own definition (the truth)."""

    posting_accounts: dict[tuple[str, int], frozenset[str]]
    hold_parties: dict[tuple[str, bytes], tuple[str, str]]
    tx_seqs: dict[tuple[str, bytes], int]
    postings: list[asyncpg.Record]
    rejections: list[asyncpg.Record]
    accounts: list[asyncpg.Record]
    final_heights: dict[str, int | None]
    truth: dict[str, list[asyncpg.Record]]


def sees_ledger(scope: Scope, ledger: str | None) -> bool:
    return ledger in scope


def sees_whole(scope: Scope, ledger: str | None) -> bool:
    return ledger is not None and ledger in scope and scope[ledger] is None


def sees_account(scope: Scope, ledger: str, account: str) -> bool:
    accounts = scope.get(ledger, frozenset())
    return accounts is None or account in accounts


def sees_transaction(scope: Scope, facts: Facts, ledger: str, seq: int) -> bool:
    """Whole ledger, or the transaction posts to an account in scope."""
    return sees_whole(scope, ledger) or any(
        sees_account(scope, ledger, account)
        for account in facts.posting_accounts.get((ledger, seq), ())
    )


def sees_hold(scope: Scope, ledger: str, hold_id: bytes, facts: Facts) -> bool:
    payer, payee = facts.hold_parties[(ledger, hold_id)]
    return sees_account(scope, ledger, payer) or sees_account(scope, ledger, payee)


Row = asyncpg.Record
RowRule = Callable[[Row, Scope, Facts], bool]


def names_account(column: str) -> RowRule:
    return lambda row, scope, facts: sees_account(scope, row["ledger"], row[column])


def chain_fact(row: Row, scope: Scope, facts: Facts) -> bool:
    return sees_ledger(scope, row["ledger"])


def whole_ledger_only(row: Row, scope: Scope, facts: Facts) -> bool:
    return sees_whole(scope, row["ledger"])


ROW_RULES: dict[str, RowRule] = {
    # Rows that name an account: shown when it is in scope.
    "postings": names_account("account"),
    "balances": names_account("account"),
    "accounts": names_account("account"),
    "v_account_statement": names_account("account"),
    "v_account_policies": names_account("account"),
    "v_issuance": names_account("issuer_account"),  # the issuer's balance
    "holds": lambda row, scope, facts: sees_hold(scope, row["ledger"], row["hold_id"], facts),
    "transactions": lambda row, scope, facts: sees_transaction(
        scope, facts, row["ledger"], row["seq"]
    ),
    "v_reversals": lambda row, scope, facts: (
        sees_account(scope, row["ledger"], row["account"])
        and sees_transaction(scope, facts, row["ledger"], row["original_seq"])
    ),
    # A cross-shard transfer is its hold and the Hold transaction (which posts nothing).
    "v_cross_shard": lambda row, scope, facts: (
        sees_hold(scope, row["source_ledger"], row["hold_id"], facts)
        and sees_transaction(
            scope,
            facts,
            row["source_ledger"],
            facts.tx_seqs[(row["source_ledger"], row["hold_id"])],
        )
    ),
    # Chain facts: any scope in the ledger shows them.
    "blocks": chain_fact,
    "assets": chain_fact,
    "cosignatures": chain_fact,
    "evidence": chain_fact,
    "finality_policies": chain_fact,
    "v_block_stats": chain_fact,
    "v_finality": chain_fact,
    # Keys: the ledger's own (no account), or one owning an account in scope.
    "keys": lambda row, scope, facts: (
        sees_whole(scope, row["ledger"])
        or (
            sees_ledger(scope, row["ledger"])
            and (
                not row["accounts"]
                or any(sees_account(scope, row["ledger"], account) for account in row["accounts"])
            )
        )
    ),
    # They may name other tenants: whole-ledger scopes only.
    "attestations": whole_ledger_only,
    "rejections": whole_ledger_only,
}

COMPARED_COLUMNS = {
    # The credit happens on the destination ledger: without a scope there, its columns are NULL
    # (and the state says so); LEDGER_COLUMNS checks that they never name an unscoped ledger.
    "v_cross_shard": ("source_ledger", "hold_id", "payer", "asset", "amount", "held_at"),
}
LEDGER_COLUMNS = ("ledger", "source_ledger", "credited_on")


def daily_volume(scope: Scope, facts: Facts) -> list[tuple[Any, ...]]:
    """v_daily_volume over the postings in scope."""
    groups: dict[tuple[str, str, dt.date], tuple[set[int], int]] = {}
    for row in facts.postings:
        if sees_account(scope, row["ledger"], row["account"]):
            key = (row["ledger"], row["asset"], row["sealed_at"].astimezone(dt.UTC).date())
            seqs, volume = groups.setdefault(key, (set(), 0))
            seqs.add(row["seq"])
            groups[key] = (seqs, volume + max(row["amount"], 0))
    return [(*key, len(seqs), Decimal(volume)) for key, (seqs, volume) in groups.items()]


def rejections_by_code(scope: Scope, facts: Facts) -> list[tuple[Any, ...]]:
    """v_rejections_by_code over the rejections in scope."""
    groups: dict[tuple[str, str], list[dt.datetime]] = {}
    for row in facts.rejections:
        if sees_whole(scope, row["ledger"]):
            groups.setdefault((row["code"], row["stage"]), []).append(row["rejected_at"])
    return [(*key, len(times), min(times), max(times)) for key, times in groups.items()]


AGGREGATES: dict[str, Callable[[Scope, Facts], list[tuple[Any, ...]]]] = {
    "v_daily_volume": daily_volume,
    "v_rejections_by_code": rejections_by_code,
}


def freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


def frozen_rows(rows: Iterable[Any], columns: Iterable[str] | None = None) -> Counter[Any]:
    """Rows as a multiset of hashable tuples (arrays become tuples), of ``columns`` only."""
    if columns is None:
        return Counter(tuple(freeze(value) for value in row) for row in rows)
    names = tuple(columns)
    return Counter(tuple(freeze(row[name]) for name in names) for row in rows)


def expected_rows(relation: str, scope: Scope | None, facts: Facts) -> Counter[Any]:
    """What a role with ``scope`` must see in ``relation`` (None: everything)."""
    truth = facts.truth[relation]
    if scope is None:
        return frozen_rows(truth)
    if relation in AGGREGATES:
        return frozen_rows(AGGREGATES[relation](scope, facts))
    if relation not in ROW_RULES:
        pytest.fail(f"analytics.{relation} has no rule here: say which rows of it a scope shows")
    shown = [row for row in truth if ROW_RULES[relation](row, scope, facts)]
    return frozen_rows(shown, COMPARED_COLUMNS.get(relation))


async def analytics_relations(connection: asyncpg.Connection) -> list[str]:
    rows = await connection.fetch(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'analytics'::regnamespace "
        "ORDER BY c.relname"
    )
    return [row["relname"] for row in rows]


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def index_conditions(plan: str) -> list[str]:
    return [node.get("Index Cond", "") for node in plan_nodes(json.loads(plan)[0]["Plan"])]


@asynccontextmanager
async def acting_as(connection: asyncpg.Connection, role: str) -> AsyncIterator[None]:
    """SET ROLE inside a transaction that is always rolled back."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f'SET LOCAL ROLE "{role}"')
        yield
    finally:
        await transaction.rollback()


@pytest.fixture(scope="module")
async def seeded_url(migrated_url: str) -> str:
    connection = await asyncpg.connect(migrated_url)
    try:
        await load_ledgers(connection)
    finally:
        await connection.close()
    return migrated_url


@pytest.fixture(scope="module")
async def roles(seeded_url: str, superuser_url: str) -> AsyncIterator[dict[str, str]]:
    """Cluster-wide roles with a name of their own (dropped at the end): one per scope, the
    first two granted by ``ledger db grant-analyst``'s code, "none" a bare member."""
    prefix = f"scoped_test_{uuid.uuid4().hex[:8]}"
    names = {kind: f"{prefix}_{kind}" for kind in (*SCOPES, "revoked", "full", "bypass")}
    try:
        await grant_analyst(seeded_url, names["whole"], "main", None, None)
        for ledger, accounts in SCOPES["account"].items():
            await grant_analyst(seeded_url, names["account"], ledger, sorted(accounts or ()), None)
        connection = await asyncpg.connect(seeded_url)
        try:
            await connection.execute(f'CREATE ROLE "{names["none"]}" IN ROLE ledger_scoped_analyst')
            await connection.execute(f'CREATE ROLE "{names["full"]}" IN ROLE ledger_analyst')
            await connection.execute(f'CREATE ROLE "{names["bypass"]}" BYPASSRLS')
        finally:
            await connection.close()
        yield names
    finally:
        connection = await asyncpg.connect(superuser_url)
        try:
            for name in names.values():
                await connection.execute(f'DROP ROLE IF EXISTS "{name}"')
        finally:
            await connection.close()


@pytest.fixture(scope="module")
async def facts(seeded_url: str) -> Facts:
    connection = await asyncpg.connect(seeded_url, server_settings=SESSION_SETTINGS)
    try:
        postings = await connection.fetch("SELECT * FROM ledger.postings")
        posting_accounts: dict[tuple[str, int], set[str]] = {}
        for row in postings:
            posting_accounts.setdefault((row["ledger"], row["seq"]), set()).add(row["account"])
        holds = await connection.fetch("SELECT ledger, hold_id, payer, payee FROM ledger.holds")
        transactions = await connection.fetch("SELECT ledger, tx_id, seq FROM ledger.transactions")
        truth = {}
        for relation in await analytics_relations(connection):
            definition = await connection.fetchval(
                "SELECT pg_get_viewdef($1::regclass)", f"analytics.{relation}"
            )
            truth[relation] = await connection.fetch(definition.strip().rstrip(";"))
        return Facts(
            posting_accounts={key: frozenset(value) for key, value in posting_accounts.items()},
            hold_parties={(r["ledger"], r["hold_id"]): (r["payer"], r["payee"]) for r in holds},
            tx_seqs={(r["ledger"], r["tx_id"]): r["seq"] for r in transactions},
            postings=postings,
            rejections=await connection.fetch("SELECT * FROM ledger.rejections"),
            accounts=await connection.fetch(
                "SELECT ledger, account, opened_height FROM ledger.accounts"
            ),
            final_heights=await final_heights(connection),
            truth=truth,
        )
    finally:
        await connection.close()


async def final_heights(connection: asyncpg.Connection) -> dict[str, int | None]:
    """final_height computed from the tables: the threshold-th highest of the witnesses'
    highest cosigned heights (threshold 0: the newest block)."""
    heights: dict[str, int | None] = {}
    for ledger in await connection.fetch("SELECT DISTINCT ledger FROM ledger.blocks"):
        name = ledger["ledger"]
        threshold = await connection.fetchval(
            "SELECT coalesce((SELECT threshold FROM ledger.finality_policies WHERE ledger = $1), 0)",
            name,
        )
        if threshold == 0:
            heights[name] = await connection.fetchval(
                "SELECT max(height) FROM ledger.blocks WHERE ledger = $1", name
            )
            continue
        heads = await connection.fetch(
            "SELECT max(c.height) AS height FROM ledger.cosignatures c JOIN ledger.keys k "
            "ON k.ledger = c.ledger AND k.key_id = c.witness_key_id "
            "WHERE c.ledger = $1 AND 'witness' = ANY (k.roles) AND k.revoked_height IS NULL "
            "GROUP BY c.witness_key_id ORDER BY 1 DESC",
            name,
        )
        heights[name] = heads[threshold - 1]["height"] if len(heads) >= threshold else None
    return heights


@pytest.fixture()
async def reader(seeded_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection, to act as any role with acting_as."""
    connection = await asyncpg.connect(seeded_url, server_settings=SESSION_SETTINGS)
    yield connection
    await connection.close()


def role_and_scope(kind: str, roles: dict[str, str]) -> tuple[str, Scope | None]:
    if kind == "full analyst":
        return FULL_ANALYST, None
    return roles[kind], SCOPES[kind]


def describe(difference: Counter[Any]) -> str:
    return "; ".join(repr(row) for row in list(difference)[:5])


@pytest.mark.parametrize("kind", ["whole", "account", "none", "full analyst"])
async def test_every_relation_shows_a_role_exactly_its_scope(
    reader: asyncpg.Connection, roles: dict[str, str], facts: Facts, kind: str
) -> None:
    """For every relation in schema analytics (from pg_class, so a new view is covered or the
    test fails until it has a rule), the rows the role reads are those its scope shows: none of
    another tenant's, none missing; ledger_analyst reads what the views' SQL gives unfiltered."""
    role, scope = role_and_scope(kind, roles)
    relations = await analytics_relations(reader)
    assert set(relations) == set(facts.truth) and len(relations) >= 20
    for relation in relations:
        expected = expected_rows(relation, scope, facts)
        async with acting_as(reader, role):
            rows = await reader.fetch(f'SELECT * FROM analytics."{relation}"')
        columns = COMPARED_COLUMNS.get(relation) if scope is not None else None
        seen = frozen_rows(rows, columns)
        assert not seen - expected, (
            f"{role} sees rows of analytics.{relation} outside its scope: {describe(seen - expected)}"
        )
        assert not expected - seen, (
            f"{role} misses rows of analytics.{relation}: {describe(expected - seen)}"
        )
        if scope is not None:
            for row in rows:
                for column in LEDGER_COLUMNS:
                    if column in row and row[column] is not None:
                        assert row[column] in scope, (relation, column, row[column])
        if kind == "whole":
            assert rows, f"the seed has no row of analytics.{relation} in ledger main: add one"
        if kind in ("whole", "account"):
            hidden = frozen_rows(facts.truth[relation], columns) - seen
            assert hidden, f"the seed hides nothing of analytics.{relation} from {kind}: add a row"


@pytest.mark.parametrize("kind", ["whole", "account", "none", "full analyst"])
async def test_balance_at_and_final_height_answer_only_in_scope(
    reader: asyncpg.Connection, roles: dict[str, str], facts: Facts, kind: str
) -> None:
    """Out of scope, an account's balance_at and a ledger's final_height are NULL, exactly as
    for an account or ledger that does not exist; in scope they are the true values."""
    role, scope = role_and_scope(kind, roles)
    accounts = [row for row in facts.accounts if row["ledger"] != "bulk"] + [
        row for row in facts.accounts if row["account"] in ("bulk-0042", "bulk-0043")
    ]
    checked = 0
    for account in accounts:
        ledger, name = account["ledger"], account["account"]
        for height in (0, 2, 10**6):
            truth = None
            if account["opened_height"] <= height:
                truth = sum(
                    row["amount"]
                    for row in facts.postings
                    if (row["ledger"], row["account"]) == (ledger, name) and row["height"] <= height
                )
            expected = truth if scope is None or sees_account(scope, ledger, name) else None
            async with acting_as(reader, role):
                found = await reader.fetchval(
                    "SELECT analytics.balance_at($1, $2, $3)", ledger, name, height
                )
            assert found == expected, (role, ledger, name, height)
            checked += truth is not None
    assert checked > 20
    for ledger in ("main", "other", "bulk", "nowhere"):
        truth = facts.final_heights.get(ledger)
        expected = truth if scope is None or sees_ledger(scope, ledger) else None
        async with acting_as(reader, role):
            found = await reader.fetchval("SELECT analytics.final_height($1)", ledger)
        assert found == expected, (role, ledger)
    assert facts.final_heights == {"main": 3, "other": 1, "bulk": BULK_TX_COUNT // 100 - 1}


async def test_why_the_views_are_security_invoker(
    reader: asyncpg.Connection, roles: dict[str, str]
) -> None:
    """The design probe of 0011, in PostgreSQL 15. Through an owner's-rights view owned by a
    role that is not the table's owner, a policy's current_user is whoever queries (so that
    design could scope), but the owner's policy then applies to every reader and a filter that
    is not leakproof (AT TIME ZONE) may not become an index condition before it. Through a
    security_invoker view, a reader whose policy is `true` keeps the index condition."""
    who = [roles["whole"], roles["account"]]
    owner = f"{roles['none']}_probe_owner"
    day = "(at AT TIME ZONE 'UTC')::date = '2025-03-02'"
    transaction = reader.transaction()
    await transaction.start()
    try:
        await reader.execute(
            f"""
            CREATE ROLE "{owner}" NOLOGIN;
            CREATE TABLE public.probe (who name, at timestamptz);
            CREATE INDEX probe_day ON public.probe (((at AT TIME ZONE 'UTC')::date));
            ALTER TABLE public.probe ENABLE ROW LEVEL SECURITY;
            CREATE POLICY by_reader ON public.probe FOR SELECT TO "{owner}"
                USING (who = current_user);
            CREATE POLICY everything ON public.probe FOR SELECT TO "{who[0]}" USING (true);
            GRANT SELECT ON public.probe TO "{owner}";
            CREATE VIEW public.probe_definer AS
                SELECT who, current_user AS reader, at FROM public.probe;
            ALTER VIEW public.probe_definer OWNER TO "{owner}";
            CREATE VIEW public.probe_invoker WITH (security_invoker = true) AS
                SELECT who, at FROM public.probe;
            """
        )
        await reader.executemany(
            "INSERT INTO public.probe VALUES ($1, $2)",
            [(name, at(height)) for name in who for height in range(100)],
        )
        for name in who:
            await reader.execute(f'GRANT SELECT ON public.probe_definer TO "{name}"')
        await reader.execute(f'GRANT SELECT ON public.probe, public.probe_invoker TO "{who[0]}"')
        for name in who:
            await reader.execute(f'SET LOCAL ROLE "{name}"; SET LOCAL enable_seqscan = off')
            rows = await reader.fetch("SELECT DISTINCT who, reader FROM public.probe_definer")
            assert [tuple(row) for row in rows] == [(name, name)]
            definer = await reader.fetchval(
                f"EXPLAIN (FORMAT JSON) SELECT * FROM public.probe_definer WHERE {day}"
            )
            assert not any("AT TIME ZONE" in cond for cond in index_conditions(definer))
            await reader.execute("RESET ROLE")
        await reader.execute(f'SET LOCAL ROLE "{who[0]}"')
        invoker = await reader.fetchval(
            f"EXPLAIN (FORMAT JSON) SELECT * FROM public.probe_invoker WHERE {day}"
        )
        assert any("AT TIME ZONE" in cond for cond in index_conditions(invoker)), invoker
    finally:
        await transaction.rollback()


@pytest.mark.parametrize("kind", ["whole", "account", "none"])
async def test_the_tables_show_a_scoped_role_what_the_views_show(
    reader: asyncpg.Connection, roles: dict[str, str], kind: str
) -> None:
    """A scoped role may read the tables behind the views (security_invoker needs it), under
    the same policies: as many rows as the views, its own scopes only, and no other table."""
    role = roles[kind]
    async with acting_as(reader, role):
        for table in ("postings", "transactions", "accounts", "keys", "holds", "rejections"):
            direct = await reader.fetchval(f"SELECT count(*) FROM ledger.{table}")
            through = await reader.fetchval(f"SELECT count(*) FROM analytics.{table}")
            assert direct == through, table
        scopes = await reader.fetch("SELECT role, ledger, accounts FROM ledger.analyst_scopes")
        assert {row["role"] for row in scopes} <= {role}
        assert {row["ledger"] for row in scopes} == set(SCOPES[kind])
    for table in ("tracking", "schema_migrations", "replica_snapshots", "ignored_messages"):
        async with acting_as(reader, role):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch(f"SELECT * FROM ledger.{table}")


async def test_revoking_removes_access_and_then_membership(
    seeded_url: str, reader: asyncpg.Connection, roles: dict[str, str]
) -> None:
    """A second grant replaces a ledger's scope; revoking one ledger keeps the other; revoking
    the last drops the membership, and the role then reads nothing at all."""
    role = roles["revoked"]

    async def accounts_seen() -> set[tuple[str, str]]:
        async with acting_as(reader, role):
            rows = await reader.fetch("SELECT ledger, account FROM analytics.accounts")
        return {(row["ledger"], row["account"]) for row in rows}

    first = await grant_analyst(seeded_url, role, "main", ["bob"], None)
    assert (first.created, first.accounts) == (True, ["bob"])
    await grant_analyst(seeded_url, role, "main", ["alice"], None)
    await grant_analyst(seeded_url, role, "other", None, None)
    other = {(ledger, account) for ledger, account in ACCOUNTS if ledger == "other"}
    assert await accounts_seen() == {("main", "alice")} | other
    revocation = await revoke_analyst(seeded_url, role, "other")
    assert (revocation.removed, revocation.remaining, revocation.member) == (
        ["other"],
        ["main"],
        True,
    )
    assert await accounts_seen() == {("main", "alice")}
    revocation = await revoke_analyst(seeded_url, role, None)
    assert (revocation.removed, revocation.remaining, revocation.member) == (["main"], [], False)
    for query in ("SELECT * FROM analytics.accounts", "SELECT analytics.final_height('main')"):
        async with acting_as(reader, role):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch(query)
    assert not await reader.fetchval(
        "SELECT count(*) FROM ledger.analyst_scopes WHERE role = $1", role
    )


async def test_a_role_that_sees_everything_cannot_be_scoped(
    seeded_url: str, roles: dict[str, str]
) -> None:
    """A member of ledger_analyst (it could SET ROLE to it), a BYPASSRLS role, a superuser or
    the tables' owner is refused, and a name that is not a plain identifier never reaches the
    database."""
    for role in (roles["full"], roles["bypass"], "ledger"):
        with pytest.raises(ConfigError, match="sees every row already"):
            await grant_analyst(seeded_url, role, "main", ["alice"], None)
    with pytest.raises(ConfigError, match="not a role name"):
        await grant_analyst(seeded_url, 'x"; DROP TABLE ledger.postings; --', "main", None, None)


@pytest.mark.parametrize(
    ("query", "index", "table"),
    [
        (
            "SELECT * FROM analytics.v_account_statement WHERE ledger = $1 AND account = $2",
            "postings_statement",
            "postings",
        ),
        (
            "SELECT * FROM analytics.balances WHERE ledger = $1 AND account = $2",
            "balances_pkey",
            "balances",
        ),
    ],
)
async def test_a_scoped_role_still_reads_through_the_index(
    reader: asyncpg.Connection, roles: dict[str, str], query: str, index: str, table: str
) -> None:
    """One account of 5,000 (8 of 40,000 postings), as the account-scoped role with its
    policies in the plan: the index on (ledger, account), no sequential scan of the table."""
    async with acting_as(reader, roles["account"]):
        raw = await reader.fetchval(f"EXPLAIN (FORMAT JSON) {query}", "bulk", "bulk-0042")
        rows = await reader.fetch(query, "bulk", "bulk-0042")
    nodes = list(plan_nodes(json.loads(raw)[0]["Plan"]))
    plan = "; ".join(
        f"{n['Node Type']} {n.get('Relation Name', '')} {n.get('Index Name', '')}" for n in nodes
    )
    assert index in {node.get("Index Name") for node in nodes}, plan
    assert not any(
        node["Node Type"] == "Seq Scan" and node.get("Relation Name") == table for node in nodes
    ), plan
    assert "analyst_scopes" in {node.get("Relation Name") for node in nodes}, plan
    assert rows and {row["account"] for row in rows} == {"bulk-0042"}
