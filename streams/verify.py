"""Verify: the stateless stage. Size, Avro shape, body version and Ed25519 signature.

At-least-once is enough here: a batch is forwarded (to ``ledger.verified``, partition = shard)
and its rejections produced, and both acknowledged by the broker, before faust may commit the
batch's offsets; a crash in between re-verifies the batch and the sequencer drops the duplicates.
A poison message is a rejection like any other and never stalls its partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ledger import codec
from ledger.codec import rejection_code_for
from ledger.errors import DecodeError
from ledger.model import Envelope, RejectionRecord, TxBody
from ledger.rejections import RejectionCode, Stage
from ledger.settings import TOPIC_REJECTIONS, TOPIC_SUBMISSIONS, TOPIC_VERIFIED, Settings
from ledger.signing import key_id, signature_ok

batch_max_count = 2_000
"""Messages verified together: enough to keep both signature threads busy between awaits."""

batch_wait_s = 0.02
"""How long a partial batch waits for more: a small share of the 1 s confirmation budget."""

signature_threads = 2
"""cryptography releases the GIL during Ed25519 math: one thread per core."""

signature_chunk_min_count = 64
"""Below this a batch is checked in one chunk: thread hand-off would cost more than it saves."""


@dataclass(frozen=True, slots=True)
class Submission:
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Forward:
    """A verified envelope bound for ``ledger.verified``."""

    shard_partition: int
    tx_id: bytes
    envelope: bytes


@dataclass(frozen=True, slots=True)
class _Decoded:
    submission: Submission
    envelope: Envelope
    body: TxBody


def _reject(
    submission: Submission, code: RejectionCode, detail: str, decoded: _Decoded | None = None
) -> RejectionRecord:
    body = decoded.body if decoded else None
    return RejectionRecord(
        code=code.name,
        detail=detail,
        stage=Stage.VERIFY.value,
        source_topic=TOPIC_SUBMISSIONS,
        source_partition=submission.partition,
        source_offset=submission.offset,
        rejected_at_ms=int(time.time() * 1000),
        tx_id=body.tx_id if body else None,
        ledger=body.ledger if body else None,
        key_id=key_id(decoded.envelope.public_key) if decoded else None,
        external_ref=body.external_ref if body else None,
    )


def _decode(submission: Submission) -> _Decoded | RejectionRecord:
    if submission.value is None:
        return _reject(submission, RejectionCode.MALFORMED, "empty message (no value)")
    try:
        envelope, body = codec.decode_submission(submission.value)
    except DecodeError as exc:
        return _reject(submission, rejection_code_for(exc), str(exc))
    return _Decoded(submission, envelope, body)


def _signatures_ok(batch: Sequence[_Decoded]) -> list[bool]:
    return [
        signature_ok(item.envelope.public_key, item.envelope.signature, item.envelope.body)
        for item in batch
    ]


async def verify_batch(
    submissions: Sequence[Submission], shards: Sequence[str], executor: ThreadPoolExecutor
) -> tuple[list[Forward], list[RejectionRecord]]:
    """Split a batch into forwards and rejections, in the precedence order of RejectionCode.

    1. decode (MALFORMED, TOO_LARGE, UNSUPPORTED_VERSION) on this thread;
    2. check signatures (BAD_SIGNATURE) in ``signature_threads`` chunks on the executor;
    3. route by ledger (UNKNOWN_LEDGER).
    """
    rejections: list[RejectionRecord] = []
    decoded: list[_Decoded] = []
    for submission in submissions:
        result = _decode(submission)
        if isinstance(result, RejectionRecord):
            rejections.append(result)
        else:
            decoded.append(result)
    verdicts = await _check_signatures(decoded, executor)
    forwards: list[Forward] = []
    shard_index = {name: index for index, name in enumerate(shards)}
    for item, signature_valid in zip(decoded, verdicts, strict=True):
        if not signature_valid:
            detail = f"signature by key {key_id(item.envelope.public_key)} does not verify"
            rejections.append(_reject(item.submission, RejectionCode.BAD_SIGNATURE, detail, item))
            continue
        partition = shard_index.get(item.body.ledger)
        if partition is None:
            detail = f"ledger {item.body.ledger!r} is not one of {', '.join(shards)}"
            rejections.append(_reject(item.submission, RejectionCode.UNKNOWN_LEDGER, detail, item))
            continue
        assert item.submission.value is not None
        forwards.append(Forward(partition, item.body.tx_id, item.submission.value))
    return forwards, rejections


async def _check_signatures(
    decoded: Sequence[_Decoded], executor: ThreadPoolExecutor
) -> list[bool]:
    if len(decoded) < signature_chunk_min_count:
        return _signatures_ok(decoded)
    loop = asyncio.get_running_loop()
    chunk_size = -(-len(decoded) // signature_threads)
    chunks = [decoded[start : start + chunk_size] for start in range(0, len(decoded), chunk_size)]
    results = await asyncio.gather(
        *(loop.run_in_executor(executor, _signatures_ok, chunk) for chunk in chunks)
    )
    return [verdict for chunk_result in results for verdict in chunk_result]


def rejection_partition(rejection: RejectionRecord, shards: Sequence[str]) -> int:
    """Rejections of a known ledger go to its shard's partition; the rest to partition 0."""
    if rejection.ledger in shards:
        return shards.index(rejection.ledger)
    return 0


def register(app: Any, settings: Settings) -> None:
    """Add the verify agent to the faust app."""
    submissions = app.topic(TOPIC_SUBMISSIONS, key_type=bytes, value_type=bytes)
    executor = ThreadPoolExecutor(signature_threads, thread_name_prefix="verify-signature")
    shards = settings.shards

    @app.agent(submissions, name="ledger.verify")
    async def verify(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(batch_max_count, within=batch_wait_s):
            batch = [
                Submission(event.message.partition, event.message.offset, event.message.value)
                for event in events
            ]
            forwards, rejections = await verify_batch(batch, shards, executor)
            await publish(app.producer, forwards, rejections, shards)


async def publish(
    producer: object,
    forwards: Sequence[Forward],
    rejections: Sequence[RejectionRecord],
    shards: Sequence[str],
) -> None:
    """Hand every message to the producer, then wait until the broker acknowledged them all."""
    send = producer.send  # type: ignore[attr-defined]
    pending = [
        await send(TOPIC_VERIFIED, item.tx_id, item.envelope, item.shard_partition, None, None)
        for item in forwards
    ]
    for rejection in rejections:
        pending.append(
            await send(
                TOPIC_REJECTIONS,
                rejection.tx_id,
                codec.encode_rejection(rejection),
                rejection_partition(rejection, shards),
                None,
                None,
            )
        )
    await asyncio.gather(*pending)
