"""The projector's rows come straight from the replayed effects: no database needed to check them."""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import UTC, datetime

from ledger.model import (
    AccountStatus,
    Attest,
    Capture,
    DefineAsset,
    Hold,
    OpenAccount,
    Posting,
    RegisterKey,
    RejectionRecord,
    SetAccountStatus,
    Transfer,
)
from ledger.signing import Signer
from streams import project
from streams import rows as rows_module
from streams.rows import (
    PROCESSOR,
    AccountStatusRow,
    BalanceRow,
    PostingRow,
    Rows,
    Table,
    TrackingRow,
    TransactionRow,
    instant,
    postgres_epoch_ms,
)
from tests.support.chain_builder import NOW_MS, ChainBuilder


def test_rows_of_a_small_ledger() -> None:
    """Genesis, a transfer, a hold captured in part, a freeze and an attestation become the rows
    an analyst expects: postings numbered per transaction, last balance per account, statuses."""
    admin, issuer, alice = Signer.generate(), Signer.generate(), Signer.generate()
    chain = ChainBuilder()
    rows = Rows()
    rows.add_block(
        chain.block(
            (admin, RegisterKey(admin.public_key, ("admin",), ())),
            (admin, DefineAsset("USD", 2, "usd.issuer")),
            (admin, OpenAccount("alice", "USD")),
            (admin, OpenAccount("bob", "USD", max_balance=10_000)),
            (admin, RegisterKey(issuer.public_key, (), ("usd.issuer",))),
            (admin, RegisterKey(alice.public_key, (), ("alice",))),
        ),
        size_bytes=1,
    )
    rows.add_block(
        chain.block(
            (issuer, Transfer((Posting("usd.issuer", "USD", -500), Posting("alice", "USD", 500))))
        ),
        1,
    )
    hold = chain.block((alice, Hold("alice", "bob", "USD", 200, NOW_MS + 60_000)))
    rows.add_block(hold, 1)
    hold_id = hold.transactions[0].accepted.tx.body.tx_id
    rows.add_block(chain.block((alice, Capture(hold_id, 150))), 1)
    rows.add_block(
        chain.block(
            (admin, SetAccountStatus("bob", AccountStatus.FROZEN)), (alice, Attest(os.urandom(32)))
        ),
        1,
    )

    assert [row.height for row in rows.blocks] == [0, 1, 2, 3, 4]
    assert [row.kind for row in rows.transactions] == [
        "RegisterKey",
        "DefineAsset",
        "OpenAccount",
        "OpenAccount",
        "RegisterKey",
        "RegisterKey",
        "Transfer",
        "Hold",
        "Capture",
        "SetAccountStatus",
        "Attest",
    ]
    # (account, amount) of every posting, numbered within its transaction
    assert [(row.posting_index, row.account, row.amount) for row in rows.postings] == [
        (0, "usd.issuer", -500),
        (1, "alice", 500),
        (0, "alice", -150),
        (1, "bob", 150),
    ]
    balances = {account: (row.balance, row.held) for (_, account), row in rows.balances.items()}
    assert balances == {"usd.issuer": (-500, 0), "alice": (350, 0), "bob": (150, 0)}
    assert {row.account: row.allow_negative for row in rows.accounts} == {
        "usd.issuer": True,
        "alice": False,
        "bob": False,
    }
    assert list(rows.account_statuses.values()) == [AccountStatusRow("main", "bob", "frozen")]
    assert [row.status for row in rows.holds] == ["open"]
    [resolution] = rows.hold_resolutions.values()
    assert (resolution.hold_id, resolution.status, resolution.captured_amount) == (
        hold_id,
        "captured",
        150,
    )
    assert len(rows.attestations) == 1 and len(rows.keys) == 3
    assert rows.tracking == {(PROCESSOR, "blocks:main"): TrackingRow(PROCESSOR, "blocks:main", 4)}


def test_rejections_advance_their_partition_position() -> None:
    """Each rejection row moves the tracking position of its partition past its offset."""
    rows = Rows()
    for offset in (7, 8):
        rejection = RejectionRecord(
            code="EXPIRED",
            detail="late",
            stage="sequence",
            source_topic="ledger.verified",
            source_partition=0,
            source_offset=offset,
            rejected_at_ms=NOW_MS,
        )
        rows.add_rejection(2, 40 + offset, rejection)
    assert len(rows) == 2 and rows.tracking == {
        (PROCESSOR, "rejections:2"): TrackingRow(PROCESSOR, "rejections:2", 49)
    }


def test_rows_are_their_tables_named_row_types() -> None:
    """Every row is its table's row type, with each value in the field of its name."""
    admin, issuer = Signer.generate(), Signer.generate()
    chain = ChainBuilder()
    rows = Rows()
    applied = chain.block(
        (admin, RegisterKey(admin.public_key, ("admin",), ())),
        (admin, DefineAsset("USD", 2, "usd.issuer")),
        (admin, OpenAccount("alice", "USD")),
        (admin, RegisterKey(issuer.public_key, (), ("usd.issuer",))),
    )
    rows.add_block(applied, 1)
    rows.add_block(
        chain.block(
            (issuer, Transfer((Posting("usd.issuer", "USD", -7), Posting("alice", "USD", 7))))
        ),
        1,
    )
    for table, table_rows in rows.inserts() + rows.changes():
        assert all(type(row) is table.row_type for row in table_rows), table.name
    transfer = rows.transactions[-1]
    assert isinstance(transfer, TransactionRow) and transfer.kind == "Transfer"
    assert transfer.sealed_at == instant(chain.now_ms) == rows.blocks[-1].sealed_at
    assert transfer.expires_at - transfer.created_at == 60_000 * 1000  # µs, the SDK's 60 s
    assert rows.postings[-1] == PostingRow(
        "main", transfer.seq, 1, "alice", "USD", 7, 1, instant(chain.now_ms)
    )
    assert rows.balances[("main", "alice")] == BalanceRow(
        "main", "alice", "USD", 7, 0, 1, transfer.seq
    )


def test_a_confidential_transaction_row_names_its_recipients_and_hides_its_fields() -> None:
    """The projector holds no key: memo and external_ref stay NULL, confidential_to lists the
    recipients' key_ids in the body's order, and the postings are there as for any transfer."""
    admin, issuer, auditor = Signer.generate(), Signer.generate(), Signer.generate()
    chain, rows = ChainBuilder(), Rows()
    rows.add_block(
        chain.block(
            (admin, RegisterKey(admin.public_key, ("admin",), ())),
            (admin, DefineAsset("USD", 2, "usd.issuer")),
            (admin, OpenAccount("alice", "USD")),
            (admin, RegisterKey(issuer.public_key, (), ("usd.issuer",))),
        ),
        1,
    )
    pay = Transfer((Posting("usd.issuer", "USD", -9), Posting("alice", "USD", 9)))
    rows.add_block(chain.confidential_block(issuer, pay, [issuer, auditor]), 1)
    row = rows.transactions[-1]
    assert (row.kind, row.memo, row.external_ref, row.metadata) == ("Transfer", None, None, None)
    assert row.confidential_to == [issuer.key_id, auditor.key_id]
    assert all(earlier.confidential_to is None for earlier in rows.transactions[:-1])
    assert [posting.amount for posting in rows.postings if posting.seq == row.seq] == [-9, 9]


def test_every_table_takes_its_columns_from_its_row_type() -> None:
    """Each table's columns are its row type's fields in order, and its key is among them."""
    tables = [value for value in vars(rows_module).values() if isinstance(value, Table)]
    assert len(tables) == 20
    for table in tables:
        assert table.columns == table.row_type._fields
        assert set(table.key) <= set(table.columns)
        assert table.value_columns == tuple(c for c in table.columns if c not in table.key)


def test_every_rows_field_is_written_once() -> None:
    """Rows.inserts and Rows.changes hand over every collection of a batch exactly once."""
    rows = Rows()
    fields = dataclasses.fields(rows)
    for marker, field in enumerate(fields):
        collection = getattr(rows, field.name)
        if isinstance(collection, list):
            collection.append(marker)
        else:
            collection[marker] = marker
    handed = [marker for _, collection in rows.inserts() + rows.changes() for marker in collection]
    assert sorted(handed) == list(range(len(fields)))
    assert set(table for table, _ in rows.changes()) == set(project.STATEMENTS)


def test_row_by_row_statements_number_parameters_in_field_order() -> None:
    """In the statements executed once per row, parameter $n is the row type's field n."""
    for table, statement in project.STATEMENTS.items():
        if table in project.STAGED:
            assert f"pg_temp.{project.STAGED[table]}" in statement
            continue
        columns = table.columns
        if statement.startswith("UPDATE"):
            pairs = re.findall(r"(\w+) = \$(\d+)", statement)
            assert sorted(int(number) for _, number in pairs) == list(range(1, len(columns) + 1))
            assert all(columns[int(number) - 1] == name for name, number in pairs)
        else:
            listed = re.search(r"\(([^)]*)\) VALUES \(([^)]*)\)", statement)
            assert listed is not None
            names = [name.strip() for name in listed.group(1).split(",")]
            values = [value.strip() for value in listed.group(2).split(",")]
            assert names[: len(columns)] == list(columns)
            assert values[: len(columns)] == [f"${index}" for index in range(1, len(columns) + 1)]


def test_instants_count_microseconds_from_postgresql_epoch() -> None:
    """A PostgresInstant is microseconds since 2000-01-01 UTC, exact to the millisecond."""
    assert datetime.fromtimestamp(postgres_epoch_ms / 1000, tz=UTC) == datetime(
        2000, 1, 1, tzinfo=UTC
    )
    assert instant(postgres_epoch_ms) == 0
    assert instant(NOW_MS + 1) - instant(NOW_MS) == 1_000
    assert instant(0) == -postgres_epoch_ms * 1_000
