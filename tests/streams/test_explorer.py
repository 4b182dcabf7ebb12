"""The block explorer's JSON endpoints against the real stack: search, transactions, proofs,
keyset-paged statements, blocks, and a one-line 4xx for every kind of bad input."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from support.explorer_app import explorer_app, transfers_to_bob, wait_provable
from support.ledger_fixture import TestLedger, insufficient_amount
from support.waiting import eventually

from ledger import signing
from ledger.client.publisher import Publisher, Refused, Sealed
from ledger.kafka.principals import ADMIN
from ledger.model import Posting, Transfer
from ledger.proofs import verify_proof
from ledger.settings import Settings
from ledger.signing import build_tx_body
from streams.dashboard import server
from streams.dashboard.page import STATIC

pytestmark = pytest.mark.services

Answer = tuple[int, Any]


@pytest.fixture(scope="module")
async def explorer_url(settings: Settings) -> AsyncIterator[str]:
    runner = web.AppRunner(explorer_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
async def traffic(
    settings: Settings, test_ledger: TestLedger, explorer_url: str
) -> tuple[str, list[Sealed]]:
    """Three transfers to bob sharing one fresh external reference, each provable."""
    reference = f"explorer-test-{uuid.uuid4().hex[:12]}"
    sealed = await transfers_to_bob(settings, test_ledger, [11, 12, 13], reference)
    for outcome in sealed:
        await wait_provable(explorer_url, test_ledger.ledger, outcome.tx_id)
    return reference, sealed


async def get(url: str, method: str = "GET") -> Answer:
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        assert response.content_type == "application/json", (url, response.content_type)
        return response.status, await response.json()


async def test_search_opens_a_tx_id_and_lists_every_match_of_an_external_ref(
    explorer_url: str, traffic: tuple[str, list[Sealed]]
) -> None:
    """A tx_id (any case, 0x allowed) has one match; a shared external reference lists each
    transaction; an account name and a height find their pages."""
    reference, sealed = traffic
    tx_hex = sealed[0].tx_id.hex()
    for query in (tx_hex, tx_hex.upper(), "0x" + tx_hex):
        status, body = await get(f"{explorer_url}/api/explorer/search?q={query}")
        assert status == 200, body
        assert [match["route"] for match in body["matches"]] == [f"/tx/{tx_hex}"]
    status, body = await get(f"{explorer_url}/api/explorer/search?q={reference}")
    assert status == 200 and not body["truncated"]
    assert sorted(match["route"] for match in body["matches"]) == sorted(
        f"/tx/{outcome.tx_id.hex()}" for outcome in sealed
    )
    status, body = await get(f"{explorer_url}/api/explorer/search?q=bob")
    assert {"kind": "account", "route": "/account/main/bob"}.items() <= body["matches"][0].items()
    status, body = await get(f"{explorer_url}/api/explorer/search?q={sealed[0].height}")
    assert f"/block/main/{sealed[0].height}" in [match["route"] for match in body["matches"]]


async def test_transaction_shows_its_body_signer_block_and_status(
    explorer_url: str, traffic: tuple[str, list[Sealed]], test_ledger: TestLedger
) -> None:
    """The body is decoded (postings as strings of minor units), the signer is alice's key, and
    block and position match the Publisher's outcome and the block's own page."""
    reference, sealed = traffic
    outcome = sealed[1]
    status, body = await get(f"{explorer_url}/api/explorer/tx/{outcome.tx_id.hex()}")
    assert status == 200, body
    assert body["status"] in ("sealed", "final") and body["rejections"] == []
    [found] = body["sealed"]
    assert (found["ledger"], found["height"], found["seq"]) == ("main", outcome.height, outcome.seq)
    assert found["signer_key_id"] == signing.key_id(test_ledger.signer("alice").public_key)
    assert found["cosigners"] == []
    assert found["body"]["external_ref"] == reference
    assert found["body"]["operation"]["postings"] == [
        {"account": "alice", "asset": "USD", "amount": "-12"},
        {"account": "bob", "asset": "USD", "amount": "12"},
    ]
    status, block = await get(
        f"{explorer_url}/api/explorer/block/main/{outcome.height}"
        f"?from={found['index_in_block']}&limit=1"
    )
    assert block["block"]["hash"] == found["block_hash"]
    assert [tx["tx_id"] for tx in block["transactions"]] == [outcome.tx_id.hex()]


async def test_a_multi_signed_transaction_lists_its_cosigners(
    settings: Settings, explorer_url: str, test_ledger: TestLedger
) -> None:
    """Alice's transfer cosigned by bob's key (registered, so the ledger takes it): the page
    names both signers, the cosigner with its key id, public key and signature."""
    alice, bob = test_ledger.signer("alice"), test_ledger.signer("bob")
    postings = (Posting("alice", "USD", -3), Posting("bob", "USD", 3))
    envelope = alice.sign(build_tx_body("main", Transfer(postings)), cosigners=[bob])
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=60)
    assert isinstance(outcome, Sealed), outcome
    url = f"{explorer_url}/api/explorer/tx/{outcome.tx_id.hex()}"
    status, body = await eventually(
        lambda: get(url),
        lambda answer: answer[0] == 200 and answer[1]["sealed"],
        what="the cosigned transfer projected",
    )
    [found] = body["sealed"]
    assert found["signer_key_id"] == alice.key_id
    [cosigner] = found["cosigners"]
    assert cosigner["key_id"] == bob.key_id and cosigner["public_key"] == bob.public_key.hex()
    assert len(bytes.fromhex(cosigner["signature"])) == 64


async def test_a_refused_transaction_shows_its_code_and_detail(
    settings: Settings, test_ledger: TestLedger, explorer_url: str
) -> None:
    """A transfer the sequencer refuses is found by its tx_id as refused, with the code and
    detail of its ledger.rejections row."""
    alice = test_ledger.signer(test_ledger.alice)
    postings = (
        Posting(test_ledger.alice, test_ledger.asset, -insufficient_amount),
        Posting(test_ledger.bob, test_ledger.asset, insufficient_amount),
    )
    envelope = alice.sign(build_tx_body(test_ledger.ledger, Transfer(postings)))
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=60)
    assert isinstance(outcome, Refused), outcome
    url = f"{explorer_url}/api/explorer/tx/{outcome.tx_id.hex()}"
    status, body = await eventually(
        lambda: get(url), lambda answer: answer[0] == 200, what="the rejection in PostgreSQL"
    )
    assert body["status"] == "refused" and body["sealed"] == []
    [rejection] = body["rejections"]
    assert rejection["code"] == outcome.code == "INSUFFICIENT_FUNDS"
    assert rejection["detail"] == outcome.detail and rejection["stage"] == "sequence"


async def test_proof_download_verifies_with_the_projects_verifier(
    explorer_url: str, traffic: tuple[str, list[Sealed]], test_ledger: TestLedger
) -> None:
    """The downloaded proof is a file that ledger.proofs.verify_proof accepts against the
    ledger's sealer key, and the server's own check says it holds."""
    _, sealed = traffic
    tx_hex = sealed[0].tx_id.hex()
    url = f"{explorer_url}/api/explorer/proof/main/{tx_hex}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        disposition = response.headers["Content-Disposition"]
        document = json.loads(await response.text())
    assert disposition == f'attachment; filename="proof-{tx_hex}.json"'
    summary = verify_proof(document, test_ledger.sealer_public_key)
    assert (summary["tx_id"], summary["height"]) == (tx_hex, sealed[0].height)
    status, check = await get(f"{url}/check")
    assert status == 200 and check["holds"], check
    assert check["sealer_key"] == test_ledger.sealer_public_key.hex()
    assert check["summary"]["tx_id"] == tx_hex


async def test_statement_pages_older_then_newer_by_keyset(
    explorer_url: str, traffic: tuple[str, list[Sealed]]
) -> None:
    """Older pages continue strictly below the cursor, newer ones come back to the same rows,
    and running balances chain from row to row across pages."""
    base = f"{explorer_url}/api/explorer/account/main?account=bob&limit=2"
    status, first = await get(base)
    assert status == 200 and first["newer"] is None and first["older"] is not None
    status, second = await get(f"{base}&before={first['older']}")
    assert status == 200 and second["newer"] is not None
    first_rows, second_rows = first["statement"], second["statement"]
    assert len(first_rows) == len(second_rows) == 2
    assert first_rows[-1]["seq"] > second_rows[0]["seq"] or (
        first_rows[-1]["seq"] == second_rows[0]["seq"]
        and first_rows[-1]["posting_index"] > second_rows[0]["posting_index"]
    )
    for newer, older in zip(first_rows + second_rows, (first_rows + second_rows)[1:], strict=False):
        assert int(newer["balance_after"]) - int(newer["amount"]) == int(older["balance_after"])
    status, back = await get(f"{base}&after={second['newer']}")
    assert [row["cursor"] for row in back["statement"]] == [row["cursor"] for row in first_rows]
    assert int(first_rows[0]["balance_after"]) == int(first["balance"])


async def test_latest_blocks_are_newest_first_with_finality(
    explorer_url: str, traffic: tuple[str, list[Sealed]]
) -> None:
    """Each ledger lists its newest blocks in descending height with seal key id and finality,
    and the older link continues below the last one."""
    status, body = await get(f"{explorer_url}/api/explorer/blocks?limit=5")
    assert status == 200
    [main] = [item for item in body["ledgers"] if item["ledger"] == "main"]
    heights = [block["height"] for block in main["blocks"]]
    assert heights == sorted(heights, reverse=True) and len(heights) == 5
    assert all(len(block["sealer_key_id"]) == 32 for block in main["blocks"])
    assert all(
        block["final"] == (block["height"] <= (main["final_height"] or -1))
        for block in main["blocks"]
    )
    status, older = await get(
        f"{explorer_url}/api/explorer/blocks?ledger=main&before={main['older']}&limit=5"
    )
    assert older["ledgers"][0]["blocks"][0]["height"] == heights[-1] - 1


BAD_INPUT = [
    ("/tx/not-hex", 400),
    ("/tx/" + "ab" * 15, 400),
    ("/tx/" + "00" * 16, 404),
    ("/block/main/-1", 400),
    ("/block/main/abc", 400),
    ("/block/main/99999999999999999999", 400),
    ("/block/main/9223372036854775807", 404),
    ("/block/elsewhere/1", 404),
    ("/block/main/0?from=-2", 400),
    ("/block/main/0?limit=5000", 400),
    ("/blocks?limit=100000000", 400),
    ("/blocks?limit=0", 400),
    ("/blocks?before=-3", 400),
    ("/account/main", 400),
    ("/account/main?account=" + "x" * 65, 400),
    ("/account/main?account=nobody-at-all", 404),
    ("/account/main?account=bob&limit=1000000", 400),
    ("/account/main?account=bob&before=abc", 400),
    ("/account/main?account=bob&before=1.0&after=2.0", 400),
    ("/search?q=", 400),
    ("/search?q=" + "q" * 300, 400),
    ("/proof/main/zz", 400),
    ("/proof/main/" + "00" * 16, 404),
    ("/proof/elsewhere/" + "00" * 16, 404),
    ("/no-such-endpoint", 404),
]


@pytest.mark.parametrize(("path", "expected_status"), BAD_INPUT)
async def test_bad_input_is_a_one_line_json_4xx(
    explorer_url: str, path: str, expected_status: int
) -> None:
    """Bad hex, unknown names, negative or huge numbers and page sizes: a 4xx with one line."""
    status, body = await get(f"{explorer_url}/api/explorer{path}")
    assert status == expected_status, body
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], body
    assert "Traceback" not in body["error"]


async def test_other_methods_are_refused_as_json(explorer_url: str) -> None:
    """A POST to an explorer endpoint is a 405 with one JSON line, not an HTML page."""
    status, body = await get(f"{explorer_url}/api/explorer/blocks", method="POST")
    assert status == 405 and "GET" in body["error"]


def test_the_dashboard_serves_the_explorer(settings: Settings) -> None:
    """create_app mounts /explorer and /api/explorer/...; its script and style are static
    files of the package."""
    app = server.create_app(settings)
    paths = {resource.canonical for resource in app.router.resources()}
    assert {"/explorer", "/api/explorer/search", "/api/explorer/tx/{tx_id}"} <= paths
    assert {"explorer.html", "explorer.js", "explorer.css"} <= set(STATIC)


async def test_postgresql_down_is_a_503_line(settings: Settings) -> None:
    """With PostgreSQL unreachable the page still loads and every endpoint answers 503 JSON."""
    unreachable = dataclasses.replace(
        settings, database_url="postgresql://ledger:ledger@127.0.0.1:1/ledger"
    )
    runner = web.AppRunner(explorer_app(unreachable), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/explorer") as page:
            assert page.status == 200 and "explorer.js" in await page.text()
        status, body = await get(f"{url}/api/explorer/search?q=bob")
        assert status == 503 and body["error"].startswith("PostgreSQL"), body
    finally:
        await runner.cleanup()
