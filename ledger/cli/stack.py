"""``ledger up``, ``down`` and ``status``: the local stack."""

from __future__ import annotations

import json

import click

from ledger.cli import cli
from ledger.local import stack
from ledger.settings import Settings


@cli.command()
def up() -> None:
    """Start Kafka, PostgreSQL and the topics (a second call is a no-op)."""
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
