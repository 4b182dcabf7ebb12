"""``ledger keygen``, ``ledger key-info`` and ``ledger init``: keys encrypted at rest, and a
ledger's block 0."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import click

from ledger.cli import cli
from ledger.errors import ConfigError
from ledger.kafka.principals import SEQUENCER
from ledger.settings import Settings
from ledger.signing import Signer, load_private_key, save_private_key

DEFAULT_PASSPHRASE_ENV = "LEDGER_KEY_PASSPHRASE"

passphrase_option = click.option(
    "--passphrase-env",
    default=DEFAULT_PASSPHRASE_ENV,
    show_default=True,
    help="Environment variable holding the key passphrase (prompted when unset on a terminal).",
)


def read_passphrase(variable: str, confirm: bool = False, prompt: str = "Key passphrase") -> bytes:
    """The passphrase in environment variable ``variable``, else asked for on a terminal."""
    value = os.environ.get(variable)
    if value:
        return value.encode()
    if not click.get_text_stream("stdin").isatty():
        raise ConfigError(f"no passphrase: set {variable} (or run on a terminal to be prompted)")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)).encode()


@cli.command()
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the encrypted private key (mode 0600).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@passphrase_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def keygen(out_path: Path, force: bool, passphrase_env: str, as_json: bool) -> None:
    """Create an Ed25519 key, stored encrypted with a passphrase (PKCS#8)."""
    signer = Signer.generate()
    save_private_key(
        out_path, signer, read_passphrase(passphrase_env, confirm=True), overwrite=force
    )
    result = {"key_id": signer.key_id, "public_key": signer.public_key.hex(), "file": str(out_path)}
    click.echo(
        json.dumps(result)
        if as_json
        else f"key {signer.key_id}\npublic key {signer.public_key.hex()}\nwritten to {out_path}"
    )


@cli.command("key-info")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
@passphrase_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def key_info(key_file: Path, passphrase_env: str, as_json: bool) -> None:
    """The key id and public key of an encrypted key file (what a policy or a registration names)."""
    signer = load_private_key(key_file, read_passphrase(passphrase_env))
    result = {"key_id": signer.key_id, "public_key": signer.public_key.hex(), "file": str(key_file)}
    click.echo(
        json.dumps(result)
        if as_json
        else f"key {signer.key_id}\npublic key {signer.public_key.hex()}"
    )


@cli.command()
@click.option(
    "--genesis",
    "genesis_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Genesis file (JSON): see the README, section Genesis.",
)
@passphrase_option
def init(genesis_path: Path, passphrase_env: str) -> None:
    """Seal and publish block 0 of a ledger from a genesis file (once per ledger)."""
    from ledger.genesis import GenesisSpec, build_genesis
    from ledger.kafka.admin import publish_genesis

    settings = Settings.from_env()
    spec = GenesisSpec.load(genesis_path)
    partition = settings.shard_partition(spec.ledger)
    if partition is None:
        raise ConfigError(
            f"ledger {spec.ledger!r} is not in LEDGER_SHARDS ({', '.join(settings.shards)})"
        )
    sealer = load_private_key(settings.sealer_key_file, settings.sealer_passphrase)
    block = build_genesis(
        spec, read_passphrase(passphrase_env), sealer, int(time.time() * 1000), partition
    )
    asyncio.run(publish_genesis(settings.kafka(SEQUENCER), block))
    click.echo(f"ledger {spec.ledger}: block 0 with {block.header.tx_count} transactions published")


@cli.command("rotate-sealer")
@click.option("--ledger", default="main", show_default=True, help="Ledger (shard) name.")
@click.option(
    "--timeout-s",
    type=click.FloatRange(min=1, max=600),
    default=30.0,
    show_default=True,
    help="Longest wait for the rotation to be sealed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def rotate_sealer(ledger: str, timeout_s: float, as_json: bool) -> None:
    """Hand block sealing of a ledger to a new key, without stopping anything.

    1. find the key sealing the ledger now (PostgreSQL) and its private key in the sequencer's
       keyring (LEDGER_SEALER_KEY_FILE and the sealer-<key_id>.key files beside it);
    2. create the successor there, encrypted with the sealer passphrase (mode 0600);
    3. publish RotateSealer, signed by the current sealer and cosigned by the successor, and
       wait: the sequencer ends that block with it and seals every later block with the
       successor. A refused rotation deletes the successor's file again.
    """
    from ledger import codec, signing
    from ledger.cli.submit import TransactionRefused, publish_and_report
    from ledger.model import RotateSealer
    from ledger.sealer_keys import SealerKeyring, successor_key_file

    settings = Settings.from_env()
    keyring = SealerKeyring(settings.sealer_key_file, settings.sealer_passphrase)
    current_key = asyncio.run(_current_sealer(settings.database_url, ledger))
    current = keyring.get(current_key)
    if current is None:
        raise ConfigError(
            f"ledger {ledger} is sealed by key {signing.key_id(current_key)}, whose private key "
            f"is not in the keyring beside {settings.sealer_key_file}"
        )
    successor = keyring.add_successor()
    body = signing.build_tx_body(ledger, RotateSealer(successor.public_key))
    envelope = current.sign_body(
        codec.encode_tx_body(body), codec.body_version_of(body), cosigners=[successor]
    )
    if not as_json:
        click.echo(
            f"successor {successor.key_id} saved to "
            f"{successor_key_file(keyring.key_file, successor.public_key)}"
        )
    try:
        publish_and_report(codec.encode_envelope(envelope), body.tx_id, True, timeout_s, as_json)
    except TransactionRefused:
        successor_key_file(keyring.key_file, successor.public_key).unlink(missing_ok=True)
        raise
    if not as_json:
        click.echo(f"from the next block on, ledger {ledger} is sealed by {successor.key_id}")


async def _current_sealer(database_url: str, ledger: str) -> bytes:
    """The public key that seals the ledger's next block, from the projector's tables: the
    newest block's sealer, or the successor it was rotated to in that block."""
    import asyncpg

    from ledger.errors import InfraError

    try:
        connection = await asyncpg.connect(database_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise InfraError(f"cannot reach PostgreSQL: {exc}") from exc
    try:
        newest = await connection.fetchrow(
            "SELECT height, sealer_key FROM ledger.blocks WHERE ledger = $1 "
            "ORDER BY height DESC LIMIT 1",
            ledger,
        )
        if newest is None:
            raise ConfigError(f"ledger {ledger!r} has no block in PostgreSQL yet")
        successor = await connection.fetchval(
            "SELECT public_key FROM ledger.keys WHERE ledger = $1 AND registered_height = $2 "
            "AND 'sealer' = ANY(roles) AND revoked_height IS NULL "
            "AND EXISTS (SELECT 1 FROM ledger.transactions WHERE ledger = $1 AND height = $2 "
            "AND kind = 'RotateSealer')",
            ledger,
            newest["height"],
        )
    finally:
        await connection.close()
    return bytes(successor if successor is not None else newest["sealer_key"])
