"""The finality policy is changed by admin operations only, through ``ledger submit``: a witness
key registered, the threshold raised, a transaction final under it, the key revoked and the
threshold lowered again, all on the running stack (which ends as it began: 2 of 3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.cli import assert_one_line_error, run_ledger
from support.ledger_fixture import TestLedger
from support.waiting import eventually_sync

from ledger.signing import Signer

pytestmark = pytest.mark.services

demo_threshold = 2


def admin(ledger: TestLedger, operation: str, *options: str, key: str = "admin") -> Any:
    return run_ledger(
        "submit",
        operation,
        "--key",
        str(ledger.key_file(key)),
        "--json",
        *options,
        env=ledger.passphrase_env,
    )


def sealed(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["status"] == "sealed", document
    return document


def test_only_an_admin_sets_a_policy_someone_can_meet(test_ledger: TestLedger) -> None:
    """alice may not set the policy (UNAUTHORIZED); an admin may not ask for more witnesses
    than are registered, nor for the threshold already in force (INVALID_OPERATION)."""
    line = assert_one_line_error(
        admin(test_ledger, "set-finality", "--threshold", "1", key="alice"), 1
    )
    assert "UNAUTHORIZED" in line, line
    line = assert_one_line_error(admin(test_ledger, "set-finality", "--threshold", "4"), 1)
    assert "INVALID_OPERATION" in line and "registered witnesses" in line, line
    line = assert_one_line_error(
        admin(test_ledger, "set-finality", "--threshold", str(demo_threshold)), 1
    )
    assert "already" in line, line


def test_a_fourth_witness_and_a_threshold_of_three(test_ledger: TestLedger) -> None:
    """Registered as a fourth witness, a key lets the threshold rise to 3; a transfer is then
    final once the three running witnesses co-signed it (the new key never signs). Revoking
    the key leaves 3 witnesses, enough for the threshold, and the threshold goes back to 2."""
    newcomer = Signer.generate()
    sealed(
        admin(
            test_ledger,
            "register-key",
            "--public-key",
            newcomer.public_key.hex(),
            "--role",
            "witness",
        )
    )
    try:
        sealed(admin(test_ledger, "set-finality", "--threshold", "3"))
        transfer = sealed(
            admin(
                test_ledger,
                "transfer",
                "--from",
                "alice",
                "--to",
                "bob",
                "--asset",
                "USD",
                "--amount",
                "1",
                key="alice",
            )
        )
        status = eventually_sync(
            lambda: json.loads(run_ledger("tx", transfer["tx_id"], "--json").stdout),
            lambda document: document.get("final") is True,
            what="the transfer final under 3 of 4",
        )
        assert status["finality_threshold"] == 3
    finally:
        sealed(admin(test_ledger, "revoke-key", "--key-id", newcomer.key_id))
        sealed(admin(test_ledger, "set-finality", "--threshold", str(demo_threshold)))
