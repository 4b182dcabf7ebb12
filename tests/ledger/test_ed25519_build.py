"""The compiled Ed25519 checks (ledger.ed25519) are used only while they match their sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import ed25519


def _status_in_fresh_interpreter(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "from ledger import ed25519; print(ed25519.status())"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return result.stdout.strip()


def test_ledger_native_0_checks_with_libsodium() -> None:
    assert _status_in_fresh_interpreter(LEDGER_NATIVE="0") == (
        "libsodium: compiled checks turned off (LEDGER_NATIVE=0)"
    )


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "manifest.json"
    monkeypatch.setattr(ed25519, "MANIFEST", path)
    path.write_text(json.dumps(ed25519.expected_manifest()))
    return path


def test_a_current_build_is_loaded(manifest: Path) -> None:
    batch, status = ed25519._load()
    assert batch is not None, status


def test_an_edited_crate_is_not_shadowed_by_its_old_build(manifest: Path) -> None:
    stale = ed25519.expected_manifest()
    stale["sources"] = {**stale["sources"], "src/lib.rs": "0" * 64}  # type: ignore[dict-item]
    manifest.write_text(json.dumps(stale))
    assert ed25519._load() == (
        None,
        "libsodium: compiled checks are stale (make install rebuilds them)",
    )


def test_a_missing_or_damaged_manifest_means_libsodium(manifest: Path) -> None:
    manifest.write_text("{not json")
    batch, status = ed25519._load()
    assert batch is None and status.startswith("libsodium: unreadable manifest")
    manifest.unlink()
    assert ed25519._load() == (
        None,
        "libsodium: compiled checks not built (make install builds them)",
    )


def test_libsodium_gives_the_verdicts_without_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    body = b"body"
    good = (bytes(key.verify_key), key.sign(b"p" + body).signature, body)
    bad = (good[0], bytes(64), body)
    monkeypatch.setattr(ed25519, "_batch", None)
    assert ed25519.verify_all([good, bad, (b"short", good[1], body)], b"p") == [True, False, False]
