"""`ledger db migrate`: applies, then says "up to date"; --json; exit 3 and one line when down."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ledger.settings import REPO_ROOT
from streams.postgres import load_migrations

pytestmark = pytest.mark.services


def ledger_db_migrate(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger", "db", "migrate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LEDGER_DATABASE_URL": database_url},
        cwd=REPO_ROOT,
    )


def test_migrate_then_up_to_date(database_url: str) -> None:
    """The first run lists the applied migrations, the second says "up to date"."""
    names = [migration.name for migration in load_migrations()]
    first = ledger_db_migrate(database_url)
    assert (first.returncode, first.stdout, first.stderr) == (
        0,
        "applied: " + ", ".join(names) + "\n",
        "",
    )
    second = ledger_db_migrate(database_url)
    assert (second.returncode, second.stdout) == (0, "up to date\n")


def test_json_output_names_the_database_without_password(database_url: str) -> None:
    """--json prints one object: the redacted database URL and the (here empty) applied list."""
    result = ledger_db_migrate(database_url, "--json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["applied"] in ([], [m.name for m in load_migrations()])
    assert output["database"] == database_url.replace("ledger:ledger@", "ledger@")


def test_unreachable_database_exits_3_with_one_line() -> None:
    """No server on the port: exit code 3 (infrastructure), one line on stderr, no password."""
    result = ledger_db_migrate("postgresql://ledger:hunter2@127.0.0.1:1/ledger")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.startswith("ledger: cannot connect to PostgreSQL at postgresql://ledger@")
    assert result.stderr.count("\n") == 1
    assert "hunter2" not in result.stderr
