"""The projector's batch write: staged upserts and updates, instants and tracking in PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from postgres_databases import ThrowawayDatabases

from ledger import codec
from ledger.confidential import open_confidential
from ledger.model import (
    AccountStatus,
    Capture,
    DefineAsset,
    Hold,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    RejectionRecord,
    RevokeKey,
    SetAccountStatus,
    Transfer,
    Void,
)
from ledger.replica import AppliedBlock
from ledger.signing import Signer, key_id
from streams.postgres import migrate
from streams.project import prepare, write
from streams.rows import Rows, SnapshotRow
from tests.support.chain_builder import NOW_MS, ChainBuilder

pytestmark = pytest.mark.services


ROW_BY_ROW_BALANCE_UPSERT = """
INSERT INTO ledger.balances (ledger, account, asset, balance, held, updated_height, updated_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (ledger, account) DO UPDATE SET
    balance = EXCLUDED.balance, held = EXCLUDED.held,
    updated_height = EXCLUDED.updated_height, updated_seq = EXCLUDED.updated_seq
"""
"""The projector's balance statement before balances were staged: the reference to agree with."""

BALANCES_QUERY = "SELECT * FROM ledger.balances ORDER BY ledger, account"


def batch(*blocks: AppliedBlock) -> Rows:
    rows = Rows()
    for applied in blocks:
        rows.add_block(applied, size_bytes=100)
    return rows


def pay(signer: Signer, payer: str, payee: str, amount: int) -> tuple[Signer, Operation]:
    return signer, Transfer((Posting(payer, "USD", -amount), Posting(payee, "USD", amount)))


class People:
    def __init__(self) -> None:
        self.admin, self.issuer = Signer.generate(), Signer.generate()
        self.alice, self.bob = Signer.generate(), Signer.generate()

    def genesis(self, chain: ChainBuilder) -> AppliedBlock:
        return chain.block(
            (self.admin, RegisterKey(self.admin.public_key, ("admin",), ())),
            (self.admin, DefineAsset("USD", 2, "usd.issuer")),
            (self.admin, OpenAccount("alice", "USD")),
            (self.admin, OpenAccount("bob", "USD")),
            (self.admin, RegisterKey(self.issuer.public_key, (), ("usd.issuer",))),
            (self.admin, RegisterKey(self.alice.public_key, (), ("alice",))),
            (self.admin, RegisterKey(self.bob.public_key, (), ("bob",))),
        )


@pytest.fixture()
async def projector_connection(migrated_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection prepared as the projector's is; its database starts empty for each test."""
    connection = await asyncpg.connect(migrated_url)
    await connection.execute(
        "TRUNCATE ledger.blocks, ledger.transactions, ledger.postings, ledger.balances,"
        " ledger.accounts, ledger.assets, ledger.keys, ledger.holds, ledger.attestations,"
        " ledger.rejections, ledger.tracking, ledger.replica_snapshots"
    )
    await prepare(connection)
    yield connection
    await connection.close()


async def test_staged_balance_upsert_equals_the_row_by_row_upsert(
    projector_connection: asyncpg.Connection, migrated_url: str, databases: ThrowawayDatabases
) -> None:
    """Staged balances equal the row-by-row upsert's and the replica's: repeats, new, existing."""
    people, chain = People(), ChainBuilder()
    first = batch(
        people.genesis(chain),
        chain.block(
            pay(people.issuer, "usd.issuer", "alice", 1_000),
            pay(people.issuer, "usd.issuer", "bob", 500),
        ),
    )
    second = batch(
        chain.block(
            (people.admin, OpenAccount("carol", "USD")),
            pay(people.alice, "alice", "bob", 10),
            pay(people.alice, "alice", "bob", 20),
            pay(people.bob, "bob", "alice", 5),
            (people.alice, Hold("alice", "bob", "USD", 100, chain.now_ms + 60_000)),
        ),
        chain.block(
            pay(people.alice, "alice", "carol", 30),
            pay(people.bob, "bob", "carol", 40),
            pay(people.alice, "alice", "bob", 1),
        ),
    )
    assert len(second.balances) == 3  # carol opened, alice and bob many times, not the issuer

    reference_url = await databases.create()
    await migrate(reference_url)
    reference = await asyncpg.connect(reference_url)
    plain = await asyncpg.connect(migrated_url)
    try:
        for rows in (first, second):
            await write(projector_connection, rows)
            await reference.executemany(
                ROW_BY_ROW_BALANCE_UPSERT, [tuple(row) for row in rows.balances.values()]
            )
        staged = [dict(row) for row in await plain.fetch(BALANCES_QUERY)]
        row_by_row = [dict(row) for row in await reference.fetch(BALANCES_QUERY)]
    finally:
        await reference.close()
        await plain.close()
    assert staged == row_by_row
    accounts = chain.replica.state.accounts
    assert {row["account"]: (row["balance"], row["held"]) for row in staged} == {
        name: (account.balance, account.held) for name, account in accounts.items()
    }
    available = {row["account"]: row["available"] for row in staged}
    assert available["alice"] == 1_000 - 61 + 5 - 100  # funded, paid out, paid in, on hold


async def test_changes_and_instants_arrive_as_written(
    projector_connection: asyncpg.Connection, migrated_url: str
) -> None:
    """Staged hold and rejection changes, row-by-row updates and instants land as written."""
    # Three holds: one captured in the batch that opened it, one voided in the next batch, one
    # lapsing at the start of that batch's block; a rejection delivered three times.
    people, chain = People(), ChainBuilder()
    genesis = people.genesis(chain)
    funded = chain.block(pay(people.issuer, "usd.issuer", "alice", 1_000))
    opened = chain.block(
        (people.alice, Hold("alice", "bob", "USD", 100, chain.now_ms + 60_000)),
        (people.alice, Hold("alice", "bob", "USD", 50, chain.now_ms + 60_000)),
        (people.alice, Hold("alice", "bob", "USD", 25, chain.now_ms + 2_500)),
    )
    hold_ids = [item.accepted.tx.body.tx_id for item in opened.transactions]
    captured = chain.block((people.bob, Capture(hold_ids[0], 60)))
    first = batch(genesis, funded, opened, captured)
    rejection = RejectionRecord(
        code="EXPIRED",
        detail="late",
        stage="sequence",
        source_topic="ledger.verified",
        source_partition=0,
        source_offset=7,
        rejected_at_ms=NOW_MS + 123,
    )
    first.add_rejection(1, 40, rejection)
    first.add_rejection(1, 41, rejection)  # redelivered within the batch
    first.snapshots["main"] = SnapshotRow("main", 3, b"first")
    await write(projector_connection, first)

    later = chain.block(  # the hold of 25 lapses at this block's start
        (people.alice, Void(hold_ids[1])),
        (people.admin, SetAccountStatus("bob", AccountStatus.FROZEN)),
        (people.admin, RevokeKey(key_id(people.bob.public_key))),
    )
    second = batch(later)
    second.add_rejection(1, 42, rejection)  # redelivered in a later batch
    second.snapshots["main"] = SnapshotRow("main", 4, b"second")
    await prepare(projector_connection)  # again, as after a reconnect: nothing changes
    await write(projector_connection, second)

    plain = await asyncpg.connect(migrated_url)
    try:
        holds = {
            row["hold_id"]: tuple(row)
            for row in await plain.fetch(
                "SELECT hold_id, status, captured_amount, resolved_height FROM ledger.holds"
            )
        }
        assert holds == {
            hold_ids[0]: (hold_ids[0], "captured", 60, 3),
            hold_ids[1]: (hold_ids[1], "voided", 0, 4),
            hold_ids[2]: (hold_ids[2], "expired", 0, 4),
        }
        assert await plain.fetchval("SELECT status FROM ledger.accounts WHERE account = 'bob'") == (
            "frozen"
        )
        assert (
            await plain.fetchval(
                "SELECT revoked_height FROM ledger.keys WHERE key_id = $1",
                key_id(people.bob.public_key),
            )
            == 4
        )
        rejected = await plain.fetch("SELECT code, rejected_at FROM ledger.rejections")
        assert [tuple(row) for row in rejected] == [("EXPIRED", as_datetime(NOW_MS + 123))]
        assert await plain.fetchval("SELECT snapshot FROM ledger.replica_snapshots") == b"second"
        tracking = await plain.fetch("SELECT stream, position FROM ledger.tracking ORDER BY 1")
        assert [tuple(row) for row in tracking] == [("blocks:main", 4), ("rejections:1", 43)]
        sealed = await plain.fetch("SELECT height, sealed_at FROM ledger.blocks ORDER BY height")
        blocks = [genesis, funded, opened, captured, later]
        assert [tuple(row) for row in sealed] == [
            (height, as_datetime(applied.block.header.sealed_at_ms))
            for height, applied in enumerate(blocks)
        ]
        body = opened.transactions[2].accepted.tx.body
        times = await plain.fetchrow(
            "SELECT created_at, expires_at FROM ledger.transactions WHERE tx_id = $1", body.tx_id
        )
        assert tuple(times) == (as_datetime(body.created_at_ms), as_datetime(body.expires_at_ms))
        expiry = await plain.fetchval(
            "SELECT expires_at FROM ledger.holds WHERE hold_id = $1", hold_ids[2]
        )
        assert expiry == as_datetime(NOW_MS + 2_000 + 2_500)
    finally:
        await plain.close()


async def test_a_failed_batch_leaves_nothing_staged_for_the_next(
    projector_connection: asyncpg.Connection,
) -> None:
    """A batch failing after staging rolls its staged rows back: the next writes only its own."""
    people, chain = People(), ChainBuilder()
    genesis = batch(people.genesis(chain))
    await write(projector_connection, genesis)
    payment = chain.block(pay(people.issuer, "usd.issuer", "alice", 70))
    failing = batch(payment)
    failing.balances[("main", "ghost")] = failing.balances[("main", "alice")]._replace(
        account="ghost", held=-1
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await write(projector_connection, failing)
    await write(projector_connection, batch(payment))
    balances = {
        row["account"]: row["balance"]
        for row in await projector_connection.fetch("SELECT account, balance FROM ledger.balances")
    }
    assert balances == {"usd.issuer": -70, "alice": 70, "bob": 0}


async def test_a_confidential_transaction_is_projected_without_its_fields(
    projector_connection: asyncpg.Connection, migrated_url: str
) -> None:
    """analytics.transactions shows a confidential transfer with NULL memo and reference and
    the key_ids it is encrypted to; the stored envelope still opens for a recipient, and a
    recipient finds its transactions through the confidential_to index condition."""
    people, chain = People(), ChainBuilder()
    genesis = people.genesis(chain)
    funded = chain.block(pay(people.issuer, "usd.issuer", "alice", 100))
    op = Transfer((Posting("alice", "USD", -40), Posting("bob", "USD", 40)))
    secret = chain.confidential_block(people.alice, op, [people.alice, people.bob])
    await write(projector_connection, batch(genesis, funded, secret))
    plain = await asyncpg.connect(migrated_url)
    try:
        row = await plain.fetchrow(
            "SELECT memo, external_ref, metadata, confidential_to, envelope"
            " FROM analytics.transactions WHERE confidential_to @> ARRAY[$1]::text[]",
            people.bob.key_id,
        )
        assert row is not None
        assert (row["memo"], row["external_ref"], row["metadata"]) == (None, None, None)
        assert row["confidential_to"] == [people.alice.key_id, people.bob.key_id]
        _, body = codec.decode_submission(row["envelope"])
        assert open_confidential(body, people.bob).external_ref == "INV-7"
        assert (
            await plain.fetchval(
                "SELECT count(*) FROM analytics.transactions WHERE confidential_to IS NULL"
            )
            == len(genesis.transactions) + 1
        )
    finally:
        await plain.close()


def as_datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
