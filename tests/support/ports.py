"""Ports for the extra clusters some tests start: free now, clear of the configured stack's.

Chosen below Linux's ephemeral range (32768-60999): a port in it can be taken at any moment by
the local end of one of the running stack's own client connections.
"""

from __future__ import annotations

from ledger.local.process import port_in_use
from ledger.settings import Settings

_first_candidate = 20_000
_last_candidate = 32_000


def free_port_block(count: int, settings: Settings) -> int:
    """The first port of ``count`` consecutive ports that are free and none of ``settings``'."""
    configured = {
        settings.kafka_port,
        settings.kafka_port + 1,  # its controller
        settings.postgres_port,
        settings.dashboard_port,
        settings.registry_port,
    }
    for base in range(_first_candidate, _last_candidate, 100):
        block = range(base, base + count)
        if configured.isdisjoint(block) and not any(port_in_use(port) for port in block):
            return base
    raise AssertionError(
        f"no {count} free consecutive ports in {_first_candidate}-{_last_candidate}"
    )
