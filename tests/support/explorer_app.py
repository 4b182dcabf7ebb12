"""Helpers of the block explorer's tests: the explorer alone on an aiohttp application, and
transfers published and awaited until sealed, then visible to the explorer with a proof."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from aiohttp import web

from ledger.client.publisher import Publisher, Sealed
from ledger.kafka.principals import ADMIN
from ledger.model import Posting, Transfer
from ledger.settings import Settings
from ledger.signing import build_tx_body
from streams.dashboard import explorer, server
from support.ledger_fixture import TestLedger
from support.waiting import eventually

sealed_wait_s = 60.0


def explorer_app(settings: Settings) -> web.Application:
    """The explorer's page, its endpoints and the static files, without the dashboard's
    gathering loops (which would follow and verify the whole chain for nothing here)."""
    app = web.Application()
    app.router.add_get("/static/{name}", server.static)
    explorer.add_routes(app, settings)
    return app


async def transfers_to_bob(
    settings: Settings, test_ledger: TestLedger, amounts: Sequence[int], external_ref: str | None
) -> list[Sealed]:
    """One sealed alice -> bob transfer per amount, all with ``external_ref``; then one more,
    sealed after them, so that a later block exists and each of them has a proof."""
    alice = test_ledger.signer(test_ledger.alice)

    def transfer(amount: int, reference: str | None) -> bytes:
        postings = (
            Posting(test_ledger.alice, test_ledger.asset, -amount),
            Posting(test_ledger.bob, test_ledger.asset, amount),
        )
        return alice.sign(
            build_tx_body(test_ledger.ledger, Transfer(postings), external_ref=reference)
        )

    async with Publisher(settings.kafka(ADMIN), client_id="ledger-explorer-tests") as publisher:
        outcomes = await publisher.submit_and_wait(
            [transfer(amount, external_ref) for amount in amounts], timeout_s=sealed_wait_s
        )
        anchors = await publisher.submit_and_wait([transfer(1, None)], timeout_s=sealed_wait_s)
    for outcome in [*outcomes, *anchors]:
        assert isinstance(outcome, Sealed), outcome
    return [outcome for outcome in outcomes if isinstance(outcome, Sealed)]


async def wait_provable(base_url: str, ledger: str, tx_id: bytes) -> None:
    """Until the explorer at ``base_url`` checks a proof of ``tx_id``: its block and a later one
    are in PostgreSQL."""
    url = f"{base_url}/api/explorer/proof/{ledger}/{tx_id.hex()}/check"

    async def status() -> int:
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            return answer.status

    await eventually(
        status, lambda code: code == 200, what=f"a proof of {tx_id.hex()}", timeout_s=sealed_wait_s
    )
