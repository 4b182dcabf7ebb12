"""The verify stage's batch logic, without Kafka: precedence of codes, routing, positions, batches."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

import streams.verify
from ledger import codec, limits
from ledger.errors import DecodeError
from ledger.model import Attest, Envelope, RejectionRecord, TxBody
from ledger.signing import Signer, bad_signers, build_tx_body
from streams.verify import (
    Forward,
    Submission,
    rejection_partition,
    signature_chunk_min_count,
    verify_batch,
)

SHARDS = ("main", "second")
NOW_MS = 1_800_000_000_000


def attest(signer: Signer, ledger: str = "main", now_ms: int = NOW_MS) -> bytes:
    return signer.sign(build_tx_body(ledger, Attest(os.urandom(32)), now_ms=now_ms))


def with_bad_signature(envelope_bytes: bytes) -> bytes:
    envelope = codec.decode_envelope(envelope_bytes)
    return codec.encode_envelope(Envelope(envelope.body, envelope.public_key, bytes(64)))


def timed(signer: Signer, created_at_ms: int, expires_at_ms: int, ledger: str = "main") -> bytes:
    """An attestation with any validity window (build_tx_body refuses too long a one)."""
    body = TxBody(os.urandom(16), ledger, created_at_ms, expires_at_ms, Attest(os.urandom(32)))
    return signer.sign(body)


def submissions(
    values: Sequence[bytes | None], partition: int = 3, first_offset: int = 100
) -> list[Submission]:
    return [
        Submission(partition, first_offset + index, value) for index, value in enumerate(values)
    ]


def forwarded(forwards: Sequence[Forward]) -> list[bytes]:
    return [entry.envelope for forward in forwards for entry in forward.batch.entries]


async def verify(
    batch: Sequence[Submission], now_ms: int = NOW_MS, threads: int = 2
) -> tuple[list[Forward], list[RejectionRecord]]:
    with ThreadPoolExecutor(threads) as executor:
        return await verify_batch(batch, SHARDS, executor, now_ms)


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The bodies whose signature the verify stage checked, in the order it checked them."""
    checked: list[bytes] = []
    real = bad_signers

    def counting(envelopes: Sequence[Envelope]) -> list[bytes | None]:
        checked.extend(envelope.body for envelope in envelopes)
        return real(envelopes)

    monkeypatch.setattr(streams.verify, "bad_signers", counting)
    yield checked


async def test_each_submission_is_forwarded_or_rejected_with_its_code() -> None:
    """A batch big enough for the thread pool: valid ones go to their shard's partition as
    VerifiedBatch entries with their submission positions, the rest are rejected with the first
    failing code and their source partition and offset."""
    signer = Signer.generate()
    valid_main = [attest(signer) for _ in range(signature_chunk_min_count)]
    valid_second = attest(signer, "second")
    unsupported = codec.encode_envelope(
        signer.sign_body(codec.decode_envelope(valid_main[0]).body, 7)
    )
    cases = {
        "MALFORMED": os.urandom(100),
        "TOO_LARGE": os.urandom(limits.envelope_bytes_max + 1),
        "UNSUPPORTED_VERSION": unsupported,
        "BAD_SIGNATURE": with_bad_signature(attest(signer, "nowhere")),  # signature before ledger
        "UNKNOWN_LEDGER": attest(signer, "nowhere"),
        "EXPIRED": with_bad_signature(timed(signer, NOW_MS - 2_000, NOW_MS - 1)),  # time first
    }
    values = [*valid_main, valid_second, *cases.values(), None]
    forwards, rejections = await verify(submissions(values))

    assert [(forward.shard_partition, forward.batch.ledger) for forward in forwards] == [
        (0, "main"),
        (1, "second"),
    ]
    assert forwarded(forwards) == [*valid_main, valid_second]
    positions = [
        (entry.source_partition, entry.source_offset)
        for forward in forwards
        for entry in forward.batch.entries
    ]
    assert positions == [(3, 100 + index) for index in range(len(valid_main) + 1)]
    codes = [(rejection.code, rejection.source_offset) for rejection in rejections]
    first_case = 100 + len(valid_main) + 1
    expected = [(code, first_case + index) for index, code in enumerate(cases)]
    assert sorted(codes, key=lambda item: item[1]) == [
        *expected,
        ("MALFORMED", first_case + len(cases)),
    ]
    assert all(
        rejection.stage == "verify"
        and rejection.source_topic == "ledger.submissions"
        and rejection.source_partition == 3
        for rejection in rejections
    )


async def test_rejections_keep_what_was_learned() -> None:
    """A rejection after decoding carries tx_id, ledger and key; one before decoding cannot."""
    signer = Signer.generate()
    batch = [Submission(0, 1, attest(signer, "nowhere")), Submission(0, 2, b"\x00")]
    _, rejections = await verify(batch, threads=1)
    unknown, malformed = sorted(rejections, key=lambda rejection: rejection.source_offset)
    assert (
        unknown.tx_id is not None
        and unknown.ledger == "nowhere"
        and unknown.key_id == signer.key_id
    )
    assert malformed.tx_id is None and malformed.ledger is None and malformed.key_id is None


async def test_out_of_time_is_refused_before_the_signature_is_checked(
    signature_checks: list[bytes],
) -> None:
    """EXPIRED and VALIDITY_TOO_LONG win over BAD_SIGNATURE, and no signature check is spent on
    them; the bounds are inclusive (valid until expires_at_ms, for exactly the window)."""
    signer = Signer.generate()
    window = limits.validity_window_ms_max
    expired_bad = with_bad_signature(timed(signer, NOW_MS - 60_000, NOW_MS - 1))
    expired_good = timed(signer, NOW_MS - 60_000, NOW_MS - 1)
    too_long_bad = with_bad_signature(timed(signer, NOW_MS, NOW_MS + window + 1))
    too_long_and_expired = timed(signer, NOW_MS - 2 * window, NOW_MS - 1)
    last_moment = timed(signer, NOW_MS - window, NOW_MS)  # the whole window, expiring now
    not_yet_valid = timed(signer, NOW_MS + 3_600_000, NOW_MS + 3_600_000)  # for the sequencer
    values = [
        expired_bad,
        expired_good,
        too_long_bad,
        too_long_and_expired,
        last_moment,
        not_yet_valid,
    ]

    forwards, rejections = await verify(submissions(values))

    assert [(rejection.code, rejection.source_offset) for rejection in rejections] == [
        ("EXPIRED", 100),
        ("EXPIRED", 101),
        ("VALIDITY_TOO_LONG", 102),
        ("VALIDITY_TOO_LONG", 103),
    ]
    assert all(rejection.tx_id is not None for rejection in rejections)
    assert all(rejection.key_id == signer.key_id for rejection in rejections)
    assert forwarded(forwards) == [last_moment, not_yet_valid]
    signed_bodies = [codec.decode_envelope(value).body for value in (last_moment, not_yet_valid)]
    assert signature_checks == signed_bodies, "a signature was checked for an out-of-time body"


async def test_a_body_malformed_after_its_head_is_forwarded(signature_checks: list[bytes]) -> None:
    """Verify reads only the head of a body: a signed body whose head decodes and whose rest is
    garbage goes to its shard (the sequencer refuses it MALFORMED); one whose head does not
    decode is refused MALFORMED here, before its signature is checked."""
    signer = Signer.generate()
    valid = codec.encode_tx_body(build_tx_body("second", Attest(os.urandom(32)), now_ms=NOW_MS))
    garbage_tail = codec.encode_envelope(signer.sign_body(valid[: head_end(valid)] + b"\xff\xfe"))
    broken_head = codec.encode_envelope(signer.sign_body(valid[:20]))
    with pytest.raises(DecodeError):
        codec.decode_submission(garbage_tail)

    forwards, rejections = await verify(submissions([garbage_tail, broken_head]))

    assert [(forward.shard_partition, forwarded([forward])) for forward in forwards] == [
        (1, [garbage_tail])
    ]
    assert [(rejection.code, rejection.source_offset) for rejection in rejections] == [
        ("MALFORMED", 101)
    ]
    assert len(signature_checks) == 1


def head_end(body: bytes) -> int:
    """Where the head of a body ends: tx_id, ledger, created_at_ms, expires_at_ms."""
    position = 16
    ledger_length, position = read_varint(body, position)
    position += ledger_length
    for _ in range(2):
        _, position = read_varint(body, position)
    return position


def read_varint(raw: bytes, position: int) -> tuple[int, int]:
    zigzag = shift = 0
    while True:
        byte = raw[position]
        zigzag |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if byte < 0x80:
            return (zigzag >> 1) ^ -(zigzag & 1), position


async def test_batches_are_cut_at_the_count_limit_per_shard_in_order() -> None:
    """Each shard's envelopes travel in VerifiedBatch messages of at most
    verified_batch_tx_max_count entries, in submission order; shards interleaved in the poll are
    packed separately."""
    signer = Signer.generate()
    batch_max = limits.verified_batch_tx_max_count
    main_count = 2 * batch_max + 7
    values: list[bytes | None] = []
    main_indexes: list[int] = []
    for index in range(main_count):
        main_indexes.append(len(values))
        values.append(attest(signer))
        if index % 100 == 0:
            values.append(attest(signer, "second"))
    batch = submissions(values, partition=5, first_offset=1_000)

    forwards, rejections = await verify(batch)

    assert rejections == []
    main = [forward for forward in forwards if forward.shard_partition == 0]
    second = [forward for forward in forwards if forward.shard_partition == 1]
    assert [len(forward.batch.entries) for forward in main] == [batch_max, batch_max, 7]
    assert [len(forward.batch.entries) for forward in second] == [len(values) - main_count]
    assert {forward.batch.ledger for forward in main} == {"main"}
    expected_main = [batch[index] for index in main_indexes]
    assert [
        (entry.source_partition, entry.source_offset, entry.envelope)
        for forward in main
        for entry in forward.batch.entries
    ] == [(item.partition, item.offset, item.value) for item in expected_main]
    offsets = [entry.source_offset for forward in second for entry in forward.batch.entries]
    assert offsets == sorted(offsets)


async def test_batches_are_cut_at_the_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch never passes verified_batch_bytes_max: the entry that would not fit starts the
    next one (the limit is lowered here, since full-size envelopes hit the count limit first)."""
    signer = Signer.generate()
    values = [attest(signer) for _ in range(10)]
    size = len(values[0])
    assert all(len(value) == size for value in values)
    monkeypatch.setattr(limits, "verified_batch_bytes_max", 3 * size + size // 2)

    forwards, _ = await verify(submissions(values))

    assert [len(forward.batch.entries) for forward in forwards] == [3, 3, 3, 1]
    assert forwarded(forwards) == values
    encoded = [codec.encode_verified_batch(forward.batch) for forward in forwards]
    assert [codec.decode_verified_batch(raw) for raw in encoded] == [f.batch for f in forwards]


async def test_an_empty_poll_forwards_nothing() -> None:
    """No submissions: no messages at all (not an empty batch per shard)."""
    assert await verify([]) == ([], [])


def test_rejection_partition() -> None:
    """A rejection of a known ledger goes to that shard's partition; any other to partition 0."""

    def rejection(ledger: str | None) -> RejectionRecord:
        return RejectionRecord(
            "MALFORMED", "x", "verify", "ledger.submissions", 0, 0, 0, ledger=ledger
        )

    assert rejection_partition(rejection("main"), SHARDS) == 0
    assert rejection_partition(rejection("second"), SHARDS) == 1
    assert rejection_partition(rejection("nowhere"), SHARDS) == 0
    assert rejection_partition(rejection(None), SHARDS) == 0
