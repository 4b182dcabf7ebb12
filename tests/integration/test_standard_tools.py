"""The README's "Reading the topics with standard tools" runs as written: Kafka's own console
consumer with Apicurio's Avro deserializer, both fetched by ``make install``, prints the newest
blocks of ledger ``main`` as JSON, each the block the ledger's codec reads at that offset."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from support.block_topics import (
    build_chain,
    create_topic,
    delete_topics,
    unique_topic_name,
    write_values,
)
from support.cli import submit_transfer
from support.ledger_fixture import TestLedger

from ledger import codec
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import ADMIN, READER
from ledger.kafka.wire import framed, plain
from ledger.model import Block
from ledger.settings import REPO_ROOT, TOPIC_BLOCKS, Settings

pytestmark = pytest.mark.services

HEADING = "### Reading the topics with standard tools"
SNIPPET_BLOCKS = 3
"""--max-messages of the README's command."""

snippet_timeout_s = 120.0
"""Two JVM starts and the consumer's own --timeout-ms of 10 s, on a loaded machine."""

# What the README says for the default stack, and what this stack has instead.
README_BOOTSTRAP = "127.0.0.1:19092"
README_REGISTRY_API = "http://127.0.0.1:18081/apis/registry/v3"
README_CREDENTIALS = ".data/kafka/credentials"

PRINTED_BLOCK = re.compile(r"Offset:(\d+)\t(\{.*\})$")
"""A line of print.offset=true: the offset, a tab, the value. A block the deserializer skipped
leaves its ``Offset:N<tab>`` before the next one on the same line, hence the anchor at the end."""


def readme_snippet() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index(HEADING) :]
    block: str = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)[0]
    return block


def for_this_stack(snippet: str, settings: Settings) -> str:
    """The snippet with this stack's addresses (the same text on the default stack)."""
    registry_api = settings.schema_registry_url.replace("/apis/ccompat/v7", "/apis/registry/v3")
    for default, actual in (
        (README_BOOTSTRAP, settings.kafka_bootstrap_servers),
        (README_REGISTRY_API, registry_api),
        (README_CREDENTIALS, str(settings.kafka_credentials_dir)),
    ):
        assert default in snippet, f"the README's snippet no longer names {default}"
        snippet = snippet.replace(default, actual)
    return snippet


async def blocks_at(settings: Settings, topic: str, offsets: set[int]) -> dict[int, Block]:
    """The blocks at ``offsets`` of partition 0 of ``topic``, read by the ledger's own code."""
    consumer = committed_reader(settings.kafka(READER), "test-standard-tools")
    await consumer.start()
    try:
        topic_partition = TopicPartition(topic, 0)
        consumer.assign([topic_partition])
        consumer.seek(topic_partition, min(offsets))
        found: dict[int, Block] = {}
        while not offsets <= found.keys():
            batch = await consumer.getmany(topic_partition, timeout_ms=2_000)
            assert batch, f"offsets {sorted(offsets - found.keys())} of {topic} not read"
            for message in batch[topic_partition]:
                if message.offset in offsets and message.value is not None:
                    found[message.offset] = codec.decode_block(plain(message.value, "Block"))
        return found
    finally:
        await consumer.stop()


def run_snippet(settings: Settings, topic: str = TOPIC_BLOCKS) -> tuple[dict[int, Any], str]:
    """The README's block on this stack (reading ``topic`` instead of ``ledger.blocks``): the
    values it printed by offset, and its stderr."""
    script = for_this_stack(readme_snippet(), settings).replace(TOPIC_BLOCKS, topic)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=snippet_timeout_s,
        stdin=subprocess.DEVNULL,
    )
    # Avro renders bytes as characters 0-255, which Java writes in the locale's encoding.
    stdout = result.stdout.decode("utf-8", errors="replace")
    stderr = result.stderr.decode("utf-8", errors="replace")
    assert result.returncode == 0, (stdout[-2000:], stderr[-2000:])
    printed: dict[int, Any] = {}
    for line in stdout.splitlines():
        match = PRINTED_BLOCK.search(line)
        if match:
            printed[int(match.group(1))] = json.loads(match.group(2))
    assert 1 <= len(printed) <= SNIPPET_BLOCKS, (stdout[-2000:], stderr[-2000:])
    return printed, stderr


def assert_same_header(printed: dict[str, Any], block: Block) -> None:
    header, expected = printed["header"], block.header
    assert (header["ledger"], header["height"]) == (expected.ledger, expected.height)
    assert header["tx_count"] == expected.tx_count
    assert header["sealed_at_ms"] == expected.sealed_at_ms
    # Avro's JSON rendering of a fixed: its bytes as signed integers.
    for field in ("prev_hash", "tx_root", "blocks_root", "sealer_key"):
        assert bytes(b & 0xFF for b in header[field]) == getattr(expected, field), field


@pytest.fixture
def local_stack(settings: Settings) -> Settings:
    if not (settings.local_kafka and settings.local_registry and settings.kafka_per_role):
        pytest.skip("the README's snippet is for the local stack's broker, registry and users")
    return settings


def test_the_console_consumer_prints_the_newest_blocks_as_the_codec_reads_them(
    local_stack: Settings, test_ledger: TestLedger
) -> None:
    """Each printed block is the block at its offset (ledger, height, count, time, hashes and
    sealer key); they are consecutive heights up to a block sealed just before, or newer."""
    # A block sealed now: the newest blocks are framed, whatever the stack held before the
    # registry (plain blocks, which a registry deserializer cannot read).
    sealed = submit_transfer(test_ledger)
    assert sealed["status"] == "sealed"
    partition = local_stack.shard_partition(test_ledger.ledger)
    assert partition == 0, "the README reads partition 0, ledger main's on the default shards"

    printed, _ = run_snippet(local_stack)

    ours = asyncio.run(blocks_at(local_stack, TOPIC_BLOCKS, set(printed)))
    for offset, value in printed.items():
        assert value["header"]["ledger"] == test_ledger.ledger
        assert_same_header(value, ours[offset])
    heights = [ours[offset].header.height for offset in sorted(printed)]
    assert heights == list(range(heights[0], heights[0] + len(heights)))
    assert heights[-1] >= sealed["height"], "not the newest blocks"


@pytest.fixture
def mixed_block_topic(local_stack: Settings) -> Iterator[tuple[str, list[Block]]]:
    """A copy of a chain as a stack upgraded to the registry holds it: block 0 plain Avro,
    blocks 1 and 2 framed, each in its own transaction as the sequencer writes them."""
    chain = build_chain([1, 1, 1]).blocks
    values = [codec.encode_block(chain[0])]
    values += [framed("Block", codec.encode_block(block)) for block in chain[1:]]
    topic = unique_topic_name("standard-tools")
    admin = local_stack.kafka(ADMIN)
    asyncio.run(create_topic(admin, topic, 1))
    try:
        asyncio.run(write_values(admin, topic, 0, values, transactional=True))
        yield topic, chain
    finally:
        asyncio.run(delete_topics(admin, [topic]))


def test_a_block_written_before_the_registry_is_skipped(
    local_stack: Settings, mixed_block_topic: tuple[str, list[Block]]
) -> None:
    """The plain block is not printed, with an error on stderr, and the framed blocks after it
    are: the README's --skip-message-on-error."""
    topic, chain = mixed_block_topic
    printed, stderr = run_snippet(local_stack, topic)
    assert sorted(printed) == [2, 4]  # block 0 at offset 0, each block then a commit marker
    assert_same_header(printed[2], chain[1])
    assert_same_header(printed[4], chain[2])
    assert "skipping this message" in stderr
