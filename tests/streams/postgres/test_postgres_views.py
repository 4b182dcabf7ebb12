"""The analyst views compute the right numbers on a small hand-written ledger."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from ledger.settings import REPO_ROOT

pytestmark = pytest.mark.services

UTC = dt.UTC
KEY_ID = "ab" * 16
DAY_1 = dt.date(2025, 3, 1)
DAY_2 = dt.date(2025, 3, 2)
# Block times straddle midnight UTC, so the daily volume splits over two days.
BLOCK_TIMES = {
    0: dt.datetime(2025, 3, 1, 23, 59, 58, tzinfo=UTC),
    1: dt.datetime(2025, 3, 1, 23, 59, 59, 500_000, tzinfo=UTC),  # 1.5 s after block 0
    2: dt.datetime(2025, 3, 2, 0, 0, 1, 500_000, tzinfo=UTC),  # 2 s after block 1
    3: dt.datetime(2025, 3, 2, 0, 0, 1, 500_000, tzinfo=UTC),  # same instant as block 2
}
# seq -> (height, kind, postings as (account, amount)); one asset, USD.
TRANSACTIONS: dict[int, tuple[int, str, list[tuple[str, int]]]] = {
    0: (0, "DefineAsset", []),
    1: (0, "OpenAccount", []),
    2: (0, "OpenAccount", []),
    3: (1, "Transfer", [("issuer", -1000), ("alice", 1000)]),
    4: (2, "Transfer", [("alice", -300), ("bob", 300)]),
    5: (2, "Transfer", [("alice", -200), ("bob", 200)]),
    6: (3, "Transfer", [("bob", -50), ("alice", 50)]),
    7: (3, "OpenAccount", []),  # carol
}
ACCOUNTS = {
    "issuer": (0, 0, True),
    "alice": (0, 1, False),
    "bob": (0, 2, False),
    "carol": (3, 7, False),
}


def digest(label: str, size: int = 32) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:size]


def tx_id(seq: int) -> bytes:
    return digest(f"tx {seq}", 16)


async def load_ledger(connection: asyncpg.Connection) -> None:
    """Writes the rows a projector would write for the ledger above, and a few rejections."""
    for height, sealed_at in BLOCK_TIMES.items():
        seqs = sorted(seq for seq, (h, _, _) in TRANSACTIONS.items() if h == height)
        await connection.execute(
            "INSERT INTO ledger.blocks (ledger, height, hash, prev_hash, tx_root, blocks_root, "
            "tx_count, first_seq, sealed_at, sealer_key, source_partition, source_offset_end, "
            "size_bytes, seal) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            "main", height, digest(f"block {height}"), digest(f"block {height - 1}"),
            digest(f"root {height}"), digest(f"blocks {height}"), len(seqs), min(seqs), sealed_at,
            digest("sealer"), 0, 10 * height, 1000, b"\x00" * 64,
        )  # fmt: skip
    for seq, (height, kind, postings) in TRANSACTIONS.items():
        sealed_at = BLOCK_TIMES[height]
        await connection.execute(
            "INSERT INTO ledger.transactions VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            "main", seq, tx_id(seq), height, 0, kind, KEY_ID, sealed_at, sealed_at,
            sealed_at, f"ref-{seq}", f"memo {seq}", b"envelope",
        )  # fmt: skip
        for index, (account, amount) in enumerate(postings):
            await connection.execute(
                "INSERT INTO ledger.postings VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                "main", seq, index, account, "USD", amount, height, sealed_at,
            )  # fmt: skip
    for account, (height, seq, allow_negative) in ACCOUNTS.items():
        await connection.execute(
            "INSERT INTO ledger.accounts VALUES ($1, $2, $3, 'active', NULL, $4, $5, $6)",
            "main", account, "USD", allow_negative, height, seq,
        )  # fmt: skip
    # The same account name in another ledger must not leak into main's numbers.
    await connection.execute(
        "INSERT INTO ledger.accounts VALUES ('other', 'alice', 'USD', 'active', NULL, false, 0, 0)"
    )
    await connection.execute(
        "INSERT INTO ledger.transactions VALUES ('other', 0, $1, 0, 0, 'Transfer', $2, $3, $3, $3, NULL, NULL, $4)",
        digest("other tx", 16), KEY_ID, BLOCK_TIMES[0], b"envelope",
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO ledger.postings VALUES ('other', 0, 0, 'alice', 'USD', 999999, 0, $1)",
        BLOCK_TIMES[0],
    )
    await connection.execute(
        "INSERT INTO ledger.balances (ledger, account, asset, balance, held, updated_height, updated_seq) "
        "VALUES ('main', 'alice', 'USD', 550, 120, 3, 6)"
    )
    rejections = [
        ("INSUFFICIENT_FUNDS", "sequence", 0, BLOCK_TIMES[1]),
        ("INSUFFICIENT_FUNDS", "sequence", 1, BLOCK_TIMES[2]),
        ("INSUFFICIENT_FUNDS", "sequence", 2, BLOCK_TIMES[3] + dt.timedelta(seconds=5)),
        ("BAD_SIGNATURE", "verify", 3, BLOCK_TIMES[0]),
        ("MALFORMED", "verify", 4, BLOCK_TIMES[2]),
        # Kafka redelivers offset 0: the same source position is the same row.
        ("INSUFFICIENT_FUNDS", "sequence", 0, BLOCK_TIMES[1]),
    ]
    for code, stage, offset, rejected_at in rejections:
        await connection.execute(
            "INSERT INTO ledger.rejections (tx_id, ledger, code, detail, stage, source_topic, "
            "source_partition, source_offset, rejected_at) "
            "VALUES ($1, $2, $3, 'detail', $4, $5, 0, $6, $7) "
            "ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING",
            None if code == "MALFORMED" else digest(f"rejected {offset}", 16),
            None if code == "MALFORMED" else "main",
            code, stage, f"ledger.{'verified' if stage == 'sequence' else 'submissions'}",
            offset, rejected_at,
        )  # fmt: skip


@pytest.fixture(scope="module")
async def ledger_url(migrated_url: str) -> AsyncIterator[str]:
    connection = await asyncpg.connect(migrated_url)
    try:
        await load_ledger(connection)
    finally:
        await connection.close()
    yield migrated_url


@pytest.fixture()
async def analyst(ledger_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection acting as ledger_analyst, so the numbers are the ones analysts see."""
    connection = await asyncpg.connect(ledger_url)
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("SET LOCAL ROLE ledger_analyst")
    yield connection
    await transaction.rollback()
    await connection.close()


async def test_account_statement_has_a_running_balance(analyst: asyncpg.Connection) -> None:
    """Each posting of alice in seq order, joined to its transaction, with the balance after it."""
    rows = await analyst.fetch(
        "SELECT seq, height, kind, tx_id, external_ref, memo, amount, running_balance, sealed_at "
        "FROM analytics.v_account_statement WHERE ledger = 'main' AND account = 'alice' ORDER BY seq"
    )
    assert [(r["seq"], r["amount"], r["running_balance"]) for r in rows] == [
        (3, 1000, 1000),
        (4, -300, 700),
        (5, -200, 500),
        (6, 50, 550),
    ]
    assert [r["height"] for r in rows] == [1, 2, 2, 3]
    assert rows[0]["kind"] == "Transfer"
    assert rows[0]["tx_id"] == tx_id(3)
    assert (rows[0]["external_ref"], rows[0]["memo"]) == ("ref-3", "memo 3")
    assert rows[-1]["sealed_at"] == BLOCK_TIMES[3]


async def test_statement_running_balance_is_per_account_and_ledger(
    analyst: asyncpg.Connection,
) -> None:
    """bob's and the issuer's running balances start from zero; the other ledger's alice is apart."""
    bob = await analyst.fetch(
        "SELECT running_balance FROM analytics.v_account_statement "
        "WHERE ledger = 'main' AND account = 'bob' ORDER BY seq"
    )
    assert [r["running_balance"] for r in bob] == [300, 500, 450]
    issuer = await analyst.fetchval(
        "SELECT running_balance FROM analytics.v_account_statement "
        "WHERE ledger = 'main' AND account = 'issuer'"
    )
    assert issuer == -1000
    other = await analyst.fetch(
        "SELECT running_balance FROM analytics.v_account_statement "
        "WHERE ledger = 'other' AND account = 'alice'"
    )
    assert [r["running_balance"] for r in other] == [999999]


async def test_daily_volume_counts_transactions_and_positive_legs_per_utc_day(
    analyst: asyncpg.Connection,
) -> None:
    """Day 1: one issuing transfer of 1000; day 2: three transfers moving 300 + 200 + 50."""
    rows = await analyst.fetch(
        "SELECT day, tx_count, volume FROM analytics.v_daily_volume "
        "WHERE ledger = 'main' AND asset = 'USD' ORDER BY day"
    )
    assert [(r["day"], r["tx_count"], r["volume"]) for r in rows] == [
        (DAY_1, 1, Decimal(1000)),
        (DAY_2, 3, Decimal(550)),
    ]


async def test_block_stats_measure_the_gap_to_the_previous_block(
    analyst: asyncpg.Connection,
) -> None:
    """Seconds since the previous block and tx per second; none for genesis or a zero gap."""
    rows = await analyst.fetch(
        "SELECT height, tx_count, seconds_since_previous, tx_per_second "
        "FROM analytics.v_block_stats WHERE ledger = 'main' ORDER BY height"
    )
    assert [tuple(r) for r in rows] == [
        (0, 3, None, None),
        (1, 1, Decimal("1.5"), Decimal("0.667")),
        (2, 2, Decimal("2"), Decimal("1.000")),
        (3, 2, Decimal("0"), None),
    ]


async def test_rejections_by_code_count_each_source_position_once(
    analyst: asyncpg.Connection,
) -> None:
    """Three INSUFFICIENT_FUNDS (the redelivered one counted once), with first and last times."""
    rows = await analyst.fetch(
        "SELECT code, stage, count, first_at, last_at FROM analytics.v_rejections_by_code "
        "ORDER BY code"
    )
    assert [tuple(r) for r in rows] == [
        ("BAD_SIGNATURE", "verify", 1, BLOCK_TIMES[0], BLOCK_TIMES[0]),
        (
            "INSUFFICIENT_FUNDS",
            "sequence",
            3,
            BLOCK_TIMES[1],
            BLOCK_TIMES[3] + dt.timedelta(seconds=5),
        ),
        ("MALFORMED", "verify", 1, BLOCK_TIMES[2], BLOCK_TIMES[2]),
    ]


@pytest.mark.parametrize(
    ("account", "height", "expected"),
    [
        ("alice", 0, 0),  # open since genesis, nothing posted yet
        ("alice", 1, 1000),
        ("alice", 2, 500),
        ("alice", 3, 550),
        ("alice", 1_000_000, 550),  # past the tip: the current balance
        ("bob", 2, 500),
        ("issuer", 3, -1000),
        ("carol", 2, None),  # not open yet
        ("carol", 3, 0),
        ("nobody", 3, None),
        ("alice", -1, None),
    ],
)
async def test_balance_at_sums_postings_up_to_a_height(
    analyst: asyncpg.Connection, account: str, height: int, expected: int | None
) -> None:
    """balance_at(ledger, account, height) is the balance after that block, NULL before opening."""
    balance = await analyst.fetchval("SELECT analytics.balance_at('main', $1, $2)", account, height)
    assert balance == expected


async def test_balance_at_matches_the_statement_at_every_height(
    analyst: asyncpg.Connection,
) -> None:
    """For every account and height, balance_at equals the last running balance up to it."""
    mismatches = await analyst.fetch(
        """
        SELECT a.account, h.height, analytics.balance_at('main', a.account, h.height) AS at,
               (SELECT s.running_balance FROM analytics.v_account_statement AS s
                WHERE s.ledger = 'main' AND s.account = a.account AND s.height <= h.height
                ORDER BY s.seq DESC, s.posting_index DESC LIMIT 1) AS statement
        FROM analytics.accounts AS a, analytics.blocks AS h
        WHERE a.ledger = 'main' AND h.ledger = 'main' AND a.opened_height <= h.height
        """
    )
    assert mismatches, "the data set has accounts and heights"
    for row in mismatches:
        assert row["at"] == (row["statement"] or 0), dict(row)


async def test_balances_view_derives_available(analyst: asyncpg.Connection) -> None:
    """available is balance - held, computed by the database."""
    row = await analyst.fetchrow(
        "SELECT balance, held, available FROM analytics.balances WHERE ledger = 'main' AND account = 'alice'"
    )
    assert tuple(row) == (550, 120, 430)


def documented_queries() -> list[str]:
    """The statements in the ```sql blocks of docs/views.md (not the ```sql admin ones)."""
    text = (REPO_ROOT / "docs" / "views.md").read_text()
    blocks = re.findall(r"^```sql\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [part.strip() for block in blocks for part in block.split(";") if part.strip()]


def test_the_documentation_has_examples() -> None:
    """docs/views.md shows a query for each computed view and balance_at."""
    queries = "\n".join(documented_queries())
    for name in ("v_account_statement", "v_daily_volume", "v_block_stats", "v_rejections_by_code"):
        assert f"analytics.{name}" in queries
    assert "analytics.balance_at(" in queries


@pytest.mark.parametrize(
    "query",
    documented_queries(),
    ids=[f"example-{number}" for number in range(1, len(documented_queries()) + 1)],
)
async def test_documented_query_runs_as_analyst(analyst: asyncpg.Connection, query: str) -> None:
    """Every example query of docs/views.md runs as ledger_analyst on this data set."""
    await analyst.fetch(query)


async def test_blocks_view_shows_the_seal_and_projection_time(analyst: asyncpg.Connection) -> None:
    """analytics.blocks carries each block's seal and when the projector wrote it."""
    row = await analyst.fetchrow(
        "SELECT seal, projected_at - sealed_at AS delay FROM analytics.blocks "
        "WHERE ledger = 'main' AND height = 3"
    )
    assert row["seal"] == b"\x00" * 64
    assert row["delay"] > dt.timedelta(0)
