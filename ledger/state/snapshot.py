"""A ``State`` as bytes and back: Avro (``schemas/ledger.v1.Snapshot.avsc``), deterministic.

Every collection is written sorted by its key, so the same state always gives the same bytes
(replicas can compare snapshots by hash) and ``restore(snapshot_bytes(s)) == s`` exactly.
The expiry heaps are not stored: ``restore`` rebuilds them from the data.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro

from ledger.errors import DecodeError
from ledger.model import AccountStatus
from ledger.state.state import Account, Asset, HoldRecord, HoldStatus, Key, State

snapshot_version = 2
"""2: the replay window is packed into one bytes field (0.5 s -> a few ms at 180k tx_ids)."""

_tx_id_bytes = 16
_recent_entry_bytes = _tx_id_bytes + 8
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "ledger.v1.Snapshot.avsc"
_SCHEMA = fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def snapshot_bytes(state: State) -> bytes:
    """The Avro bytes of ``state``; equal states give equal bytes."""
    record = {
        "snapshot_version": snapshot_version,
        "now_ms": state.now_ms,
        "tx_count": state.tx_count,
        "accounts": [
            {
                "account": name,
                "asset": account.asset,
                "status": account.status.value,
                "max_balance": account.max_balance,
                "allow_negative": account.allow_negative,
                "balance": account.balance,
                "held": account.held,
            }
            for name, account in sorted(state.accounts.items())
        ],
        "assets": [
            {"asset": name, "scale": asset.scale, "issuer_account": asset.issuer_account}
            for name, asset in sorted(state.assets.items())
        ],
        "keys": [
            {
                "key_id": key_id,
                "public_key": key.public_key,
                "roles": sorted(key.roles),
                "accounts": sorted(key.accounts),
                "revoked_at_ms": key.revoked_at_ms,
            }
            for key_id, key in sorted(state.keys.items())
        ],
        "holds": [
            {
                "hold_id": hold_id,
                "payer": hold.payer,
                "payee": hold.payee,
                "asset": hold.asset,
                "amount": hold.amount,
                "expires_at_ms": hold.expires_at_ms,
                "creator_key_id": hold.creator_key_id,
                "status": hold.status.value,
                "captured_amount": hold.captured_amount,
            }
            for hold_id, hold in sorted(state.holds.items())
        ],
        "recent_tx_ids": b"".join(
            tx_id + expires_at_ms.to_bytes(8, "big", signed=True)
            for tx_id, expires_at_ms in sorted(state.recent_tx_ids.items())
        ),
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(
        buffer,
        _SCHEMA,
        record,
        strict=True,
        strict_allow_default=False,
        disable_tuple_notation=True,
    )
    return buffer.getvalue()


def restore(data: bytes) -> State:
    """The ``State`` that ``snapshot_bytes`` encoded; ``DecodeError`` for anything else."""
    buffer = io.BytesIO(data)
    try:
        record: Any = fastavro.schemaless_reader(buffer, _SCHEMA, None)
    except Exception as exc:  # fastavro raises many types for bad bytes
        raise DecodeError(f"not a ledger.v1.Snapshot: {exc}") from exc
    if buffer.tell() != len(data):
        raise DecodeError(f"{len(data) - buffer.tell()} bytes after the snapshot")
    if record["snapshot_version"] != snapshot_version:
        raise DecodeError(f"snapshot version {record['snapshot_version']} is not supported")
    state = State()
    state.now_ms = record["now_ms"]
    state.tx_count = record["tx_count"]
    for row in record["accounts"]:
        state.accounts[row["account"]] = Account(
            row["asset"],
            AccountStatus(row["status"]),
            row["max_balance"],
            row["allow_negative"],
            row["balance"],
            row["held"],
        )
    for row in record["assets"]:
        state.assets[row["asset"]] = Asset(row["scale"], row["issuer_account"])
    for row in record["keys"]:
        state.keys[row["key_id"]] = Key(
            row["public_key"],
            frozenset(row["roles"]),
            frozenset(row["accounts"]),
            row["revoked_at_ms"],
        )
    for row in record["holds"]:
        state.holds[row["hold_id"]] = HoldRecord(
            row["payer"],
            row["payee"],
            row["asset"],
            row["amount"],
            row["expires_at_ms"],
            row["creator_key_id"],
            HoldStatus(row["status"]),
            row["captured_amount"],
        )
    packed = record["recent_tx_ids"]
    if len(packed) % _recent_entry_bytes:
        raise DecodeError("snapshot recent_tx_ids is not a whole number of entries")
    for start in range(0, len(packed), _recent_entry_bytes):
        entry = packed[start : start + _recent_entry_bytes]
        state.recent_tx_ids[entry[:_tx_id_bytes]] = int.from_bytes(
            entry[_tx_id_bytes:], "big", signed=True
        )
    state.rebuild_indexes()
    return state
