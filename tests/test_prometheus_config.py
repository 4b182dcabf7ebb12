"""infra/prometheus: valid for Prometheus, alerts that fire when they should, real metric names,
and a scrape target for every worker of the default local stack."""

from __future__ import annotations

import dataclasses
import importlib
import re
import shutil
import subprocess

import pytest
from prometheus_client import REGISTRY

from ledger.local.metrics_ports import metrics_ports
from ledger.settings import REPO_ROOT, Settings
from streams.dashboard.prometheus import families
from streams.dashboard.snapshot import Snapshot

PROMETHEUS_DIR = REPO_ROOT / "infra" / "prometheus"
WORKER_MODULES = (
    "streams.verify",
    "streams.shard",
    "streams.project",
    "streams.finality",
    "streams.witness",
    "streams.crossshard",
    "streams.stats.app",
)
"""The modules that declare the workers' own metrics."""
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: infra/install.sh installs it (Debian package prometheus)"
    return path


def run_promtool(promtool: str, *arguments: str) -> None:
    result = subprocess.run(
        [promtool, *arguments], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_config_and_its_rule_file_are_valid(promtool: str) -> None:
    """promtool accepts prometheus.yml (which loads alerts.yml) and alerts.yml itself."""
    run_promtool(promtool, "check", "config", "prometheus.yml")
    run_promtool(promtool, "check", "rules", "alerts.yml")


def test_the_alerts_fire_when_and_only_when_they_should(promtool: str) -> None:
    """The unit tests of alerts.yml (alerts_test.yml: series in, alerts expected) pass."""
    run_promtool(promtool, "test", "rules", "alerts_test.yml")


def known_metric_names() -> set[str]:
    """Every family and series name the workers (prometheus_client) and the dashboard export."""
    for module in WORKER_MODULES:
        importlib.import_module(module)
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ()))
    empty = Snapshot(
        taken_at_ms=0, sources={}, verify_lag_messages=None, ledgers=(), rejections=None
    )
    names.update(family.name for family in families(empty, 0))
    return names


def test_the_alerts_name_only_metrics_that_exist() -> None:
    """Every ledger_* name in alerts.yml (expressions and annotations) is exported by someone."""
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    # Names, not the prefixes the comments mention (``ledger_verify_*``).
    used = {name for name in re.findall(r"\bledger_[a-z0-9_]+", text) if not name.endswith("_")}
    assert used, "no ledger_ metric in alerts.yml?"
    assert used - known_metric_names() == set()


def test_every_worker_of_the_default_stack_is_scraped() -> None:
    """The ledger-workers targets are metrics_ports() of the default settings, by worker name,
    and the dashboard's aggregate endpoint is scraped too."""
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    targets = {
        worker: int(port)
        for port, worker in re.findall(
            r'targets: \["127\.0\.0\.1:(\d+)"\]\s+labels: \{worker: ([\w-]+)\}', text
        )
    }
    defaults = dataclasses.replace(
        Settings.from_env(),
        shards=("main",),
        sequencer_shards=("main",),
        verify_workers=2,
        witness_count=3,
        dashboard_port=8088,
        metrics_port_base=19400,
    )
    assert targets == {**metrics_ports(defaults), "dashboard": 8088}
