"""Where each worker of the local stack serves its metrics, for ``ledger status`` and Prometheus.

``worker_commands`` hands the ports out (worker i in start order gets LEDGER_METRICS_PORT_BASE + i,
the dashboard none: its aggregate ``/metrics`` is on LEDGER_DASHBOARD_PORT) and passes each as
``--metrics-port``. This module reads them back from those command lines rather than computing
them again, so the two can never disagree; it imports ``stack``, and ``stack`` nothing of it.
"""

from __future__ import annotations

from ledger.local.stack import worker_commands
from ledger.settings import Settings

METRICS_PORT_OPTION = "--metrics-port"
"""The option of ``streams.telemetry.add_metrics_port_argument``."""

DASHBOARD = "dashboard"
"""The worker that serves the aggregate ``/metrics`` (``streams.dashboard``) on its own port."""


def metrics_ports(settings: Settings) -> dict[str, int]:
    """Worker name -> the port of its own ``/metrics``, in start order; empty when
    LEDGER_METRICS_PORT_BASE is 0. The dashboard is not in it (``metrics_address`` has it)."""
    ports = {}
    for name, command in worker_commands(settings).items():
        if METRICS_PORT_OPTION in command:
            ports[name] = int(command[command.index(METRICS_PORT_OPTION) + 1])
    return ports


def metrics_address(settings: Settings, name: str) -> str | None:
    """The URL Prometheus scrapes for worker ``name``, e.g. ``http://127.0.0.1:19401/metrics``;
    None when it serves no metrics (LEDGER_METRICS_PORT_BASE=0, or no such worker)."""
    if name == DASHBOARD:
        return f"http://127.0.0.1:{settings.dashboard_port}/metrics"
    port = metrics_ports(settings).get(name)
    return None if port is None else f"http://127.0.0.1:{port}/metrics"
