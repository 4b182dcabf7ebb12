"""TxBody evolution: bodies of other schema versions resolve to this build's reader schema.

Versions 1 (no ``metadata``), 2 (no ``confidential``) and 3 (``schemas/ledger.v1.TxBody.avsc``)
are contracts. Fixtures (hypothetical versions, not contracts): ``ledger.v0.TxBody.avsc`` is an
older writer (no ``external_ref``, no ``OpenAccount.max_balance``, no ``Attest``);
``ledger.v4.TxBody.avsc`` is a newer one (``priority`` and ``Transfer.purpose`` with defaults,
``Rebate`` at the end of the op union). Both are registered in a test-local registry, never in
``codec.BODY_SCHEMAS``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.types import Schema

from ledger import codec
from ledger.codec import BodySchemaRegistry, UnsupportedVersion
from ledger.errors import DecodeError
from ledger.model import Envelope, OpenAccount, Posting, Transfer, TxBody

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _schema_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


V0 = _schema_json(FIXTURES / "ledger.v0.TxBody.avsc")
V1 = codec.body_schema_json(1)
V2 = codec.body_schema_json(2)
V3 = _schema_json(SCHEMAS / "ledger.v1.TxBody.avsc")
V4 = _schema_json(FIXTURES / "ledger.v4.TxBody.avsc")


@pytest.fixture
def registry() -> BodySchemaRegistry:
    """A registry reading v1, v2 and v3 (the current reader), v0 and v4."""
    local = BodySchemaRegistry()
    local.register(0, V0)
    codec.register_body_schema(4, V4, registry=local)
    return local


def _write(schema_json: dict[str, Any], record: dict[str, Any]) -> bytes:
    parsed: Schema = parse_schema(schema_json, named_schemas={})
    stream = io.BytesIO()
    schemaless_writer(stream, parsed, record, strict=True)
    return stream.getvalue()


TX_ID = bytes(range(16))
TRANSFER_V4 = {
    "tx_id": TX_ID,
    "ledger": "main",
    "created_at_ms": 1_000,
    "expires_at_ms": 2_000,
    "op": (
        "ledger.v1.Transfer",
        {
            "postings": [
                {"account": "a", "asset": "EUR", "amount": -5},
                {"account": "b", "asset": "EUR", "amount": 5},
            ],
            "purpose": "rent",
        },
    ),
    "memo": None,
    "external_ref": "ref-9",
    "metadata": {},
    "confidential": None,
    "priority": 7,
}
TRANSFER_V1 = TxBody(
    TX_ID,
    "main",
    1_000,
    2_000,
    Transfer((Posting("a", "EUR", -5), Posting("b", "EUR", 5))),
    external_ref="ref-9",
)


def _record_fields(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in record["fields"]}


def _evolution_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Where ``new`` breaks the rule: added fields need defaults; old operations keep their place."""
    problems = []
    old_fields, new_fields = _record_fields(old), _record_fields(new)
    problems += [
        f"TxBody.{n} has no default"
        for n in new_fields.keys() - old_fields.keys()
        if "default" not in new_fields[n]
    ]
    old_ops, new_ops = old_fields["op"]["type"], new_fields["op"]["type"]
    if [op["name"] for op in new_ops[: len(old_ops)]] != [op["name"] for op in old_ops]:
        problems.append("op: existing operations moved; new ones go at the end")
    for old_op, new_op in zip(old_ops, new_ops, strict=False):
        added = _record_fields(new_op).keys() - _record_fields(old_op).keys()
        problems += [
            f"{new_op['name']}.{n} has no default"
            for n in added
            if "default" not in _record_fields(new_op)[n]
        ]
    return problems


def test_fixtures_and_current_schema_follow_the_evolution_rule() -> None:
    """v0 -> v1 -> v2 -> v3 -> v4 only add defaulted fields and append operations."""
    assert _evolution_problems(V0, V1) == []
    assert _evolution_problems(V1, V2) == []
    assert _evolution_problems(V2, V3) == []
    assert _evolution_problems(V3, V4) == []
    assert _evolution_problems(V4, V3) != []  # the checker does see a removed operation


def test_versions_are_the_schema_file_cut_after_their_last_field() -> None:
    """v1 ends at external_ref, v2 at metadata, v3 is the whole file: each only appends."""
    assert [field["name"] for field in V3["fields"]][-3:] == [
        "external_ref",
        "metadata",
        "confidential",
    ]
    assert V2["fields"] == V3["fields"][:-1]
    assert V1["fields"] == V3["fields"][:-2]


def test_newer_writer_read_by_current_reader(registry: BodySchemaRegistry) -> None:
    """A v4 body decodes to the current model: fields the reader lacks are skipped."""
    raw = _write(V4, TRANSFER_V4)
    assert codec.decode_tx_body(raw, 4, registry=registry) == TRANSFER_V1


def test_operation_unknown_to_the_reader_is_unsupported(registry: BodySchemaRegistry) -> None:
    """A v4 body carrying an operation the reader does not have raises UnsupportedVersion."""
    raw = _write(V4, {**TRANSFER_V4, "op": ("ledger.v1.Rebate", {"account": "a", "amount": 1})})
    with pytest.raises(UnsupportedVersion, match="TxBody"):
        codec.decode_tx_body(raw, 4, registry=registry)


def test_older_writer_read_by_current_reader(registry: BodySchemaRegistry) -> None:
    """A v0 body decodes to the current model: fields the writer lacks take the defaults."""
    record = {
        "tx_id": TX_ID,
        "ledger": "main",
        "created_at_ms": 1_000,
        "expires_at_ms": 2_000,
        "op": ("ledger.v1.OpenAccount", {"account": "alice", "asset": "EUR"}),
        "memo": "old",
    }
    body = codec.decode_tx_body(_write(V0, record), 0, registry=registry)
    assert body == TxBody(TX_ID, "main", 1_000, 2_000, OpenAccount("alice", "EUR"), memo="old")
    assert body.external_ref is None and isinstance(body.op, OpenAccount)
    assert body.op.max_balance is None


def test_same_bytes_differ_by_version(registry: BodySchemaRegistry) -> None:
    """body_version decides the writer schema: v4 bytes read as v1, v2 or v3 are not valid."""
    raw = _write(V4, TRANSFER_V4)
    for version in (1, 2, 3):
        with pytest.raises(DecodeError):
            codec.decode_tx_body(raw, version, registry=registry)


def test_submission_names_its_body_version(registry: BodySchemaRegistry) -> None:
    """decode_submission reads the body with the version its envelope names."""
    envelope = Envelope(_write(V4, TRANSFER_V4), b"\x01" * 32, b"\x02" * 64, body_version=4)
    raw = codec.encode_envelope(envelope)
    assert codec.decode_submission(raw, registry=registry) == (envelope, TRANSFER_V1)
    with pytest.raises(UnsupportedVersion, match="body_version: 4"):
        codec.decode_submission(raw)  # the default registry knows versions 1 to 3 only


def test_other_versions_are_checked_like_the_current_one(registry: BodySchemaRegistry) -> None:
    """v4 bytes truncated, with trailing bytes or non-canonical raise DecodeError."""
    raw = _write(V4, TRANSFER_V4)
    for length in range(len(raw)):
        with pytest.raises(DecodeError):
            codec.decode_tx_body(raw[:length], 4, registry=registry)
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode_tx_body(raw + b"\x00", 4, registry=registry)
    overlong_priority = raw[:-1] + bytes([raw[-1] | 0x80, 0x00])
    with pytest.raises(DecodeError, match="canonical"):
        codec.decode_tx_body(overlong_priority, 4, registry=registry)


def test_registry_refuses_a_second_schema_for_a_version(registry: BodySchemaRegistry) -> None:
    """A version names one writer schema forever: registering it again is an error."""
    assert registry.versions() == (0, 1, 2, 3, 4)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(2, V0)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(3, V4)
    assert codec.BODY_SCHEMAS.versions() == (1, 2, 3)
