"""Statement reconciliation sorts every (reference, account) pair into exactly one bucket."""

from __future__ import annotations

import pytest

from ledger.errors import ConfigError
from ledger.reconcile import LedgerEntry, parse_statement, reconcile

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
