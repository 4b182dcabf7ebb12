"""``ledger up``, ``down``, ``status``, ``stop`` and ``start``: the local stack."""

from __future__ import annotations

import asyncio
import json
import os
import time

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
    """Stop exactly what `ledger up` started, by pid files (the supervisor first)."""
    stopped = stack.down(Settings.from_env())
    click.echo("stopped: " + ", ".join(stopped) if stopped else "nothing was running")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def status(as_json: bool) -> None:
    """Say what runs where, how often the supervisor restarted each worker, and why one that
    does not run is down."""
    components = stack.status(Settings.from_env())
    if as_json:
        click.echo(json.dumps({c.name: c.__dict__ for c in components}))
        return
    for component in components:
        click.echo(component.line())


@cli.command()
@click.argument("worker")
@click.option(
    "--reason",
    default="ledger stop",
    show_default=True,
    help="Why, for `ledger status` and whoever hands it back.",
)
def stop(worker: str, reason: str) -> None:
    """Stop one worker on purpose: the supervisor leaves it down until `ledger start WORKER`
    (or `ledger up`)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    ran = stack.stop_on_purpose(Settings.from_env(), worker, f"{reason} ({stamp})")
    click.echo(f"{'stopped' if ran else 'held (it was not running)'} {worker}")


@cli.command()
@click.argument("worker")
def start(worker: str) -> None:
    """Hand a worker back: clear its stop marker and start it (through the supervisor when one
    runs), and forget the supervisor's reasons to give it up."""
    started = stack.hand_back(Settings.from_env(), worker)
    click.echo(f"started {worker}" if started else f"{worker} already runs")


@cli.command("kafka-acls")
@click.option(
    "--apply",
    is_flag=True,
    help="Create the ACLs on the cluster, as the configured user (it may alter ACLs).",
)
def kafka_acls(apply: bool) -> None:
    """The ACLs each ledger principal needs (README, "Authenticated Kafka"): as kafka-acls.sh
    commands for an existing secured cluster, or created at once with --apply. `ledger up`
    creates them on the local stack itself."""
    from ledger.kafka.admin import ensure_acls
    from ledger.kafka.principals import ADMIN, GRANTS

    if not apply:
        for grant in GRANTS:
            click.echo(grant.acl_command())
        return
    settings = Settings.from_env()
    kafka = settings.kafka(ADMIN)
    asyncio.run(ensure_acls(kafka))
    click.echo(f"{len(GRANTS)} ACLs present on {kafka}")
