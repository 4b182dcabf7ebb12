"""Confidential fields on the real stack, through the ``ledger`` command as a user runs it: a
transfer submitted with --confidential-to is sealed and projected with NULL memo and reference
and its recipients; each recipient and the auditor read the memo as it was typed with
``ledger tx --decrypt``, anyone else gets one line; its proof verifies offline and backs a
reveal; ``ledger reconcile --key`` matches by the reference only the key holders can read."""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer
from support.accounts import (
    Party,
    concurrently,
    new_key,
    open_parties,
    pay_cli,
    projected_transaction,
    publish_stages,
    sealed,
    unique,
)
from support.cli import assert_one_line_error, run_ledger, unreachable_services_env
from support.ledger_fixture import TestLedger

from ledger import codec, signing
from ledger.confidential import check_reveal, make_confidential, reveal
from ledger.model import Posting, RegisterKey, Role, Transfer
from ledger.settings import Settings
from ledger.signing import load_private_key

pytestmark = pytest.mark.services

MEMO = "Miete März — «Wohnung 4b», 2 × 650 €"
"""What the payer types: accents, guillemets, a dash and a currency sign, printed back as is."""

amount = 1_300


@dataclass(frozen=True)
class ConfidentialPayment:
    tx_id: str
    height: int
    reference: str
    payer: Party
    payee: Party
    auditor: Path
    auditor_id: str
    stranger: Path


@pytest.fixture(scope="module")
def payment(
    settings: Settings, test_ledger: TestLedger, tmp_path_factory: pytest.TempPathFactory
) -> ConfidentialPayment:
    """Payer pays payee with memo, reference and metadata encrypted to the payee and an auditor
    key (registered with the auditor role); a stranger holds a key of its own."""
    directory = tmp_path_factory.mktemp("confidential")
    payer, payee = open_parties(
        settings, test_ledger, directory, {"secret-payer": 10_000, "secret-payee": 0}
    )
    auditor_file, auditor = new_key(test_ledger, directory, unique("auditor"))
    stranger_file, _ = new_key(test_ledger, directory, unique("stranger"))
    admin = test_ledger.signer("admin")
    publish_stages(
        settings,
        test_ledger,
        [[(admin, RegisterKey(auditor.public_key, (Role.AUDITOR.value,), ()))]],
    )
    reference = unique("INV")
    outcome = sealed(
        pay_cli(
            test_ledger, [payer.key_file], payer.account, payee.account, "USD", amount,
            "--memo", MEMO, "--external-ref", reference, "--meta", "unit=4b",
            "--confidential-to", payee.key_id, "--confidential-to", auditor.key_id,
        )
    )  # fmt: skip
    return ConfidentialPayment(
        outcome["tx_id"],
        outcome["height"],
        reference,
        payer,
        payee,
        auditor_file,
        auditor.key_id,
        stranger_file,
    )


def test_the_transaction_is_projected_without_its_fields(
    settings: Settings, payment: ConfidentialPayment
) -> None:
    """analytics.transactions: memo, external_ref and metadata NULL; confidential_to names the
    payer (the submitting key), the payee and the auditor; the postings are public."""
    row = projected_transaction(settings, payment.tx_id)
    assert (row["memo"], row["external_ref"], row["metadata"]) == (None, None, None)
    assert row["confidential_to"] == [
        payment.payer.key_id,
        payment.payee.key_id,
        payment.auditor_id,
    ]
    envelope, body = codec.decode_submission(bytes(row["envelope"]))
    assert envelope.body_version == 3 and MEMO.encode() not in bytes(row["envelope"])
    assert body.confidential is not None


def _decrypt(test_ledger: TestLedger, tx_id: str, key: Path, *options: str) -> Any:
    return run_ledger(
        "tx", tx_id, "--decrypt", "--key", str(key), *options, env=test_ledger.passphrase_env
    )


def test_each_recipient_reads_the_memo_as_typed(
    test_ledger: TestLedger, payment: ConfidentialPayment
) -> None:
    """``ledger tx TX --decrypt --key FILE`` prints the memo and reference exactly as typed for
    the payer, the payee and the auditor."""
    keys = [payment.payer.key_file, payment.payee.key_file, payment.auditor]
    results = concurrently(
        *(lambda key=key: _decrypt(test_ledger, payment.tx_id, key) for key in keys)
    )
    for result in results:
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert f"memo: {MEMO}" in lines
        assert f"external ref: {payment.reference}" in lines
        assert "metadata (confidential): unit=4b" in lines
        assert any(line.startswith("confidential to: ") for line in lines)
    as_json = _decrypt(test_ledger, payment.tx_id, payment.payee.key_file, "--json")
    document = json.loads(as_json.stdout)
    assert document["confidential"] == {
        "memo": MEMO,
        "external_ref": payment.reference,
        "metadata": {"unit": "4b"},
    }
    assert document["memo"] is None and document["external_ref"] is None


def test_anyone_else_gets_one_line(test_ledger: TestLedger, payment: ConfidentialPayment) -> None:
    """A key the fields are not encrypted to: exit 1, one line naming the key and the tx, no
    traceback, nothing of the memo; --decrypt without --key is a usage error."""
    result = _decrypt(test_ledger, payment.tx_id, payment.stranger)
    line = assert_one_line_error(result, 1)
    assert f"is not a recipient of tx {payment.tx_id}" in line
    assert MEMO not in result.stdout + result.stderr
    usage = run_ledger("tx", payment.tx_id, "--decrypt")
    assert "--decrypt and --key go together" in assert_one_line_error(usage, 2)


def test_its_proof_verifies_offline_and_backs_a_reveal(
    test_ledger: TestLedger, payment: ConfidentialPayment, tmp_path: Path
) -> None:
    """Once a later block is sealed, ``ledger proof`` of the confidential transfer verifies
    with no service reachable; the payee's reveal checks against the proven body with no key."""
    later = pay_cli(
        test_ledger, [payment.payer.key_file], payment.payer.account, payment.payee.account,
        "USD", 1,
    )  # fmt: skip
    assert sealed(later)["height"] > payment.height
    proof_path = tmp_path / "proof.json"
    made = run_ledger("proof", payment.tx_id, "--out", str(proof_path))
    assert made.returncode == 0, made.stderr
    checked = run_ledger(
        "verify-proof", str(proof_path), "--sealer-key", test_ledger.sealer_public_key.hex(),
        "--json", env=unreachable_services_env(), timeout_s=30,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    summary = json.loads(checked.stdout)
    assert (summary["ok"], summary["tx_id"], summary["kind"]) == (True, payment.tx_id, "Transfer")
    envelope, body = codec.decode_submission(
        bytes.fromhex(json.loads(proof_path.read_text())["envelope"])
    )
    signing.verify_envelope(envelope)
    payee = load_private_key(payment.payee.key_file, test_ledger.passphrase.encode())
    assert check_reveal(body, reveal(body, payee)).memo == MEMO


def test_reconcile_matches_the_reference_with_the_key(
    test_ledger: TestLedger, payment: ConfidentialPayment, tmp_path: Path
) -> None:
    """The payee's statement line (its reference, +amount) matches with --key; without a key
    the reference is nowhere to be found (missing_in_ledger)."""
    statement = tmp_path / "statement.csv"
    statement.write_text(
        f"external_ref,account,amount\n{payment.reference},{payment.payee.account},{amount}\n"
    )
    with_key, without_key = concurrently(
        lambda: run_ledger(
            "reconcile",
            str(statement),
            "--key",
            str(payment.payee.key_file),
            "--json",
            env=test_ledger.passphrase_env,
        ),  # fmt: skip
        lambda: run_ledger("reconcile", str(statement), "--json"),
    )
    assert with_key.returncode == 0, with_key.stderr
    report = json.loads(with_key.stdout)
    assert report["clean"] and report["counts"]["matched"] == 1
    [matched] = report["matched"]
    assert matched["external_ref"] == payment.reference and matched["ledger_amount"] == amount
    assert without_key.returncode == 1
    assert json.loads(without_key.stdout)["counts"]["missing_in_ledger"] == 1


def test_an_envelope_file_with_a_malformed_confidential_part_is_refused_before_publishing(
    tmp_path: Path,
) -> None:
    """``ledger submit envelope`` reads the file as the ledger would: a confidential part naming
    a key twice is one line, exit 4, with nothing published (no service is reachable)."""
    author = signing.Signer.generate()
    body = signing.build_tx_body(
        "main", Transfer((Posting("a", "USD", -1), Posting("b", "USD", 1))), memo="m"
    )
    body = make_confidential(body, [author.public_key])
    assert body.confidential is not None
    entry = body.confidential.recipients[0]
    twice = dataclasses.replace(
        body, confidential=dataclasses.replace(body.confidential, recipients=(entry, entry))
    )
    stream = io.BytesIO()  # written past the encoder, which refuses it as the ledger would
    schemaless_writer(stream, codec.TX_BODY_SCHEMA, codec.tx_body_record(twice), strict=True)
    path = tmp_path / "bad.envelope"
    path.write_bytes(codec.encode_envelope(author.sign_body(stream.getvalue(), 3)))
    result = run_ledger("submit", "envelope", str(path), env=unreachable_services_env())
    assert "named twice" in assert_one_line_error(result, 4)
