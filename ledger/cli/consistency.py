"""``ledger consistency`` and ``ledger verify-consistency``: the chain today extends a head you
kept (RFC 9162 consistency of ``blocks_root``, plus the old head's own inclusion)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from ledger import signing
from ledger.cli import cli
from ledger.cli.chain import (
    check_offline,
    hex_option_callback,
    load_proof_file,
    shard_partition,
    stream_options,
    write_document,
)
from ledger.errors import ProofError
from ledger.kafka.principals import READER
from ledger.settings import Settings


@cli.command()
@click.option(
    "--from-height",
    "old_height",
    type=click.IntRange(min=0),
    required=True,
    help="The head you kept (its hash is what you compare with).",
)
@click.option(
    "--to-height",
    "new_height",
    type=click.IntRange(min=1),
    default=None,
    help="A later block (default: the newest).",
)
@stream_options
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the proof here instead of printing it.",
)
def consistency(
    old_height: int,
    new_height: int | None,
    ledger: str,
    sealer_key: bytes | None,
    topic: str,
    partition: int | None,
    out_path: Path | None,
) -> None:
    """Prove that the chain up to --to-height extends the one up to --from-height: JSON.

    Reads (and verifies) the chain from Kafka; whoever kept only the hash of block
    --from-height checks the proof offline with `ledger verify-consistency`.
    """
    from ledger.client.proof_source import prove_consistency

    settings = Settings.from_env()
    document = asyncio.run(
        prove_consistency(
            settings.kafka(READER),
            ledger,
            old_height,
            new_height,
            partition=shard_partition(settings, ledger, partition),
            topic=topic,
            trusted_sealer_key=sealer_key,
        )
    )
    write_document(
        document,
        out_path,
        f"consistency of block {document['old']['height']} with block {document['new']['height']}",
    )


@cli.command("verify-consistency")
@click.argument("proof_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--sealer-key",
    required=True,
    callback=hex_option_callback(signing.public_key_bytes, "--sealer-key"),
    help="A sealer public key of the ledger (64 hex digits), from a source you trust: any key "
    "it has had, when the proof carries the rotations between them.",
)
@click.option(
    "--old-hash",
    callback=hex_option_callback(32, "--old-hash"),
    help="The hash of the old head you kept (64 hex digits): the proof must start there.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify_consistency_command(
    proof_path: Path, sealer_key: bytes, old_hash: bytes | None, as_json: bool
) -> None:
    """Check a consistency proof offline: exit 0 only if the new head extends the old one.

    Both heads must be sealed by the key in force at their height: --sealer-key, or across the
    sealer rotations the proof carries, the key they lead to.
    """
    from ledger.proofs import verify_consistency_proof

    def check() -> dict[str, Any]:
        summary = verify_consistency_proof(load_proof_file(proof_path), sealer_key)
        if old_hash is not None and summary["old_hash"] != old_hash.hex():
            raise ProofError(
                f"the proof starts at block {summary['old_height']} with hash "
                f"{summary['old_hash']}, not the head you kept ({old_hash.hex()}): a rewrite"
            )
        return summary

    summary = check_offline(check, "consistency", as_json)
    if as_json:
        return
    click.echo(
        f"consistent: block {summary['new_height']} ({summary['new_hash'][:16]}...) of ledger "
        f"{summary['ledger']} extends block {summary['old_height']} ({summary['old_hash']})"
        + (f", across {summary['rotations']} sealer rotations" if summary["rotations"] else "")
    )
