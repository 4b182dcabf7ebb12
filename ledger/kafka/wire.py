"""The Confluent wire format on the public topics: a zero byte, the 4-byte big-endian schema id
the Schema Registry gave the writer schema, then the Avro bytes.

Framed: ``ledger.submissions`` (Envelope, MultiSignedEnvelope), ``ledger.blocks`` (Block),
``ledger.rejections`` (Rejection), ``ledger.cosignatures`` (Cosignature), ``ledger.evidence``
(Evidence): what Kafka Connect, ksqlDB or a console consumer with a registry deserializer read.
The internal topics (verified, snapshots, stats) stay plain Avro.

The frame is outside everything signed or hashed: an envelope inside a block, a block's hash,
a cosignature's signature are over the plain Avro bytes, as before the registry.

Readers accept plain values too: everything written before the registry, and submissions from
producers that do not frame yet (deprecated; accepted for this version, docs/schemas.md). A
plain Envelope, MultiSignedEnvelope, Block, Cosignature or Evidence never starts with a zero
byte (their first field is a positive int or a non-empty string), so a leading zero means a
frame. A plain Rejection may (a null tx_id): for it only, a zero byte followed by an id that is
not a Rejection schema's means a plain value.
"""

from __future__ import annotations

import functools
import threading
import time

from ledger.codec import UnknownSchemaId
from ledger.errors import InfraError
from ledger.kafka.registry import SchemaRef, SchemaRegistry, subject

MAGIC = 0
FRAME_BYTES = 5
refresh_interval_s = 10.0
"""An id not known yet is looked up again at most this often (a new version registered while a
process runs); between lookups such ids are refused."""

PLAIN_MAY_START_WITH_ZERO = frozenset({subject("Rejection")})


class Wire:
    """Frames and unframes the values of one process, with the ids of one registry.

    The ids are asked for once, at the first framed value; an unknown id makes it ask again, at
    most every ``refresh_interval_s``. Thread-safe (faust's consumer runs in its own thread).
    """

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._ids: dict[int, SchemaRef] | None = None
        self._latest: dict[str, int] = {}
        self._prefixes: dict[str, bytes] = {}
        """Record -> its frame's first 5 bytes, once its id is known."""
        self._asked_at = -refresh_interval_s
        self._lock = threading.Lock()

    def load(self) -> None:
        """Ask the registry for the ids now, where a failure is easiest to report (a worker's
        start, before its first transaction), rather than at the first value."""
        self._refresh(force=True)

    def frame(self, record: str, payload: bytes) -> bytes:
        """``payload`` (plain Avro of ``ledger.v1.<record>``) with its frame."""
        prefix = self._prefixes.get(record)
        if prefix is None:
            name = subject(record)
            if name not in self._latest:
                self._refresh(force=self._ids is None)
            schema_id = self._latest.get(name)
            if schema_id is None:
                raise InfraError(
                    f"{name} is not registered in the schema registry at {self.registry.url}: "
                    "`ledger up` registers the ledger's schemas"
                )
            prefix = self._prefixes[record] = bytes((MAGIC,)) + schema_id.to_bytes(4, "big")
        return prefix + payload

    def unframe(self, value: bytes, *records: str) -> bytes:
        """The plain Avro bytes of ``value``, one of ``records``; raises ``UnknownSchemaId``
        when it is framed with an id that names none of them."""
        if len(value) < FRAME_BYTES or value[0] != MAGIC:
            return value
        names = _subjects(records)
        schema_id = int.from_bytes(value[1:FRAME_BYTES], "big")
        ref = self._known(schema_id)
        if ref is not None and ref.name in names:
            return value[FRAME_BYTES:]
        if names <= PLAIN_MAY_START_WITH_ZERO:
            return value
        raise UnknownSchemaId(schema_id, " or ".join(sorted(names)))

    def _known(self, schema_id: int) -> SchemaRef | None:
        ids = self._ids
        if ids is None or schema_id not in ids:
            self._refresh(force=ids is None)
            ids = self._ids or {}
        return ids.get(schema_id)

    def _refresh(self, force: bool) -> None:
        with self._lock:
            if not force and time.monotonic() - self._asked_at < refresh_interval_s:
                return
            self._asked_at = time.monotonic()
            ids = self.registry.ledger_ids()
            latest: dict[str, int] = {}
            for schema_id, ref in sorted(ids.items(), key=lambda item: item[1].version):
                latest[ref.name] = schema_id
            self._ids, self._latest, self._prefixes = ids, latest, {}


@functools.cache
def _subjects(records: tuple[str, ...]) -> frozenset[str]:
    return frozenset(subject(record) for record in records)


@functools.cache
def wire(registry_url: str) -> Wire:
    """The process's ``Wire`` for a registry: one id cache however many clients use it."""
    return Wire(SchemaRegistry(registry_url))


@functools.cache
def default_wire() -> Wire:
    """The ``Wire`` of this process's registry (LEDGER_SCHEMA_REGISTRY_URL, or the local one),
    read from the environment once: it is on the path of every message."""
    from ledger.settings import Settings

    return wire(Settings.from_env().schema_registry_url)


def framed(record: str, payload: bytes) -> bytes:
    """``payload`` framed with the id of ``ledger.v1.<record>`` in this process's registry."""
    return default_wire().frame(record, payload)


def plain(value: bytes, *records: str) -> bytes:
    """The plain Avro bytes of a value of one of ``records``, framed or not; the registry is
    asked only when a frame carries an id this process has not seen."""
    if len(value) < FRAME_BYTES or value[0] != MAGIC:
        return value
    return default_wire().unframe(value, *records)
