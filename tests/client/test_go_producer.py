"""The Go producer (``examples/go-producer``) proves the contract is language-neutral: built with
``go build`` and run as a user runs it, it pays alice to bob on the live stack with nothing of the
Python code, and its transaction is sealed, projected with its metadata, on the partition the
Python client would choose, and provable offline. Its envelope file decodes with ``ledger.codec``;
a wrong passphrase is one line, without the passphrase.

Go is part of the project's machine: when the ``go`` tool is missing these tests fail, saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from support.accounts import projected_transaction
from support.cli import run_ledger, submit_transfer
from support.ledger_fixture import TestLedger
from support.waiting import eventually_sync

from ledger import codec, signing
from ledger.client.partitioner import default_partitions
from ledger.kafka.admin import describe_topics
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import ADMIN, PUBLISHER
from ledger.kafka.wire import plain
from ledger.kafka_access import KafkaAccess
from ledger.model import Transfer
from ledger.settings import REPO_ROOT, TOPIC_SUBMISSIONS, Settings

pytestmark = pytest.mark.services

EXAMPLE_DIRECTORY = REPO_ROOT / "examples" / "go-producer"
GO_ARCHIVE_COMMAND = Path("/usr/local/go/bin/go")
"""Where Go's official archive installs the tool; not always on PATH."""
THROWAWAY_KEY = EXAMPLE_DIRECTORY / "testdata" / "throwaway.key"
THROWAWAY_PASSPHRASE = "test passphrase"
"""A key of the Go unit tests (no account owns it): signing offline needs no ledger."""

go_build_timeout_s = 600.0
"""The first build downloads the modules through the proxy and compiles franz-go: minutes on a
cold cache, seconds after."""
program_timeout_s = 60.0
"""Longer than the program's own bound on a publish (30 s), so a hang shows as its error."""
sealed_wait_s = 60.0
"""A submission is sealed within a block or two; a minute covers a busy stack."""
read_submissions_s = 30.0
"""Longest read of ledger.submissions from before the payment to its end: a few messages."""
validity_ms = 60_000
"""The program's validity window (examples/go-producer/main.go ``validity``)."""


def go_command() -> str:
    """The ``go`` tool on PATH, or the official archive's; the test fails when neither exists."""
    found = shutil.which("go") or (
        str(GO_ARCHIVE_COMMAND) if GO_ARCHIVE_COMMAND.is_file() else None
    )
    if found is None:
        pytest.fail(
            f"the go tool is missing (not on PATH, not at {GO_ARCHIVE_COMMAND}): install Go 1.26+ "
            "to build examples/go-producer",
            pytrace=False,
        )
    return found


def run_go(*args: str, timeout_s: float = go_build_timeout_s) -> subprocess.CompletedProcess[str]:
    """``go ARGS`` in the example's directory."""
    return subprocess.run(
        [go_command(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=EXAMPLE_DIRECTORY,
    )


@pytest.fixture(scope="module")
def go_producer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example built with ``go build`` into a temporary directory."""
    program = tmp_path_factory.mktemp("go-producer") / "go-producer"
    result = run_go("build", "-buildvcs=false", "-o", str(program), ".")
    assert result.returncode == 0, f"go build failed:\n{result.stderr}"
    return program


def run_producer(
    program: Path, *args: str, passphrase_env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The built program with ``args``, from the repository root (its default --schemas), with
    this process's environment plus ``passphrase_env`` and no LEDGER_KEY_PASSPHRASE besides."""
    environment = {k: v for k, v in os.environ.items() if k != "LEDGER_KEY_PASSPHRASE"}
    return subprocess.run(
        [str(program), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=program_timeout_s,
        env={**environment, **passphrase_env},
        cwd=REPO_ROOT,
    )


def publisher_options(settings: Settings) -> list[str]:
    """The Go program as the payment systems' principal, whose ACLs let it write submissions
    only; without authentication when the stack runs without it (LEDGER_KAFKA_AUTH=none)."""
    publisher = settings.kafka(PUBLISHER)
    if publisher.username is None:
        return []
    password_file = settings.kafka_credentials_dir / f"{publisher.username}.password"
    return ["--username", publisher.username, "--password-file", str(password_file)]


def pay_options(ledger: TestLedger, key_file: Path, amount: int = 1) -> list[str]:
    return [
        "--key", str(key_file), "--ledger", ledger.ledger, "--from", ledger.alice,
        "--to", ledger.bob, "--asset", ledger.asset, "--amount", str(amount),
    ]  # fmt: skip


def printed_tx_id(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of hex the program prints on success, nothing on stderr."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    assert re.fullmatch(r"[0-9a-f]{32}\n", result.stdout), result.stdout
    return result.stdout.strip()


def test_the_go_unit_tests_pass() -> None:
    """``go test ./...``: the docs' worked body, the key reader against cryptography's file."""
    result = run_go("test", "-buildvcs=false", "./...")
    assert result.returncode == 0, f"go test failed:\n{result.stdout}\n{result.stderr}"


def test_the_envelope_file_decodes_with_the_python_codec(go_producer: Path, tmp_path: Path) -> None:
    """--envelope-out writes bytes that ``ledger.codec`` reads as canonical (it re-encodes and
    compares): body version 2, the transfer and metadata asked for, a 60 s window, a signature
    by the key file's key."""
    envelope_path = tmp_path / "payment.envelope"
    result = run_producer(
        go_producer,
        *["--key", str(THROWAWAY_KEY), "--ledger", "main", "--from", "alice", "--to", "bob"],
        *["--asset", "USD", "--amount", "7", "--envelope-out", str(envelope_path)],
        passphrase_env={"LEDGER_KEY_PASSPHRASE": THROWAWAY_PASSPHRASE},
    )
    tx_id = printed_tx_id(result)
    message_value = envelope_path.read_bytes()
    envelope, body = codec.decode_submission(message_value)
    signing.verify_envelope(envelope)
    expected_signer = signing.load_private_key(THROWAWAY_KEY, THROWAWAY_PASSPHRASE.encode())
    assert envelope.public_key == expected_signer.public_key
    assert envelope.body_version == 2 and codec.encode_envelope(envelope) == message_value
    assert body.tx_id.hex() == tx_id and body.ledger == "main"
    assert body.expires_at_ms - body.created_at_ms == validity_ms
    assert dict(body.metadata) == {"producer": "go"} and body.memo is None
    assert isinstance(body.op, Transfer)
    postings = [(posting.account, posting.asset, posting.amount) for posting in body.op.postings]
    assert postings == [("alice", "USD", -7), ("bob", "USD", 7)]


def test_a_go_payment_is_sealed_projected_and_provable(
    go_producer: Path, settings: Settings, test_ledger: TestLedger, tmp_path: Path
) -> None:
    """1 USD from alice to bob: sealed, projected as a Transfer with metadata {"producer": "go"},
    on the default partitioner's partition of ledger.submissions, and its proof verifies."""
    kafka = settings.kafka(ADMIN)
    starts = asyncio.run(submission_end_offsets(kafka))
    tx_id = printed_tx_id(
        run_producer(
            go_producer,
            "--brokers", kafka.bootstrap_servers, *publisher_options(settings),
            "--registry", settings.schema_registry_url,
            *pay_options(test_ledger, test_ledger.key_file("alice")),
            passphrase_env=test_ledger.passphrase_env,
        )
    )  # fmt: skip
    outcome = eventually_sync(
        lambda: transaction_status(tx_id),
        lambda document: document["status"] in ("sealed", "refused"),
        what=f"tx {tx_id} sealed or refused",
        timeout_s=sealed_wait_s,
    )
    assert outcome["status"] == "sealed", outcome

    row = projected_transaction(settings, tx_id)
    assert row["kind"] == "Transfer" and json.loads(row["metadata"]) == {"producer": "go"}

    partition, value = asyncio.run(find_submission(kafka, starts, bytes.fromhex(tx_id)))
    assert partition == default_partitions([bytes.fromhex(tx_id)], sorted(starts))[0]
    assert value[0] == 0  # framed in the Confluent wire format with the registry's id
    assert plain(value, "Envelope") == bytes(row["envelope"])

    later = submit_transfer(test_ledger)
    assert later["status"] == "sealed" and later["height"] > outcome["height"], later
    proof_path = tmp_path / "proof.json"
    made = run_ledger("proof", tx_id, "--out", str(proof_path))
    assert made.returncode == 0, made.stderr
    checked = run_ledger(
        "verify-proof", str(proof_path), "--sealer-key", test_ledger.sealer_public_key.hex(),
        "--json",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    summary = json.loads(checked.stdout)
    assert summary["ok"] is True and summary["tx_id"] == tx_id, summary
    assert summary["kind"] == "Transfer" and summary["height"] == outcome["height"], summary


def test_a_wrong_passphrase_is_one_line_without_it(
    go_producer: Path, test_ledger: TestLedger
) -> None:
    """A wrong passphrase (from the variable --passphrase-env names): exit 1, nothing on stdout,
    one line on stderr that names the key file and not the passphrase."""
    wrong = "not-the-passphrase-5b1e"
    result = run_producer(
        go_producer,
        "--passphrase-env", "GO_PRODUCER_TEST_PASSPHRASE",
        *pay_options(test_ledger, test_ledger.key_file("alice")),
        passphrase_env={"GO_PRODUCER_TEST_PASSPHRASE": wrong},
    )  # fmt: skip
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("go-producer: "), result.stderr
    assert "alice.key" in lines[0] and "wrong passphrase" in lines[0]
    assert wrong not in result.stderr


def transaction_status(tx_id: str) -> dict[str, Any]:
    """``ledger tx TX --json``; status "unknown" while the ledger has not seen it yet."""
    result = run_ledger("tx", tx_id, "--json")
    if result.returncode != 0:
        return {"status": "unknown", "stderr": result.stderr}
    document: dict[str, Any] = json.loads(result.stdout)
    return document


async def submission_end_offsets(kafka: KafkaAccess) -> dict[int, int]:
    """The end offset of every partition of ledger.submissions now, by partition id."""
    [described] = await describe_topics(kafka, [TOPIC_SUBMISSIONS])
    partitions = [
        TopicPartition(TOPIC_SUBMISSIONS, partition["partition"])
        for partition in described["partitions"]
    ]
    assert partitions, f"{TOPIC_SUBMISSIONS} has no partitions"
    consumer = committed_reader(kafka, "test-go-producer")
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        return {topic_partition.partition: ends[topic_partition] for topic_partition in partitions}
    finally:
        await consumer.stop()


async def find_submission(
    kafka: KafkaAccess, starts: dict[int, int], key: bytes
) -> tuple[int, bytes]:
    """The partition and value of the one message keyed ``key`` published to ledger.submissions
    after ``starts`` (offsets by partition), reading up to each partition's end now."""
    consumer = committed_reader(kafka, "test-go-producer")
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC_SUBMISSIONS, partition) for partition in starts]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for topic_partition in partitions:
            consumer.seek(topic_partition, starts[topic_partition.partition])
        found: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + read_submissions_s
        for topic_partition in partitions:
            while await consumer.position(topic_partition) < ends[topic_partition]:
                assert time.monotonic() < deadline, f"reading {topic_partition} took too long"
                batch = await consumer.getmany(topic_partition, timeout_ms=500)
                found.extend(
                    (topic_partition.partition, message.value)
                    for message in batch.get(topic_partition, [])
                    if message.key == key and message.value is not None
                )
        assert len(found) == 1, f"{len(found)} messages keyed {key.hex()} on {TOPIC_SUBMISSIONS}"
        return found[0]
    finally:
        await consumer.stop()
