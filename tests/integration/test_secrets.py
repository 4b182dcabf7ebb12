"""Secrets stay secret (issue 13): no passphrase, password or private key in a process's command
line, in any log of the running stack, in an error the CLI prints, or in the settings' repr.

The secrets looked for are the running stack's own: the sealer's and the witnesses' passphrases,
PostgreSQL's password, the demo keys' passphrase, and the raw and PEM forms of the sealer's and
the witnesses' private keys."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from support.cli import assert_one_line_error, run_ledger
from support.ledger_fixture import TestLedger

from ledger.settings import Settings

pytestmark = pytest.mark.services

PEM_MARKERS = ("PRIVATE KEY-----",)


def secrets(settings: Settings, test_ledger: TestLedger) -> dict[str, str]:
    """What must never show: name -> the text itself."""
    found = {
        "sealer passphrase": settings.sealer_passphrase.decode(),
        "witness passphrase": settings.witness_passphrase.decode(),
        "demo key passphrase": f"={test_ledger.passphrase}",  # as an assignment: "demo" is a word
    }
    password = urlsplit(settings.database_url).password
    if password:
        found["PostgreSQL password"] = f":{password}@"
    key_files = {"sealer": (settings.sealer_key_file, settings.sealer_passphrase)}
    for path in sorted((settings.data_dir / "keys").glob("witness-*.key")):
        key_files[path.stem] = (path, settings.witness_passphrase)
    for name, (path, passphrase) in key_files.items():
        found[f"{name} private key"] = raw_private_key(path, passphrase).hex()
    return found


def raw_private_key(path: Path, passphrase: bytes) -> bytes:
    key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def stack_pids() -> Iterator[tuple[str, int]]:
    result = run_ledger("status", "--json")
    assert result.returncode == 0, result.stderr
    for name, entry in json.loads(result.stdout).items():
        if entry.get("pid"):
            yield name, int(entry["pid"])


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""  # it exited meanwhile: nothing to leak


def log_files(settings: Settings) -> list[Path]:
    data = settings.data_dir
    return sorted(
        path
        for pattern in ("workers/*.log", "postgres/*.log", "kafka/cluster/*/*.log", "**/*.log")
        for path in data.glob(pattern)
        if path.is_file()
    )


def leaks(text: str, secrets_by_name: dict[str, str]) -> list[str]:
    named = [name for name, secret in secrets_by_name.items() if secret and secret in text]
    return named + [marker for marker in PEM_MARKERS if marker in text]


def test_no_secret_on_any_command_line(settings: Settings, test_ledger: TestLedger) -> None:
    """Every process of the stack, and every child PostgreSQL and Kafka run: their arguments
    carry file names and ports, never a passphrase or password (environment variables, 0600
    files and key files carry those)."""
    known = secrets(settings, test_ledger)
    checked = 0
    for name, pid in stack_pids():
        line = command_line(pid)
        assert not leaks(line, known), (name, leaks(line, known))
        checked += 1
    for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        line = command_line(pid)
        if "postgres" in line or "kafka" in line or "streams." in line:
            assert not leaks(line, known), (pid, line[:200], leaks(line, known))
    assert checked >= 5


def test_no_secret_in_any_log(settings: Settings, test_ledger: TestLedger) -> None:
    """The workers', PostgreSQL's and Kafka's logs, after the rest of the suite wrote to them."""
    known = secrets(settings, test_ledger)
    files = log_files(settings)
    assert any(path.parent.name == "workers" for path in files)
    for path in files:
        text = path.read_text(errors="replace")
        assert not leaks(text, known), (str(path), leaks(text, known))


def test_cli_errors_do_not_repeat_a_secret(settings: Settings, test_ledger: TestLedger) -> None:
    """A wrong passphrase, an unreachable or refusing database with a password in its URL: the
    one-line error says what failed, never the secret itself."""
    wrong = "Wr0ng-passphrase-4711"
    key_info = run_ledger(
        "key-info", str(test_ledger.key_file("alice")), env={"LEDGER_KEY_PASSPHRASE": wrong}
    )
    assert wrong not in assert_one_line_error(key_info, 4) + key_info.stdout
    submit = run_ledger(
        "submit", "transfer", "--key", str(test_ledger.key_file("alice")), "--from", "alice",
        "--to", "bob", "--asset", "USD", "--amount", "1", env={"LEDGER_KEY_PASSPHRASE": wrong},
    )  # fmt: skip
    assert wrong not in assert_one_line_error(submit, 4) + submit.stdout
    password = "S3cret-db-pw-0815"
    for port in (1, settings.postgres_port):  # refused, then authentication failed
        url = f"postgresql://ledger:{password}@127.0.0.1:{port}/ledger"
        result = run_ledger("balance", "alice", env={"LEDGER_DATABASE_URL": url})
        line = assert_one_line_error(result, 3)
        assert password not in line + result.stdout, line
    sealer = run_ledger("rotate-sealer", env={"LEDGER_SEALER_PASSPHRASE": wrong})
    assert wrong not in assert_one_line_error(sealer, 4)


def test_the_settings_repr_shows_no_secret() -> None:
    """Settings may end up in a log line or a traceback: its repr leaves the secrets out."""
    settings = Settings.from_env()
    text = repr(settings)
    assert settings.sealer_passphrase.decode() not in text
    assert settings.witness_passphrase.decode() not in text
    assert settings.database_url not in text and not re.search(r"://[^/]*:[^/]*@", text)
