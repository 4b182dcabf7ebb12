"""The block explorer's answers as JSON-ready values, from the rows of ``explorer_queries``,
and a proof checked as ``ledger verify-proof`` checks it. Pure: no I/O.

Money leaves as strings of minor units: int64 does not fit a JavaScript number (2^53), and the
page must show every digit. Times are ISO 8601 in UTC, bytes lowercase hex.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from ledger import codec, signing
from ledger.errors import DecodeError, LedgerError
from ledger.model import plain
from ledger.proofs import verify_proof
from ledger.witnessing import WitnessPolicy


def one_line(text: object) -> str:
    return " ".join(str(text).split())


MONEY_FIELDS: Final = frozenset({"amount", "max_balance"})
"""Operation fields that hold money: strings in JSON, like every amount the explorer sends."""


def instant(value: datetime | None) -> str | None:
    """A timestamptz as ISO 8601 in UTC, to the millisecond."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def instant_ms(value_ms: int) -> str:
    return instant(datetime.fromtimestamp(value_ms / 1000, UTC)) or ""


def money(value: int | None) -> str | None:
    return None if value is None else str(int(value))


def route(*segments: str | int) -> str:
    """A page of the explorer, as its hash route: ``/block/main/42``."""
    return "/" + "/".join(quote(str(segment), safe="") for segment in segments)


def is_final(height: int, final_height: int | None) -> bool:
    return final_height is not None and height <= final_height


def finality_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A FINALITY row: the ledger's threshold, final height and newest projected block."""
    return {
        "threshold": int(row["threshold"]),
        "final_height": row["final_height"],
        "head_height": row["head_height"],
    }


def block_summary_json(row: Mapping[str, Any], final_height: int | None) -> dict[str, Any]:
    """A block of the latest-blocks list."""
    return {
        "height": row["height"],
        "hash": bytes(row["hash"]).hex(),
        "sealed_at": instant(row["sealed_at"]),
        "tx_count": row["tx_count"],
        "sealer_key_id": signing.key_id(bytes(row["sealer_key"])),
        "size_bytes": row["size_bytes"],
        "final": is_final(row["height"], final_height),
    }


def block_json(ledger: str, row: Mapping[str, Any], final_height: int | None) -> dict[str, Any]:
    """Every header field of a block, its hash and seal, and where the sequencer read it from."""
    sealer_key = bytes(row["sealer_key"])
    return {
        "ledger": ledger,
        "height": row["height"],
        "hash": bytes(row["hash"]).hex(),
        "prev_hash": bytes(row["prev_hash"]).hex(),
        "tx_root": bytes(row["tx_root"]).hex(),
        "blocks_root": bytes(row["blocks_root"]).hex(),
        "tx_count": row["tx_count"],
        "first_seq": row["first_seq"],
        "sealed_at": instant(row["sealed_at"]),
        "sealer_key": sealer_key.hex(),
        "sealer_key_id": signing.key_id(sealer_key),
        "source_partition": row["source_partition"],
        "source_offset_end": row["source_offset_end"],
        "size_bytes": row["size_bytes"],
        "seal": bytes(row["seal"]).hex(),
        "projected_at": instant(row["projected_at"]),
        "final": is_final(row["height"], final_height),
    }


def block_transaction_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "index_in_block": row["index_in_block"],
        "tx_id": bytes(row["tx_id"]).hex(),
        "kind": row["kind"],
        "key_id": row["key_id"],
        "external_ref": row["external_ref"],
        "memo": row["memo"],
        "created_at": instant(row["created_at"]),
    }


def cosignature_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "witness_key_id": row["witness_key_id"],
        "witness_key": bytes(row["witness_key"]).hex(),
        "block_hash": bytes(row["block_hash"]).hex(),
        "signature": bytes(row["signature"]).hex(),
        "signed_at": instant(row["signed_at"]),
        "received_at": instant(row["received_at"]),
    }


def decoded_envelope_json(envelope_bytes: bytes) -> dict[str, Any]:
    """The envelope's signer and signature, its cosigners (multi-signature) and its body,
    decoded; ``decode_error`` instead of
    the body when it does not decode (the chain verified it, so this is a reader's problem)."""
    try:
        envelope, body = codec.decode_submission(envelope_bytes)
    except DecodeError as exc:
        return {"decode_error": one_line(exc)}
    operation = plain(body.op, MONEY_FIELDS)
    return {
        "public_key": envelope.public_key.hex(),
        "signer_key_id": signing.key_id(envelope.public_key),
        "signature": envelope.signature.hex(),
        "cosigners": [
            {
                "key_id": signing.key_id(cosigner.public_key),
                "public_key": cosigner.public_key.hex(),
                "signature": cosigner.signature.hex(),
            }
            for cosigner in envelope.cosigners
        ],
        "body_version": envelope.body_version,
        "envelope_bytes": len(envelope_bytes),
        "body": {
            "tx_id": body.tx_id.hex(),
            "ledger": body.ledger,
            "kind": body.kind,
            "created_at_ms": body.created_at_ms,
            "created_at": instant_ms(body.created_at_ms),
            "expires_at_ms": body.expires_at_ms,
            "expires_at": instant_ms(body.expires_at_ms),
            "memo": body.memo,
            "external_ref": body.external_ref,
            "metadata": dict(body.metadata),
            "operation": operation,
        },
    }


def sealed_json(row: Mapping[str, Any], finality: Mapping[str, Any]) -> dict[str, Any]:
    """A TRANSACTION row with its ledger's FINALITY row: where it is, and its body decoded."""
    final_height = finality["final_height"]
    return {
        "ledger": row["ledger"],
        "seq": row["seq"],
        "height": row["height"],
        "index_in_block": row["index_in_block"],
        "block_hash": bytes(row["block_hash"]).hex(),
        "kind": row["kind"],
        "key_id": row["key_id"],
        "created_at": instant(row["created_at"]),
        "expires_at": instant(row["expires_at"]),
        "sealed_at": instant(row["sealed_at"]),
        "external_ref": row["external_ref"],
        "memo": row["memo"],
        "final": is_final(row["height"], final_height),
        "finality": finality_json(finality),
        "reverses": None if row["reverses"] is None else bytes(row["reverses"]).hex(),
        "reversed_by": [bytes(tx_id).hex() for tx_id in row["reversed_by"]],
        **decoded_envelope_json(bytes(row["envelope"])),
    }


def rejection_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ledger": row["ledger"],
        "code": row["code"],
        "detail": row["detail"],
        "stage": row["stage"],
        "key_id": row["key_id"],
        "source": f"{row['source_topic']}:{row['source_partition']}@{row['source_offset']}",
        "rejected_at": instant(row["rejected_at"]),
        "height": row["height"],
        "external_ref": row["external_ref"],
    }


def transaction_status(sealed: list[dict[str, Any]], rejections: list[Any]) -> str:
    """final, sealed or refused: sealed wins over refused (a resubmission of a sealed
    transaction is refused as DUPLICATE, yet the transaction stands)."""
    if sealed:
        return "final" if all(item["final"] for item in sealed) else "sealed"
    return "refused" if rejections else "unknown"


def account_json(ledger: str, account: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ledger": ledger,
        "account": account,
        "asset": row["asset"],
        "scale": row["scale"],
        "status": row["status"],
        "max_balance": money(row["max_balance"]),
        "allow_negative": row["allow_negative"],
        "opened_height": row["opened_height"],
        "opened_seq": row["opened_seq"],
        "metadata": json.loads(row["metadata"]) if row["metadata"] else {},
        "balance": money(row["balance"]),
        "held": money(row["held"]),
        "available": money(row["available"]),
        "updated_height": row["updated_height"],
        "updated_seq": row["updated_seq"],
    }


def cursor(row: Mapping[str, Any]) -> str:
    """A statement row's position as a paging cursor: ``seq.posting_index``."""
    return f"{row['seq']}.{row['posting_index']}"


def statement_json(rows: Iterable[Mapping[str, Any]], balance_after_first: int | None) -> list[Any]:
    """Statement rows, newest first; ``balance_after_first`` (the balance after the newest row)
    gives each row its running balance, or None when it is unknown."""
    result = []
    balance = balance_after_first
    for row in rows:
        result.append(
            {
                "seq": row["seq"],
                "posting_index": row["posting_index"],
                "cursor": cursor(row),
                "height": row["height"],
                "sealed_at": instant(row["sealed_at"]),
                "asset": row["asset"],
                "amount": money(row["amount"]),
                "balance_after": money(balance),
                "tx_id": bytes(row["tx_id"]).hex(),
                "kind": row["kind"],
                "external_ref": row["external_ref"],
                "memo": row["memo"],
            }
        )
        if balance is not None:
            balance -= int(row["amount"])
    return result


def check_proof(
    document: dict[str, Any], sealer_key: bytes, witness_keys: frozenset[bytes], threshold: int
) -> dict[str, Any]:
    """``holds`` and the verifier's summary or its one-line reason; then, with a threshold,
    whether the anchor is final: co-signed by that many of ``witness_keys``.

    ``sealer_key`` may be any key the ledger has had (block 0's, for the explorer): the proof's
    rotations lead from it to the sealers of its block and anchor; the summary counts them."""
    try:
        summary = verify_proof(document, sealer_key)
    except LedgerError as exc:
        return {"holds": False, "error": one_line(exc), "final": None, "final_detail": None}
    if threshold == 0:
        return {
            "holds": True,
            "summary": summary,
            "final": True,
            "final_detail": "the ledger has no finality policy: sealed is final",
        }
    if threshold > len(witness_keys):
        detail = f"the policy needs {threshold} witnesses and {len(witness_keys)} are registered"
        return {"holds": True, "summary": summary, "final": False, "final_detail": detail}
    try:
        final = verify_proof(document, sealer_key, WitnessPolicy(witness_keys, threshold))
    except LedgerError as exc:
        return {"holds": True, "summary": summary, "final": False, "final_detail": one_line(exc)}
    detail = f"the anchor is co-signed by {len(final['final_by'])} registered witnesses ({threshold} needed)"
    return {"holds": True, "summary": final, "final": True, "final_detail": detail}
