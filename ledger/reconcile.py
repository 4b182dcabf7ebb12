"""Matching a payment system's statement against the ledger: pure, so it is tested in isolation.

A statement line says "reference R moved AMOUNT on ACCOUNT". The ledger's side of the same fact
is the sum of the postings on ACCOUNT of the sealed transactions whose ``external_ref`` is R.
Each (reference, account) pair ends up in exactly one bucket of the report.

A transaction with confidential fields carries its reference encrypted: only a recipient reads
it. A party reconciling with its key decrypts the confidential transactions encrypted to it
(``opened_entries``) and matches their references like the others; one that does not open is
reported ``unreadable``, never silently left out.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from ledger import codec
from ledger.confidential import open_confidential
from ledger.errors import ConfidentialError, ConfigError, DecodeError
from ledger.signing import Signer

statement_lines_max_count = 1_000_000
"""A statement bigger than this is a bulk export, not a reconciliation run: split it by day."""

REQUIRED_COLUMNS = ("external_ref", "account", "amount")


@dataclass(frozen=True, slots=True)
class StatementLine:
    line_number: int
    external_ref: str
    account: str
    amount: int
    asset: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One posting of a sealed transaction that carries an external reference."""

    external_ref: str
    account: str
    asset: str
    amount: int
    seq: int
    height: int


@dataclass(frozen=True, slots=True)
class ConfidentialCandidate:
    """A sealed transaction encrypted to the reconciling key, with its postings (account, asset,
    amount) on the statement's accounts."""

    seq: int
    height: int
    envelope: bytes
    postings: tuple[tuple[str, str, int], ...]


@dataclass
class Report:
    matched: list[dict[str, object]] = field(default_factory=list)
    amount_mismatch: list[dict[str, object]] = field(default_factory=list)
    missing_in_ledger: list[dict[str, object]] = field(default_factory=list)
    missing_in_statement: list[dict[str, object]] = field(default_factory=list)
    duplicate_in_statement: list[dict[str, object]] = field(default_factory=list)
    unreadable: list[dict[str, object]] = field(default_factory=list)
    """Confidential transactions encrypted to the reconciling key that do not open."""

    @property
    def clean(self) -> bool:
        return not (
            self.amount_mismatch
            or self.missing_in_ledger
            or self.missing_in_statement
            or self.duplicate_in_statement
            or self.unreadable
        )

    def counts(self) -> dict[str, int]:
        return {name: len(items) for name, items in self.as_dict().items()}

    def as_dict(self) -> dict[str, list[dict[str, object]]]:
        return {
            "matched": self.matched,
            "amount_mismatch": self.amount_mismatch,
            "missing_in_ledger": self.missing_in_ledger,
            "missing_in_statement": self.missing_in_statement,
            "duplicate_in_statement": self.duplicate_in_statement,
            "unreadable": self.unreadable,
        }


def parse_statement(text: str) -> list[StatementLine]:
    """CSV with a header naming at least external_ref, account and amount (integer minor units,
    negative for debits); an optional asset column is checked too. ConfigError names the line."""
    reader = csv.DictReader(io.StringIO(text))
    columns = tuple(reader.fieldnames or ())
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ConfigError(
            f"statement header lacks column(s) {', '.join(missing)}: got {list(columns)}"
        )
    lines: list[StatementLine] = []
    for row in reader:
        number = reader.line_num
        if len(lines) >= statement_lines_max_count:
            raise ConfigError(
                f"statement has more than {statement_lines_max_count} lines: split it"
            )
        try:
            amount = int(row["amount"])
        except (TypeError, ValueError):
            raise ConfigError(
                f"statement line {number}: amount {row['amount']!r} is not an integer"
            ) from None
        reference, account = (row["external_ref"] or "").strip(), (row["account"] or "").strip()
        if not reference or not account:
            raise ConfigError(f"statement line {number}: external_ref and account are required")
        asset = (row.get("asset") or "").strip() or None
        lines.append(StatementLine(number, reference, account, amount, asset))
    return lines


def opened_entries(
    candidates: Iterable[ConfidentialCandidate], signer: Signer, references: Collection[str] | None
) -> tuple[list[LedgerEntry], list[dict[str, object]]]:
    """The ledger entries of ``candidates`` once ``signer`` decrypted their references: those
    in ``references``, or, when None (a period is reconciled), every one that has a reference;
    and the candidates that did not open, each with the reason (the ``unreadable`` bucket)."""
    entries: list[LedgerEntry] = []
    unreadable: list[dict[str, object]] = []
    for candidate in candidates:
        try:
            _, body = codec.decode_submission(candidate.envelope, checked=True)
            external_ref = open_confidential(body, signer).external_ref
        except (ConfidentialError, DecodeError) as exc:
            unreadable.append(
                {"seq": candidate.seq, "height": candidate.height, "reason": str(exc)}
            )
            continue
        if external_ref is None or (references is not None and external_ref not in references):
            continue
        entries += [
            LedgerEntry(external_ref, account, asset, amount, candidate.seq, candidate.height)
            for account, asset, amount in candidate.postings
        ]
    return entries, unreadable


def reconcile(
    lines: Sequence[StatementLine],
    entries: Iterable[LedgerEntry],
    *,
    report_unexpected: bool,
    unreadable: Sequence[dict[str, object]] = (),
) -> Report:
    """Sort every (reference, account) pair into one bucket.

    ``entries`` must hold the ledger postings of every reference in ``lines``, and, when
    ``report_unexpected``, every posting with a reference in the period the statement covers:
    those without a statement line are reported as missing_in_statement. ``unreadable``: what
    ``opened_entries`` could not open, reported as it is.
    """
    ledger_side: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        ledger_side[(entry.external_ref, entry.account)].append(entry)
    report = Report(unreadable=list(unreadable))
    seen: set[tuple[str, str]] = set()
    for line in lines:
        key = (line.external_ref, line.account)
        described: dict[str, object] = {
            "line": line.line_number,
            "external_ref": line.external_ref,
            "account": line.account,
            "statement_amount": line.amount,
        }
        if key in seen:
            report.duplicate_in_statement.append(described)
            continue
        seen.add(key)
        postings = ledger_side.get(key)
        if not postings:
            report.missing_in_ledger.append(described)
            continue
        ledger_amount = sum(posting.amount for posting in postings)
        assets = {posting.asset for posting in postings}
        described |= {
            "ledger_amount": ledger_amount,
            "asset": ",".join(sorted(assets)),
            "seqs": [posting.seq for posting in postings],
            "heights": sorted({posting.height for posting in postings}),
        }
        asset_differs = line.asset is not None and assets != {line.asset}
        if ledger_amount == line.amount and not asset_differs:
            report.matched.append(described)
        else:
            report.amount_mismatch.append(described)
    if report_unexpected:
        for key, postings in sorted(ledger_side.items()):
            if key not in seen:
                report.missing_in_statement.append(
                    {
                        "external_ref": key[0],
                        "account": key[1],
                        "ledger_amount": sum(posting.amount for posting in postings),
                        "seqs": [posting.seq for posting in postings],
                    }
                )
    return report
