"""Envelope files, for signatures collected offline, and ``ledger sign`` that adds one.

``ledger submit OPERATION --envelope-out FILE`` signs a transaction and writes it instead of
publishing it; each further signer runs ``ledger sign FILE --key KEY``, which shows what the
transaction does before it signs; ``ledger submit envelope FILE`` publishes it.

The file holds the envelope's exact Avro bytes (a ``ledger.v1.Envelope``, a
``ledger.v1.MultiSignedEnvelope`` once cosigned): the very message value that is published, so
there is no second spelling of what was signed, no wrapper for another language to parse, and
a file read back passes the same decoder as the verify stage. ``xxd`` shows it; ``ledger sign``
describes it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ledger import codec, limits, signing
from ledger.cli import cli
from ledger.cli.keys import passphrase_option, read_passphrase
from ledger.errors import ConfigError, DecodeError, LedgerError, SignatureError
from ledger.model import Envelope, Transfer, TxBody, plain


class EnvelopeExpired(LedgerError):
    """The envelope's validity window has passed: the ledger would refuse it as EXPIRED."""


@dataclass(frozen=True)
class EnvelopeFile:
    """An envelope file as read: its exact bytes, the envelope and its decoded body."""

    path: Path
    raw: bytes
    envelope: Envelope
    body: TxBody


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def utc(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def read_envelope_file(path: Path) -> EnvelopeFile:
    """The envelope in ``path``, decoded as the verify stage decodes a submission.

    Its signatures are not checked here (``checked_envelope_file`` does).
    """
    try:
        with path.open("rb") as file:
            raw = file.read(limits.envelope_bytes_max + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > limits.envelope_bytes_max:
        raise DecodeError(
            f"{path} is larger than {limits.envelope_bytes_max} bytes: not a signed envelope"
        )
    try:
        envelope, body = codec.decode_submission(raw)
    except DecodeError as exc:
        raise DecodeError(f"{path} is not a signed envelope: {exc}") from exc
    return EnvelopeFile(path, raw, envelope, body)


def checked_envelope_file(path: Path) -> EnvelopeFile:
    """The envelope in ``path`` once every signature on it holds and it has not expired.

    SignatureError names the key whose signature fails (the file was changed after it was
    signed, or forged); EnvelopeExpired says when it expired: the ledger would refuse either.
    """
    prepared = read_envelope_file(path)
    try:
        signing.verify_envelope(prepared.envelope)
    except SignatureError as exc:
        raise SignatureError(f"{path}: {exc}: changed after it was signed, or forged") from exc
    body = prepared.body
    if body.expires_at_ms < now_ms():
        raise EnvelopeExpired(
            f"{path}: tx {body.tx_id.hex()} expired at {utc(body.expires_at_ms)}; the ledger "
            "would refuse it (EXPIRED): prepare it again"
        )
    return prepared


def write_envelope_file(path: Path, envelope: Envelope) -> None:
    """Write the envelope's bytes to ``path``, whole or not at all: a temporary file beside it,
    renamed over it (a signature added in place never leaves half a file)."""
    raw = codec.encode_envelope(envelope)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(raw)
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def signer_ids(envelope: Envelope) -> list[str]:
    """Key ids of the envelope's signers, the submitting one first."""
    return [signing.key_id(public_key) for public_key, _ in envelope.signers()]


def summary(envelope: Envelope, body: TxBody) -> dict[str, Any]:
    """What a signer approves: the operation and every field of the body, and who signed."""
    return {
        "tx_id": body.tx_id.hex(),
        "ledger": body.ledger,
        "kind": type(body.op).__name__,
        "operation": plain(body.op),
        "created_at_ms": body.created_at_ms,
        "expires_at_ms": body.expires_at_ms,
        "memo": body.memo,
        "external_ref": body.external_ref,
        "confidential_to": list(body.confidential.key_ids()) if body.confidential else None,
        "signers": signer_ids(envelope),
    }


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value) or "-"
    return str(value)


def summary_lines(envelope: Envelope, body: TxBody) -> list[str]:
    """The summary for a person: one line per posting or operation field."""
    lines = [f"tx {body.tx_id.hex()} on ledger {body.ledger}: {type(body.op).__name__}"]
    if isinstance(body.op, Transfer):
        width = max(len(posting.account) for posting in body.op.postings)
        lines += [
            f"  {posting.account:<{width}}  {posting.asset}  {posting.amount:+d}"
            for posting in body.op.postings
        ]
    else:
        lines += [f"  {name}: {_text(value)}" for name, value in plain(body.op).items()]
    remaining_s = (body.expires_at_ms - now_ms()) // 1000
    lines.append(
        f"valid from {utc(body.created_at_ms)} until {utc(body.expires_at_ms)} "
        f"({remaining_s} s left)"
    )
    if body.memo is not None:
        lines.append(f"memo: {body.memo}")
    if body.external_ref is not None:
        lines.append(f"external ref: {body.external_ref}")
    if body.confidential is not None:
        lines.append(
            "memo, external ref and metadata encrypted to: "
            + ", ".join(body.confidential.key_ids())
        )
    lines.append(f"signers (the first submits): {', '.join(signer_ids(envelope))}")
    return lines


@cli.command()
@click.argument(
    "envelope_path", metavar="ENVELOPE_FILE", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Encrypted key file that adds its signature.",
)
@passphrase_option
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the envelope with the new signature here (default: back to ENVELOPE_FILE).",
)
@click.option("--yes", is_flag=True, help="Sign without asking (asked only on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sign(
    envelope_path: Path,
    key_file: Path,
    passphrase_env: str,
    out_path: Path | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Add your signature to a prepared envelope (`ledger submit ... --envelope-out`).

    Shows the transaction first (operation, postings, tx_id, validity, signers) and, on a
    terminal, asks before it signs. Refuses an envelope whose signatures do not hold or that
    expired, and a key that already signed it.
    """
    prepared = checked_envelope_file(envelope_path)
    lines = summary_lines(prepared.envelope, prepared.body)
    asking = not yes and click.get_text_stream("stdin").isatty()
    if not as_json or asking:
        click.echo("\n".join(lines), err=as_json)
    if asking:
        click.confirm("Sign this transaction?", abort=True, err=as_json)
    signer = signing.load_private_key(
        key_file, read_passphrase(passphrase_env, prompt=f"Passphrase of {key_file}")
    )
    signed = signing.add_signature(prepared.envelope, signer)
    target = envelope_path if out_path is None else out_path
    write_envelope_file(target, signed)
    signature_count = 1 + len(signed.cosigners)
    if as_json:
        result = summary(signed, prepared.body)
        click.echo(json.dumps({**result, "signed_by": signer.key_id, "file": str(target)}))
    else:
        click.echo(
            f"signed by key {signer.key_id}: {signature_count} signatures, written to {target}"
        )
