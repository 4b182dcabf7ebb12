"""A worker's own metrics endpoint: served when it can be, a warning and no crash when not."""

from __future__ import annotations

import argparse
import logging
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.telemetry import METRICS_ADDRESS, add_metrics_port_argument, serve_metrics


@pytest.fixture()
def taken_port() -> Iterator[int]:
    """A loopback port some other process (here, this socket) listens on."""
    with socket.socket() as listener:
        listener.bind((METRICS_ADDRESS, 0))
        listener.listen()
        yield listener.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((METRICS_ADDRESS, 0))
        port: int = probe.getsockname()[1]
    return port


def test_serves_the_process_metrics() -> None:
    """On a free port the default registry answers, the process collector included."""
    port = free_port()
    server = serve_metrics(port, "test")
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://{METRICS_ADDRESS}:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "process_cpu_seconds" in names


def test_a_taken_port_costs_one_warning_not_the_worker(
    taken_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A port in use: None and one warning line naming the worker and the port."""
    with caplog.at_level(logging.WARNING, logger="ledger.telemetry"):
        assert serve_metrics(taken_port, "verify") is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "verify" in record.getMessage() and str(taken_port) in record.getMessage()


def test_port_zero_serves_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """--metrics-port 0 (the default) starts no server and logs nothing."""
    with caplog.at_level(logging.INFO, logger="ledger.telemetry"):
        assert serve_metrics(0, "verify") is None
    assert caplog.records == []


def test_the_option_refuses_what_is_not_a_port() -> None:
    """--metrics-port takes 0..65535; anything else is a usage error at start."""
    parser = argparse.ArgumentParser()
    add_metrics_port_argument(parser)
    assert parser.parse_args([]).metrics_port == 0
    assert parser.parse_args(["--metrics-port", "19400"]).metrics_port == 19400
    with pytest.raises(SystemExit):
        parser.parse_args(["--metrics-port", "70000"])
