"""``ledger rotate-sealer`` on the real stack: the sealer of ledger main is handed to a new key
while everything runs. The next block is sealed by the successor, the chain verifies from
genesis under the first sealer, proofs from before and after the rotation verify offline under
either key, the witnesses keep co-signing (transactions become final), and a sequencer restarted
after the rotation picks the successor from its keyring.

This rotates the shared ledger's sealer for the tests that follow; they trust block 0's sealer
and follow rotations, as every reader must."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support.cli import run_ledger, submit_transfer
from support.ledger_fixture import TestLedger
from support.waiting import eventually_sync

from ledger import signing
from ledger.sealer_keys import successor_key_file
from ledger.settings import Settings

pytestmark = pytest.mark.services

SEQUENCER = "sequence"


def _pay(test_ledger: TestLedger) -> dict[str, Any]:
    outcome = submit_transfer(test_ledger)
    assert outcome["status"] == "sealed", outcome
    return outcome


def _sealer_of(settings: Settings, height: int) -> bytes:
    async def query() -> bytes | None:
        connection = await asyncpg.connect(settings.database_url)
        try:
            value = await connection.fetchval(
                "SELECT sealer_key FROM ledger.blocks WHERE ledger = 'main' AND height = $1",
                height,
            )
        finally:
            await connection.close()
        return None if value is None else bytes(value)

    key = eventually_sync(
        lambda: asyncio.run(query()), lambda key: key is not None, what=f"block {height} projected"
    )
    assert key is not None
    return key


def _proof(tx_id: str, path: Path) -> Path:
    result = run_ledger("proof", tx_id, "--out", str(path))
    assert result.returncode == 0, result.stderr
    return path


def _verifies(proof: Path, sealer: bytes) -> dict[str, object]:
    result = run_ledger("verify-proof", str(proof), "--sealer-key", sealer.hex(), "--json")
    assert result.returncode == 0, result.stderr
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def test_the_sealer_is_rotated_without_downtime(
    settings: Settings, test_ledger: TestLedger, tmp_path: Path
) -> None:
    before = _pay(test_ledger)
    rotated = run_ledger("rotate-sealer", "--ledger", "main", "--json")
    assert rotated.returncode == 0, rotated.stderr
    rotation = json.loads(rotated.stdout)
    assert rotation["status"] == "sealed", rotation
    rotation_height = int(rotation["height"])
    old_sealer = _sealer_of(settings, rotation_height)

    after = _pay(test_ledger)
    assert int(after["height"]) > rotation_height
    successor = _sealer_of(settings, int(after["height"]))
    assert successor != old_sealer
    key_file = successor_key_file(settings.sealer_key_file, successor)
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert signing.load_private_key(key_file, settings.sealer_passphrase).public_key == successor

    chain = run_ledger(
        "verify-chain", "--sealer-key", test_ledger.sealer_public_key.hex(), "--json"
    )
    assert chain.returncode == 0, chain.stderr
    report = json.loads(chain.stdout)
    assert report["sealer_key"] == successor.hex() and report["rotation_count"] >= 1
    assert report["last_rotation_height"] == rotation_height

    # A proof needs a later block: one more payment anchors both.
    _pay(test_ledger)
    for outcome in (before, after):
        proof = _proof(str(outcome["tx_id"]), tmp_path / f"{outcome['tx_id']}.json")
        for trusted in (test_ledger.sealer_public_key, old_sealer, successor):
            summary = _verifies(proof, trusted)
            assert summary["height"] == outcome["height"], summary

    # The witnesses replayed the rotation and co-sign blocks sealed by the successor.
    final = run_ledger("proof", str(after["tx_id"]), "--final", "--out", str(tmp_path / "f.json"))
    assert final.returncode == 0, final.stderr


def test_a_sequencer_restarted_after_a_rotation_seals_with_the_successor(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """Stop and start the sequencer: it replays (or restores a snapshot) across the rotation,
    takes the successor's key from its keyring, and the next block is sealed by it."""
    rotated = run_ledger("rotate-sealer", "--ledger", "main", "--json")
    assert rotated.returncode == 0, rotated.stderr
    successor = _sealer_of(settings, int(_pay(test_ledger)["height"]))
    assert run_ledger("stop", SEQUENCER, "--reason", "rotation test").returncode == 0
    started = run_ledger("start", SEQUENCER)
    assert started.returncode == 0, started.stderr
    assert _sealer_of(settings, int(_pay(test_ledger)["height"])) == successor
