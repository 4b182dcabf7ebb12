"""``ledger up``, ``down`` and ``status``: the local stack."""

from __future__ import annotations

import json
import os

import click

from ledger.cli import cli
from ledger.local import stack
from ledger.settings import Settings


@cli.command()
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    help="Local Kafka brokers (default LEDGER_KAFKA_BROKERS, 1): 3 gives replication factor 3 "
    "with min.insync.replicas=2. Export LEDGER_KAFKA_BROKERS for later commands too.",
)
def up(brokers: int | None) -> None:
    """Start Kafka, PostgreSQL and the topics (a second call is a no-op)."""
    if brokers is not None:
        os.environ["LEDGER_KAFKA_BROKERS"] = str(brokers)  # the workers inherit it
    started = stack.up(Settings.from_env())
    click.echo("started: " + ", ".join(started) if started else "already running")


@cli.command()
def down() -> None:
    """Stop exactly what `ledger up` started, by pid files."""
    stopped = stack.down(Settings.from_env())
    click.echo("stopped: " + ", ".join(stopped) if stopped else "nothing was running")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def status(as_json: bool) -> None:
    """Say what runs where."""
    components = stack.status(Settings.from_env())
    if as_json:
        click.echo(json.dumps({c.name: c.__dict__ for c in components}))
        return
    for component in components:
        click.echo(component.line())
