"""The explorer's search: everything one query names exactly, through one index probe per kind
of name, each with a LIMIT (``explorer_queries``)."""

from __future__ import annotations

import re
from typing import Any

from ledger import limits
from streams.dashboard import explorer_queries as queries
from streams.dashboard.explorer_json import route

HEIGHT = re.compile(r"[0-9]{1,19}")
TX_ID = re.compile(r"[0-9a-f]{32}")
BLOCK_HASH = re.compile(r"[0-9a-f]{64}")


def _match(kind: str, ledger: str | None, label: str, route: str) -> dict[str, str]:
    return {"kind": kind, "ledger": ledger or "", "label": label, "route": route}


async def _by_hex(connection: Any, hex_text: str, shards: list[str]) -> list[dict[str, str]]:
    """A tx_id (sealed or refused) or a block hash."""
    most = queries.search_matches_max_count + 1  # one more says the list was cut
    matches = []
    if TX_ID.fullmatch(hex_text):
        tx_id, tx_route = bytes.fromhex(hex_text), route("tx", hex_text)
        for row in await connection.fetch(queries.SEARCH_TX_ID, tx_id, most):
            label = f"transaction {hex_text}: {row['kind']} in block {row['height']}"
            matches.append(_match("transaction", row["ledger"], label, tx_route))
        for row in await connection.fetch(queries.SEARCH_REJECTED_TX_ID, tx_id, most):
            label = f"transaction {hex_text}: refused, {row['code']} ({row['stage']})"
            matches.append(_match("rejection", row["ledger"], label, tx_route))
    if BLOCK_HASH.fullmatch(hex_text):
        for row in await connection.fetch(
            queries.SEARCH_BLOCK_HASH, bytes.fromhex(hex_text), shards, most
        ):
            block_route = route("block", row["ledger"], row["height"])
            label = f"block {row['height']} of {row['ledger']}, by its hash"
            matches.append(_match("block", row["ledger"], label, block_route))
    return matches


async def _by_name(connection: Any, query: str, shards: list[str]) -> list[dict[str, str]]:
    """A height, an account name, an external reference (sealed or refused)."""
    most = queries.search_matches_max_count + 1  # one more says the list was cut
    matches = []
    if HEIGHT.fullmatch(query) and int(query) <= queries.height_max:
        for row in await connection.fetch(queries.SEARCH_HEIGHT, shards, int(query)):
            block_route = route("block", row["ledger"], row["height"])
            label = f"block {row['height']} of {row['ledger']}"
            matches.append(_match("block", row["ledger"], label, block_route))
    if len(query) <= limits.identifier_chars_max:
        for row in await connection.fetch(queries.SEARCH_ACCOUNT, shards, query):
            account_route = route("account", row["ledger"], row["account"])
            label = f"account {row['account']} of {row['ledger']} ({row['asset']}, {row['status']})"
            matches.append(_match("account", row["ledger"], label, account_route))
    if len(query) <= limits.external_ref_chars_max:
        for row in await connection.fetch(queries.SEARCH_EXTERNAL_REF, query, most):
            tx_hex = bytes(row["tx_id"]).hex()
            label = f"external ref {query}: {row['kind']} {tx_hex} in block {row['height']}"
            matches.append(_match("transaction", row["ledger"], label, route("tx", tx_hex)))
        for row in await connection.fetch(queries.SEARCH_REJECTED_EXTERNAL_REF, query, most):
            if row["tx_id"] is not None:
                tx_hex = bytes(row["tx_id"]).hex()
                label = f"external ref {query}: {tx_hex} refused, {row['code']} ({row['stage']})"
                matches.append(_match("rejection", row["ledger"], label, route("tx", tx_hex)))
    return matches


async def find(connection: Any, query: str, shards: list[str]) -> dict[str, Any]:
    """The matches of ``query`` (a tx_id, block hash, height, account name or external
    reference) in ``shards``, one per page they lead to, and whether the list was cut."""
    found = await _by_hex(connection, query.lower().removeprefix("0x"), shards)
    found += await _by_name(connection, query, shards)
    matches: list[dict[str, str]] = []
    routes: set[str] = set()
    for match in found:
        if match["route"] not in routes:  # a tx sealed, and refused when sent again: one page
            routes.add(match["route"])
            matches.append(match)
    most = queries.search_matches_max_count
    return {"query": query, "matches": matches[:most], "truncated": len(matches) > most}
