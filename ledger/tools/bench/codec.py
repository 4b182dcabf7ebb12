"""How fast the verify stage's pure work is on one core: decoding submissions, checking signatures.

Budget: the verify stage must decode at least 10,000 submissions per second on one core, so that
decoding stays well below the cost of the Ed25519 check it precedes (about 6,500 per second per
core, DESIGN.md section 10). Figures are the best of a few rounds, to report the machine's speed
rather than its noise. Run it with ``python -m ledger.bench.codec``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ledger import codec, signing
from ledger.model import Posting, Transfer, TxBody

submission_count = 2_000
"""Distinct submissions decoded per round: about 0.05 s per round at 40,000 per second."""

signature_count = 400
"""Signatures checked per round: about 0.06 s per round at 6,500 per second."""

signer_count = 8
"""Distinct signing keys: a few payment systems, as the verify stage sees them."""

round_count = 3
"""Rounds per figure; the best one is reported."""

start_ms = 1_700_000_000_000


def _body(serial: int, posting_count: int) -> TxBody:
    amounts = [100] * (posting_count - 1)
    postings = [
        Posting(f"account-{serial % 1000}-{leg}", "EUR", amount)
        for leg, amount in enumerate(amounts)
    ]
    postings.append(Posting(f"account-{serial % 997}-payer", "EUR", -sum(amounts)))
    return TxBody(
        tx_id=serial.to_bytes(16, "big"),
        ledger="bench",
        created_at_ms=start_ms + serial,
        expires_at_ms=start_ms + serial + 60_000,
        op=Transfer(tuple(postings)),
        external_ref=f"invoice-{serial}",
    )


def submissions(count: int, posting_count: int = 2) -> list[bytes]:
    """``count`` signed submissions (encoded envelopes) of ``posting_count``-leg transfers."""
    signers = [signing.Signer.generate() for _ in range(signer_count)]
    return [
        signers[serial % signer_count].sign(_body(serial, posting_count)) for serial in range(count)
    ]


def _best_seconds(work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(round_count):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def run() -> dict[str, float]:
    """Measure and return the figures, named with their units."""
    plain = submissions(submission_count)
    widest = submissions(submission_count // 4, posting_count=16)
    envelopes = [codec.decode_envelope(raw) for raw in plain[:signature_count]]

    def decode_envelopes() -> None:
        for raw in plain:
            codec.decode_envelope(raw)

    def decode_plain() -> None:
        for raw in plain:
            codec.decode_submission(raw)

    def decode_widest() -> None:
        for raw in widest:
            codec.decode_submission(raw)

    def check_signatures() -> None:
        for envelope in envelopes:
            if not signing.signature_ok(envelope.public_key, envelope.signature, envelope.body):
                raise AssertionError("bench signature did not verify")

    def decode_and_check() -> None:
        for raw in plain[:signature_count]:
            envelope, _ = codec.decode_submission(raw)
            if not signing.signature_ok(envelope.public_key, envelope.signature, envelope.body):
                raise AssertionError("bench signature did not verify")

    return {
        "envelope_decode_per_second": submission_count / _best_seconds(decode_envelopes),
        "submission_decode_per_second": submission_count / _best_seconds(decode_plain),
        "submission_16_postings_decode_per_second": len(widest) / _best_seconds(decode_widest),
        "signature_check_per_second": signature_count / _best_seconds(check_signatures),
        "decode_and_check_per_second": signature_count / _best_seconds(decode_and_check),
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:>42} {value:12.0f}")
