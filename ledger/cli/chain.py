"""``ledger verify-chain``, ``ledger proof`` and ``ledger verify-proof``: is the ledger intact?

verify-chain and proof read the block stream with ``BlockReader``, which verifies every block
before it is used. verify-proof needs no service at all: a proof file and the sealer's public
key are enough, so an auditor can check it anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from aiokafka import TopicPartition

from ledger import codec, signing
from ledger.cli import cli
from ledger.errors import ChainError, ConfigError, DecodeError, InfraError, LedgerError, ProofError
from ledger.kafka.principals import READER
from ledger.kafka.wire import plain
from ledger.model import Evidence
from ledger.settings import TOPIC_BLOCKS, TOPIC_EVIDENCE, Settings
from ledger.witnessing import WitnessPolicy

DEFAULT_LEDGER = "main"

proof_file_bytes_max = 1024 * 1024
metadata_polls_max = 200
"""Polls (50 ms apart) for a topic's partitions to appear in the client's metadata."""
final_wait_s = 60.0
"""How long ``ledger proof --final`` waits for the witnesses."""
final_poll_s = 0.5
"""A proof is an envelope, two headers and two O(log n) paths: a few KiB. Refuse absurd files."""


# ---- shared by the commands of this module and of ``ledger submit`` -------------------------


def parse_hex(value: str, size_bytes: int, what: str) -> bytes:
    """``value`` as exactly ``size_bytes`` bytes of hex (either case); click error otherwise."""
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise click.BadParameter(f"{what} must be hex, got {value!r}") from None
    if len(data) != size_bytes or len(value) != 2 * size_bytes:
        raise click.BadParameter(f"{what} must be {2 * size_bytes} hex digits, got {len(value)}")
    return data


def hex_option_callback(size_bytes: int, what: str) -> Callable[..., bytes | None]:
    def callback(context: click.Context, parameter: click.Parameter, value: str | None) -> Any:
        return None if value is None else parse_hex(value, size_bytes, what)

    return callback


def ledger_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--ledger", default=DEFAULT_LEDGER, show_default=True, help="Ledger (shard) name."
    )(function)


def stream_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--ledger, --sealer-key, and the hidden --topic/--partition (tests, forensic copies)."""
    options = [
        ledger_option,
        click.option(
            "--sealer-key",
            callback=hex_option_callback(signing.public_key_bytes, "--sealer-key"),
            help="Trusted sealer public key (64 hex digits): the key of block 0. Later sealers "
            "must follow from it through RotateSealer transactions; blocks sealed by another "
            "key fail.",
        ),
        click.option("--topic", default=TOPIC_BLOCKS, hidden=True),
        click.option("--partition", type=click.IntRange(min=0), default=None, hidden=True),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def shard_partition(settings: Settings, ledger: str, partition: int | None) -> int:
    if partition is not None:
        return partition
    found = settings.shard_partition(ledger)
    if found is None:
        raise ConfigError(
            f"ledger {ledger!r} is not in LEDGER_SHARDS ({', '.join(settings.shards)})"
        )
    return found


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---- verify-chain ----------------------------------------------------------------------------


@dataclass
class ChainReport:
    ledger: str
    block_count: int = 0
    tx_count: int = 0
    head_hash: bytes | None = None
    sealer_key: bytes | None = None
    """The key that seals the next block: the head's sealer, or the successor a RotateSealer
    ending the head names."""
    rotation_count: int = 0
    """Sealer rotations followed (blocks ending in a RotateSealer that the verifier accepted)."""
    last_rotation_height: int | None = None
    failure: ChainError | None = None
    evidence: list[Evidence] = field(default_factory=list)
    """Signed evidence against the sealer published by witnesses (``ledger.witnessing``)."""

    @property
    def height(self) -> int:
        """The last verified height; -1 when none verified."""
        return self.block_count - 1

    def as_json(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger,
            "ok": self.failure is None,
            "height": self.height,
            "block_count": self.block_count,
            "tx_count": self.tx_count,
            "head_hash": None if self.head_hash is None else self.head_hash.hex(),
            "sealer_key": None if self.sealer_key is None else self.sealer_key.hex(),
            "sealer_key_id": None if self.sealer_key is None else signing.key_id(self.sealer_key),
            "rotation_count": self.rotation_count,
            "last_rotation_height": self.last_rotation_height,
            "failure": None
            if self.failure is None
            else {"height": self.failure.height, "reason": one_line(self.failure.reason)},
            "evidence": [
                {
                    "kind": evidence.kind,
                    "height": evidence.height,
                    "detail": evidence.detail,
                    "witness_key_id": signing.key_id(evidence.witness_key),
                }
                for evidence in self.evidence
            ],
        }

    def evidence_line(self) -> str:
        """One line naming every piece of evidence."""
        items = ", ".join(
            f"{evidence.kind} at height {evidence.height} "
            f"(witness {signing.key_id(evidence.witness_key)}: {one_line(evidence.detail)})"
            for evidence in self.evidence
        )
        return f"ledger {self.ledger}: witnesses published evidence against the sealer: {items}"


async def _scan_evidence(
    settings: Settings,
    ledger: str,
    topic_partition: TopicPartition,
    witness_keys: frozenset[bytes] | None,
) -> list[Evidence]:
    """The ledger's evidence on ``ledger.evidence`` that its witness signed (and, when
    ``witness_keys`` are given, by one of them); anything else is no evidence at all."""
    from ledger.kafka.clients import committed_reader, kafka_errors
    from ledger.witnessing import evidence_ok

    consumer = committed_reader(settings.kafka(READER), "ledger-verify-chain-evidence")
    found = []
    where = f"{topic_partition.topic}[{topic_partition.partition}]"
    try:
        with kafka_errors(f"reading {where}"):
            await consumer.start()
            if topic_partition.topic not in await consumer.topics():
                raise ConfigError(f"topic {topic_partition.topic} does not exist")
            consumer.assign([topic_partition])  # subscribes the client to the topic's metadata
            partitions: set[int] = set()
            for _ in range(metadata_polls_max):
                partitions = consumer.partitions_for_topic(topic_partition.topic) or set()
                if partitions:
                    break
                await asyncio.sleep(0.05)
            if topic_partition.partition not in partitions:
                raise ConfigError(f"{where} does not exist: no evidence can be read there")
            end = (await consumer.end_offsets([topic_partition]))[topic_partition]
        while await consumer.position(topic_partition) < end:
            batch = await consumer.getmany(topic_partition, timeout_ms=500)
            for message in batch.get(topic_partition, []):
                try:
                    evidence = codec.decode_evidence(plain(message.value or b"", "Evidence"))
                except DecodeError:
                    continue
                listed = witness_keys is None or evidence.witness_key in witness_keys
                if evidence.ledger == ledger and listed and evidence_ok(evidence):
                    found.append(evidence)
    finally:
        await consumer.stop()
    return found


async def _scan_chain(
    settings: Settings, ledger: str, partition: int, topic: str, sealer_key: bytes | None
) -> ChainReport:
    from ledger.blocks import sealer_rotation
    from ledger.client.reader import BlockReader

    report = ChainReport(ledger)
    try:
        async with BlockReader(
            settings.kafka(READER),
            ledger,
            partition=partition,
            topic=topic,
            trusted_sealer_key=sealer_key,
            client_id="ledger-verify-chain",
        ) as reader:
            async for item in reader:
                report.block_count += 1
                report.tx_count += item.block.header.tx_count
                report.head_hash = item.block_hash
                report.sealer_key = item.block.header.sealer_key
                rotation = sealer_rotation(item.block)  # the reader verified that it holds
                if rotation is not None:
                    report.sealer_key = rotation.successor
                    report.rotation_count += 1
                    report.last_rotation_height = item.height
    except ChainError as exc:
        report.failure = exc
    if report.failure is None and report.block_count == 0:
        report.failure = ChainError(0, f"ledger {ledger!r} has no blocks (not initialised yet?)")
    return report


@cli.command("verify-chain")
@stream_options
@click.option(
    "--witness-keys",
    "witness_keys_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Count only evidence signed by these witnesses (one public key in hex a line).",
)
@click.option("--evidence-topic", default=None, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify_chain(
    ledger: str,
    sealer_key: bytes | None,
    topic: str,
    partition: int | None,
    witness_keys_path: Path | None,
    evidence_topic: str | None,
    as_json: bool,
) -> None:
    """Read the whole chain from Kafka and verify every block (exit 1 at the first failure).

    Checks each block's seal by the sealer in force (--sealer-key, or block 0's, until a block
    ending in a RotateSealer hands sealing to its successor), its link to the previous block,
    tx_root, blocks_root, heights and seq numbering. Then reads the witnesses' signed evidence
    on ledger.evidence: any (by --witness-keys, when given) is exit 1 too, naming what each
    witness saw.
    """
    settings = Settings.from_env()
    policy = _witness_policy(witness_keys_path, None)
    shard = shard_partition(settings, ledger, partition)
    report = asyncio.run(_scan_chain(settings, ledger, shard, topic, sealer_key))
    if evidence_topic is None and topic == TOPIC_BLOCKS:
        evidence_topic = TOPIC_EVIDENCE  # a copy of the chain elsewhere has no witnesses
    if evidence_topic is not None:
        report.evidence = asyncio.run(
            _scan_evidence(
                settings,
                ledger,
                TopicPartition(evidence_topic, shard),
                None if policy is None else policy.witness_keys,
            )
        )
    if as_json:
        click.echo(json.dumps(report.as_json()))
    if report.failure is not None:
        verified = (
            f"blocks 0..{report.height} verified" if report.height >= 0 else "no block verified"
        )
        evidence = f"; {report.evidence_line()}" if report.evidence else ""
        raise ChainError(
            report.failure.height,
            f"{one_line(report.failure.reason)} ({verified}, {report.tx_count} transactions)"
            + evidence,
        )
    if not as_json:
        assert report.head_hash is not None and report.sealer_key is not None
        rotations = (
            ""
            if report.last_rotation_height is None
            else f" ({report.rotation_count} sealer rotations followed, the last ending block "
            f"{report.last_rotation_height})"
        )
        click.echo(
            f"ledger {ledger}: chain verified, blocks 0..{report.height} "
            f"({report.block_count} blocks, {report.tx_count} transactions), "
            f"head {report.head_hash.hex()}, sealer {signing.key_id(report.sealer_key)}" + rotations
        )
    if report.evidence:
        raise ChainError(report.evidence[0].height, report.evidence_line())


# ---- proof -----------------------------------------------------------------------------------


@cli.command()
@click.argument("tx_id_hex", metavar="TX_ID_HEX")
@stream_options
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the proof here instead of printing it.",
)
@click.option(
    "--final",
    "final_only",
    is_flag=True,
    help=f"Wait (up to {final_wait_s:.0f} s) until the transaction is final, and anchor the proof "
    "in a final block carrying the witnesses' cosignatures.",
)
def proof(
    tx_id_hex: str,
    ledger: str,
    sealer_key: bytes | None,
    topic: str,
    partition: int | None,
    out_path: Path | None,
    final_only: bool,
) -> None:
    """Prove that transaction TX_ID_HEX is in the ledger: self-contained JSON.

    Finds the transaction's block, anchors the proof in the newest final block (or, when none
    is later than the transaction's, the newest block), and prints it or writes it to --out. A
    transaction in the newest block has no proof until one more block is sealed.
    """
    from ledger.client.proof_source import prove_from_postgres, prove_transaction

    tx_id = parse_hex(tx_id_hex, signing.tx_id_bytes, "TX_ID_HEX")
    settings = Settings.from_env()
    document = None
    if final_only:
        document = asyncio.run(_final_proof(settings.database_url, ledger, tx_id))
    elif topic == TOPIC_BLOCKS and partition is None:
        # Fast path: the projector's index. Its rows need no trust; the proof is checked below
        # (when a sealer key is given) and by whoever verifies it.
        try:
            document = asyncio.run(prove_from_postgres(settings.database_url, ledger, tx_id))
        except InfraError as exc:
            logging.getLogger("ledger.cli").debug("PostgreSQL unavailable for proofs: %s", exc)
        if document is not None and sealer_key is not None:
            from ledger.proofs import verify_proof

            verify_proof(document, sealer_key)
    if document is None:
        document = asyncio.run(
            prove_transaction(
                settings.kafka(READER),
                ledger,
                tx_id,
                partition=shard_partition(settings, ledger, partition),
                topic=topic,
                trusted_sealer_key=sealer_key,
            )
        )
    write_document(
        document,
        out_path,
        f"proof of tx {tx_id.hex()} (block {document['block']['height']}, seq {document['seq']}) "
        f"anchored at block {document['anchor']['height']}",
    )


def write_document(document: dict[str, Any], out_path: Path | None, what: str) -> None:
    """Print ``document`` as JSON, or write it to ``out_path`` and say ``what`` was written."""
    text = json.dumps(document, indent=2) + "\n"
    if out_path is None:
        click.echo(text, nl=False)
        return
    try:
        out_path.write_text(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {out_path}: {exc.strerror}") from exc
    click.echo(f"{what} written to {out_path}")


def check_offline(check: Callable[[], dict[str, Any]], what: str, as_json: bool) -> dict[str, Any]:
    """Run an offline ``check``: its summary, or one ProofError line (and with ``as_json``
    ``{"ok": false, "error": ...}`` on stdout) saying ``what`` does not hold."""
    try:
        summary = check()
    except LedgerError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": one_line(exc)}))
        if isinstance(exc, ConfigError):
            raise
        raise ProofError(f"{what} does not hold: {one_line(exc)}") from exc
    if as_json:
        click.echo(json.dumps({"ok": True, **summary}))
    return summary


async def _final_proof(database_url: str, ledger: str, tx_id: bytes) -> dict[str, Any]:
    """The proof from PostgreSQL once the transaction is final; ProofError after final_wait_s."""
    from ledger.client.proof_source import prove_from_postgres

    deadline = time.monotonic() + final_wait_s
    while time.monotonic() < deadline:
        document = await prove_from_postgres(database_url, ledger, tx_id, final_only=True)
        if document is not None:
            return document
        await asyncio.sleep(final_poll_s)
    raise ProofError(
        f"transaction {tx_id.hex()} is not final (or not sealed) after {final_wait_s:.0f} s: "
        "are the witnesses running? (ledger tx and the dashboard say more)"
    )


# ---- verify-proof ----------------------------------------------------------------------------


def load_proof_file(path: Path) -> object:
    try:
        with path.open("rb") as file:
            raw = file.read(proof_file_bytes_max + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > proof_file_bytes_max:
        raise ProofError(f"{path} is larger than {proof_file_bytes_max} bytes: not a proof")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProofError(f"{path} is not JSON: {one_line(exc)}") from exc


@cli.command("verify-proof")
@click.argument("proof_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--sealer-key",
    required=True,
    callback=hex_option_callback(signing.public_key_bytes, "--sealer-key"),
    help="A sealer public key of the ledger (64 hex digits), obtained from a source you trust: "
    "any key it has had, when the proof carries the rotations between them.",
)
@click.option(
    "--witness-keys",
    "witness_keys_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of witness public keys (64 hex digits a line; # starts a comment), from a "
    "source you trust: the proof must carry --threshold of their cosignatures of its anchor.",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    help="How many distinct witnesses of --witness-keys must have co-signed (default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify_proof_command(
    proof_path: Path,
    sealer_key: bytes,
    witness_keys_path: Path | None,
    threshold: int | None,
    as_json: bool,
) -> None:
    """Check a proof file offline: exit 0 only if it holds, else 1 naming what failed.

    Needs no Kafka, no database, no network: the envelope's signature, its path to its block's
    tx_root, the block's path to the anchor's blocks_root, both seals by --sealer-key (or, across
    the sealer rotations the proof carries, by the key in force at each height) and, with
    --witness-keys, that the anchor is final: co-signed by --threshold of those witnesses.
    """
    from ledger.proofs import verify_proof

    policy = _witness_policy(witness_keys_path, threshold)
    summary = check_offline(
        lambda: verify_proof(load_proof_file(proof_path), sealer_key, policy), "proof", as_json
    )
    if as_json:
        return
    click.echo(
        f"proof holds: tx {summary['tx_id']} ({summary['kind']}, seq {summary['seq']}) "
        f"in block {summary['height']} of ledger {summary['ledger']}, anchored at block "
        f"{summary['anchor_height']}, sealer {summary['sealer_key_id']}"
        + (f", across {summary['rotations']} sealer rotations" if summary["rotations"] else "")
        + (f", final: co-signed by {len(summary['final_by'])} witnesses" if policy else "")
    )


def _witness_policy(path: Path | None, threshold: int | None) -> WitnessPolicy | None:
    """The policy of --witness-keys and --threshold; ConfigError (one line) when malformed."""
    if path is None:
        if threshold is not None:
            raise ConfigError("--threshold needs --witness-keys")
        return None
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    keys = set()
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != signing.public_key_bytes:
            raise ConfigError(f"{path}:{number}: not a public key of 64 hex digits")
        keys.add(key)
    if not keys:
        raise ConfigError(f"{path} lists no witness key")
    if threshold is not None and threshold > len(keys):
        raise ConfigError(f"--threshold {threshold} is more than the {len(keys)} keys of {path}")
    return WitnessPolicy(frozenset(keys), threshold or len(keys))
