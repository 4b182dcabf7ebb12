"""The migration files and the planning rules, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import InfraError
from streams.postgres import MIGRATIONS_DIR, load_migrations, redact_url
from streams.postgres.migrate import AppliedMigration, Migration, pending_migrations


def write(directory: Path, name: str, sql: str = "SELECT 1;\n") -> None:
    (directory / name).write_text(sql)


def applied(*migrations: Migration) -> dict[int, AppliedMigration]:
    return {m.version: AppliedMigration(m.version, m.name, m.checksum) for m in migrations}


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    """The files in the package load, in order, starting with the core tables and the views."""
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert [m.name for m in migrations][:2] == ["0001_core", "0002_views"]
    assert all(len(m.checksum) == 64 for m in migrations)
    assert MIGRATIONS_DIR.is_dir()


def test_a_gap_in_the_numbering_is_refused(tmp_path: Path) -> None:
    """0001 then 0003: the second file should have been 0002."""
    write(tmp_path, "0001_first.sql")
    write(tmp_path, "0003_third.sql")
    with pytest.raises(InfraError, match="0003_third should be numbered 0002"):
        load_migrations(tmp_path)


def test_a_badly_named_file_is_refused(tmp_path: Path) -> None:
    """Every .sql file in the folder must be NNNN_lowercase_words.sql."""
    write(tmp_path, "0001_first.sql")
    write(tmp_path, "2_Second.sql")
    with pytest.raises(InfraError, match="2_Second.sql is not named"):
        load_migrations(tmp_path)


def test_pending_are_the_files_after_the_applied_ones(tmp_path: Path) -> None:
    """With 0001 applied, 0002 and 0003 are pending, in order; with all applied, none."""
    for name in ("0001_a.sql", "0002_b.sql", "0003_c.sql"):
        write(tmp_path, name, f"-- {name}\n")
    first, second, third = load_migrations(tmp_path)
    assert pending_migrations([first, second, third], applied(first)) == [second, third]
    assert pending_migrations([first, second, third], applied(first, second, third)) == []


def test_a_pending_file_older_than_an_applied_one_is_refused(tmp_path: Path) -> None:
    """0001 and 0003 applied, 0002 not: 0002 arrived late (a merge) and must be renumbered."""
    for name in ("0001_a.sql", "0002_b.sql", "0003_c.sql"):
        write(tmp_path, name, f"-- {name}\n")
    first, second, third = load_migrations(tmp_path)
    with pytest.raises(InfraError, match="0002_b is older than the applied 0003_c"):
        pending_migrations([first, second, third], applied(first, third))


def test_a_renamed_file_is_refused(tmp_path: Path) -> None:
    """Same version and content under another name: the database and the files disagree."""
    write(tmp_path, "0001_a.sql")
    (first,) = load_migrations(tmp_path)
    stored = {1: AppliedMigration(1, "0001_old_name", first.checksum)}
    with pytest.raises(InfraError, match="0001_a was changed after it was applied"):
        pending_migrations([first], stored)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://ledger:secret@127.0.0.1:15432/ledger",
            "postgresql://ledger@127.0.0.1:15432/ledger",
        ),
        ("postgresql://ledger@db.example/ledger", "postgresql://ledger@db.example/ledger"),
        ("postgresql://db.example/ledger", "postgresql://db.example/ledger"),
        (
            "postgresql://db.example/ledger?user=ledger&password=secret",
            "postgresql://db.example/ledger?user=ledger&password=%2A%2A%2A",
        ),
        ("postgresql://ledger:p%40ss@[::1]:5432/ledger", "postgresql://ledger@[::1]:5432/ledger"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    """redact_url drops the password from the user part and masks a password parameter."""
    assert redact_url(url) == shown
    assert "secret" not in redact_url(url)
