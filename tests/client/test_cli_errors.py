"""Every error path of submit, proof, verify-proof and verify-chain: one line, non-zero exit.

Exit codes (ledger.cli): 1 a check failed, 2 usage, 3 infrastructure unreachable, 4 bad input.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_ledger, unreachable_services_env

from ledger.signing import Signer, save_private_key

pytestmark = pytest.mark.services

PASSPHRASE = "right passphrase"
unreachable_bound_s = 30.0
"""The CLI must give up on an unreachable Kafka well within this (its own bound is 15 s)."""


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "payer.key"
    save_private_key(path, Signer.generate(), PASSPHRASE.encode())
    return path


@pytest.fixture(scope="module")
def not_a_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "notes.txt"
    path.write_text("shopping list\n")
    return path


TRANSFER = ["--from", "alice", "--to", "bob", "--asset", "USD", "--amount", "1"]


def _submit(key: Path, *args: str) -> list[str]:
    return ["submit", "transfer", "--key", str(key), *args]


@pytest.mark.parametrize(
    ("case", "exit_code", "fragment"),
    [
        ("missing key file", 4, "no key file"),
        ("not a key file", 4, "not a key file"),
        ("wrong passphrase", 4, "wrong passphrase"),
        ("no passphrase", 4, "no passphrase"),
        ("unknown option", 2, "No such option"),
        ("unknown operation", 2, "No such command"),
        ("malformed posting", 2, "ACCOUNT:ASSET:AMOUNT"),
        ("postings and shortcut", 2, "not both"),
        ("incomplete shortcut", 2, "--from --to --asset --amount"),
        ("one posting", 2, "invalid transaction"),
        ("memo too long", 2, "invalid transaction"),
        ("malformed hold hex", 2, "--hold"),
        ("short digest", 2, "64 hex digits"),
        ("attest file and digest", 2, "exactly one"),
        ("validity too long", 2, "--validity-s"),
    ],
)
def test_submit_errors(
    case: str, exit_code: int, fragment: str, key_file: Path, not_a_key: Path, tmp_path: Path
) -> None:
    """Each mistake of ``ledger submit`` is one line on stderr and its exit code."""
    good = {"LEDGER_KEY_PASSPHRASE": PASSPHRASE}
    arguments, env = {
        "missing key file": (_submit(tmp_path / "nowhere.key", *TRANSFER), good),
        "not a key file": (_submit(not_a_key, *TRANSFER), good),
        "wrong passphrase": (_submit(key_file, *TRANSFER), {"LEDGER_KEY_PASSPHRASE": "wrong"}),
        "no passphrase": (_submit(key_file, *TRANSFER), {"LEDGER_KEY_PASSPHRASE": ""}),
        "unknown option": (_submit(key_file, *TRANSFER, "--bogus"), good),
        "unknown operation": (["submit", "teleport", "--key", str(key_file)], good),
        "malformed posting": (_submit(key_file, "--posting", "alice-USD-5"), good),
        "postings and shortcut": (
            _submit(key_file, "--posting", "a:USD:-1", "--posting", "b:USD:1", *TRANSFER),
            good,
        ),
        "incomplete shortcut": (_submit(key_file, "--from", "alice", "--amount", "1"), good),
        "one posting": (_submit(key_file, "--posting", "a:USD:0"), good),
        "memo too long": (_submit(key_file, *TRANSFER, "--memo", "x" * 10_000), good),
        "malformed hold hex": (
            ["submit", "capture", "--key", str(key_file), "--hold", "not-hex"],
            good,
        ),
        "short digest": (
            ["submit", "attest", "--key", str(key_file), "--digest", "abcd"],
            good,
        ),
        "attest file and digest": (
            [
                "submit",
                "attest",
                "--key",
                str(key_file),
                "--file",
                str(not_a_key),
                "--digest",
                "00" * 32,
            ],
            good,
        ),
        "validity too long": (_submit(key_file, *TRANSFER, "--validity-s", "100000"), good),
    }[case]
    line = assert_one_line_error(run_ledger(*arguments, env=env), exit_code)
    assert fragment in line, line


@pytest.mark.parametrize(
    ("arguments", "exit_code", "fragment"),
    [
        (["proof", "abc"], 2, "TX_ID_HEX must be hex"),
        (["proof", "00" * 15], 2, "32 hex digits"),
        (["proof", "00" * 16, "--sealer-key", "zz"], 2, "--sealer-key must be hex"),
        (["verify-chain", "--ledger", "no-such-ledger"], 4, "not in LEDGER_SHARDS"),
        (["verify-chain", "--bogus"], 2, "No such option"),
        (["verify-chain", "--evidence-topic", "no.such.topic"], 4, "does not exist"),
        (["verify-proof", "proof.json"], 2, "--sealer-key"),
        (["verify-proof", "/nonexistent/proof.json", "--sealer-key", "00" * 32], 4, "cannot read"),
        (["verify-proof", "proof.json", "--sealer-key", "00" * 31], 2, "64 hex digits"),
    ],
)
def test_chain_and_proof_usage_errors(arguments: list[str], exit_code: int, fragment: str) -> None:
    """Malformed hex, unknown ledgers and options, missing files: one line, the right exit code."""
    line = assert_one_line_error(run_ledger(*arguments), exit_code)
    assert fragment in line, line


@pytest.mark.parametrize(
    ("witness_lines", "threshold", "fragment"),
    [
        (None, "1", "--threshold needs --witness-keys"),
        (["not hex"], None, ":1: not a public key of 64 hex digits"),
        (["# only a comment"], None, "lists no witness key"),
        (["11" * 32, "22" * 31], None, ":2: not a public key"),
        (["11" * 32], "2", "--threshold 2 is more than the 1 keys"),
    ],
)
def test_witness_options_errors(
    witness_lines: list[str] | None, threshold: str | None, fragment: str, tmp_path: Path
) -> None:
    """A bad --witness-keys file or --threshold is one line naming the line or the option, exit 4,
    before the proof is read."""
    arguments = ["verify-proof", "proof.json", "--sealer-key", "00" * 32]
    if witness_lines is not None:
        witnesses = tmp_path / "witnesses.txt"
        witnesses.write_text("\n".join(witness_lines) + "\n")
        arguments += ["--witness-keys", str(witnesses)]
    if threshold is not None:
        arguments += ["--threshold", threshold]
    line = assert_one_line_error(run_ledger(*arguments), 4)
    assert fragment in line, line


@pytest.mark.parametrize(
    "arguments",
    [
        ["verify-chain"],
        ["proof", "00" * 16],
        ["submit", "transfer", "--key", "KEY", *TRANSFER],
        ["submit", "transfer", "--key", "KEY", "--no-wait", *TRANSFER],
    ],
)
def test_unreachable_kafka_is_exit_3_within_a_bound(arguments: list[str], key_file: Path) -> None:
    """Nothing listening at KAFKA_BOOTSTRAP_SERVERS: exit 3 in one line, quickly, no hang."""
    arguments = [str(key_file) if argument == "KEY" else argument for argument in arguments]
    started = time.monotonic()
    result = run_ledger(
        *arguments,
        env={**unreachable_services_env(), "LEDGER_KEY_PASSPHRASE": PASSPHRASE},
        timeout_s=unreachable_bound_s + 10,
    )
    assert time.monotonic() - started < unreachable_bound_s
    assert "127.0.0.1:1" in assert_one_line_error(result, 3)


def test_demo_without_kafka_is_one_line(tmp_path: Path) -> None:
    """`ledger demo` (what `make run` ends with) reports an unreachable broker in its one line,
    with no traceback and no unclosed-consumer warning before it."""
    result = run_ledger(
        "demo",
        "--seconds",
        "1",
        env={**unreachable_services_env(), "LEDGER_DATA_DIR": str(tmp_path)},
        timeout_s=unreachable_bound_s + 10,
    )
    assert "127.0.0.1:1" in assert_one_line_error(result, 3)
