"""``ledger balance``, ``ledger tx`` and ``ledger reconcile``: questions answered from PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ledger import codec, signing
from ledger.cli import cli
from ledger.cli.chain import ledger_option, parse_hex
from ledger.cli.keys import passphrase_option, read_passphrase
from ledger.confidential import open_confidential
from ledger.errors import ConfigError
from ledger.model import ConfidentialFields
from ledger.settings import Settings
from ledger.signing import load_private_key


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


key_option = click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Encrypted key file of a recipient: decrypts the confidential fields encrypted to it.",
)


@cli.command()
@click.argument("tx_id_hex")
@click.option(
    "--decrypt",
    is_flag=True,
    help="Also show the memo, external ref and metadata encrypted to --key (docs/confidential.md).",
)
@key_option
@passphrase_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def tx(
    tx_id_hex: str, decrypt: bool, key_file: Path | None, passphrase_env: str, as_json: bool
) -> None:
    """Status of transaction TX_ID_HEX: sealed (block height, seq) and final or not, or refused
    (code); with --decrypt, its confidential fields as --key reads them."""
    from ledger.client.queries import transaction

    if decrypt != (key_file is not None):
        raise click.UsageError("--decrypt and --key go together")
    settings = Settings.from_env()
    tx_id = parse_hex(tx_id_hex, 16, "TX_ID")
    result = asyncio.run(transaction(settings.database_url, tx_id))
    if key_file is not None:
        fields = _decrypted(settings, tx_id, key_file, passphrase_env)
        result["confidential"] = {
            "memo": fields.memo,
            "external_ref": fields.external_ref,
            "metadata": dict(fields.metadata),
        }
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
        if result["confidential_to"]:
            click.echo(f"confidential to: {', '.join(result['confidential_to'])}")
        if "confidential" in result:
            _echo_fields(result["confidential"])
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


def _decrypted(
    settings: Settings, tx_id: bytes, key_file: Path, passphrase_env: str
) -> ConfidentialFields:
    """The confidential fields of sealed ``tx_id`` as ``key_file``'s key reads them: the envelope
    from PostgreSQL, its signatures checked, then decrypted and checked against its commitment
    here (ConfidentialError, NotARecipient: one line, exit 1)."""
    from ledger.client.queries import sealed_envelope

    signer = load_private_key(key_file, read_passphrase(passphrase_env))
    envelope, body = codec.decode_submission(
        asyncio.run(sealed_envelope(settings.database_url, tx_id))
    )
    signing.verify_envelope(envelope)
    return open_confidential(body, signer)


def _echo_fields(fields: dict[str, Any]) -> None:
    """The decrypted fields as they were typed: no quoting, no escaping."""
    click.echo(f"memo: {fields['memo'] if fields['memo'] is not None else '-'}")
    external_ref = fields["external_ref"]
    click.echo(f"external ref: {external_ref if external_ref is not None else '-'}")
    if fields["metadata"]:
        pairs = ", ".join(f"{key}={value}" for key, value in fields["metadata"].items())
        click.echo(f"metadata (confidential): {pairs}")


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
@key_option
@passphrase_option
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as one JSON object.")
def reconcile(
    statement: Path,
    ledger: str,
    since: datetime | None,
    until: datetime | None,
    key_file: Path | None,
    passphrase_env: str,
    as_json: bool,
) -> None:
    """Match a statement (CSV: external_ref,account,amount[,asset]) against the ledger.

    With --key, transactions whose references are encrypted to that key are decrypted here and
    matched too. Exit 0 when every line matches, 1 when anything differs.
    """
    from ledger.client.queries import confidential_candidates, ledger_entries
    from ledger.reconcile import opened_entries, parse_statement
    from ledger.reconcile import reconcile as match

    try:
        lines = parse_statement(statement.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read statement {statement}: {exc}") from exc
    signer = (
        None if key_file is None else load_private_key(key_file, read_passphrase(passphrase_env))
    )
    start = since.replace(tzinfo=UTC) if since else None
    end = (until.replace(tzinfo=UTC) if until else datetime.now(UTC)) if start else None
    database_url = Settings.from_env().database_url
    references = sorted({line.external_ref for line in lines})
    accounts = sorted({line.account for line in lines})
    entries = asyncio.run(ledger_entries(database_url, ledger, references, accounts, start, end))
    unreadable: list[dict[str, object]] = []
    if signer is not None:
        candidates = asyncio.run(
            confidential_candidates(database_url, ledger, signer.key_id, accounts, start, end)
        )
        opened, unreadable = opened_entries(
            candidates, signer, None if start is not None else set(references)
        )
        entries += opened
    report = match(lines, entries, report_unexpected=start is not None, unreadable=unreadable)
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
