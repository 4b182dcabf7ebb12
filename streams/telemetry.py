"""Each worker's own Prometheus endpoint: ``http://127.0.0.1:PORT/metrics``.

The dashboard's ``/metrics`` (``streams.dashboard``) sees the pipeline from outside, through
Kafka offsets and PostgreSQL rows. What only the process itself knows (its CPU and memory, how
long a poll, a seal or a commit takes, what it counted) is served here, by prometheus_client's
default registry: its process collector gives ``process_cpu_seconds_total``,
``process_resident_memory_bytes`` and the like, and each stage module declares its own
``ledger_<stage>_*`` metrics next to the code that moves them.

The cost stays off the per-transaction path: a counter moves once per poll, batch or block by
``inc(count)``, never once per transaction (prometheus_client takes a lock per call: about 1 µs,
3 µs with a label lookup, 2 µs for a histogram's observation).

``ledger up`` gives each worker its port as ``--metrics-port PORT`` (``ledger.local.metrics_ports``
says which). The HTTP server is a daemon thread: a scrape costs that process about a millisecond.
"""

from __future__ import annotations

import argparse
import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import disable_created_metrics, start_http_server

log = logging.getLogger("ledger.telemetry")

METRICS_ADDRESS = "127.0.0.1"
"""Loopback only, like the dashboard: the figures are for an operator's Prometheus on the same
machine (or behind a tunnel or proxy that handles authentication)."""

SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram buckets of a stage's step, in seconds: from a small poll (about 1 ms) through the
300 ms confirmation budget to a broker or database that stalls for seconds."""


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0..65535)")
    return port


def add_metrics_port_argument(parser: argparse.ArgumentParser) -> None:
    """Declare ``--metrics-port`` (0, the default: no endpoint) on a worker's parser."""
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=0,
        metavar="PORT",
        help=f"serve this process's Prometheus metrics on http://{METRICS_ADDRESS}:PORT/metrics "
        "(0: none; `ledger up` gives each worker its own, from LEDGER_METRICS_PORT_BASE)",
    )


def serve_metrics(port: int, worker: str) -> WSGIServer | None:
    """Serve the default registry on ``METRICS_ADDRESS:port`` from a daemon thread; None when
    ``port`` is 0, or when it cannot be bound: metrics are not worth stopping a pipeline worker
    for, so that costs one warning line and the worker runs on without them."""
    if port == 0:
        return None
    # No ``*_created`` series: they would double the series of every counter and histogram,
    # and a counter reset is already visible to rate() and increase().
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
    try:
        server, _ = start_http_server(port, addr=METRICS_ADDRESS)
    except OSError as exc:
        log.warning(
            "%s: no metrics endpoint: cannot listen on %s:%d (%s); running on without one",
            worker,
            METRICS_ADDRESS,
            port,
            exc.strerror or exc,
        )
        return None
    log.info("%s: metrics on http://%s:%d/metrics", worker, METRICS_ADDRESS, port)
    return server
