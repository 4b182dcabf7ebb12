"""The block explorer: the page ``/explorer`` and its JSON endpoints under ``/api/explorer/``.

Endpoints (GET; every answer is JSON, errors are ``{"error": "<one line>"}`` with a 4xx for
bad input or nothing found, 503 when PostgreSQL is unavailable or busy):

- ``blocks[?ledger=L&before=H&limit=N]``: the newest blocks of each ledger (or of L below H);
- ``block/{ledger}/{height}[?from=I&limit=N]``: a block's header, hash, seal, finality,
  cosignatures and a page of its transactions starting at index I;
- ``tx/{tx_id}``: where a transaction is sealed (body decoded, signer, block, final or not)
  and every rejection of its tx_id;
- ``proof/{ledger}/{tx_id}``: its inclusion proof, the JSON ``ledger proof`` writes, as a file;
- ``proof/{ledger}/{tx_id}/check``: that proof checked here by ``ledger.proofs.verify_proof``
  (what ``ledger verify-proof`` runs) against the sealer of block 0 (the proof's ``rotations``
  lead from it to later sealers) and the registered witnesses;
- ``account/{ledger}?account=A[&before=C|&after=C&limit=N]``: balance, held, status, asset and
  a keyset-paged statement (cursors ``seq.posting_index``, newest first);
- ``search?q=Q``: a tx_id, block hash, height, external reference or account name.

Reads go through a pool of read-only sessions (``default_transaction_read_only``, the same
database settings as the dashboard's sources), opened on the first request, so the dashboard
serves its page even while PostgreSQL is down. The explorer reads ``ledger.*`` like the
dashboard does rather than as ``ledger_analyst``: finality policies are not in ``analytics``,
and proofs come from ``ledger.client.proof_source``, which reads ``ledger.*`` for ``ledger
proof``. A transaction in the newest projected block has no proof yet (409): the explorer does
not fall back to scanning the chain in Kafka as ``ledger proof`` does, since that scan is as long
as the chain, so it needs no Kafka at all.

This module is the HTTP edge; ``explorer_input`` parses parameters, ``explorer_queries`` holds
the SQL and its limits, ``explorer_json`` turns rows into answers, ``explorer_search`` finds
what a query names. The page is ``static/explorer.html`` with ``explorer.js`` and
``explorer.css`` (on top of ``dashboard.css``), served by ``/static/<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from typing import Any, Final

import asyncpg
from aiohttp import web

from ledger import limits, signing
from ledger.errors import InfraError
from ledger.settings import Settings
from streams.dashboard import explorer_input as given
from streams.dashboard import explorer_json as to_json
from streams.dashboard import explorer_queries as queries
from streams.dashboard.explorer_input import Refusal, StatementPage
from streams.dashboard.explorer_json import check_proof, one_line
from streams.dashboard.explorer_search import find

log = logging.getLogger("ledger.dashboard.explorer")

PAGE_HTML: Final = files("streams.dashboard").joinpath("static", "explorer.html").read_text("utf-8")
NO_STORE: Final = {"Cache-Control": "no-store"}

pool_connections_max_count = 2
"""Concurrent explorer queries: the machine's other processes (the ledger itself) come first."""

connect_timeout_s = 2.0
acquire_timeout_s = 5.0
"""A request waits this long for a free connection, then answers 503."""

query_timeout_s = 2.0
"""Every statement, enforced by the server too (statement_timeout): all are index reads."""

proof_builds_max_count = 1
"""Proofs built at once: each reads every block hash of its ledger and hashes them into a tree
(``prove_from_postgres``), CPU the dashboard's own event loop pays for."""

proof_wait_s = 5.0
proof_build_timeout_s = 20.0

search_query_chars_max = 200
"""Longer than any tx_id, hash, external reference (128) or account name (64)."""

assert search_query_chars_max >= max(limits.external_ref_chars_max, limits.identifier_chars_max)
assert proof_wait_s < proof_build_timeout_s


class Explorer:
    """The explorer's pool of read-only PostgreSQL sessions and its proof gate."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: Any = None
        self.pool_lock = asyncio.Lock()
        self.proof_gate = asyncio.Semaphore(proof_builds_max_count)

    async def connection_pool(self) -> Any:
        async with self.pool_lock:
            if self.pool is None:
                self.pool = await asyncpg.create_pool(
                    self.settings.database_url,
                    min_size=0,
                    max_size=pool_connections_max_count,
                    timeout=connect_timeout_s,
                    command_timeout=query_timeout_s,
                    server_settings={
                        "application_name": "ledger-explorer",
                        "default_transaction_read_only": "on",
                        "statement_timeout": str(int(query_timeout_s * 1000)),
                    },
                )
            return self.pool

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.terminate()


EXPLORER = web.AppKey("explorer", Explorer)


def add_routes(app: web.Application, settings: Settings) -> None:
    """The page and its endpoints, on the dashboard's application."""
    app[EXPLORER] = Explorer(settings)
    app.router.add_get("/explorer", page)
    app.router.add_get("/api/explorer/blocks", blocks)
    app.router.add_get("/api/explorer/block/{ledger}/{height}", block)
    app.router.add_get("/api/explorer/tx/{tx_id}", transaction)
    app.router.add_get("/api/explorer/proof/{ledger}/{tx_id}", proof)
    app.router.add_get("/api/explorer/proof/{ledger}/{tx_id}/check", proof_check)
    app.router.add_get("/api/explorer/account/{ledger}", account)
    app.router.add_get("/api/explorer/search", search)
    app.router.add_route("*", "/api/explorer/{tail:.*}", unknown)
    app.on_cleanup.append(_close)


async def _close(app: web.Application) -> None:
    await app[EXPLORER].close()


async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE_HTML, content_type="text/html", charset="utf-8", headers=NO_STORE)


# ---- answers --------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(
        body, status=status, dumps=functools.partial(json.dumps, allow_nan=False), headers=NO_STORE
    )


def answers_json(handler: Handler) -> Handler:
    """Every failure of ``handler`` as one JSON line: Refusal with its status, PostgreSQL down
    or slow as 503, anything else (a bug) as 500 and a logged traceback, never an HTML page."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refusal as exc:
            return _json({"error": one_line(exc)}, exc.status)
        except asyncpg.QueryCanceledError:
            return _json({"error": f"the query took longer than {query_timeout_s:g} s"}, 503)
        except TimeoutError:
            return _json({"error": "PostgreSQL did not answer in time, or it is busy"}, 503)
        except (OSError, InfraError, asyncpg.PostgresError) as exc:
            return _json({"error": f"PostgreSQL is unavailable: {one_line(exc)}"}, 503)
        except asyncpg.InterfaceError as exc:
            return _json({"error": f"PostgreSQL connection failed: {one_line(exc)}"}, 503)
        except Exception as exc:
            log.exception("explorer request %s failed", request.path_qs[:200])
            return _json({"error": f"internal error ({type(exc).__name__})"}, 500)

    return wrapped


@answers_json
async def unknown(request: web.Request) -> web.StreamResponse:
    if request.method != "GET":
        raise Refusal(405, f"{request.method} is not allowed: the explorer only answers GET")
    raise Refusal(404, f"no explorer endpoint {given.shown(request.path)}")


def _ledger(request: web.Request) -> str:
    text = request.match_info.get("ledger") or request.query.get("ledger", "")
    return given.ledger_name(text, request.app[EXPLORER].settings.shards)


@contextlib.asynccontextmanager
async def _connection(request: web.Request, snapshot: bool = False) -> AsyncIterator[Any]:
    """A pooled read-only session; with ``snapshot``, inside one repeatable-read transaction,
    so that every query of the request sees the same state of the projector's tables."""
    pool = await request.app[EXPLORER].connection_pool()
    async with pool.acquire(timeout=acquire_timeout_s) as connection:
        if not snapshot:
            yield connection
            return
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            yield connection


# ---- blocks ---------------------------------------------------------------------------------


@answers_json
async def blocks(request: web.Request) -> web.StreamResponse:
    """The newest blocks of every ledger, or of ``ledger`` below height ``before``."""
    settings = request.app[EXPLORER].settings
    one_ledger = "ledger" in request.query
    ledgers = [_ledger(request)] if one_ledger else list(settings.shards)
    before_text = request.query.get("before")
    before = queries.height_max if before_text is None else given.height(before_text, "before")
    limit = given.limit(request.query, queries.blocks_page_default, queries.blocks_page_max)
    result = []
    async with _connection(request) as connection:
        for ledger in ledgers:
            finality = await connection.fetchrow(queries.FINALITY, ledger)
            rows = await connection.fetch(queries.LATEST_BLOCKS, ledger, before, limit)
            final_height = finality["final_height"]
            last = rows[-1]["height"] if rows else 0
            result.append(
                {
                    "ledger": ledger,
                    **to_json.finality_json(finality),
                    "blocks": [to_json.block_summary_json(row, final_height) for row in rows],
                    "older": last if len(rows) == limit and last > 0 else None,
                }
            )
    return _json({"ledgers": result})


@answers_json
async def block(request: web.Request) -> web.StreamResponse:
    """One block: header, hash, seal, finality, cosignatures, a page of its transactions."""
    ledger = _ledger(request)
    height = given.height(request.match_info["height"])
    start = given.height(request.query.get("from", "0"), "from")
    limit = given.limit(request.query, queries.page_rows_default, queries.page_rows_max)
    async with _connection(request, snapshot=True) as connection:
        finality = await connection.fetchrow(queries.FINALITY, ledger)
        row = await connection.fetchrow(queries.BLOCK, ledger, height)
        if row is None:
            head = finality["head_height"]
            newest = "it has none yet" if head is None else f"its newest is {head}"
            raise Refusal(404, f"ledger {ledger} has no block {height} projected ({newest})")
        tx_count = row["tx_count"]
        if start > 0 and start >= tx_count:
            raise Refusal(
                400, f"block {height} holds {tx_count} transactions: from must be below it"
            )
        first_seq = row["first_seq"]
        transactions = await connection.fetch(
            queries.BLOCK_TRANSACTIONS, ledger, first_seq + start, first_seq + tx_count, limit
        )
        cosignatures = await connection.fetch(
            queries.COSIGNATURES, ledger, height, queries.cosignatures_max_count
        )
    shown_end = start + len(transactions)
    return _json(
        {
            "block": to_json.block_json(ledger, row, finality["final_height"]),
            "finality": to_json.finality_json(finality),
            "cosignatures": [to_json.cosignature_json(item) for item in cosignatures],
            "transactions": [to_json.block_transaction_json(item) for item in transactions],
            "from": start,
            "next_from": shown_end if shown_end < tx_count else None,
            "previous_from": max(0, start - limit) if start > 0 else None,
        }
    )


# ---- transactions and proofs ----------------------------------------------------------------


@answers_json
async def transaction(request: web.Request) -> web.StreamResponse:
    """Where a tx_id is sealed, its body decoded, and every rejection of it."""
    tx_id = given.tx_id(request.match_info["tx_id"])
    async with _connection(request, snapshot=True) as connection:
        rows = await connection.fetch(queries.TRANSACTION, tx_id, queries.sealed_copies_max_count)
        finality = {
            ledger: await connection.fetchrow(queries.FINALITY, ledger)
            for ledger in sorted({row["ledger"] for row in rows})
        }
        rejections = await connection.fetch(
            queries.REJECTIONS, tx_id, queries.rejections_listed_max_count
        )
    if not rows and not rejections:
        raise Refusal(404, f"transaction {tx_id.hex()} is neither sealed nor refused (yet)")
    sealed = [to_json.sealed_json(row, finality[row["ledger"]]) for row in rows]
    return _json(
        {
            "tx_id": tx_id.hex(),
            "status": to_json.transaction_status(sealed, list(rejections)),
            "sealed": sealed,
            "rejections": [to_json.rejection_json(row) for row in rejections],
        }
    )


async def _proof_document(request: web.Request, ledger: str, tx_id: bytes) -> dict[str, Any]:
    """The proof ``ledger proof`` would write (built by ``prove_from_postgres``), or a Refusal
    saying why there is none (yet)."""
    from ledger.client.proof_source import prove_from_postgres

    explorer = request.app[EXPLORER]
    not_yet = (
        f"transaction {tx_id.hex()} is in the newest projected block of {ledger}: its proof "
        "needs one later block, whose blocks_root covers it; try again after the next block"
    )
    async with _connection(request) as connection:
        state = await connection.fetchrow(queries.PROOF_STATE, ledger, tx_id)
    if state is None:
        raise Refusal(404, f"transaction {tx_id.hex()} is not sealed in ledger {ledger} (yet)")
    if state["head_height"] == state["height"]:
        raise Refusal(409, not_yet)
    try:
        await asyncio.wait_for(explorer.proof_gate.acquire(), proof_wait_s)
    except TimeoutError:
        raise Refusal(503, "busy building other proofs: try again in a moment") from None
    try:
        document = await asyncio.wait_for(
            prove_from_postgres(explorer.settings.database_url, ledger, tx_id),
            proof_build_timeout_s,
        )
    finally:
        explorer.proof_gate.release()
    if document is None:
        raise Refusal(409, not_yet)
    return document


@answers_json
async def proof(request: web.Request) -> web.StreamResponse:
    """The proof as a file, byte for byte what ``ledger proof --out`` writes."""
    ledger = _ledger(request)
    tx_id = given.tx_id(request.match_info["tx_id"])
    document = await _proof_document(request, ledger, tx_id)
    return web.Response(
        text=json.dumps(document, indent=2) + "\n",
        content_type="application/json",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="proof-{tx_id.hex()}.json"',
        },
    )


@answers_json
async def proof_check(request: web.Request) -> web.StreamResponse:
    """The proof checked as ``ledger verify-proof`` checks it: against the sealer of block 0
    (the proof carries the rotations from it to the sealer of its blocks) and, when the ledger
    has a finality policy, its registered witnesses and threshold."""
    ledger = _ledger(request)
    tx_id = given.tx_id(request.match_info["tx_id"])
    document = await _proof_document(request, ledger, tx_id)
    async with _connection(request) as connection:
        keys = await connection.fetchrow(queries.PROOF_KEYS, ledger, queries.witness_keys_max_count)
    sealer_key = bytes(keys["sealer_key"])
    witness_keys = frozenset(bytes(key) for key in keys["witness_keys"])
    return _json(
        {
            "ledger": ledger,
            "tx_id": tx_id.hex(),
            "anchor_height": document["anchor"]["height"],
            "sealer_key": sealer_key.hex(),
            "sealer_key_id": signing.key_id(sealer_key),
            **check_proof(document, sealer_key, witness_keys, int(keys["threshold"])),
        }
    )


# ---- accounts -------------------------------------------------------------------------------


async def _statement(
    connection: Any, ledger: str, account: str, balance: int, page: StatementPage
) -> dict[str, Any]:
    """One page of postings, newest first, with its cursors and running balances."""
    query = queries.STATEMENT_NEWER if page.newer else queries.STATEMENT_OLDER
    found = await connection.fetch(
        query, ledger, account, page.seq, page.posting_index, page.limit + 1
    )
    more = len(found) > page.limit
    rows = list(reversed(found[: page.limit])) if page.newer else list(found[: page.limit])
    has_newer, has_older = (more, True) if page.newer else (page.from_cursor, more)
    balance_after_first = None
    if rows:
        later = await connection.fetchrow(
            queries.LATER_POSTINGS,
            ledger,
            account,
            rows[0]["seq"],
            rows[0]["posting_index"],
            queries.running_balance_lookback_max_count,
        )
        if later["later_count"] < queries.running_balance_lookback_max_count:
            balance_after_first = balance - int(later["later_amount"])
    return {
        "statement": to_json.statement_json(rows, balance_after_first),
        "older": to_json.cursor(rows[-1]) if rows and has_older else None,
        "newer": to_json.cursor(rows[0]) if rows and has_newer else None,
    }


@answers_json
async def account(request: web.Request) -> web.StreamResponse:
    """An account and one page of its statement, newest first, paged by keyset."""
    ledger = _ledger(request)
    name = request.query.get("account", "")
    if not 1 <= len(name) <= limits.identifier_chars_max:
        raise Refusal(
            400, f"account must be a name of 1 to {limits.identifier_chars_max} characters"
        )
    page = given.statement_page(request.query)
    # One snapshot: the balance and the postings summed back from it must be the same state.
    async with _connection(request, snapshot=True) as connection:
        row = await connection.fetchrow(queries.ACCOUNT, ledger, name)
        if row is None:
            raise Refusal(404, f"no account {given.shown(name)} in ledger {ledger}")
        statement = await _statement(connection, ledger, name, int(row["balance"]), page)
    return _json({**to_json.account_json(ledger, name, row), **statement})


# ---- search ---------------------------------------------------------------------------------


@answers_json
async def search(request: web.Request) -> web.StreamResponse:
    """Everything ``q`` names exactly: a tx_id, a block hash, a height, an external reference,
    an account. One match: the page opens it; several: the page lists them."""
    query = request.query.get("q", "").strip()
    if not query:
        raise Refusal(400, "search for a tx_id, block hash, height, external reference or account")
    if len(query) > search_query_chars_max:
        raise Refusal(400, f"a search is at most {search_query_chars_max} characters")
    async with _connection(request) as connection:
        found = await find(connection, query, list(request.app[EXPLORER].settings.shards))
    return _json(found)
