"""The JSON form of proof parts, both ways: headers, seals and Merkle paths as proofs write
them, and the readers that treat every value of a proof as hostile until checked.

Shared by ``ledger.proofs`` and ``ledger.proof_rotations``. Hex is lowercase and canonical,
keys exact, integers integers: one value has one spelling, so no byte of a proof can change
without failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from ledger import blocks, merkle, signing
from ledger.errors import LedgerError, ProofError, SignatureError
from ledger.model import Block, BlockHeader

HEADER_FIELDS: Final = tuple(field.name for field in dataclasses.fields(BlockHeader))
_HASH_FIELDS: Final = frozenset({"prev_hash", "tx_root", "blocks_root", "sealer_key"})
_TEXT_FIELDS: Final = frozenset({"ledger"})
seal_bytes: Final = 64
hash_bytes: Final = 32


# ---- writing --------------------------------------------------------------------------------


def header_json(header: BlockHeader) -> dict[str, Any]:
    return {
        name: value.hex() if isinstance(value, bytes) else value
        for name, value in ((name, getattr(header, name)) for name in HEADER_FIELDS)
    }


def tx_inclusion_json(block: Block, tx_index: int) -> list[str]:
    leaf_hashes = blocks.tx_leaf_hashes(block.transactions)
    return [element.hex() for element in merkle.inclusion_proof(tx_index, leaf_hashes)]


# ---- reading: every value is hostile until checked --------------------------------------------


def read_mapping(
    value: object, keys: frozenset[str], where: str, optional: frozenset[str] = frozenset()
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProofError(f"{where} is {type(value).__name__}, expected an object")
    present = set(value) - (optional & set(value))
    if present != keys:
        missing, unknown = sorted(keys - present), sorted(str(key) for key in present - keys)
        raise ProofError(f"{where}: missing keys {missing}, unknown keys {unknown}")
    return value


def read_integer(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"{where} is {type(value).__name__}, expected an integer")
    return value


def read_natural(value: object, where: str) -> int:
    number = read_integer(value, where)
    if number < 0:
        raise ProofError(f"{where} is {number}, expected >= 0")
    return number


def read_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ProofError(f"{where} is {type(value).__name__}, expected a string")
    return value


def read_hex(value: object, where: str, size: int | None = None) -> bytes:
    spelled = read_text(value, where)
    try:
        data = bytes.fromhex(spelled)
    except ValueError as exc:
        raise ProofError(f"{where} is not hex") from exc
    if data.hex() != spelled:
        # fromhex also takes upper case and spaces: two spellings of one value would let a
        # proof change without failing.
        raise ProofError(f"{where} is not lowercase hex without separators")
    if size is not None and len(data) != size:
        raise ProofError(f"{where} has {len(data)} bytes, expected {size}")
    return data


def read_hash_list(value: object, where: str) -> list[bytes]:
    if not isinstance(value, list):
        raise ProofError(f"{where} is {type(value).__name__}, expected a list")
    return [read_hex(item, f"{where}[{index}]", hash_bytes) for index, item in enumerate(value)]


def read_header(value: object, where: str, extra_keys: frozenset[str] = frozenset()) -> BlockHeader:
    record = read_mapping(value, frozenset(HEADER_FIELDS) | extra_keys, where)
    fields: dict[str, Any] = {}
    for name in HEADER_FIELDS:
        field_where = f"{where}.{name}"
        if name in _HASH_FIELDS:
            fields[name] = read_hex(record[name], field_where, hash_bytes)
        elif name in _TEXT_FIELDS:
            fields[name] = read_text(record[name], field_where)
        else:
            fields[name] = read_natural(record[name], field_where)
    return BlockHeader(**fields)


def hash_of(header: BlockHeader, where: str) -> bytes:
    try:
        return blocks.block_hash(header)
    except (LedgerError, TypeError, ValueError) as exc:
        raise ProofError(f"{where} header does not encode: {exc}") from exc


def check_seal(
    header: BlockHeader, seal: bytes, sealer_key: bytes, where: str, sealer_named: str = ""
) -> bytes:
    """The header's hash, once its seal by ``sealer_key`` (``sealer_named`` in messages, by
    default "the given sealer ...") verifies."""
    if header.sealer_key != sealer_key:
        named = sealer_named or f"the given sealer {signing.key_id(sealer_key)}"
        raise SignatureError(
            f"{where} names sealer {signing.key_id(header.sealer_key)}, not {named}"
        )
    digest = hash_of(header, where)
    if not signing.message_signature_ok(sealer_key, seal, digest):
        raise SignatureError(f"{where} seal does not verify by sealer {signing.key_id(sealer_key)}")
    return digest
