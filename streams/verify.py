"""Verify: the stateless stage, as a plain aiokafka consumer-group loop.

Each poll of ``ledger.submissions`` (up to ``batch_max_count`` messages) goes through:

  1. decode each envelope and the head of its body (MALFORMED, TOO_LARGE, UNSUPPORTED_VERSION);
  2. refuse what is out of time before paying for its signature (VALIDITY_TOO_LONG, EXPIRED):
     under overload a backlog then sheds transactions that would be refused anyway, instead of
     spending its capacity on them;
  3. check signatures in ``signature_threads`` chunks on a thread pool (BAD_SIGNATURE);
  4. route by ledger (UNKNOWN_LEDGER), packing each shard's envelopes into ``VerifiedBatch``
     messages on its partition of ``ledger.verified``;
  5. produce the batches and the rejections and wait until the broker acknowledged all of them;
  6. commit the consumed offsets of the consumer group (at most every ``commit_interval_s``).

At-least-once is enough: a crash between 5 and 6 verifies the poll again and the sequencer
refuses the copies (DUPLICATE). A poison message is a rejection like any other and never stalls
its partition. The body is decoded whole, canonically, once, by the sequencer.

Why not a faust agent: faust costs 72-77 µs of CPU per message even when the agent does
nothing (DESIGN.md section 10), more than the signature check itself.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError
from prometheus_client import Counter, Histogram

from ledger import codec, limits
from ledger.codec import rejection_code_for
from ledger.errors import DecodeError
from ledger.kafka.clients import (
    VERIFY_GROUP,
    group_consumer,
    idempotent_producer,
    send_batched,
)
from ledger.kafka.principals import VERIFY
from ledger.kafka.wire import default_wire, framed, plain
from ledger.model import BodyHead, Envelope, RejectionRecord, VerifiedBatch, VerifiedEntry
from ledger.rejections import RejectionCode, Stage
from ledger.settings import (
    TOPIC_REJECTIONS,
    TOPIC_SUBMISSIONS,
    TOPIC_VERIFIED,
    VERIFIED_BATCH_HEADER,
    Settings,
)
from ledger.signing import bad_signers, key_id
from streams.lifecycle import collect_less, run_or_exit
from streams.telemetry import SECONDS_BUCKETS

log = logging.getLogger("ledger.verify")

batch_max_count = 2_000
"""Submissions per poll: enough to keep both signature threads busy between awaits."""

poll_wait_ms = 20
"""How long a poll waits for a first message: a small share of the 1 s confirmation budget."""

fetch_min_bytes = 128 * 1024
fetch_wait_ms_max = 40
"""The broker holds a fetch until about 500 submissions are there, or this long: under load a
poll then carries hundreds of submissions, and its fixed cost (thread hand-offs, a produce
request, an offset commit) is shared by all of them instead of a few."""

commit_interval_s = 0.2
"""Offsets are committed at most this often (always after the acknowledgements they cover):
one commit request per poll would cost as much as verifying the poll. A crash re-verifies at
most this much more; the sequencer refuses the copies."""

signature_threads = 2
"""A batch's signatures are checked with the GIL released (``ledger.ed25519``): one thread per
core."""

signature_chunk_min_count = 64
"""Below this a batch is checked in one chunk: thread hand-off would cost more than it saves."""

# Moved once per poll (streams.telemetry): a redelivered submission counts again.
POLLS = Counter(
    "ledger_verify_polls", "Polls that returned submissions, each verified and published whole."
)
SUBMISSIONS = Counter("ledger_verify_submissions", "Submissions read from ledger.submissions.")
SIGNATURES_CHECKED = Counter(
    "ledger_verify_signatures_checked",
    "Ed25519 signatures checked: the submissions that decoded and were in time.",
)
FORWARDED = Counter(
    "ledger_verify_forwarded_envelopes",
    "Envelopes forwarded to ledger.verified and acknowledged, by ledger.",
    ["ledger"],
)
REJECTED = Counter(
    "ledger_verify_rejections",
    "Submissions refused by verify and acknowledged on ledger.rejections, by code.",
    ["code"],
)
POLL_SECONDS = Histogram(
    "ledger_verify_poll_seconds",
    "One poll's verification and publication, until the broker acknowledged all of it.",
    buckets=SECONDS_BUCKETS,
)


@dataclass(frozen=True, slots=True)
class Submission:
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Forward:
    """One ``ledger.verified`` message: a shard's verified envelopes of one poll."""

    shard_partition: int
    batch: VerifiedBatch


@dataclass(frozen=True, slots=True)
class _Decoded:
    submission: Submission
    envelope: Envelope
    head: BodyHead


def _reject(
    submission: Submission, code: RejectionCode, detail: str, decoded: _Decoded | None = None
) -> RejectionRecord:
    head = decoded.head if decoded else None
    return RejectionRecord(
        code=code.name,
        detail=detail,
        stage=Stage.VERIFY.value,
        source_topic=TOPIC_SUBMISSIONS,
        source_partition=submission.partition,
        source_offset=submission.offset,
        rejected_at_ms=int(time.time() * 1000),
        tx_id=head.tx_id if head else None,
        ledger=head.ledger if head else None,
        key_id=key_id(decoded.envelope.public_key) if decoded else None,
    )


def _decode(submission: Submission) -> _Decoded | RejectionRecord:
    """Step 1. A framed value (Confluent wire format) loses its frame here: what goes on, into
    ``ledger.verified`` and the blocks, is the plain Avro envelope the signature is about."""
    if submission.value is None:
        return _reject(submission, RejectionCode.MALFORMED, "empty message (no value)")
    try:
        value = plain(submission.value, "Envelope", "MultiSignedEnvelope")
        if value is not submission.value:
            submission = Submission(submission.partition, submission.offset, value)
        envelope = codec.decode_envelope(value)
        head = codec.decode_body_head(envelope.body, envelope.body_version)
    except DecodeError as exc:
        return _reject(submission, rejection_code_for(exc), str(exc))
    return _Decoded(submission, envelope, head)


def _out_of_time(item: _Decoded, now_ms: int) -> RejectionRecord | None:
    """Step 2: the sequencer's first two time checks, on this process's clock."""
    head = item.head
    validity_ms = head.expires_at_ms - head.created_at_ms
    if validity_ms > limits.validity_window_ms_max:
        detail = (
            f"valid for {validity_ms} ms, at most {limits.validity_window_ms_max} ms "
            "(replay protection remembers tx_ids only that long)"
        )
        return _reject(item.submission, RejectionCode.VALIDITY_TOO_LONG, detail, item)
    if now_ms > head.expires_at_ms:
        detail = f"expired at {head.expires_at_ms}, verified at {now_ms}"
        return _reject(item.submission, RejectionCode.EXPIRED, detail, item)
    return None


def _bad_signers(batch: Sequence[_Decoded]) -> list[bytes | None]:
    """Per envelope: the key of its first signature that does not verify, or None."""
    return bad_signers([item.envelope for item in batch])


async def verify_batch(
    submissions: Sequence[Submission],
    shards: Sequence[str],
    executor: ThreadPoolExecutor,
    now_ms: int,
) -> tuple[list[Forward], list[RejectionRecord]]:
    """Steps 1 to 4: split one poll into ``ledger.verified`` messages and rejections."""
    rejections: list[RejectionRecord] = []
    in_time: list[_Decoded] = []
    for submission in submissions:
        decoded = _decode(submission)
        if isinstance(decoded, RejectionRecord):
            rejections.append(decoded)
        elif (late := _out_of_time(decoded, now_ms)) is not None:
            rejections.append(late)
        else:
            in_time.append(decoded)
    verdicts = await _check_signatures(in_time, executor)
    shard_index = {name: index for index, name in enumerate(shards)}
    per_shard: dict[int, list[VerifiedEntry]] = {}
    for item, failed_key in zip(in_time, verdicts, strict=True):
        if failed_key is not None:
            detail = f"signature by key {key_id(failed_key)} does not verify"
            rejections.append(_reject(item.submission, RejectionCode.BAD_SIGNATURE, detail, item))
            continue
        partition = shard_index.get(item.head.ledger)
        if partition is None:
            detail = f"ledger {item.head.ledger!r} is not one of {', '.join(shards)}"
            rejections.append(_reject(item.submission, RejectionCode.UNKNOWN_LEDGER, detail, item))
            continue
        assert item.submission.value is not None
        per_shard.setdefault(partition, []).append(
            VerifiedEntry(item.submission.partition, item.submission.offset, item.submission.value)
        )
    forwards = [
        Forward(partition, VerifiedBatch(shards[partition], tuple(entries[start:end])))
        for partition, entries in per_shard.items()
        for start, end in _batch_bounds(entries)
    ]
    return forwards, rejections


def _batch_bounds(entries: Sequence[VerifiedEntry]) -> list[tuple[int, int]]:
    """Cut a shard's entries into runs that respect the VerifiedBatch limits, in order."""
    bounds: list[tuple[int, int]] = []
    start = size_bytes = 0
    for index, entry in enumerate(entries):
        count = index - start
        if count and (
            count >= limits.verified_batch_tx_max_count
            or size_bytes + len(entry.envelope) > limits.verified_batch_bytes_max
        ):
            bounds.append((start, index))
            start, size_bytes = index, 0
        size_bytes += len(entry.envelope)
    if start < len(entries):
        bounds.append((start, len(entries)))
    return bounds


async def _check_signatures(
    decoded: Sequence[_Decoded], executor: ThreadPoolExecutor
) -> list[bytes | None]:
    """Step 3: every signature of every envelope (``_bad_signers``)."""
    SIGNATURES_CHECKED.inc(sum(1 + len(item.envelope.cosigners) for item in decoded))
    if len(decoded) < signature_chunk_min_count:
        return _bad_signers(decoded)
    loop = asyncio.get_running_loop()
    chunk_size = -(-len(decoded) // signature_threads)
    chunks = [decoded[start : start + chunk_size] for start in range(0, len(decoded), chunk_size)]
    results = await asyncio.gather(
        *(loop.run_in_executor(executor, _bad_signers, chunk) for chunk in chunks)
    )
    return [verdict for chunk_result in results for verdict in chunk_result]


def rejection_partition(rejection: RejectionRecord, shards: Sequence[str]) -> int:
    """Rejections of a known ledger go to its shard's partition; the rest to partition 0."""
    if rejection.ledger in shards:
        return shards.index(rejection.ledger)
    return 0


async def publish(
    producer: AIOKafkaProducer,
    forwards: Sequence[Forward],
    rejections: Sequence[RejectionRecord],
    shards: Sequence[str],
) -> None:
    """Step 5: hand every message to the producer, then wait until the broker has them all."""
    pending = [
        await producer.send(
            TOPIC_VERIFIED,
            codec.encode_verified_batch(forward.batch),
            key=forward.batch.ledger.encode(),
            partition=forward.shard_partition,
            headers=[VERIFIED_BATCH_HEADER],
        )
        for forward in forwards
    ]
    pending += await send_batched(
        producer,
        TOPIC_REJECTIONS,
        (
            (
                rejection_partition(rejection, shards),
                rejection.tx_id,
                framed("Rejection", codec.encode_rejection(rejection)),
            )
            for rejection in rejections
        ),
    )
    await asyncio.gather(*pending)


class Verifier:
    """One verify worker: a member of ``VERIFY_GROUP`` sharing the submission partitions."""

    def __init__(self, settings: Settings) -> None:
        self.shards = settings.shards
        self.consumer: AIOKafkaConsumer = group_consumer(
            settings.kafka(VERIFY),
            "ledger-verify",
            VERIFY_GROUP,
            TOPIC_SUBMISSIONS,
            max_poll_records=batch_max_count,
            fetch_min_bytes=fetch_min_bytes,
            fetch_max_wait_ms=fetch_wait_ms_max,
            # Submissions are not transactional; nothing to wait for.
            isolation_level="read_uncommitted",
        )
        self.acknowledged: dict[TopicPartition, int] = {}
        """Offsets whose submissions are forwarded or refused and acknowledged, not committed."""
        self.committed_at_s = 0.0
        self.producer = idempotent_producer(settings.kafka(VERIFY), "ledger-verify", linger_ms=0)
        self.executor = ThreadPoolExecutor(signature_threads, thread_name_prefix="verify-signature")

    async def run(self) -> None:
        collect_less()
        default_wire().load()
        await self.producer.start()
        await self.consumer.start()
        try:
            while True:
                polled = await self.consumer.getmany(
                    timeout_ms=poll_wait_ms, max_records=batch_max_count
                )
                if polled:
                    await self.verify_poll(polled)
                if (
                    self.acknowledged
                    and time.monotonic() >= self.committed_at_s + commit_interval_s
                ):
                    await self.commit()
        finally:
            if self.acknowledged:
                await self.commit()
            await self.consumer.stop()
            await self.producer.stop()
            self.executor.shutdown(wait=False)

    async def verify_poll(self, polled: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Steps 1 to 5 for one poll; its offsets wait for the next commit (step 6)."""
        started_s = time.perf_counter()
        submissions = [
            Submission(message.partition, message.offset, message.value)
            for messages in polled.values()
            for message in messages
        ]
        forwards, rejections = await verify_batch(
            submissions, self.shards, self.executor, int(time.time() * 1000)
        )
        await publish(self.producer, forwards, rejections, self.shards)
        for partition, messages in polled.items():
            self.acknowledged[partition] = messages[-1].offset + 1
        POLL_SECONDS.observe(time.perf_counter() - started_s)
        count_poll(len(submissions), forwards, rejections)

    async def commit(self) -> None:
        """Step 6, for every poll acknowledged since the last commit."""
        assigned = self.consumer.assignment()
        # A partition taken away by a rebalance is another member's to commit now.
        offsets = {tp: offset for tp, offset in self.acknowledged.items() if tp in assigned}
        self.acknowledged = {}
        self.committed_at_s = time.monotonic()
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us: another member verifies these again, and the
            # sequencer refuses the copies. Nothing is lost.
            log.warning("offsets not committed after a rebalance (%s); re-verified", exc)


def count_poll(
    submission_count: int, forwards: Sequence[Forward], rejections: Sequence[RejectionRecord]
) -> None:
    """The metrics of one acknowledged poll: one call per batch or per code, none per
    submission (``Counter(map(...))`` tallies the codes in C)."""
    POLLS.inc()
    SUBMISSIONS.inc(submission_count)
    for forward in forwards:
        FORWARDED.labels(forward.batch.ledger).inc(len(forward.batch.entries))
    for code, count in collections.Counter(map(attrgetter("code"), rejections)).items():
        REJECTED.labels(code).inc(count)


async def run_forever(settings: Settings) -> None:
    """Run one verify worker until the process ends."""
    await run_or_exit("verify", lambda: Verifier(settings).run(), log)
