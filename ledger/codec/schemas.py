"""The Avro schemas, parsed once at import, and the TxBody versions a reader knows.

Schemas come from ``schemas/ledger.v1.*.avsc`` (package data of the wheel: ``ledger/schemas``
links there). A TxBody version is the schema file cut after one field: a version only appends
fields, and a reader resolves every version it knows to the current one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.resources import files
from typing import Any, Final, cast

from fastavro import parse_schema
from fastavro.types import Schema

from ledger.codec.errors import UnsupportedVersion
from ledger.codec.shapes import int32_max, int32_min

BASE_BODY_VERSION: Final = 1
"""TxBody without ``metadata`` and ``confidential``: what this build writes for a body that has
neither, byte for byte what every body was before metadata, and what the hot path reads by hand."""

METADATA_BODY_VERSION: Final = 2
"""TxBody with ``metadata``, without ``confidential``: written for a body that has metadata in
the clear, byte for byte what such bodies were before confidential fields."""

CURRENT_BODY_VERSION: Final = 3
"""TxBody with ``confidential``: written only for a body that has a confidential part; the shape
every version is read into."""

_BODY_VERSION_LAST_FIELDS: Final = {
    BASE_BODY_VERSION: "external_ref",
    METADATA_BODY_VERSION: "metadata",
    CURRENT_BODY_VERSION: "confidential",
}
"""Each body version is the schema file cut after this field: a version only appends fields."""


def schema_json(name: str) -> dict[str, Any]:
    """``schemas/ledger.v1.{name}.avsc``, shipped in the package (``ledger/schemas`` links there)."""
    text = files("ledger").joinpath("schemas", f"ledger.v1.{name}.avsc").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def _load(name: str, named: dict[str, Any] | None = None) -> Schema:
    """Parse one schema; ``named`` holds the named types of the schemas it refers to."""
    return parse_schema(schema_json(name), named_schemas=named if named is not None else {})


TX_BODY_SCHEMA: Final = _load("TxBody")


def body_schema_json(version: int) -> dict[str, Any]:
    """The JSON schema of TxBody ``version`` (1, 2 or 3): the schema file cut after that
    version's last field. Another language's producer derives its versions the same way."""
    schema = schema_json("TxBody")
    names = [field["name"] for field in schema["fields"]]
    assert names[-1] == _BODY_VERSION_LAST_FIELDS[CURRENT_BODY_VERSION], "a field after v3's"
    end = names.index(_BODY_VERSION_LAST_FIELDS[version]) + 1
    return {**schema, "fields": schema["fields"][:end]}


TX_BODY_V1_SCHEMA: Final = parse_schema(body_schema_json(BASE_BODY_VERSION), named_schemas={})
TX_BODY_V2_SCHEMA: Final = parse_schema(body_schema_json(METADATA_BODY_VERSION), named_schemas={})
CONFIDENTIAL_FIELDS_SCHEMA: Final = _load("ConfidentialFields")
ENVELOPE_SCHEMA: Final = _load("Envelope")
MULTI_SIGNED_ENVELOPE_SCHEMA: Final = _load("MultiSignedEnvelope")
_block_types: dict[str, Any] = {}
BLOCK_HEADER_SCHEMA: Final = _load("BlockHeader", _block_types)
BLOCK_SCHEMA: Final = _load("Block", _block_types)
REJECTION_SCHEMA: Final = _load("Rejection")
VERIFIED_BATCH_SCHEMA: Final = _load("VerifiedBatch")
COSIGNATURE_SCHEMA: Final = _load("Cosignature")
EVIDENCE_SCHEMA: Final = _load("Evidence")


class BodySchemaRegistry:
    """TxBody writer schemas by ``Envelope.body_version``, and the reader schema they resolve to.

    A body is read with the writer schema its envelope names, resolved to this build's reader
    schema (Avro schema resolution: fields the reader lacks are skipped, fields the writer lacks
    take the reader's default, an operation the reader lacks is UNSUPPORTED_VERSION).
    """

    def __init__(
        self, reader_schema: Schema = TX_BODY_SCHEMA, reader_version: int = CURRENT_BODY_VERSION
    ) -> None:
        self.reader_schema: Final = reader_schema
        self.reader_version: Final = reader_version
        self._writer_schemas: dict[int, Schema] = {reader_version: reader_schema}
        self._prefixes: tuple[Schema, ...] = (reader_schema,)
        if reader_schema is TX_BODY_SCHEMA:
            self._writer_schemas[BASE_BODY_VERSION] = TX_BODY_V1_SCHEMA
            self._writer_schemas[METADATA_BODY_VERSION] = TX_BODY_V2_SCHEMA
            self._prefixes = (reader_schema, TX_BODY_V1_SCHEMA, TX_BODY_V2_SCHEMA)
        self._head_versions: dict[int, bool] = {}

    def register(self, version: int, schema: Mapping[str, Any]) -> None:
        """Make bodies of ``version`` readable; ``schema`` is the JSON schema that wrote them."""
        if not int32_min <= version <= int32_max:
            raise ValueError(f"TxBody version {version} does not fit an Avro int")
        if version in self._writer_schemas:
            raise ValueError(f"TxBody version {version} is already registered")
        # Its own name table: a v2 schema reuses v1's names for different shapes.
        self._writer_schemas[version] = parse_schema(dict(schema), named_schemas={})

    def writer_schema(self, version: int) -> Schema:
        """The schema bodies of ``version`` were written with; UnsupportedVersion if unknown."""
        schema = self._writer_schemas.get(version)
        if schema is None:
            known = ", ".join(str(known) for known in self.versions())
            raise UnsupportedVersion(
                f"Envelope.body_version: {version} is not supported (known: {known})"
            )
        return schema

    def needs_resolution(self, writer: Schema) -> bool:
        """Whether bodies written with ``writer`` must be resolved to the reader schema: not when
        it is the reader schema cut after one of its fields (versions 1 and 2 of this build),
        whose records convert as they are (a second fastavro read costs as much as the first)."""
        return all(writer is not prefix for prefix in self._prefixes)

    def starts_with_head(self, version: int) -> bool:
        """Whether bodies of ``version`` begin with the four fields ``decode_body_head`` reads."""
        known = self._head_versions.get(version)
        if known is None:
            known = self._head_versions[version] = _starts_with_head(self.writer_schema(version))
        return known

    def versions(self) -> tuple[int, ...]:
        """The body versions this registry reads, ascending."""
        return tuple(sorted(self._writer_schemas))


BODY_SCHEMAS: Final = BodySchemaRegistry()
"""The registry decoders use unless given another one."""


def register_body_schema(
    version: int, schema: Mapping[str, Any], registry: BodySchemaRegistry = BODY_SCHEMAS
) -> None:
    """Make TxBody bytes written with ``schema`` readable when an envelope names ``version``."""
    registry.register(version, schema)


# ---- the body's head: the four fields ``decode_body_head`` reads by hand --------------------

_HEAD_FIELDS: Final = (
    ("tx_id", {"type": "fixed", "name": "ledger.v1.TxId", "size": 16}),
    ("ledger", "string"),
    ("created_at_ms", "long"),
    ("expires_at_ms", "long"),
)


def _starts_with_head(schema: Schema) -> bool:
    fields = cast(dict[str, Any], schema).get("fields", [])
    if len(fields) < len(_HEAD_FIELDS):
        return False
    for field, (name, kind) in zip(fields, _HEAD_FIELDS, strict=False):
        if field["name"] != name:
            return False
        if isinstance(kind, dict):
            written = field["type"]
            if not isinstance(written, dict) or written.get("size") != kind["size"]:
                return False
        elif field["type"] != kind:
            return False
    return True
