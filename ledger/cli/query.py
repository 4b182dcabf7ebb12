"""``ledger balance`` and ``ledger tx``: what PostgreSQL says about an account or a transaction."""

from __future__ import annotations

import asyncio
import json

import click

from ledger.cli import cli
from ledger.cli.chain import ledger_option, parse_hex
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
    """Status of transaction TX_ID_HEX: sealed (block height, seq) or refused (code)."""
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
    for rejection in result["rejections"]:
        click.echo(f"refused ({rejection['stage']}): {rejection['code']}: {rejection['detail']}")
