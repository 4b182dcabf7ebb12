"""The Confluent wire format on the public topics, with ids of the real Schema Registry: what
a standard registry client decodes, and what the ledger refuses."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.request
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from fastavro import parse_schema, schemaless_reader
from support.cli import submit_transfer
from support.ledger_fixture import TestLedger
from support.waiting import eventually

from ledger import codec
from ledger.client.publisher import Publisher, Refused, Sealed
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import ADMIN, PUBLISHER, READER
from ledger.kafka.registry import SchemaRegistry, ledger_schemas
from ledger.kafka.wire import FRAME_BYTES, plain
from ledger.model import Posting, Transfer
from ledger.settings import (
    TOPIC_BLOCKS,
    TOPIC_COSIGNATURES,
    TOPIC_REJECTIONS,
    TOPIC_SUBMISSIONS,
    Settings,
)
from ledger.signing import build_tx_body

outcome_wait_s = 60.0


def transfer_envelope(ledger: TestLedger, amount: int) -> bytes:
    op = Transfer(
        (Posting(ledger.alice, ledger.asset, -amount), Posting(ledger.bob, ledger.asset, amount))
    )
    return ledger.signer(ledger.alice).sign(build_tx_body(ledger.ledger, op))


def registry_get(settings: Settings, path: str) -> Any:
    with urllib.request.urlopen(settings.schema_registry_url + path, timeout=10) as response:
        return json.loads(response.read())


def writer_schema(settings: Settings, schema_id: int) -> Any:
    """What any registry client does with an id: the schema, its references resolved."""
    found = registry_get(settings, f"/schemas/ids/{schema_id}")
    named: dict[str, Any] = {}
    for reference in found.get("references", []):
        referenced = registry_get(
            settings, f"/subjects/{reference['subject']}/versions/{reference['version']}"
        )
        parse_schema(json.loads(referenced["schema"]), named_schemas=named)
    return parse_schema(json.loads(found["schema"]), named_schemas=named)


def test_every_ledger_schema_round_trips_through_the_registry(settings: Settings) -> None:
    """Registered once with its references, looked up by content to the same id, and what the
    registry serves for that id is the schema in schemas/ (TxBody: each body version)."""
    registry = SchemaRegistry(settings.schema_registry_url)
    ids = registry.ledger_ids()
    assert registry.register_all() == ids  # registering again changes no id
    expected = {ref: schema for ref, schema, _ in ledger_schemas()}
    assert set(ids.values()) == set(expected)
    for schema_id, ref in ids.items():
        served = json.loads(registry_get(settings, f"/schemas/ids/{schema_id}")["schema"])
        assert served == expected[ref], ref
        writer_schema(settings, schema_id)  # parses, references resolved


async def last_values(settings: Settings, topic: str, count: int = 20) -> list[bytes]:
    consumer = committed_reader(settings.kafka(ADMIN), "test-wire-format")
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.seek(partition, max(0, end - count))
        values: list[bytes] = []
        while True:
            batch = await consumer.getmany(partition, timeout_ms=2_000)
            if not batch:
                return values
            values += [message.value for message in batch[partition] if message.value]
    finally:
        await consumer.stop()


def test_a_registry_client_decodes_the_public_topics_as_the_ledger_does(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """The newest blocks, rejections and cosignatures: framed, and decoded by the writer schema
    the registry names to exactly what the ledger's own codec reads."""
    assert submit_transfer(test_ledger)["status"] == "sealed"
    assert submit_transfer(test_ledger, amount=10**15)["status"] == "refused"
    decoders = {
        TOPIC_BLOCKS: ("Block", lambda raw: codec.decode_block(raw).header.height, "header"),
        TOPIC_REJECTIONS: ("Rejection", lambda raw: codec.decode_rejection(raw).code, "code"),
        TOPIC_COSIGNATURES: (
            "Cosignature",
            lambda raw: codec.decode_cosignature(raw).height,
            "height",
        ),
    }
    for topic, (record, ours, field) in decoders.items():
        framed = [value for value in asyncio.run(last_values(settings, topic)) if value[0] == 0]
        assert framed, f"no framed value on {topic}"
        for value in framed:
            schema_id = int.from_bytes(value[1:FRAME_BYTES], "big")
            decoded = schemaless_reader(
                io.BytesIO(value[FRAME_BYTES:]), writer_schema(settings, schema_id), None
            )
            theirs = decoded[field]["height"] if field == "header" else decoded[field]
            assert theirs == ours(plain(value, record)), topic


async def publish_raw(settings: Settings, value: bytes) -> None:
    producer = AIOKafkaProducer(**settings.kafka(PUBLISHER).client_options())
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC_SUBMISSIONS, value, key=b"unknown-schema-id")
    finally:
        await producer.stop()


async def rejection_of(settings: Settings, start: dict[int, int], code: str) -> dict[str, Any]:
    consumer = committed_reader(settings.kafka(READER), "test-wire-rejections")
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC_REJECTIONS, p) for p in start]
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, start[partition.partition])

        async def found() -> dict[str, Any] | None:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    rejection = codec.decode_rejection(plain(message.value, "Rejection"))
                    if rejection.code == code:
                        return {"detail": rejection.detail, "stage": rejection.stage}
            return None

        return await eventually(found, bool, what=f"a {code} rejection", timeout_s=outcome_wait_s)
    finally:
        await consumer.stop()


async def rejection_ends(settings: Settings) -> dict[int, int]:
    consumer = committed_reader(settings.kafka(READER), "test-wire-ends")
    await consumer.start()
    try:
        count = settings.topic_partitions()[TOPIC_REJECTIONS]
        partitions = [TopicPartition(TOPIC_REJECTIONS, p) for p in range(count)]
        ends = await consumer.end_offsets(partitions)
        return {partition.partition: offset for partition, offset in ends.items()}
    finally:
        await consumer.stop()


def test_an_unknown_schema_id_is_refused_with_its_code_and_the_pipeline_goes_on(
    settings: Settings, test_ledger: TestLedger
) -> None:
    start = asyncio.run(rejection_ends(settings))
    envelope = transfer_envelope(test_ledger, 1)
    asyncio.run(publish_raw(settings, b"\x00" + (987_654).to_bytes(4, "big") + envelope))
    rejection = asyncio.run(rejection_of(settings, start, "UNKNOWN_SCHEMA"))
    assert rejection["stage"] == "verify" and "987654" in rejection["detail"], rejection
    assert submit_transfer(test_ledger)["status"] == "sealed"


def test_plain_submissions_are_still_accepted_for_this_version(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """A producer that does not frame yet (deprecated, docs/schemas.md) still gets sealed."""

    async def publish() -> Sealed | Refused:
        async with Publisher(settings.kafka(PUBLISHER), frame=False) as publisher:
            [outcome] = await publisher.submit_and_wait(
                [transfer_envelope(test_ledger, 1)], timeout_s=outcome_wait_s
            )
            return outcome

    assert isinstance(asyncio.run(publish()), Sealed)
