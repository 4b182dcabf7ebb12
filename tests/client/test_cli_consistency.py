"""``ledger consistency`` and ``ledger verify-consistency`` through subprocesses, on the live
chain: an auditor holding only an old head's hash checks offline that today's chain extends it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_ledger, submit_transfer
from support.ledger_fixture import TestLedger

pytestmark = pytest.mark.services


def _newest_height() -> int:
    """The newest height, as verify-chain reports it."""
    return int(json.loads(run_ledger("verify-chain", "--json").stdout)["height"])


@pytest.fixture(scope="module", autouse=True)
def blocks(test_ledger: TestLedger) -> None:
    """A few blocks past genesis, whatever ran before: each submit waits for its own block."""
    for _ in range(4):
        outcome = submit_transfer(test_ledger)
        assert outcome["status"] == "sealed", outcome


def test_random_heights_are_consistent_and_a_wrong_head_is_not(
    test_ledger: TestLedger, tmp_path: Path
) -> None:
    """Between random earlier and later heights the proof verifies with the sealer key, and
    starts at the hash verify-chain gave for the old height; another old hash is a rewrite."""
    newest = _newest_height()
    assert newest >= 2
    sealer = test_ledger.sealer_public_key.hex()
    rng = random.Random(9162)
    for _ in range(3):
        old = rng.randrange(0, newest - 1)
        new = rng.randrange(old + 1, newest + 1)
        path = tmp_path / f"consistency-{old}-{new}.json"
        made = run_ledger(
            "consistency", "--from-height", str(old), "--to-height", str(new), "--out", str(path)
        )
        assert made.returncode == 0, made.stderr
        checked = run_ledger("verify-consistency", str(path), "--sealer-key", sealer, "--json")
        assert checked.returncode == 0, checked.stderr
        summary = json.loads(checked.stdout)
        assert (summary["old_height"], summary["new_height"]) == (old, new)
        kept = summary["old_hash"]
        again = run_ledger(
            "verify-consistency", str(path), "--sealer-key", sealer, "--old-hash", kept
        )
        assert again.returncode == 0, again.stderr
        other = "ab" * 32
        result = run_ledger(
            "verify-consistency", str(path), "--sealer-key", sealer, "--old-hash", other
        )
        assert "a rewrite" in assert_one_line_error(result, 1)


def test_a_changed_byte_fails(test_ledger: TestLedger, tmp_path: Path) -> None:
    """One changed hex character in either header, seal or path: exit 1."""
    path = tmp_path / "consistency.json"
    assert run_ledger("consistency", "--from-height", "1", "--out", str(path)).returncode == 0
    document = json.loads(path.read_text())
    sealer = test_ledger.sealer_public_key.hex()
    targets = [("old", "seal"), ("new", "blocks_root"), ("old", "prev_hash")]
    targets += [(key, 0) for key in ("consistency", "old_inclusion") if document[key]]
    for section, field in targets:
        changed = json.loads(json.dumps(document))
        value = changed[section][field]
        changed[section][field] = ("1" if value[5] == "0" else "0").join([value[:5], value[6:]])
        target = tmp_path / "changed.json"
        target.write_text(json.dumps(changed))
        result = run_ledger("verify-consistency", str(target), "--sealer-key", sealer)
        assert_one_line_error(result, 1)


def test_heights_that_cannot_be_proved_are_one_line(test_ledger: TestLedger) -> None:
    """A later height beyond the chain, or an old height not below the new one: exit 1."""
    newest = _newest_height()
    beyond = run_ledger("consistency", "--from-height", "0", "--to-height", str(newest + 1000))
    assert "no block" in assert_one_line_error(beyond, 1)
    same = run_ledger("consistency", "--from-height", "2", "--to-height", "2")
    assert "not later" in assert_one_line_error(same, 1)
