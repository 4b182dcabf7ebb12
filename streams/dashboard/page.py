"""The dashboard page, as files in ``streams/dashboard/static`` (package data): ``index.html``,
``dashboard.css`` and ``dashboard.js``, no external assets.

The script polls ``/api/status`` every second and keeps the last 5 minutes of throughput in the
browser for the sparkline; the server keeps no history. The "Witnesses & finality" section shows,
per ledger, the threshold, final height and lag, the evidence count (red when any) and every
registered witness with its state. Values from the server are inserted with ``textContent``
only, never as HTML.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final


def _read(name: str) -> str:
    return files("streams.dashboard").joinpath("static", name).read_text("utf-8")


INDEX_HTML: Final = _read("index.html")
STYLE: Final = _read("dashboard.css")
SCRIPT: Final = _read("dashboard.js")

STATIC: Final = {
    "dashboard.css": (STYLE, "text/css"),
    "dashboard.js": (SCRIPT, "text/javascript"),
}
"""What ``/static/<name>`` serves: read once, at import."""
