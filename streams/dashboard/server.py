"""The dashboard's web server (aiohttp): ``/``, ``/api/status``, ``/api/history``, ``/metrics``.

Handlers only render the ``Gatherer``'s latest facts; they never touch Kafka or PostgreSQL, so
a request answers at once whatever state the sources are in.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ledger.settings import Settings
from streams.dashboard import explorer, prometheus
from streams.dashboard.metrics import Gatherer, wall_ms
from streams.dashboard.page import INDEX_HTML, STATIC

log = logging.getLogger("ledger.dashboard")

HOST = "127.0.0.1"
"""Loopback only: the page has no authentication. Put a proxy in front to expose it."""

GATHERER = web.AppKey("gatherer", Gatherer)
NO_STORE = {"Cache-Control": "no-store"}


async def page(request: web.Request) -> web.Response:
    return web.Response(
        text=INDEX_HTML, content_type="text/html", charset="utf-8", headers=NO_STORE
    )


async def static(request: web.Request) -> web.Response:
    """``/static/<name>``: the page's stylesheet and script (package data, read at import)."""
    found = STATIC.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    text, content_type = found
    return web.Response(text=text, content_type=content_type, charset="utf-8", headers=NO_STORE)


async def status(request: web.Request) -> web.Response:
    snapshot = request.app[GATHERER].snapshot()
    return web.Response(
        text=json.dumps(snapshot.to_json(), allow_nan=False),
        content_type="application/json",
        headers=NO_STORE,
    )


async def history(request: web.Request) -> web.Response:
    """The last hour of headline figures, one column per series (``streams.dashboard.history``)."""
    return web.json_response(
        request.app[GATHERER].history.to_json(),
        dumps=lambda value: json.dumps(value, allow_nan=False),
        headers=NO_STORE,
    )


async def metrics(request: web.Request) -> web.Response:
    snapshot = request.app[GATHERER].snapshot()
    return web.Response(
        body=prometheus.exposition(snapshot, wall_ms()).encode(),
        headers={"Content-Type": prometheus.CONTENT_TYPE, **NO_STORE},
    )


def create_app(settings: Settings) -> web.Application:
    """The application; gathering starts with it and stops on cleanup."""
    app = web.Application()
    app[GATHERER] = Gatherer(settings)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/history", history)
    app.router.add_get("/metrics", metrics)
    explorer.add_routes(app, settings)  # /explorer and /api/explorer/...
    app.on_startup.append(_start_gathering)
    app.on_cleanup.append(_stop_gathering)
    return app


async def _start_gathering(app: web.Application) -> None:
    await app[GATHERER].start()


async def _stop_gathering(app: web.Application) -> None:
    await app[GATHERER].stop()


async def start(settings: Settings, port: int | None = None) -> tuple[web.AppRunner, int]:
    """Serve on ``HOST``: ``port`` 0 picks a free one. Returns the runner and the bound port.

    Raises OSError when the port is taken. Stop with ``await runner.cleanup()``.
    """
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, settings.dashboard_port if port is None else port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound_port = int(runner.addresses[0][1])
    log.info("dashboard on http://%s:%d/ (metrics: /metrics)", HOST, bound_port)
    return runner, bound_port
