"""Reversals on the real stack, through ``ledger submit reverse``: the original's payee undoes
a sealed transfer in full, or in parts until nothing remains; the payer may not, a payee who
spent the money cannot, an unknown tx_id is a one-line error; the projection names the
original's seq in ``analytics.transactions.reverses`` and ``analytics.v_reversals`` links the
two with what moved back. Every test opens its own payer and payee."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.accounts import (
    Party,
    balances_become,
    concurrently,
    new_key,
    open_parties,
    pay_cli,
    projected_transaction,
    query,
    refused_with,
    sealed,
    submit_cli,
    unique,
)
from support.cli import assert_one_line_error
from support.ledger_fixture import LEDGER, TestLedger
from support.waiting import eventually_sync

from ledger.settings import Settings

pytestmark = pytest.mark.services

funding_amount = 1_000
original_amount = 400


@dataclass(frozen=True)
class Paid:
    """A payer funded with ``funding_amount`` that paid ``original_amount`` to a new payee."""

    payer: Party
    payee: Party
    tx_id: str
    seq: int
    external_ref: str


@pytest.fixture
def paid(settings: Settings, test_ledger: TestLedger, tmp_path: Path) -> Paid:
    payer, payee = open_parties(
        settings, test_ledger, tmp_path, {"reverse-payer": funding_amount, "reverse-payee": 0}
    )
    external_ref = unique("invoice")
    outcome = sealed(
        pay_cli(
            test_ledger, [payer.key_file], payer.account, payee.account, "USD", original_amount,
            "--external-ref", external_ref,
        )
    )  # fmt: skip
    return Paid(payer, payee, outcome["tx_id"], outcome["seq"], external_ref)


def reverse(
    ledger: TestLedger, key_file: Path, tx_id: str, *postings: str
) -> subprocess.CompletedProcess[str]:
    """``ledger submit reverse TX_ID [--posting ...]`` signed by ``key_file``."""
    options = [option for posting in postings for option in ("--posting", posting)]
    return submit_cli(ledger, "reverse", tx_id, *options, keys=[key_file])


def reversal_rows(settings: Settings, original_tx_id: str) -> list[tuple[str, str, int]]:
    """(reversal tx_id, account, amount) of ``analytics.v_reversals`` for one original."""
    rows = query(
        settings,
        "select reversal_tx_id, account, amount from analytics.v_reversals "
        "where ledger = $1 and original_tx_id = $2 order by reversal_seq, account",
        LEDGER,
        bytes.fromhex(original_tx_id),
    )
    return [(row["reversal_tx_id"].hex(), row["account"], row["amount"]) for row in rows]


def test_a_full_reversal_restores_both_balances(
    settings: Settings, test_ledger: TestLedger, paid: Paid
) -> None:
    """Signed by the payee, ``reverse TX_ID`` moves all of it back; the reversal's row names
    the original's seq in ``reverses`` and v_reversals links the two with per-account amounts."""
    outcome = sealed(reverse(test_ledger, paid.payee.key_file, paid.tx_id))
    balances_become(settings, {paid.payer.account: funding_amount, paid.payee.account: 0})
    row = projected_transaction(settings, outcome["tx_id"])
    assert (row["kind"], row["key_id"]) == ("Reverse", paid.payee.key_id)
    assert row["reverses"] == paid.seq
    [link] = {
        (
            record["reversed_by"],
            record["original_external_ref"],
            record["original_seq"],
        )
        for record in query(
            settings,
            "select * from analytics.v_reversals where ledger = $1 and reversal_tx_id = $2",
            LEDGER,
            bytes.fromhex(outcome["tx_id"]),
        )
    }
    assert link == (paid.payee.key_id, paid.external_ref, paid.seq)
    assert reversal_rows(settings, paid.tx_id) == sorted(
        [
            (outcome["tx_id"], paid.payee.account, -original_amount),
            (outcome["tx_id"], paid.payer.account, original_amount),
        ],
        key=lambda item: item[1],
    )


def test_a_partial_reversal_then_the_rest_then_nothing_more(
    settings: Settings, test_ledger: TestLedger, paid: Paid
) -> None:
    """--posting reverses part (150); no --posting reverses what remains (250); after that a
    reversal, with or without postings, is REVERSAL_EXCEEDS_ORIGINAL. v_reversals shows both."""
    payee_key, part = paid.payee.key_file, 150
    first = sealed(
        reverse(
            test_ledger, payee_key, paid.tx_id,
            f"{paid.payee.account}:USD:-{part}", f"{paid.payer.account}:USD:{part}",
        )
    )  # fmt: skip
    balances_become(
        settings,
        {
            paid.payer.account: funding_amount - original_amount + part,
            paid.payee.account: original_amount - part,
        },
    )
    rest = sealed(reverse(test_ledger, payee_key, paid.tx_id))
    balances_become(settings, {paid.payer.account: funding_amount, paid.payee.account: 0})
    again_in_full, again_in_part = concurrently(
        functools.partial(reverse, test_ledger, payee_key, paid.tx_id),
        functools.partial(
            reverse, test_ledger, payee_key, paid.tx_id,
            f"{paid.payee.account}:USD:-1", f"{paid.payer.account}:USD:1",
        ),
    )  # fmt: skip
    assert "already reversed in full" in refused_with(again_in_full, "REVERSAL_EXCEEDS_ORIGINAL")
    refused_with(again_in_part, "REVERSAL_EXCEEDS_ORIGINAL")
    remaining = original_amount - part
    expected = [
        (first["tx_id"], paid.payee.account, -part),
        (first["tx_id"], paid.payer.account, part),
        (rest["tx_id"], paid.payee.account, -remaining),
        (rest["tx_id"], paid.payer.account, remaining),
    ]
    order = {first["tx_id"]: 0, rest["tx_id"]: 1}
    expected.sort(key=lambda item: (order[item[0]], item[1]))
    eventually_sync(
        lambda: reversal_rows(settings, paid.tx_id),
        lambda rows: rows == expected,
        what="both partial reversals in v_reversals",
    )


def test_the_payer_may_not_reverse(settings: Settings, test_ledger: TestLedger, paid: Paid) -> None:
    """A reversal debits the original's payee, so the payer's key is UNAUTHORIZED."""
    line = refused_with(reverse(test_ledger, paid.payer.key_file, paid.tx_id), "UNAUTHORIZED")
    assert paid.payee.account in line, line


def test_a_payee_who_spent_the_money_cannot_reverse_it_all(
    settings: Settings, test_ledger: TestLedger, paid: Paid
) -> None:
    """The payee passes 300 of the 400 on: reversing it all is INSUFFICIENT_FUNDS, reversing
    the 100 it still has is sealed."""
    payee = paid.payee
    sealed(pay_cli(test_ledger, [payee.key_file], payee.account, paid.payer.account, "USD", 300))
    refused_with(reverse(test_ledger, payee.key_file, paid.tx_id), "INSUFFICIENT_FUNDS")
    sealed(
        reverse(
            test_ledger, payee.key_file, paid.tx_id,
            f"{payee.account}:USD:-100", f"{paid.payer.account}:USD:100",
        )
    )  # fmt: skip
    balances_become(settings, {paid.payer.account: funding_amount, payee.account: 0})


def test_an_unknown_tx_id_is_a_one_line_error(test_ledger: TestLedger, tmp_path: Path) -> None:
    """A tx_id PostgreSQL never sees is an error after the projection wait (10 s), exit 1,
    nothing published; a TX_ID that is not 32 hex digits is a usage error (exit 2)."""
    key_file, _ = new_key(test_ledger, tmp_path, unique("unregistered"))
    unknown = os.urandom(16).hex()
    unknown_result, malformed_result = concurrently(
        functools.partial(reverse, test_ledger, key_file, unknown),
        functools.partial(reverse, test_ledger, key_file, "abcd"),
    )
    line = assert_one_line_error(unknown_result, 1)
    assert f"transaction {unknown} is not sealed in ledger 'main'" in line, line
    assert unknown_result.stdout == ""
    assert "TX_ID must be 32 hex digits, got 4" in assert_one_line_error(malformed_result, 2)
