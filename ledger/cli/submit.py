"""``ledger submit OPERATION``: sign one transaction with a key file and publish it.

1. load the signing key (encrypted at rest; passphrase from --passphrase-env or a prompt);
2. build the operation and its body (new tx_id, valid from now for --validity-s);
3. publish it with ``Publisher`` and, with --wait (the default), wait for its outcome: sealed
   (height and seq, exit 0) or refused (code and detail, exit 1).

The tx_id is printed first, in hex, whatever happens next: it is the idempotency key and what
``ledger proof`` asks for.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ledger import limits, signing
from ledger.cli import cli
from ledger.cli.chain import DEFAULT_LEDGER, hex_option_callback, quiet_kafka_logs
from ledger.cli.keys import passphrase_option, read_passphrase
from ledger.crossshard import Destination, destination_memo
from ledger.errors import ConfigError, InfraError, LedgerError
from ledger.model import (
    Attest,
    Capture,
    Hold,
    Operation,
    Posting,
    RegisterKey,
    RevokeKey,
    Role,
    SetFinality,
    Transfer,
    Void,
)
from ledger.settings import Settings

connect_timeout_s = 15.0
"""Reaching the brokers; a reachable cluster answers in milliseconds."""

default_wait_timeout_s = 30.0
"""A sealed block arrives within block_wait_ms of the sequencer seeing the transaction."""

digest_read_chunk_bytes = 1024 * 1024


class TransactionRefused(LedgerError):
    """The ledger refused the transaction: a value of the pipeline, reported as exit 1."""


@dataclass(frozen=True)
class Common:
    """What every submit subcommand shares."""

    key_file: Path
    passphrase_env: str
    ledger: str
    memo: str | None
    external_ref: str | None
    validity_s: int
    wait: bool
    timeout_s: float
    as_json: bool


def _common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--key",
            "key_file",
            type=click.Path(dir_okay=False, path_type=Path),
            required=True,
            help="Encrypted key file that signs (from `ledger keygen`).",
        ),
        passphrase_option,
        click.option(
            "--ledger", default=DEFAULT_LEDGER, show_default=True, help="Ledger (shard) name."
        ),
        click.option("--memo", help=f"Free text, up to {limits.memo_chars_max} characters."),
        click.option(
            "--external-ref",
            help=f"Your own reference (for reconciliation), up to "
            f"{limits.external_ref_chars_max} characters.",
        ),
        click.option(
            "--validity-s",
            type=click.IntRange(1, limits.validity_window_ms_max // 1000),
            default=60,
            show_default=True,
            help="Seconds the transaction stays valid; after that it is refused as EXPIRED.",
        ),
        click.option(
            "--wait/--no-wait",
            default=True,
            show_default=True,
            help="Wait for the outcome (sealed or refused), or return once Kafka has it.",
        ),
        click.option(
            "--timeout-s",
            type=click.FloatRange(min=1, max=600),
            default=default_wait_timeout_s,
            show_default=True,
            help="Longest wait for the outcome.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _common(arguments: dict[str, Any]) -> Common:
    names = Common.__dataclass_fields__
    return Common(**{name: arguments.pop(name) for name in list(arguments) if name in names})


# ---- publishing ----------------------------------------------------------------------------


def _submit(common: Common, op: Operation) -> None:
    signer = signing.load_private_key(common.key_file, read_passphrase(common.passphrase_env))
    try:
        body = signing.build_tx_body(
            common.ledger,
            op,
            validity_ms=common.validity_s * 1000,
            memo=common.memo,
            external_ref=common.external_ref,
        )
        envelope = signer.sign(body)
    except ValueError as exc:  # codec.EncodeError is a ValueError too
        raise click.UsageError(f"invalid transaction: {' '.join(str(exc).split())}") from exc
    quiet_kafka_logs()
    settings = Settings.from_env()
    result = asyncio.run(_publish(settings.kafka_bootstrap_servers, envelope, common))
    result = {"tx_id": body.tx_id.hex(), **result}
    _report(result, common.as_json)


async def _publish(bootstrap_servers: str, envelope: bytes, common: Common) -> dict[str, Any]:
    from ledger.client.publisher import Publisher, Sealed

    publisher = Publisher(bootstrap_servers, client_id="ledger-cli-submit")
    try:
        try:
            await asyncio.wait_for(publisher.start(), connect_timeout_s)
        except TimeoutError as exc:
            raise InfraError(
                f"cannot reach Kafka at {bootstrap_servers} within {connect_timeout_s:.0f} s"
            ) from exc
        if not common.wait:
            receipt = await asyncio.wait_for(publisher.submit(envelope), connect_timeout_s)
            return {"status": "submitted", "partition": receipt.partition, "offset": receipt.offset}
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=common.timeout_s)
    except TimeoutError as exc:
        raise InfraError(f"Kafka at {bootstrap_servers} did not acknowledge in time") from exc
    finally:
        await publisher.stop()
    if isinstance(outcome, Sealed):
        return {
            "status": "sealed",
            "ledger": outcome.ledger,
            "height": outcome.height,
            "seq": outcome.seq,
            "sealed_at_ms": outcome.sealed_at_ms,
        }
    return {
        "status": "refused",
        "code": outcome.code,
        "detail": outcome.detail,
        "stage": outcome.stage,
    }


def _report(result: dict[str, Any], as_json: bool) -> None:
    status = result["status"]
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"tx {result['tx_id']}")
        if status == "sealed":
            click.echo(
                f"sealed in ledger {result['ledger']} at height {result['height']}, "
                f"seq {result['seq']}"
            )
        elif status == "submitted":
            click.echo(
                f"submitted (partition {result['partition']}, offset {result['offset']}); "
                "not waiting for the outcome"
            )
    if status == "refused":
        detail = " ".join(str(result["detail"]).split())
        raise TransactionRefused(
            f"tx {result['tx_id']} refused at stage {result['stage']}: {result['code']}: {detail}"
        )


# ---- the operations --------------------------------------------------------------------------


@cli.group()
def submit() -> None:
    """Sign a transaction with a key file and publish it (waits for the outcome by default)."""


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
@_common_options
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
    common = _common(arguments)
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
    _submit(common, Transfer(legs))


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
@_common_options
def hold(
    payer: str, payee: str, asset: str, amount: int, expires_in_s: int, **arguments: Any
) -> None:
    """Reserve funds for a payee until captured, voided or expired (hold id = this tx_id)."""
    common = _common(arguments)
    expires_at_ms = time.time_ns() // 1_000_000 + expires_in_s * 1000
    _submit(common, Hold(payer, payee, asset, amount, expires_at_ms))


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
@_common_options
def capture(hold_id: bytes, amount: int | None, **arguments: Any) -> None:
    """Pay out all or part of a hold to its payee."""
    _submit(_common(arguments), Capture(hold_id, amount))


@submit.command()
@hold_option
@_common_options
def void(hold_id: bytes, **arguments: Any) -> None:
    """Cancel a hold: its funds return to the payer."""
    _submit(_common(arguments), Void(hold_id))


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
@_common_options
def attest(document: Path | None, digest: bytes | None, **arguments: Any) -> None:
    """Anchor a document's SHA-256 digest in the ledger: proof of existence, no money moves."""
    common = _common(arguments)
    if (document is None) == (digest is None):
        raise click.UsageError("give exactly one of --file and --digest")
    if document is not None:
        digest = _file_digest(document)
    assert digest is not None
    _submit(common, Attest(digest, "sha256"))


# ---- admin operations: keys and the finality policy ------------------------------------------


@submit.command("register-key")
@click.option(
    "--public-key",
    required=True,
    callback=hex_option_callback(signing.public_key_bytes, "--public-key"),
    help="The new key's Ed25519 public key (64 hex digits).",
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice([role.value for role in Role]),
    help="A role of the key (repeat for several): admin, sealer, witness.",
)
@click.option("--account", "accounts", multiple=True, help="An account the key may spend from.")
@_common_options
def register_key(
    public_key: bytes, roles: tuple[str, ...], accounts: tuple[str, ...], **arguments: Any
) -> None:
    """Register a key (admin only): its roles and the accounts it may spend from."""
    _submit(_common(arguments), RegisterKey(public_key, roles, accounts))


@submit.command("revoke-key")
@click.option("--key-id", required=True, help="The key's id (32 hex digits).")
@_common_options
def revoke_key(key_id: str, **arguments: Any) -> None:
    """Revoke a key for good (admin only): it signs nothing after this block."""
    _submit(_common(arguments), RevokeKey(key_id))


@submit.command("set-finality")
@click.option(
    "--threshold",
    required=True,
    type=click.IntRange(min=0),
    help="Registered witnesses that must co-sign a block for it to be final (0: final when sealed).",
)
@_common_options
def set_finality(threshold: int, **arguments: Any) -> None:
    """Set the ledger's finality policy (admin only; at most the registered witnesses)."""
    _submit(_common(arguments), SetFinality(threshold))


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
    settings = Settings.from_env()
    if destination.ledger not in settings.shards:
        raise ConfigError(f"--to-ledger {destination.ledger!r} is not in LEDGER_SHARDS")
    clearing = asyncio.run(issuer_account(settings.database_url, common.ledger, asset))
    signer = signing.load_private_key(common.key_file, read_passphrase(common.passphrase_env))
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
    quiet_kafka_logs()
    result = asyncio.run(
        transfer_across(
            settings.kafka_bootstrap_servers,
            signer.sign(body),
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
