"""``ledger submit`` through subprocesses on the real stack: every operation, sealed or refused."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.cli import assert_one_line_error, run_ledger
from support.ledger_fixture import TestLedger, insufficient_amount

pytestmark = pytest.mark.services


def submit(ledger: TestLedger, operation: str, key: str, *options: str) -> dict[str, Any]:
    """Run ``ledger submit OPERATION --json`` and return its JSON (exit 0 expected)."""
    result = run_ledger(
        "submit",
        operation,
        "--key",
        str(ledger.key_file(key)),
        "--json",
        *options,
        env=ledger.passphrase_env,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_a_transfer_is_sealed_and_its_height_and_seq_printed(test_ledger: TestLedger) -> None:
    """The text output names the tx_id, then the height and seq it was sealed at."""
    result = run_ledger(
        "submit",
        "transfer",
        "--key",
        str(test_ledger.key_file("alice")),
        "--from",
        test_ledger.alice,
        "--to",
        test_ledger.bob,
        "--asset",
        "USD",
        "--amount",
        "7",
        "--memo",
        "cli test",
        "--external-ref",
        "cli-submit-1",
        env=test_ledger.passphrase_env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"tx [0-9a-f]{32}", lines[0])
    assert re.fullmatch(r"sealed in ledger main at height \d+, seq \d+", lines[1])
    assert result.stderr == ""


def test_a_multi_posting_transfer_is_sealed(test_ledger: TestLedger) -> None:
    """Repeated --posting legs make one atomic transfer (here: an issuance to two accounts)."""
    outcome = submit(
        test_ledger,
        "transfer",
        "usd-issuer",
        "--posting",
        "usd.issuer:USD:-5",
        "--posting",
        "alice:USD:3",
        "--posting",
        "bob:USD:2",
    )
    assert outcome["status"] == "sealed" and len(outcome["tx_id"]) == 32


def test_a_refusal_prints_its_code_and_exits_1(test_ledger: TestLedger) -> None:
    """Spending more than the balance: JSON says refused, stderr one line with the code, exit 1."""
    result = run_ledger(
        "submit",
        "transfer",
        "--key",
        str(test_ledger.key_file("bob")),
        "--json",
        "--from",
        "bob",
        "--to",
        "alice",
        "--asset",
        "USD",
        "--amount",
        str(insufficient_amount),
        env=test_ledger.passphrase_env,
    )
    line = assert_one_line_error(result, 1)
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "refused" and outcome["code"] == "INSUFFICIENT_FUNDS"
    assert outcome["tx_id"] in line and "INSUFFICIENT_FUNDS" in line


def test_a_hold_is_captured_in_part(test_ledger: TestLedger) -> None:
    """hold reserves funds; capture --hold <hold tx_id> --amount pays part of them out."""
    held = submit(
        test_ledger,
        "hold",
        "alice",
        "--payer",
        "alice",
        "--payee",
        "bob",
        "--asset",
        "USD",
        "--amount",
        "10",
        "--expires-in-s",
        "300",
    )
    assert held["status"] == "sealed"
    captured = submit(test_ledger, "capture", "bob", "--hold", held["tx_id"], "--amount", "4")
    assert captured["status"] == "sealed"
    again = run_ledger(
        "submit",
        "void",
        "--key",
        str(test_ledger.key_file("alice")),
        "--hold",
        held["tx_id"],
        env=test_ledger.passphrase_env,
    )
    assert "HOLD_ALREADY_RESOLVED" in assert_one_line_error(again, 1)


def test_a_hold_is_voided(test_ledger: TestLedger) -> None:
    """void --hold releases the reserved funds (sealed)."""
    held = submit(
        test_ledger,
        "hold",
        "alice",
        "--payer",
        "alice",
        "--payee",
        "bob",
        "--asset",
        "USD",
        "--amount",
        "10",
        "--expires-in-s",
        "300",
    )
    assert submit(test_ledger, "void", "alice", "--hold", held["tx_id"])["status"] == "sealed"


def test_a_file_and_a_digest_are_attested(test_ledger: TestLedger, tmp_path: Path) -> None:
    """attest --file anchors the file's SHA-256; attest --digest anchors a given digest."""
    document = tmp_path / "invoice.pdf"
    document.write_bytes(b"%PDF- not really " * 1000)
    by_file = submit(test_ledger, "attest", "alice", "--file", str(document))
    digest = hashlib.sha256(b"another document").hexdigest()
    by_digest = submit(test_ledger, "attest", "bob", "--digest", digest)
    assert by_file["status"] == by_digest["status"] == "sealed"


def test_no_wait_returns_once_kafka_has_it(test_ledger: TestLedger) -> None:
    """--no-wait prints the tx_id and where the submission was stored, without an outcome."""
    outcome = submit(
        test_ledger,
        "transfer",
        "alice",
        "--no-wait",
        "--from",
        "alice",
        "--to",
        "bob",
        "--asset",
        "USD",
        "--amount",
        "1",
    )
    assert outcome["status"] == "submitted" and outcome["offset"] >= 0
