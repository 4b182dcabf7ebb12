"""Statement reconciliation sorts every (reference, account) pair into exactly one bucket."""

from __future__ import annotations

import dataclasses

import pytest

from ledger import codec
from ledger.confidential import make_confidential
from ledger.errors import ConfigError
from ledger.model import Posting, Transfer
from ledger.reconcile import (
    ConfidentialCandidate,
    LedgerEntry,
    opened_entries,
    parse_statement,
    reconcile,
)
from ledger.signing import Signer, build_tx_body

STATEMENT = """external_ref,account,amount,asset
INV-1,alice,-100,USD
INV-2,alice,-50,USD
INV-3,alice,-10,USD
INV-1,alice,-100,USD
INV-5,alice,-5,EUR
"""


def entry(reference: str, amount: int, seq: int, asset: str = "USD") -> LedgerEntry:
    return LedgerEntry(reference, "alice", asset, amount, seq, seq // 10)


def test_each_pair_lands_in_one_bucket() -> None:
    """Matched, wrong amount, missing on either side, duplicate line, and wrong asset."""
    lines = parse_statement(STATEMENT)
    entries = [
        entry("INV-1", -100, 10),
        entry("INV-2", -40, 11),
        entry("INV-4", -7, 12),
        entry("INV-5", -5, 13),
    ]
    report = reconcile(lines, entries, report_unexpected=True)
    assert [item["external_ref"] for item in report.matched] == ["INV-1"]
    assert [item["external_ref"] for item in report.amount_mismatch] == ["INV-2", "INV-5"]
    assert [item["external_ref"] for item in report.missing_in_ledger] == ["INV-3"]
    assert [item["external_ref"] for item in report.missing_in_statement] == ["INV-4"]
    assert [item["line"] for item in report.duplicate_in_statement] == [5]
    assert not report.clean
    assert sum(report.counts().values()) == 6


def test_split_postings_of_one_reference_are_summed() -> None:
    """Two transactions with the same reference on one account match a line with their sum."""
    lines = parse_statement("external_ref,account,amount\nBATCH-9,alice,-30\n")
    report = reconcile(
        lines, [entry("BATCH-9", -10, 1), entry("BATCH-9", -20, 2)], report_unexpected=False
    )
    assert report.clean and report.matched[0]["seqs"] == [1, 2]


def test_unexpected_entries_only_when_asked() -> None:
    """Without a period, ledger entries the statement does not mention are not reported."""
    lines = parse_statement("external_ref,account,amount\nA,alice,1\n")
    report = reconcile(lines, [entry("A", 1, 1), entry("B", 2, 2)], report_unexpected=False)
    assert report.clean


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ref,account,amount\nA,alice,1\n", "lacks column(s) external_ref"),
        ("external_ref,account,amount\nA,alice,ten\n", "line 2: amount 'ten'"),
        ("external_ref,account,amount\n,alice,1\n", "line 2: external_ref and account"),
    ],
)
def test_bad_statements_name_the_problem(text: str, words: str) -> None:
    """A statement that cannot be read says which column or line is wrong."""
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_statement(text)


ALICE, BOB, MALLORY = (Signer.generate() for _ in range(3))


def candidate(seq: int, reference: str | None, recipients: list[Signer]) -> ConfidentialCandidate:
    """A sealed transfer alice -> bob whose reference is encrypted to ``recipients``."""
    op = Transfer((Posting("alice", "USD", -seq), Posting("bob", "USD", seq)))
    body = build_tx_body("main", op, memo="m", external_ref=reference)
    sealed = make_confidential(body, [signer.public_key for signer in recipients])
    return ConfidentialCandidate(seq, seq // 10, ALICE.sign(sealed), (("alice", "USD", -seq),))


def test_a_key_holder_matches_confidential_references() -> None:
    """Bob's key reads the references encrypted to him: a statement line matches one, another
    line is missing; with a period every readable reference counts."""
    candidates = [
        candidate(20, "INV-20", [ALICE, BOB]),
        candidate(21, "INV-21", [ALICE, BOB]),
        candidate(22, None, [ALICE, BOB]),
    ]
    entries, unreadable = opened_entries(candidates, BOB, {"INV-20", "INV-9"})
    assert entries == [LedgerEntry("INV-20", "alice", "USD", -20, 20, 2)] and unreadable == []
    lines = parse_statement("external_ref,account,amount\nINV-20,alice,-20\nINV-9,alice,-9\n")
    report = reconcile(lines, entries, report_unexpected=False)
    assert [item["external_ref"] for item in report.matched] == ["INV-20"]
    assert [item["external_ref"] for item in report.missing_in_ledger] == ["INV-9"]
    in_period, _ = opened_entries(candidates, BOB, None)
    assert [entry.external_ref for entry in in_period] == ["INV-20", "INV-21"]


def test_a_transaction_that_does_not_open_is_reported_unreadable() -> None:
    """A candidate whose ciphertext was altered, or that names the key without opening for it,
    lands in unreadable with its seq and reason, and the report is not clean."""
    good = candidate(30, "INV-30", [ALICE, BOB])
    _, body = codec.decode_submission(candidate(31, "INV-31", [ALICE, BOB]).envelope)
    assert body.confidential is not None
    broken = dataclasses.replace(
        body,
        confidential=dataclasses.replace(body.confidential, ciphertext=bytes(64)),
    )
    altered = ConfidentialCandidate(31, 3, ALICE.sign(broken), (("alice", "USD", -31),))
    not_for_mallory = candidate(32, "INV-32", [ALICE, BOB])
    entries, unreadable = opened_entries([good, altered], BOB, None)
    assert [entry.seq for entry in entries] == [30]
    assert [(item["seq"], "ciphertext" in str(item["reason"])) for item in unreadable] == [
        (31, True)
    ]
    report = reconcile([], entries, report_unexpected=True, unreadable=unreadable)
    assert not report.clean and report.counts()["unreadable"] == 1
    _, refused = opened_entries([not_for_mallory], MALLORY, None)
    assert "not a recipient" in str(refused[0]["reason"])
