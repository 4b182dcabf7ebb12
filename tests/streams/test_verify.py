"""The verify stage's batch logic, without Kafka: precedence of codes, routing, positions."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from ledger import codec, limits
from ledger.model import Attest, Envelope
from ledger.signing import Signer, build_tx_body
from streams.verify import Submission, rejection_partition, signature_chunk_min_count, verify_batch

SHARDS = ("main", "second")


def attest(signer: Signer, ledger: str = "main") -> bytes:
    return signer.sign(build_tx_body(ledger, Attest(os.urandom(32))))


def with_bad_signature(envelope_bytes: bytes) -> bytes:
    envelope = codec.decode_envelope(envelope_bytes)
    return codec.encode_envelope(Envelope(envelope.body, envelope.public_key, bytes(64)))


async def test_each_submission_is_forwarded_or_rejected_with_its_code() -> None:
    """A batch big enough for the thread pool: valid ones go to their shard's partition, the rest
    are rejected with the first failing code and their source partition and offset."""
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
    }
    values = [*valid_main, valid_second, *cases.values(), None]
    batch = [Submission(3, 100 + index, value) for index, value in enumerate(values)]
    with ThreadPoolExecutor(2) as executor:
        forwards, rejections = await verify_batch(batch, SHARDS, executor)
    assert [forward.envelope for forward in forwards] == [*valid_main, valid_second]
    assert {forward.shard_partition for forward in forwards[:-1]} == {0}
    assert forwards[-1].shard_partition == 1
    codes = [(rejection.code, rejection.source_offset) for rejection in rejections]
    first_case = 100 + len(valid_main) + 1
    expected = [(code, first_case + index) for index, code in enumerate(cases)]
    assert sorted(codes, key=lambda item: item[1]) == [
        *expected,
        ("MALFORMED", first_case + len(cases)),
    ]
    assert all(
        rejection.stage == "verify" and rejection.source_partition == 3 for rejection in rejections
    )


async def test_rejections_keep_what_was_learned() -> None:
    """A rejection after decoding carries tx_id, ledger and key; one before decoding cannot."""
    signer = Signer.generate()
    batch = [Submission(0, 1, attest(signer, "nowhere")), Submission(0, 2, b"\x00")]
    with ThreadPoolExecutor(1) as executor:
        _, rejections = await verify_batch(batch, SHARDS, executor)
    unknown, malformed = sorted(rejections, key=lambda rejection: rejection.source_offset)
    assert (
        unknown.tx_id is not None
        and unknown.ledger == "nowhere"
        and unknown.key_id == signer.key_id
    )
    assert malformed.tx_id is None and malformed.ledger is None
    assert rejection_partition(unknown, SHARDS) == 0
