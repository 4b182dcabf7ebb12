"""Running the ``ledger`` command as users do: a subprocess, with its exit code and two streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from ledger.settings import REPO_ROOT
from support.ledger_fixture import TestLedger

LEDGER_COMMAND = (sys.executable, "-m", "ledger")

command_timeout_s = 120.0
"""Longer than any bounded wait inside the CLI, so a hang shows up as the CLI's own error."""


def run_ledger(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = command_timeout_s
) -> subprocess.CompletedProcess[str]:
    """``python -m ledger ARGS`` with this process's environment plus ``env``; no terminal."""
    return subprocess.run(
        [*LEDGER_COMMAND, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The CLI failed with ``exit_code`` and said why in exactly one line, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("ledger: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def unreachable_services_env() -> dict[str, str]:
    """Kafka and PostgreSQL addresses where nothing listens (port 1 refuses at once)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "LEDGER_DATABASE_URL": "postgresql://nobody:nothing@127.0.0.1:1/nothing",
    }


def submit_transfer(test_ledger: TestLedger, amount: int = 1) -> dict[str, Any]:
    """``ledger submit transfer --json`` of ``amount`` USD from alice to bob on the test ledger:
    its JSON outcome (sealed or refused)."""
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
        test_ledger.asset,
        "--amount",
        str(amount),
        "--json",
        env=test_ledger.passphrase_env,
    )
    assert result.returncode in (0, 1), result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document
