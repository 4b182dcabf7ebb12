"""The cross-shard coordinator: drives each cross-shard transfer (``ledger.crossshard``) to its end.

``python -m streams.crossshard`` (run by ``ledger up`` when there is more than one shard) reads
every shard's ``ledger.blocks`` and ``ledger.rejections`` (read_committed) from the beginning, so
its whole progress is in Kafka: it keeps no state of its own and a restart, after kill -9 at any
moment, replays the chains and goes on. Per round:

1. read what was sealed and refused since the last round: cross-shard Holds (a memo naming a
   destination, the asset's issuer account as payee), their steps (found by their derived
   tx_ids), and each shard's issuer accounts (DefineAsset);
2. once caught up, send each unfinished transfer's next step (Capture, credit or refund), signed
   with the shard's clearing key (it owns the issuer accounts). A step is sent again only when
   its earlier copy's validity has passed unsealed; a copy sealed twice is impossible, since a
   step's tx_id is fixed and the sequencer refuses the second as DUPLICATE.

A credit the destination refuses for good (no such account, another asset, frozen, closed, over
a limit, unknown ledger) is answered with a refund; any other refusal (an expired copy, a
duplicate) is not a decision and the step is simply sent again.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition
from prometheus_client import Counter

from ledger import codec
from ledger.client.publisher import Publisher
from ledger.crossshard import (
    CREDIT_MEMO_PREFIX,
    MEMO_PREFIX,
    REFUND_MEMO_PREFIX,
    CrossShard,
    Progress,
    Step,
    cross_shard_of,
    step_tx_id,
    step_window,
)
from ledger.errors import DecodeError, LedgerError
from ledger.kafka.clients import committed_reader
from ledger.kafka.principals import CROSSSHARD
from ledger.kafka.wire import plain
from ledger.limits import clock_skew_ms_max
from ledger.model import OPERATION_TYPES, Capture, DefineAsset, Operation, Transfer, TxBody
from ledger.settings import TOPIC_BLOCKS, TOPIC_REJECTIONS, Settings
from ledger.signing import Signer, build_tx_body, load_private_key
from streams.lifecycle import run_or_exit
from streams.telemetry import add_metrics_port_argument, serve_metrics

log = logging.getLogger("ledger.crossshard")

poll_wait_ms = 200
MEMO_MARKER = MEMO_PREFIX.encode()
DEFINE_ASSET_INDEX = OPERATION_TYPES.index(DefineAsset)

FINAL_CREDIT_REFUSALS = frozenset(
    {
        "UNKNOWN_ACCOUNT",
        "UNKNOWN_ASSET",
        "ASSET_MISMATCH",
        "ACCOUNT_FROZEN",
        "ACCOUNT_CLOSED",
        "LIMIT_EXCEEDED",
        "OVERFLOW",
        "UNKNOWN_LEDGER",
        "INVALID_OPERATION",
    }
)
"""Refusals of a credit that sending it again would not change: the payer is refunded."""

FINAL_CAPTURE_REFUSALS = frozenset({"HOLD_EXPIRED", "HOLD_ALREADY_RESOLVED", "HOLD_NOT_FOUND"})
"""Refusals of a capture that end the transfer with nothing moved."""

STEPS_SENT = Counter(
    "ledger_crossshard_steps_sent",
    "Steps (captures, credits, refunds) submitted, first copies and copies sent again.",
)
"""Moved once per round (streams.telemetry)."""


@dataclass
class Coordinator:
    settings: Settings
    clearing_key: Callable[[str, str], Signer | None]
    """(ledger, asset) -> the key owning that shard's issuer account of the asset, if known."""
    issuers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per shard: asset -> issuer account."""
    progress: dict[bytes, Progress] = field(default_factory=dict)
    steps: dict[bytes, tuple[bytes, Step]] = field(default_factory=dict)
    """A step's tx_id -> (hold_id, step), for every known transfer."""
    hold_sealed_at_ms: dict[bytes, int] = field(default_factory=dict)
    """When each hold was sealed: the start of its steps' validity windows."""
    sealed_steps: dict[bytes, Operation] = field(default_factory=dict)
    """Sealed steps (captures, credits, refunds) by tx_id, whether or not their hold was read
    yet: the shards are read side by side, in no order across them."""
    refused_steps: dict[bytes, str] = field(default_factory=dict)
    """Final refusals by tx_id, read before their hold maybe."""
    sent_until_ms: dict[tuple[bytes, Step], int] = field(default_factory=dict)
    """When the newest copy of a step stops being valid."""

    # ---- step 1: facts from the chains ------------------------------------------------------

    def on_block(self, value: bytes) -> None:
        block = codec.decode_block(plain(value, "Block"), canonical_check=False)
        header = block.header
        for sealed in block.transactions:
            if self._concerns_us(sealed.envelope):
                body = codec.decode_submission(sealed.envelope, checked=False)[1]
                self.on_sealed(header.ledger, body, header.sealed_at_ms)

    def _concerns_us(self, raw: bytes) -> bool:
        """Whether a sealed envelope may be a cross-shard hold, a step or an asset definition,
        without decoding it: nearly every transaction is a plain payment, and decoding them all
        cost this process 14 µs per transaction (BENCHMARKS.md)."""
        if MEMO_MARKER in raw:  # holds, credits and refunds name their transfer in the memo
            return True
        envelope = codec.decode_envelope(raw)
        if envelope.body_version != codec.BASE_BODY_VERSION:
            return True
        return (
            envelope.body[:16] in self.steps  # a capture carries no memo, only its tx_id
            or codec.operation_index(envelope.body) == DEFINE_ASSET_INDEX
        )

    def on_sealed(self, ledger: str, body: TxBody, sealed_at_ms: int) -> None:
        op = body.op
        if isinstance(op, DefineAsset):
            self.issuers.setdefault(ledger, {})[op.asset] = op.issuer_account
        elif isinstance(op, Capture) or (
            isinstance(op, Transfer)
            and body.memo is not None
            and body.memo.startswith((CREDIT_MEMO_PREFIX, REFUND_MEMO_PREFIX))
        ):
            self.sealed_steps[body.tx_id] = op
            self._update(body.tx_id)
        else:
            transfer = cross_shard_of(body, self.issuers.get(ledger, {}))
            if transfer is not None and transfer.hold_id not in self.progress:
                self._track(transfer, sealed_at_ms)

    def _track(self, transfer: CrossShard, sealed_at_ms: int) -> None:
        hold_id = transfer.hold_id
        self.progress[hold_id] = Progress(transfer)
        self.hold_sealed_at_ms[hold_id] = sealed_at_ms
        if transfer.destination.ledger not in self.settings.shards:
            self.progress[hold_id].credit_refused = True
        for step in Step:
            tx_id = step_tx_id(hold_id, step)
            self.steps[tx_id] = (hold_id, step)
            self._update(tx_id)

    def _update(self, tx_id: bytes) -> None:
        """Bring a transfer's progress up to what is known of one of its steps."""
        known = self.steps.get(tx_id)
        if known is None:
            return
        hold_id, step = known
        progress = self.progress[hold_id]
        sealed = self.sealed_steps.get(tx_id)
        if sealed is not None and sealed != self._expected(progress.transfer, step):
            # Someone else's transaction under the step's tx_id: it moved nothing of this
            # transfer, and the step itself can no longer be sealed (DUPLICATE).
            log.error("%s of %s: another transaction took its tx_id", step.value, hold_id.hex())
            if step is Step.CREDIT:
                progress.credit_refused = True
        elif sealed is not None:
            if step is Step.CAPTURE:
                progress.captured = True
            elif step is Step.CREDIT:
                progress.credited = True
            else:
                progress.refunded = True
        code = self.refused_steps.get(tx_id)
        if code is not None:
            if step is Step.CAPTURE and code in FINAL_CAPTURE_REFUSALS:
                progress.capture_refused = True
            elif step is Step.CREDIT and code in FINAL_CREDIT_REFUSALS:
                progress.credit_refused = True

    def _expected(self, transfer: CrossShard, step: Step) -> Operation | None:
        if step is Step.CAPTURE:
            return transfer.capture()
        if step is Step.REFUND:
            return transfer.refund()
        clearing = self.issuers.get(transfer.destination.ledger, {}).get(transfer.asset)
        return None if clearing is None else transfer.credit(clearing)

    def on_rejection(self, value: bytes) -> None:
        rejection = codec.decode_rejection(plain(value, "Rejection"))
        final = FINAL_CAPTURE_REFUSALS | FINAL_CREDIT_REFUSALS
        if rejection.tx_id is None or rejection.code not in final:
            return
        self.refused_steps[rejection.tx_id] = rejection.code
        self._update(rejection.tx_id)

    # ---- step 2: what to send --------------------------------------------------------------

    def due(self, now_ms: int) -> list[tuple[bytes, bytes]]:
        """(tx_id, envelope) of every step to send now."""
        out = []
        for hold_id, progress in self.progress.items():
            transfer = progress.transfer
            destination_issuers = self.issuers.get(transfer.destination.ledger, {})
            if progress.captured and transfer.asset not in destination_issuers:
                progress.credit_refused = True  # caught up: the destination has no such asset
            step = progress.next_step()
            if step is None or self.sent_until_ms.get((hold_id, step), 0) > now_ms:
                continue
            window = step_window(self.hold_sealed_at_ms[hold_id], now_ms, clock_skew_ms_max)
            if window is None:
                continue
            envelope = self.sign_step(progress.transfer, step, window)
            if envelope is None:
                continue
            self.sent_until_ms[(hold_id, step)] = window[1]
            out.append((step_tx_id(hold_id, step), envelope))
        return out

    def sign_step(self, transfer: CrossShard, step: Step, window: tuple[int, int]) -> bytes | None:
        ledger = transfer.destination.ledger if step is Step.CREDIT else transfer.source
        signer = self.clearing_key(ledger, transfer.asset)
        if signer is None:
            log.warning(
                "no clearing key for %s on %s: %s waits", transfer.asset, ledger, step.value
            )
            return None
        op: Operation
        memo: str | None
        if step is Step.CAPTURE:
            op, memo = transfer.capture(), None
        elif step is Step.CREDIT:
            clearing = self.issuers[ledger][transfer.asset]
            op, memo = transfer.credit(clearing), transfer.credit_memo()
        else:
            op, memo = transfer.refund(), f"{REFUND_MEMO_PREFIX}{transfer.hold_id.hex()}"
        created_at_ms, expires_at_ms = window
        body = build_tx_body(
            ledger,
            op,
            validity_ms=expires_at_ms - created_at_ms,
            now_ms=created_at_ms,
            memo=memo,
            tx_id=step_tx_id(transfer.hold_id, step),
            external_ref=f"xshard-{transfer.hold_id.hex()}",
        )
        return signer.sign(body)

    async def run(self) -> None:
        shard_count = len(self.settings.shards)
        partitions = [
            TopicPartition(topic, index)
            for topic in (TOPIC_BLOCKS, TOPIC_REJECTIONS)
            for index in range(shard_count)
        ]
        consumer = committed_reader(self.settings.kafka(CROSSSHARD), "ledger-crossshard")
        publisher = Publisher(
            self.settings.kafka(CROSSSHARD), client_id="ledger-crossshard", backlog_max=None
        )
        await consumer.start()
        await publisher.start()
        try:
            consumer.assign(partitions)
            for partition in partitions:
                consumer.seek(partition, 0)
            while True:
                polled = await consumer.getmany(timeout_ms=poll_wait_ms)
                for partition, messages in polled.items():
                    for message in messages:
                        self._read(partition.topic, message.value)
                ends = await consumer.end_offsets(partitions)
                positions = [await consumer.position(partition) for partition in partitions]
                if all(
                    position >= ends[p] for position, p in zip(positions, partitions, strict=True)
                ):
                    due = self.due(int(time.time() * 1000))
                    if due:
                        await publisher.submit_many(
                            [envelope for _, envelope in due], [tx_id for tx_id, _ in due]
                        )
                        STEPS_SENT.inc(len(due))
        finally:
            await publisher.stop()
            await consumer.stop()

    def _read(self, topic: str, value: bytes | None) -> None:
        try:
            if topic == TOPIC_BLOCKS:
                self.on_block(value or b"")
            else:
                self.on_rejection(value or b"")
        except DecodeError as exc:
            log.warning("%s: a message that does not decode (%s)", topic, exc)


def directory_clearing_keys(
    directory: Path, passphrase: bytes
) -> Callable[[str, str], Signer | None]:
    """Keys laid out as ``DIRECTORY/<ledger>/<asset, lower case>-issuer.key`` (the demo ledgers'
    layout), loaded when first needed: a ledger set up later is found then."""
    cache: dict[tuple[str, str], Signer] = {}

    def key(ledger: str, asset: str) -> Signer | None:
        if (ledger, asset) not in cache:
            path = directory / ledger / f"{asset.lower()}-issuer.key"
            if not path.exists():
                return None
            cache[(ledger, asset)] = load_private_key(path, passphrase)
        return cache[(ledger, asset)]

    return key


def file_clearing_keys(
    specs: Sequence[str], passphrase: bytes
) -> Callable[[str, str], Signer | None]:
    """Keys given as ``LEDGER:ASSET=FILE``."""
    keys: dict[tuple[str, str], Signer] = {}
    for spec in specs:
        where, separator, path = spec.partition("=")
        ledger, colon, asset = where.partition(":")
        if not separator or not colon:
            raise LedgerError(f"--clearing-key {spec!r}: expected LEDGER:ASSET=FILE")
        keys[(ledger, asset)] = load_private_key(Path(path), passphrase)
    return lambda ledger, asset: keys.get((ledger, asset))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.crossshard", description=__doc__)
    parser.add_argument(
        "--clearing-key",
        action="append",
        default=[],
        metavar="LEDGER:ASSET=FILE",
        help="the key owning that shard's issuer account of the asset (passphrase in "
        "LEDGER_CLEARING_PASSPHRASE)",
    )
    parser.add_argument(
        "--keys-dir",
        type=Path,
        help="keys laid out as DIR/<ledger>/<asset>-issuer.key (the local demo ledgers' layout)",
    )
    add_metrics_port_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    # The local stack's development value, like the sealer's and the witnesses'.
    passphrase = os.environ.get("LEDGER_CLEARING_PASSPHRASE", "demo").encode()
    try:
        keys = (
            directory_clearing_keys(args.keys_dir, passphrase)
            if args.keys_dir is not None
            else file_clearing_keys(args.clearing_key, passphrase)
        )
    except LedgerError as exc:
        sys.exit(f"crossshard: {exc}")
    coordinator = Coordinator(settings, keys)
    serve_metrics(args.metrics_port, "crossshard")
    asyncio.run(run_or_exit("crossshard", coordinator.run, log))


if __name__ == "__main__":
    main()
