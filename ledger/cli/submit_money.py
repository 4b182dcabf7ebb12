"""``ledger submit transfer|hold|capture|void|attest``: the operations that move or anchor.

Each builds its operation from its options and hands it to ``ledger.cli.submit`` to sign with
every --key and publish (or write to --envelope-out). A transfer to another shard (--to-ledger)
is a hold here that the cross-shard coordinator completes, followed to its end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import click

from ledger import signing
from ledger.cli.chain import hex_option_callback, parse_hex
from ledger.cli.submit import (
    Common,
    TransactionRefused,
    load_signers,
    submit,
    submit_operation,
    submit_options,
)
from ledger.crossshard import Destination, destination_memo
from ledger.errors import ConfigError
from ledger.kafka.principals import PUBLISHER
from ledger.model import Attest, Capture, Hold, Posting, Transfer, Void
from ledger.settings import Settings

digest_read_chunk_bytes = 1024 * 1024


def _posting(text: str) -> Posting:
    parts = text.rsplit(":", 2)
    problem = f"{text!r} is not ACCOUNT:ASSET:AMOUNT (AMOUNT: signed integer, minor units)"
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise click.BadParameter(problem, param_hint="'--posting'")
    try:
        amount = int(parts[2])
    except ValueError:
        raise click.BadParameter(problem, param_hint="'--posting'") from None
    return Posting(parts[0], parts[1], amount)


@submit.command()
@click.option(
    "--posting",
    "postings",
    multiple=True,
    metavar="ACCOUNT:ASSET:AMOUNT",
    help="One leg (repeat 2 to 16 times): negative debits, positive credits, balanced per asset.",
)
@click.option("--from", "from_account", help="Shortcut: the account paying --amount.")
@click.option("--to", "to_account", help="Shortcut: the account receiving --amount.")
@click.option("--asset", help="Shortcut: the asset moved.")
@click.option("--amount", type=click.IntRange(min=1), help="Shortcut: minor units moved.")
@click.option(
    "--to-ledger",
    help="With the shortcut: --to is an account of this other shard (a cross-shard transfer: "
    "held here, cleared by the coordinator, credited there, or refunded).",
)
@submit_options
def transfer(
    postings: tuple[str, ...],
    from_account: str | None,
    to_account: str | None,
    asset: str | None,
    amount: int | None,
    to_ledger: str | None,
    **arguments: Any,
) -> None:
    """Move money: --posting legs, or --from A --to B --asset X --amount N [--to-ledger L]."""
    common = Common.pop_from(arguments)
    if to_ledger is not None and to_ledger != common.ledger:
        if postings or None in (from_account, to_account, asset, amount):
            raise click.UsageError("--to-ledger needs --from --to --asset --amount")
        assert from_account and to_account and asset and amount
        _transfer_across(common, from_account, Destination(to_ledger, to_account), asset, amount)
        return
    shortcut = (from_account, to_account, asset, amount)
    if postings and any(value is not None for value in shortcut):
        raise click.UsageError("use either --posting or --from/--to/--asset/--amount, not both")
    if postings:
        legs = tuple(_posting(text) for text in postings)
    elif all(value is not None for value in shortcut):
        assert from_account and to_account and asset and amount
        legs = (Posting(from_account, asset, -amount), Posting(to_account, asset, amount))
    else:
        raise click.UsageError(
            "give --posting (twice or more) or all of --from --to --asset --amount"
        )
    submit_operation(common, Transfer(legs))


@submit.command()
@click.option("--payer", required=True, help="Account whose funds are reserved.")
@click.option("--payee", required=True, help="Account that may capture them.")
@click.option("--asset", required=True)
@click.option("--amount", type=click.IntRange(min=1), required=True, help="Minor units reserved.")
@click.option(
    "--expires-in-s",
    type=click.IntRange(min=1),
    required=True,
    help="Seconds until the hold expires and the funds return to the payer.",
)
@submit_options
def hold(
    payer: str, payee: str, asset: str, amount: int, expires_in_s: int, **arguments: Any
) -> None:
    """Reserve funds for a payee until captured, voided or expired (hold id = this tx_id)."""
    common = Common.pop_from(arguments)
    expires_at_ms = time.time_ns() // 1_000_000 + expires_in_s * 1000
    submit_operation(common, Hold(payer, payee, asset, amount, expires_at_ms))


hold_option = click.option(
    "--hold",
    "hold_id",
    required=True,
    callback=hex_option_callback(signing.tx_id_bytes, "--hold"),
    help="The hold's id: the tx_id of the hold transaction (32 hex digits).",
)


@submit.command()
@hold_option
@click.option("--amount", type=click.IntRange(min=1), help="Capture part of it (default: all).")
@submit_options
def capture(hold_id: bytes, amount: int | None, **arguments: Any) -> None:
    """Pay out all or part of a hold to its payee."""
    submit_operation(Common.pop_from(arguments), Capture(hold_id, amount))


@submit.command()
@hold_option
@submit_options
def void(hold_id: bytes, **arguments: Any) -> None:
    """Cancel a hold: its funds return to the payer."""
    submit_operation(Common.pop_from(arguments), Void(hold_id))


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(digest_read_chunk_bytes):
                digest.update(chunk)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="'--file'"
        ) from exc
    return digest.digest()


@submit.command()
@click.option(
    "--file",
    "document",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Document to anchor: its SHA-256 is attested.",
)
@click.option(
    "--digest",
    callback=hex_option_callback(32, "--digest"),
    help="SHA-256 digest to anchor (64 hex digits), instead of --file.",
)
@submit_options
def attest(document: Path | None, digest: bytes | None, **arguments: Any) -> None:
    """Anchor a document's SHA-256 digest in the ledger: proof of existence, no money moves."""
    common = Common.pop_from(arguments)
    if (document is None) == (digest is None):
        raise click.UsageError("give exactly one of --file and --digest")
    if document is not None:
        digest = _file_digest(document)
    assert digest is not None
    submit_operation(common, Attest(digest, "sha256"))


cross_shard_hold_validity_ms = 10 * 60_000
"""How long a cross-shard hold lasts: the coordinator captures it within seconds; if it was down
for longer, the hold expires and nothing moves."""


def _transfer_across(
    common: Common, payer: str, destination: Destination, asset: str, amount: int
) -> None:
    """Hold ``amount`` here for the asset's issuer account, naming the destination, and wait
    until the coordinator credited it there (exit 0) or refunded it here (exit 1)."""
    from ledger.client.crossshard import transfer_across
    from ledger.client.queries import issuer_account

    if common.memo is not None:
        raise click.UsageError("a cross-shard transfer's memo names its destination: drop --memo")
    if common.confidential_to:
        raise click.UsageError(
            "the coordinators read a cross-shard transfer's memo: drop --confidential-to"
        )
    if common.envelope_out is not None:
        raise click.UsageError(
            "a cross-shard transfer is published and followed at once: drop --envelope-out"
        )
    settings = Settings.from_env()
    if destination.ledger not in settings.shards:
        raise ConfigError(f"--to-ledger {destination.ledger!r} is not in LEDGER_SHARDS")
    clearing = asyncio.run(issuer_account(settings.database_url, common.ledger, asset))
    submitter, *cosigners = load_signers(common)
    now_ms = int(time.time() * 1000)
    hold = Hold(payer, clearing, asset, amount, now_ms + cross_shard_hold_validity_ms)
    body = signing.build_tx_body(
        common.ledger,
        hold,
        validity_ms=common.validity_s * 1000,
        now_ms=now_ms,
        memo=destination_memo(destination),
        external_ref=common.external_ref,
    )
    result = asyncio.run(
        transfer_across(
            settings.kafka(PUBLISHER),
            submitter.sign(body, cosigners=cosigners),
            body.tx_id,
            completion_wait_s=common.timeout_s * 2,
        )
    )
    result = {"tx_id": body.tx_id.hex(), **result}
    if common.as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"tx {body.tx_id.hex()}")
        if result["status"] == "completed":
            click.echo(
                f"completed: held on {result['hold']['ledger']} at height "
                f"{result['hold']['height']}, credited on {result['end']['ledger']} at height "
                f"{result['end']['height']}"
            )
    if result["status"] == "refused":
        raise TransactionRefused(f"refused: {result['code']}: {result['detail']}")
    if result["status"] == "refunded":
        raise TransactionRefused(
            f"refunded: {destination.ledger} refused the credit to {destination.account}; "
            f"the payer got the money back on {common.ledger} at height {result['end']['height']}"
        )


@submit.command()
@click.argument("tx_id_hex", metavar="TX_ID")
@click.option(
    "--posting",
    "postings",
    multiple=True,
    metavar="ACCOUNT:ASSET:AMOUNT",
    help="A reversing leg (repeat): the opposite sign of the original's leg to that account and "
    "no more than what remains of it. None: reverse all that remains.",
)
@submit_options
def reverse(tx_id_hex: str, postings: tuple[str, ...], **arguments: Any) -> None:
    """Undo a sealed transfer in full or in part: signed like a transfer, by the accounts it
    debits (the original's payees). It carries the proof that TX_ID was sealed, read from
    PostgreSQL; the views link the two (analytics.v_reversals)."""
    from ledger.client.reversal import reversal_from_postgres

    common = Common.pop_from(arguments)
    tx_id = parse_hex(tx_id_hex, signing.tx_id_bytes, "TX_ID")
    legs = [_posting(posting) for posting in postings]
    settings = Settings.from_env()
    op = asyncio.run(reversal_from_postgres(settings.database_url, common.ledger, tx_id, legs))
    submit_operation(common, op)
