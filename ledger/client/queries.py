"""Read-side questions answered from the PostgreSQL views the projector keeps.

PostgreSQL is derived from the chain and can trail it by a block or two: answers say the height
they were read at, and ``tx`` falls back to the rejection record when nothing was sealed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from ledger.errors import InfraError, LedgerError

connect_timeout_s = 10.0


class NotFound(LedgerError):
    """Nothing by that name in the ledger (yet)."""


@dataclass(frozen=True)
class Balance:
    ledger: str
    account: str
    asset: str
    balance: int
    held: int
    available: int
    status: str
    updated_height: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _connect(database_url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(database_url, timeout=connect_timeout_s)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise InfraError(f"cannot reach PostgreSQL: {exc}") from exc


async def balance(database_url: str, ledger: str, account: str) -> Balance:
    connection = await _connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT b.asset, b.balance, b.held, b.available, a.status, b.updated_height "
            "FROM ledger.balances b JOIN ledger.accounts a USING (ledger, account) "
            "WHERE b.ledger = $1 AND b.account = $2",
            ledger,
            account,
        )
    finally:
        await connection.close()
    if row is None:
        raise NotFound(f"no account {account!r} in ledger {ledger!r}")
    return Balance(ledger, account, **dict(row))


async def issuer_account(database_url: str, ledger: str, asset: str) -> str:
    """The issuer account of ``asset`` on ``ledger``: a cross-shard transfer's clearing account."""
    connection = await _connect(database_url)
    try:
        account = await connection.fetchval(
            "SELECT issuer_account FROM ledger.assets WHERE ledger = $1 AND asset = $2",
            ledger,
            asset,
        )
    finally:
        await connection.close()
    if account is None:
        raise NotFound(f"asset {asset!r} is not defined on ledger {ledger!r}")
    return str(account)


async def transaction(database_url: str, tx_id: bytes) -> dict[str, Any]:
    """Where a transaction stands: sealed (block, seq) and whether final (its block co-signed by
    the ledger's finality threshold of witnesses), refused (code, detail), or unknown; with its
    cosigners, metadata, the transaction it reverses and the reversals of it."""
    connection = await _connect(database_url)
    try:
        sealed = await connection.fetchrow(
            "SELECT t.ledger, t.seq, t.height, t.index_in_block, t.kind, t.key_id, t.created_at,"
            " t.sealed_at, t.external_ref, t.memo, t.cosigners, t.metadata,"
            " encode(o.tx_id, 'hex') AS reverses"
            " FROM ledger.transactions t LEFT JOIN ledger.transactions o"
            " ON o.ledger = t.ledger AND o.seq = t.reverses WHERE t.tx_id = $1",
            tx_id,
        )
        refused = await connection.fetch(
            "SELECT code, detail, stage, rejected_at, height FROM ledger.rejections "
            "WHERE tx_id = $1 ORDER BY id",
            tx_id,
        )
        finality = cross_shard = None
        reversed_by: list[str] = []
        if sealed is not None:
            reversed_by = [
                row["tx_id"]
                for row in await connection.fetch(
                    "SELECT encode(tx_id, 'hex') AS tx_id FROM ledger.transactions"
                    " WHERE ledger = $1 AND reverses = $2 ORDER BY seq",
                    sealed["ledger"],
                    sealed["seq"],
                )
            ]
            cross_shard = await connection.fetchrow(
                "SELECT destination_ledger, destination_account, state, credit_height,"
                " refund_height FROM analytics.v_cross_shard WHERE source_ledger = $1"
                " AND hold_id = $2",
                sealed["ledger"],
                tx_id,
            )
            finality = await connection.fetchrow(
                "SELECT analytics.final_height($1) AS final_height, coalesce("
                "(SELECT threshold FROM ledger.finality_policies WHERE ledger = $1), 0"
                ") AS finality_threshold",
                sealed["ledger"],
            )
    finally:
        await connection.close()
    if sealed is None and not refused:
        raise NotFound(f"transaction {tx_id.hex()} is neither sealed nor refused (yet)")
    result: dict[str, Any] = {"tx_id": tx_id.hex(), "status": "sealed" if sealed else "refused"}
    if sealed is not None and finality is not None:
        result.update({key: _plain(value) for key, value in dict(sealed).items()})
        result["metadata"] = json.loads(sealed["metadata"]) if sealed["metadata"] else {}
        result["cosigners"] = sealed["cosigners"] or []
        result["reversed_by"] = reversed_by
        final_height = finality["final_height"]
        result["final"] = final_height is not None and sealed["height"] <= final_height
        result["final_height"] = final_height
        result["finality_threshold"] = finality["finality_threshold"]
    if cross_shard is not None:
        result["cross_shard"] = dict(cross_shard)
    result["rejections"] = [
        {key: _plain(value) for key, value in dict(row).items()} for row in refused
    ]
    return result


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def ledger_entries(
    database_url: str,
    ledger: str,
    references: list[str],
    accounts: list[str],
    since: Any = None,
    until: Any = None,
) -> list[Any]:
    """Postings on ``accounts`` of sealed transactions with one of ``references``, plus, when a
    period is given, every referenced posting on ``accounts`` sealed in it (missing_in_statement)."""
    from ledger.reconcile import LedgerEntry

    connection = await _connect(database_url)
    try:
        rows = await connection.fetch(
            """
            SELECT t.external_ref, p.account, p.asset, p.amount, p.seq, p.height
            FROM ledger.transactions t JOIN ledger.postings p USING (ledger, seq)
            WHERE t.ledger = $1 AND t.external_ref = ANY($2::text[]) AND p.account = ANY($3::text[])
            UNION
            SELECT t.external_ref, p.account, p.asset, p.amount, p.seq, p.height
            FROM ledger.postings p JOIN ledger.transactions t USING (ledger, seq)
            WHERE $4::timestamptz IS NOT NULL AND p.ledger = $1 AND p.account = ANY($3::text[])
              AND t.external_ref IS NOT NULL AND p.sealed_at >= $4 AND p.sealed_at < $5
            """,
            ledger,
            references,
            accounts,
            since,
            until,
        )
    finally:
        await connection.close()
    return [LedgerEntry(**dict(row)) for row in rows]
