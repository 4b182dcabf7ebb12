"""``ledger submit OPERATION``: sign one transaction with key files and publish it.

1. load the signing keys (encrypted at rest; passphrases from --passphrase-env or prompts): the
   first --key submits, every further one cosigns (account policies that need several keys);
2. build the operation and its body (new tx_id, valid from now for --validity-s);
3. publish it with ``Publisher`` and, with --wait (the default), wait for its outcome: sealed
   (height and seq, exit 0) or refused (code and detail, exit 1). With --envelope-out, write the
   signed envelope to a file instead, for more signatures collected offline (``ledger sign``)
   and ``ledger submit envelope FILE``, which publishes it and waits the same way.

The tx_id is printed first, in hex, whatever happens next: it is the idempotency key and what
``ledger proof`` asks for. Admin operations are in ``ledger.cli.submit_admin``.
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

from ledger import codec, limits, signing
from ledger.cli import cli
from ledger.cli.chain import DEFAULT_LEDGER, hex_option_callback, quiet_kafka_logs
from ledger.cli.envelope_file import (
    checked_envelope_file,
    signer_ids,
    utc,
    write_envelope_file,
)
from ledger.cli.keys import DEFAULT_PASSPHRASE_ENV, read_passphrase
from ledger.crossshard import Destination, destination_memo
from ledger.errors import ConfigError, InfraError, LedgerError
from ledger.model import (
    Attest,
    Capture,
    Envelope,
    Hold,
    Operation,
    Posting,
    Transfer,
    TxBody,
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

    key_files: tuple[Path, ...]
    passphrase_envs: tuple[str, ...]
    ledger: str
    memo: str | None
    external_ref: str | None
    validity_s: int
    envelope_out: Path | None
    wait: bool
    timeout_s: float
    as_json: bool

    @classmethod
    def pop_from(cls, arguments: dict[str, Any]) -> Common:
        """The shared options, taken out of a command's keyword ``arguments``."""
        names = cls.__dataclass_fields__
        return cls(**{name: arguments.pop(name) for name in list(arguments) if name in names})


signers_max_count = 1 + limits.cosigners_max_count
"""--key at most this often: the submitting key and every cosigner an envelope may carry."""

_outcome_options = [
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


def _with_options(
    function: Callable[..., Any], options: list[Callable[..., Any]]
) -> Callable[..., Any]:
    for option in reversed(options):
        function = option(function)
    return function


def outcome_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--wait/--no-wait, --timeout-s and --json: what publishing a prepared envelope takes."""
    return _with_options(function, _outcome_options)


def submit_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every operation: keys, body fields, --envelope-out, and the outcome's."""
    options = [
        click.option(
            "--key",
            "key_files",
            type=click.Path(dir_okay=False, path_type=Path),
            multiple=True,
            required=True,
            help="Encrypted key file that signs (from `ledger keygen`). Repeat for more "
            f"signatures (at most {signers_max_count}): the first key submits, the others cosign.",
        ),
        click.option(
            "--passphrase-env",
            "passphrase_envs",
            multiple=True,
            default=(DEFAULT_PASSPHRASE_ENV,),
            show_default=True,
            help="Environment variable holding the key passphrase: once for every --key, or "
            "once per --key in the same order (prompted when unset on a terminal).",
        ),
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
            help="Seconds the transaction stays valid (to collect signatures offline too); "
            "after that it is refused as EXPIRED.",
        ),
        click.option(
            "--envelope-out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the signed envelope to this file instead of publishing it: add "
            "signatures with `ledger sign`, publish it with `ledger submit envelope`.",
        ),
        *_outcome_options,
    ]
    return _with_options(function, options)


# ---- signing and publishing ----------------------------------------------------------------


def load_signers(common: Common) -> list[signing.Signer]:
    """The --key files in order, each unlocked with its --passphrase-env (or the one given)."""
    key_files, variables = common.key_files, common.passphrase_envs
    if len(key_files) > signers_max_count:
        raise click.UsageError(f"--key {len(key_files)} times: at most {signers_max_count}")
    if len(variables) not in (1, len(key_files)):
        raise click.UsageError(
            f"give --passphrase-env once, or once per --key ({len(key_files)} times)"
        )
    if len(variables) == 1:
        variables = variables * len(key_files)
    several = len(key_files) > 1
    return [
        signing.load_private_key(
            path,
            read_passphrase(variable, prompt=f"Passphrase of {path}" if several else "Key passphrase"),
        )
        for path, variable in zip(key_files, variables, strict=True)
    ]


def submit_operation(common: Common, op: Operation) -> None:
    """Sign ``op`` with every --key, then publish it or write it to --envelope-out."""
    submitter, *cosigners = load_signers(common)
    try:
        body = signing.build_tx_body(
            common.ledger,
            op,
            validity_ms=common.validity_s * 1000,
            memo=common.memo,
            external_ref=common.external_ref,
        )
        envelope = submitter.sign_body(codec.encode_tx_body(body), cosigners=cosigners)
        raw = codec.encode_envelope(envelope)
    except ValueError as exc:  # codec.EncodeError is a ValueError too
        raise click.UsageError(f"invalid transaction: {' '.join(str(exc).split())}") from exc
    if common.envelope_out is not None:
        _prepared(common.envelope_out, envelope, body, common.as_json)
        return
    publish_and_report(raw, body.tx_id, common.wait, common.timeout_s, common.as_json)


def _prepared(path: Path, envelope: Envelope, body: TxBody, as_json: bool) -> None:
    write_envelope_file(path, envelope)
    signers = signer_ids(envelope)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "tx_id": body.tx_id.hex(),
                    "status": "prepared",
                    "file": str(path),
                    "signers": signers,
                    "expires_at_ms": body.expires_at_ms,
                }
            )
        )
        return
    click.echo(f"tx {body.tx_id.hex()}")
    click.echo(
        f"prepared, not published: {path}, signed by {len(signers)} "
        f"key{'s' if len(signers) > 1 else ''}, valid until {utc(body.expires_at_ms)}"
    )


def publish_and_report(
    envelope: bytes, tx_id: bytes, wait: bool, timeout_s: float, as_json: bool
) -> None:
    """Publish one encoded envelope, wait for its outcome with ``wait``, print it."""
    quiet_kafka_logs()
    settings = Settings.from_env()
    result = asyncio.run(_publish(settings.kafka_bootstrap_servers, envelope, wait, timeout_s))
    _report({"tx_id": tx_id.hex(), **result}, as_json)


async def _publish(
    bootstrap_servers: str, envelope: bytes, wait: bool, timeout_s: float
) -> dict[str, Any]:
    from ledger.client.publisher import Publisher, Sealed

    publisher = Publisher(bootstrap_servers, client_id="ledger-cli-submit")
    try:
        try:
            await asyncio.wait_for(publisher.start(), connect_timeout_s)
        except TimeoutError as exc:
            raise InfraError(
                f"cannot reach Kafka at {bootstrap_servers} within {connect_timeout_s:.0f} s"
            ) from exc
        if not wait:
            receipt = await asyncio.wait_for(publisher.submit(envelope), connect_timeout_s)
            return {"status": "submitted", "partition": receipt.partition, "offset": receipt.offset}
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=timeout_s)
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
    """Sign a transaction with key files and publish it (waits for the outcome by default), or
    write it to a file for more signatures (--envelope-out), or publish such a file (envelope).
    """


@submit.command("envelope")
@click.argument(
    "envelope_path", metavar="ENVELOPE_FILE", type=click.Path(dir_okay=False, path_type=Path)
)
@outcome_options
def publish_envelope(envelope_path: Path, wait: bool, timeout_s: float, as_json: bool) -> None:
    """Publish a prepared envelope (from --envelope-out, cosigned with `ledger sign`) as it is.

    Its signatures must hold and it must not have expired: checked here before publishing.
    """
    prepared = checked_envelope_file(envelope_path)
    publish_and_report(prepared.raw, prepared.body.tx_id, wait, timeout_s, as_json)


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
    quiet_kafka_logs()
    result = asyncio.run(
        transfer_across(
            settings.kafka_bootstrap_servers,
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
