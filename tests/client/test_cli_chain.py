"""``ledger verify-chain`` through subprocesses: the live chain verifies; a tampered one fails at
exactly the tampered height (on a throwaway topic, never on ``ledger.blocks``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest
from support.block_topics import (
    FORENSIC_LEDGER,
    SealedChain,
    build_chain,
    create_topic,
    delete_topics,
    unique_topic_name,
    write_values,
)
from support.cli import assert_one_line_error, run_ledger
from support.ledger_fixture import TestLedger

from ledger import codec, signing
from ledger.kafka.principals import ADMIN
from ledger.settings import Settings

pytestmark = pytest.mark.services

tampered_height = 4


@pytest.fixture(scope="module")
async def chain_topic(settings: Settings) -> AsyncIterator[tuple[str, SealedChain]]:
    """Partition 0: a good five-block chain. Partition 1: the same with block 4's seal changed.
    Partition 2: empty."""
    name = unique_topic_name("verify-chain")
    chain = build_chain([1, 2, 0, 3, 1])
    kafka = settings.kafka(ADMIN)
    await create_topic(kafka, name, 3)
    good = [codec.encode_block(block) for block in chain.blocks]
    last = chain.blocks[tampered_height]
    tampered = dataclasses.replace(last, seal=bytes(64))
    await write_values(kafka, name, 0, good)
    await write_values(kafka, name, 1, [*good[:tampered_height], codec.encode_block(tampered)])
    yield name, chain
    await delete_topics(kafka, [name])


def _verify_on(topic: str, partition: int, *extra: str) -> list[str]:
    return [
        "verify-chain",
        "--ledger",
        FORENSIC_LEDGER,
        "--topic",
        topic,
        "--partition",
        str(partition),
        *extra,
    ]


def test_the_live_chain_verifies_under_its_sealer(test_ledger: TestLedger) -> None:
    """ledger main verifies from genesis under its first sealer; JSON counts are consistent, and
    the sealer reported is the one that seals next: the first, or the successor of the last
    rotation (``ledger rotate-sealer``, tests/client/test_cli_rotate_sealer.py)."""
    result = run_ledger(
        "verify-chain", "--sealer-key", test_ledger.sealer_public_key.hex(), "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["failure"] is None
    assert report["block_count"] == report["height"] + 1 >= 1
    assert report["tx_count"] >= 1
    if report["rotation_count"] == 0:
        assert report["sealer_key"] == test_ledger.sealer_public_key.hex()
    else:
        assert report["sealer_key"] != test_ledger.sealer_public_key.hex()
        assert 0 <= report["last_rotation_height"] < report["height"] + 1
    assert report["sealer_key_id"] == signing.key_id(bytes.fromhex(report["sealer_key"]))


def test_another_trusted_sealer_fails_at_block_0(test_ledger: TestLedger) -> None:
    """Trusting a key that did not seal the chain: exit 1, one line naming block 0."""
    other = signing.Signer.generate().public_key.hex()
    result = run_ledger("verify-chain", "--sealer-key", other)
    line = assert_one_line_error(result, 1)
    assert line.startswith("ledger: block 0: ") and "not the trusted sealer" in line


def test_a_good_chain_reports_height_and_transactions(
    chain_topic: tuple[str, SealedChain],
) -> None:
    """The text report names the height reached and the transaction count."""
    topic, chain = chain_topic
    result = run_ledger(*_verify_on(topic, 0, "--sealer-key", chain.sealer.public_key.hex()))
    assert result.returncode == 0, result.stderr
    assert "blocks 0..4 (5 blocks, 7 transactions)" in result.stdout


def test_a_tampered_block_fails_at_its_height(chain_topic: tuple[str, SealedChain]) -> None:
    """Exit 1; stderr one line naming the height; --json reports what verified before it."""
    topic, _ = chain_topic
    result = run_ledger(*_verify_on(topic, 1, "--json"))
    line = assert_one_line_error(result, 1)
    assert line.startswith(f"ledger: block {tampered_height}: seal of block {tampered_height}")
    assert "blocks 0..3 verified, 6 transactions" in line
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["height"] == tampered_height - 1
    assert report["failure"]["height"] == tampered_height


def test_an_empty_ledger_fails(chain_topic: tuple[str, SealedChain]) -> None:
    """No block at all is not a verified chain: exit 1, block 0 named."""
    topic, _ = chain_topic
    line = assert_one_line_error(run_ledger(*_verify_on(topic, 2)), 1)
    assert line.startswith("ledger: block 0: ") and "no blocks" in line
