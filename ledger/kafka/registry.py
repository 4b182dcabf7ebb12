"""The Schema Registry, through its Confluent-compatible API: the ledger's schemas and their ids.

Subjects follow Confluent's RecordNameStrategy: a record's full name (``ledger.v1.Block``) is
its subject, because ``ledger.submissions`` carries two record types (Envelope and
MultiSignedEnvelope). ``ledger.v1.TxBody`` has one version per body version (1, 2, 3), so
``Envelope.body_version`` is also the subject version of its body's writer schema. Block refers
to BlockHeader by a schema reference, as the ``.avsc`` files do.

Every call is plain HTTP (urllib): the registry is asked when a process starts and when it meets
an id it does not know, never per message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ledger import codec
from ledger.errors import InfraError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
request_timeout_s = 10.0
COMPATIBILITY = "BACKWARD"
"""New versions must read data of the previous one: fields are added with defaults."""

RECORDS = (
    "BlockHeader",
    "Block",
    "Envelope",
    "MultiSignedEnvelope",
    "Rejection",
    "Cosignature",
    "Evidence",
    "VerifiedBatch",
    "Snapshot",
    "ConfidentialFields",
)
"""Every record of ``schemas/`` but TxBody, each with one version; referenced ones first."""

REFERENCES = {"Block": ("BlockHeader",)}


@dataclass(frozen=True)
class SchemaRef:
    """Which of the ledger's schemas an id names."""

    name: str
    """The record's full name, ``ledger.v1.Block``: its subject."""
    version: int


def subject(record: str) -> str:
    return f"ledger.v1.{record}"


def ledger_schemas() -> list[tuple[SchemaRef, dict[str, Any], tuple[str, ...]]]:
    """Every schema the ledger writes, in registration order, with the records it refers to."""
    schemas: list[tuple[SchemaRef, dict[str, Any], tuple[str, ...]]] = [
        (SchemaRef(subject("TxBody"), version), codec.body_schema_json(version), ())
        for version in range(codec.BASE_BODY_VERSION, codec.CURRENT_BODY_VERSION + 1)
    ]
    schemas += [
        (SchemaRef(subject(record), 1), codec.schema_json(record), REFERENCES.get(record, ()))
        for record in RECORDS
    ]
    return schemas


class SchemaRegistry:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def register_all(self) -> dict[int, SchemaRef]:
        """Register every ledger schema (a registered one keeps its id) and ask for backward
        compatibility on each subject; returns the ids."""
        ids: dict[int, SchemaRef] = {}
        for ref, schema, references in ledger_schemas():
            self._request("PUT", f"/config/{ref.name}", {"compatibility": COMPATIBILITY})
            answer = self._request(
                "POST", f"/subjects/{ref.name}/versions", self._payload(schema, references)
            )
            ids[int(answer["id"])] = ref
        return ids

    def ledger_ids(self) -> dict[int, SchemaRef]:
        """The ids of the ledger's schemas, looked up without registering anything; a schema
        the registry does not hold is left out."""
        ids: dict[int, SchemaRef] = {}
        for ref, schema, references in ledger_schemas():
            answer = self._request(
                "POST", f"/subjects/{ref.name}", self._payload(schema, references), missing_ok=True
            )
            if answer is not None:
                ids[int(answer["id"])] = ref
        return ids

    def _payload(self, schema: dict[str, Any], references: tuple[str, ...]) -> dict[str, Any]:
        return {
            "schemaType": "AVRO",
            "schema": json.dumps(schema, separators=(",", ":")),
            "references": [
                {"name": subject(record), "subject": subject(record), "version": 1}
                for record in references
            ],
        }

    def _request(
        self, method: str, path: str, body: dict[str, Any], missing_ok: bool = False
    ) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(request, timeout=request_timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                return None
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise InfraError(
                f"schema registry at {self.url}: {method} {path} answered {exc.code}: {detail}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InfraError(f"cannot reach the schema registry at {self.url}: {reason}") from exc
