"""The explorer's input: every parameter of a request parsed, bounded and checked, or a
``Refusal`` saying in one line what was wrong (the handlers answer it as a 4xx)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger import signing
from ledger.errors import LedgerError
from streams.dashboard import explorer_queries as queries
from streams.dashboard.explorer_search import HEIGHT, TX_ID

displayed_input_chars_max = 40
"""Bad input is quoted back in the error, cut to this length."""

LIMIT = re.compile(r"[0-9]{1,6}")
CURSOR = re.compile(r"([0-9]{1,19})\.([0-9]{1,5})")
posting_index_max = 2**15 - 1
"""ledger.postings.posting_index is a smallint."""


class Refusal(LedgerError):
    """A request answered with a 4xx (or 503): bad input, nothing by that name, or busy."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def shown(text: str) -> str:
    """Input quoted back in an error, cut to ``displayed_input_chars_max``."""
    return repr(
        text if len(text) <= displayed_input_chars_max else text[:displayed_input_chars_max] + "..."
    )


def ledger_name(text: str, shards: Sequence[str]) -> str:
    if text not in shards:
        raise Refusal(404, f"no ledger {shown(text)} here (ledgers: {', '.join(shards)})")
    return text


def height(text: str, what: str = "height") -> int:
    if HEIGHT.fullmatch(text) is None or int(text) > queries.height_max:
        raise Refusal(
            400, f"{what} must be a whole number from 0 to {queries.height_max}, got {shown(text)}"
        )
    return int(text)


def tx_id(text: str) -> bytes:
    lowered = text.lower()
    if TX_ID.fullmatch(lowered) is None:
        raise Refusal(400, f"a tx_id is {2 * signing.tx_id_bytes} hex digits, got {shown(text)}")
    return bytes.fromhex(lowered)


def limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    """The ``limit`` parameter: rows of one answer."""
    text = query.get("limit")
    if text is None:
        return default
    if LIMIT.fullmatch(text) is None or not 1 <= int(text) <= maximum:
        raise Refusal(400, f"limit must be a whole number from 1 to {maximum}, got {shown(text)}")
    return int(text)


def cursor(text: str, what: str) -> tuple[int, int]:
    found = CURSOR.fullmatch(text)
    if found is None or int(found[1]) > queries.seq_max or int(found[2]) > posting_index_max:
        raise Refusal(
            400, f"{what} must be a statement cursor seq.posting_index, got {shown(text)}"
        )
    return int(found[1]), int(found[2])


@dataclass(frozen=True)
class StatementPage:
    """Which page of a statement: postings newer than the cursor (``after``) or older than it
    (``before``, or from the newest when no cursor is given)."""

    newer: bool
    seq: int
    posting_index: int
    limit: int
    from_cursor: bool


def statement_page(query: Mapping[str, str]) -> StatementPage:
    before_text, after_text = query.get("before"), query.get("after")
    if before_text is not None and after_text is not None:
        raise Refusal(400, "give before or after, not both")
    rows = limit(query, queries.page_rows_default, queries.page_rows_max)
    if after_text is not None:
        return StatementPage(True, *cursor(after_text, "after"), rows, True)
    if before_text is not None:
        return StatementPage(False, *cursor(before_text, "before"), rows, True)
    return StatementPage(False, queries.seq_max, posting_index_max, rows, False)
