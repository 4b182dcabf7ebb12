"""Read-side questions answered from the PostgreSQL views the projector keeps.

PostgreSQL is derived from the chain and can trail it by a block or two: answers say the height
they were read at, and ``tx`` falls back to the rejection record when nothing was sealed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from ledger.errors import ConfigError, InfraError, LedgerError, RecipientKeyError
from ledger.signing import key_id, public_key_bytes

connect_timeout_s = 10.0

_key_id_chars = 32
"""A key_id: 16 bytes in hex."""

confidential_candidates_max_count = 100_000
"""Confidential transactions one reconciliation decrypts (about 150 µs each): a bigger set is a
period to split (--since/--until), not one run."""


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
            " t.sealed_at, t.external_ref, t.memo, t.cosigners, t.metadata, t.confidential_to,"
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


async def sealed_envelope(database_url: str, tx_id: bytes) -> bytes:
    """The exact envelope bytes of sealed transaction ``tx_id``, as the projector stored them
    (check them against the chain with a proof when it matters); NotFound when none."""
    connection = await _connect(database_url)
    try:
        envelope = await connection.fetchval(
            "SELECT envelope FROM ledger.transactions WHERE tx_id = $1", tx_id
        )
    finally:
        await connection.close()
    if envelope is None:
        raise NotFound(f"transaction {tx_id.hex()} is not sealed (yet)")
    return bytes(envelope)


async def recipient_keys(database_url: str, ledger: str, names: Sequence[str]) -> list[bytes]:
    """The Ed25519 public keys of ``names``, each a public key (64 hex digits), taken as it is,
    or a key_id (32) of a key registered on ``ledger`` and not revoked.

    A key_id is a fingerprint: the key found for it must hash to it, so a row of PostgreSQL (or
    whoever can write one) cannot put another key in its place. RecipientKeyError names a name
    that is neither, or a key_id that is unknown or revoked.
    """
    names = [name.lower() for name in names]
    key_ids = [name for name in names if len(name) == _key_id_chars]
    found: dict[str, tuple[bytes, int | None]] = {}
    if key_ids:
        connection = await _connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT key_id, public_key, revoked_height FROM ledger.keys"
                " WHERE ledger = $1 AND key_id = ANY($2::text[])",
                ledger,
                key_ids,
            )
        finally:
            await connection.close()
        found = {row["key_id"]: (bytes(row["public_key"]), row["revoked_height"]) for row in rows}
    return [_recipient_key(name, ledger, found) for name in names]


def _recipient_key(name: str, ledger: str, found: dict[str, tuple[bytes, int | None]]) -> bytes:
    if len(name) == 2 * public_key_bytes:
        try:
            return bytes.fromhex(name)
        except ValueError:
            raise RecipientKeyError(f"{name!r} is not a public key in hex") from None
    if len(name) != _key_id_chars:
        raise RecipientKeyError(
            f"{name!r} is neither a key_id ({_key_id_chars} hex digits) nor a public key "
            f"({2 * public_key_bytes})"
        )
    if name not in found:
        raise RecipientKeyError(f"no key {name} is registered on ledger {ledger!r} (yet)")
    public_key, revoked_height = found[name]
    if key_id(public_key) != name:
        raise RecipientKeyError(f"key {name}: the public key found does not hash to it")
    if revoked_height is not None:
        raise RecipientKeyError(f"key {name} was revoked at height {revoked_height}")
    return public_key


async def confidential_candidates(
    database_url: str,
    ledger: str,
    recipient: str,
    accounts: list[str],
    since: Any = None,
    until: Any = None,
) -> list[Any]:
    """Sealed transactions of ``ledger`` encrypted to key_id ``recipient`` that post to one of
    ``accounts`` (sealed in [since, until) when given), with those postings: what a party
    decrypts to reconcile by the external references only it can read."""
    from ledger.reconcile import ConfidentialCandidate

    connection = await _connect(database_url)
    try:
        rows = await connection.fetch(
            """
            SELECT t.seq, t.height, t.envelope,
                   array_agg(p.account ORDER BY p.posting_index) AS accounts,
                   array_agg(p.asset ORDER BY p.posting_index) AS assets,
                   array_agg(p.amount ORDER BY p.posting_index) AS amounts
            FROM ledger.transactions t JOIN ledger.postings p USING (ledger, seq)
            WHERE t.ledger = $1 AND t.confidential_to @> ARRAY[$2]::text[]
              AND p.account = ANY($3::text[])
              AND ($4::timestamptz IS NULL OR (t.sealed_at >= $4 AND t.sealed_at < $5))
            GROUP BY t.seq, t.height, t.envelope
            ORDER BY t.seq
            LIMIT $6
            """,
            ledger,
            recipient,
            accounts,
            since,
            until,
            confidential_candidates_max_count + 1,
        )
    finally:
        await connection.close()
    if len(rows) > confidential_candidates_max_count:
        raise ConfigError(
            f"more than {confidential_candidates_max_count:,} confidential transactions to "
            f"key {recipient} on these accounts: reconcile a period at a time (--since/--until)"
        )
    return [
        ConfidentialCandidate(
            row["seq"],
            row["height"],
            bytes(row["envelope"]),
            tuple(zip(row["accounts"], row["assets"], row["amounts"], strict=True)),
        )
        for row in rows
    ]


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
