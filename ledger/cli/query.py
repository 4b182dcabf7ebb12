"""``ledger balance``, ``ledger tx`` and ``ledger reconcile``: questions answered from PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import click

from ledger.cli import cli
from ledger.cli.chain import ledger_option, parse_hex
from ledger.errors import ConfigError
from ledger.settings import Settings


@cli.command()
@click.argument("account")
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def balance(account: str, ledger: str, as_json: bool) -> None:
    """Balance, held and available amount of ACCOUNT (minor units)."""
    from ledger.client.queries import balance as read_balance

    result = asyncio.run(read_balance(Settings.from_env().database_url, ledger, account))
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(
        f"{result.account} ({result.asset}, {result.status}): balance {result.balance}, "
        f"held {result.held}, available {result.available} (as of height {result.updated_height})"
    )


@cli.command()
@click.argument("tx_id_hex")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def tx(tx_id_hex: str, as_json: bool) -> None:
    """Status of transaction TX_ID_HEX: sealed (block height, seq) and final or not, or refused
    (code)."""
    from ledger.client.queries import transaction

    result = asyncio.run(
        transaction(Settings.from_env().database_url, parse_hex(tx_id_hex, 16, "TX_ID"))
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    if result["status"] == "sealed":
        click.echo(
            f"sealed: ledger {result['ledger']}, block {result['height']}, seq {result['seq']}, "
            f"{result['kind']} by key {result['key_id']} at {result['sealed_at']}"
        )
        if result["cosigners"]:
            click.echo(f"cosigned by: {', '.join(result['cosigners'])}")
        if result["metadata"]:
            pairs = ", ".join(f"{key}={value}" for key, value in result["metadata"].items())
            click.echo(f"metadata: {pairs}")
        if result["reverses"]:
            click.echo(f"reverses: tx {result['reverses']}")
        if result["reversed_by"]:
            click.echo(f"reversed by: tx {', tx '.join(result['reversed_by'])}")
        cross = result.get("cross_shard")
        if cross is not None:
            click.echo(
                f"cross-shard to {cross['destination_account']} on {cross['destination_ledger']}: "
                f"{cross['state']}"
            )
        threshold = result["finality_threshold"]
        if result["final"]:
            click.echo(
                f"final: co-signed by at least {threshold} witnesses" if threshold else "final"
            )
        else:
            click.echo(f"not final yet: waits for {threshold} witnesses to co-sign")
    for rejection in result["rejections"]:
        click.echo(f"refused ({rejection['stage']}): {rejection['code']}: {rejection['detail']}")


@cli.command()
@click.argument("statement", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@ledger_option
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Start of the statement's period (UTC): also report ledger entries missing from it.",
)
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="End of the period (exclusive, UTC); default now.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as one JSON object.")
def reconcile(
    statement: Path, ledger: str, since: datetime | None, until: datetime | None, as_json: bool
) -> None:
    """Match a statement (CSV: external_ref,account,amount[,asset]) against the ledger.

    Exit 0 when every line matches, 1 when anything differs.
    """
    from ledger.client.queries import ledger_entries
    from ledger.reconcile import parse_statement
    from ledger.reconcile import reconcile as match

    try:
        lines = parse_statement(statement.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read statement {statement}: {exc}") from exc
    start = since.replace(tzinfo=UTC) if since else None
    end = (until.replace(tzinfo=UTC) if until else datetime.now(UTC)) if start else None
    entries = asyncio.run(
        ledger_entries(
            Settings.from_env().database_url,
            ledger,
            sorted({line.external_ref for line in lines}),
            sorted({line.account for line in lines}),
            start,
            end,
        )
    )
    report = match(lines, entries, report_unexpected=start is not None)
    if as_json:
        click.echo(
            json.dumps({"clean": report.clean, "counts": report.counts(), **report.as_dict()})
        )
    else:
        click.echo(
            ", ".join(
                f"{name.replace('_', ' ')} {count}" for name, count in report.counts().items()
            )
        )
        for bucket, items in report.as_dict().items():
            if bucket != "matched":
                for item in items:
                    click.echo(f"{bucket}: {json.dumps(item)}")
    if not report.clean:
        raise SystemExit(1)
