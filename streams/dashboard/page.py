"""The dashboard's pages, as files in ``streams/dashboard/static`` (package data), no external
assets: ``index.html`` (live figures and the last hour's charts) with ``dashboard.css``,
``dashboard.js`` and ``chart.js`` (a small SVG line-chart module of our own), and whatever
other page sits next to them (the explorer).

``dashboard.js`` polls ``/api/status`` every second and ``/api/history`` every few seconds
(the history is kept by the server, ``streams.dashboard.history``). Values from the server are
inserted with ``textContent`` only, never as HTML.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

CONTENT_TYPES: Final = {".html": "text/html", ".css": "text/css", ".js": "text/javascript"}


def _static_files() -> dict[str, tuple[str, str]]:
    found = {}
    for entry in files("streams.dashboard").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            found[entry.name] = (entry.read_text("utf-8"), CONTENT_TYPES[suffix])
    return found


STATIC: Final = _static_files()
"""What ``/static/<name>`` serves, by file name: read once, at import."""

INDEX_HTML: Final = STATIC["index.html"][0]
SCRIPT: Final = STATIC["dashboard.js"][0]
"""The live page's script: tests check that it reads only fields ``/api/status`` has."""
