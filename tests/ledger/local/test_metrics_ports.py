"""Which port each worker of the local stack serves its metrics on (no services needed)."""

from __future__ import annotations

import dataclasses

from ledger.local.metrics_ports import metrics_address, metrics_ports
from ledger.local.stack import worker_commands
from ledger.settings import Settings


def local_settings(**changes: object) -> Settings:
    """The defaults of the local stack (one shard, 2 verify workers, 3 witnesses), then
    ``changes``, whatever the environment of the test run says."""
    defaults: dict[str, object] = {
        "shards": ("main",),
        "sequencer_shards": ("main",),
        "verify_workers": 2,
        "witness_count": 3,
        "dashboard_port": 8088,
        "metrics_port_base": 19400,
    }
    return dataclasses.replace(Settings.from_env(), **{**defaults, **changes})  # type: ignore[arg-type]


def test_each_worker_but_the_dashboard_gets_base_plus_its_index() -> None:
    """Ports follow worker_commands' start order from the base; the dashboard has none."""
    assert metrics_ports(local_settings()) == {
        "verify-1": 19400,
        "verify-2": 19401,
        "sequence": 19402,
        "project": 19403,
        "finality": 19404,
        "witness-1": 19405,
        "witness-2": 19406,
        "witness-3": 19407,
        "stats": 19408,
    }


def test_two_shards_add_a_sequencer_and_the_coordinator_in_start_order() -> None:
    """With two shards every worker still gets base + its index, so all ports stay distinct."""
    settings = local_settings(shards=("main", "east"), sequencer_shards=("main", "east"))
    ports = metrics_ports(settings)
    names = [name for name in worker_commands(settings) if name != "dashboard"]
    assert list(ports) == names
    assert "crossshard" in ports and "sequence-east" in ports
    assert list(ports.values()) == list(range(19400, 19400 + len(names)))


def test_a_base_of_zero_serves_no_worker_metrics() -> None:
    """LEDGER_METRICS_PORT_BASE=0: no port, no --metrics-port on any command line."""
    settings = local_settings(metrics_port_base=0)
    assert metrics_ports(settings) == {}
    assert not any("--metrics-port" in command for command in worker_commands(settings).values())
    assert metrics_address(settings, "verify-1") is None


def test_addresses() -> None:
    """A worker's address is its own port; the dashboard's is its aggregate endpoint."""
    settings = local_settings()
    assert metrics_address(settings, "verify-2") == "http://127.0.0.1:19401/metrics"
    assert metrics_address(settings, "dashboard") == "http://127.0.0.1:8088/metrics"
    assert metrics_address(settings, "no-such-worker") is None
