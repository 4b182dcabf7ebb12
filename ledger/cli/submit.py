"""``ledger submit OPERATION``: sign one transaction with key files and publish it.

1. load the signing keys (encrypted at rest; passphrases from --passphrase-env or prompts): the
   first --key submits, every further one cosigns (account policies that need several keys);
2. build the operation and its body (new tx_id, valid from now for --validity-s);
3. publish it with ``Publisher`` and, with --wait (the default), wait for its outcome: sealed
   (height and seq, exit 0) or refused (code and detail, exit 1). With --envelope-out, write the
   signed envelope to a file instead, for more signatures collected offline (``ledger sign``)
   and ``ledger submit envelope FILE``, which publishes it and waits the same way.

The tx_id is printed first, in hex, whatever happens next: it is the idempotency key and what
``ledger proof`` asks for. The operations are in ``ledger.cli.submit_money`` (transfer, hold,
capture, void, attest) and ``ledger.cli.submit_admin`` (keys, finality, account policies).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ledger import codec, limits, signing
from ledger.cli import cli
from ledger.cli.chain import DEFAULT_LEDGER
from ledger.cli.envelope_file import (
    checked_envelope_file,
    signer_ids,
    utc,
    write_envelope_file,
)
from ledger.cli.keys import DEFAULT_PASSPHRASE_ENV, read_passphrase
from ledger.errors import ConfidentialError, InfraError, LedgerError
from ledger.kafka.principals import PUBLISHER
from ledger.kafka_access import KafkaAccess
from ledger.model import Envelope, Operation, TxBody
from ledger.settings import Settings

connect_timeout_s = 15.0
"""Reaching the brokers; a reachable cluster answers in milliseconds."""

default_wait_timeout_s = 30.0
"""A sealed block arrives within block_wait_ms of the sequencer seeing the transaction."""


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
    metadata: tuple[str, ...]
    confidential_to: tuple[str, ...]
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
            "--meta",
            "metadata",
            multiple=True,
            metavar="KEY=VALUE",
            help=f"Metadata of the transaction (repeat, at most "
            f"{limits.metadata_entries_max_count}); on open-account, the account's.",
        ),
        click.option(
            "--confidential-to",
            "confidential_to",
            multiple=True,
            metavar="KEY",
            help="Encrypt --memo, --external-ref and --meta to this key (repeat, at most "
            f"{limits.confidential_recipients_max_count - 1}): a key_id registered on the ledger "
            "or a public key in hex. Name the counterparty and any auditor; the submitting key "
            "is always a recipient. Amounts and accounts stay public (docs/confidential.md).",
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


def parse_metadata(items: tuple[str, ...], option: str) -> dict[str, str]:
    """KEY=VALUE items as a dict; a usage error names a malformed or repeated one."""
    metadata: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=f"'{option}'")
        if key in metadata:
            raise click.BadParameter(f"key {key!r} is given twice", param_hint=f"'{option}'")
        metadata[key] = value
    if problem := codec.metadata_problem("metadata", metadata):
        raise click.BadParameter(problem, param_hint=f"'{option}'")
    return metadata


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
            read_passphrase(
                variable, prompt=f"Passphrase of {path}" if several else "Key passphrase"
            ),
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
            metadata=parse_metadata(common.metadata, "--meta"),
        )
        if common.confidential_to:
            body = _confidential(body, submitter, common.confidential_to)
        envelope = submitter.sign_body(
            codec.encode_tx_body(body), codec.body_version_of(body), cosigners=cosigners
        )
        raw = codec.encode_envelope(envelope)
    except ValueError as exc:  # codec.EncodeError is a ValueError too
        raise click.UsageError(f"invalid transaction: {' '.join(str(exc).split())}") from exc
    if len(raw) > limits.envelope_bytes_max:
        raise click.UsageError(
            f"invalid transaction: {len(raw)} bytes signed, at most {limits.envelope_bytes_max}"
        )
    if common.envelope_out is not None:
        _prepared(common.envelope_out, envelope, body, common.as_json)
        return
    publish_and_report(raw, body.tx_id, common.wait, common.timeout_s, common.as_json)


def _confidential(body: TxBody, submitter: signing.Signer, names: tuple[str, ...]) -> TxBody:
    """``body`` with its memo, reference and metadata encrypted to the --confidential-to keys and
    the submitter's own (first: it can read back what it sent). Key ids are looked up in
    PostgreSQL, each checked against its fingerprint; a usage error names a key that cannot
    receive."""
    from ledger.client.queries import recipient_keys
    from ledger.confidential import make_confidential

    try:
        keys = asyncio.run(recipient_keys(Settings.from_env().database_url, body.ledger, names))
        recipients = [submitter.public_key, *(key for key in keys if key != submitter.public_key)]
        return make_confidential(body, recipients)
    except ConfidentialError as exc:
        raise click.BadParameter(str(exc), param_hint="'--confidential-to'") from exc


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
    click.echo(f"next: ledger sign {path} --key KEY_FILE; then: ledger submit envelope {path}")


def publish_and_report(
    envelope: bytes, tx_id: bytes, wait: bool, timeout_s: float, as_json: bool
) -> None:
    """Publish one encoded envelope, wait for its outcome with ``wait``, print it."""
    settings = Settings.from_env()
    result = asyncio.run(_publish(settings.kafka(PUBLISHER), envelope, wait, timeout_s))
    _report({"tx_id": tx_id.hex(), **result}, as_json)


async def _publish(
    kafka: KafkaAccess, envelope: bytes, wait: bool, timeout_s: float
) -> dict[str, Any]:
    from ledger.client.publisher import Publisher, Sealed

    publisher = Publisher(kafka, client_id="ledger-cli-submit")
    try:
        try:
            await asyncio.wait_for(publisher.start(), connect_timeout_s)
        except TimeoutError as exc:
            raise InfraError(
                f"cannot reach Kafka at {kafka} within {connect_timeout_s:.0f} s"
            ) from exc
        if not wait:
            receipt = await asyncio.wait_for(publisher.submit(envelope), connect_timeout_s)
            return {"status": "submitted", "partition": receipt.partition, "offset": receipt.offset}
        [outcome] = await publisher.submit_and_wait([envelope], timeout_s=timeout_s)
    except TimeoutError as exc:
        raise InfraError(f"Kafka at {kafka} did not acknowledge in time") from exc
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


# ---- the command group, and publishing a prepared envelope --------------------------------


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
