"""``ledger db migrate``: bring the PostgreSQL schema up to date.

The asyncpg adapter lives in ``streams.postgres``; it is imported inside the command so that the
rest of the CLI, and ``ledger/`` as a whole, never loads a database driver.
"""

from __future__ import annotations

import asyncio
import json

import click

from ledger.cli import cli
from ledger.settings import Settings


@cli.group()
def db() -> None:
    """The PostgreSQL database the projector writes and analysts read."""


@db.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a line.")
def migrate(as_json: bool) -> None:
    """Apply the pending schema migrations in order (a second call is a no-op).

    The database is LEDGER_DATABASE_URL (default: the local stack's).
    """
    from streams.postgres import migrate as migrate_database
    from streams.postgres import redact_url

    database_url = Settings.from_env().database_url
    applied = asyncio.run(migrate_database(database_url))
    if as_json:
        click.echo(json.dumps({"database": redact_url(database_url), "applied": applied}))
        return
    click.echo("applied: " + ", ".join(applied) if applied else "up to date")
