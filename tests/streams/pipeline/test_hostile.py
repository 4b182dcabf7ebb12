"""Hostile submissions mixed into valid traffic: each refused with its code, the rest sealed."""

from __future__ import annotations

import os
import random

import pytest
from support.ledger_fixture import TestLedger

from ledger import codec, limits
from ledger.client.publisher import Refused, Sealed
from ledger.model import Envelope, Posting, Transfer
from ledger.settings import Settings
from ledger.signing import Signer, build_tx_body

from .support import fetch_until, publish_raw, submit_and_wait

pytestmark = pytest.mark.services


def usd(payer: str, payee: str, amount: int) -> Transfer:
    return Transfer((Posting(payer, "USD", -amount), Posting(payee, "USD", amount)))


async def test_hostile_traffic_does_not_stop_valid_traffic(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """Random, truncated, wrong-union, oversize and unsigned bytes go to rejections with their
    codes while the valid transfers published around them are all sealed."""
    alice = test_ledger.signer("alice")
    valid = [alice.sign(build_tx_body("main", usd("alice", "bob", 1))) for _ in range(60)]
    sample = valid[0]
    wrong_union_body = _with_union_index(codec.decode_envelope(sample).body, 42)
    raw_cases = {
        "random bytes": (os.urandom(300), "MALFORMED"),
        "truncated": (sample[: len(sample) // 2], "MALFORMED"),
        "wrong union index": (
            codec.encode_envelope(alice.sign_body(wrong_union_body)),
            "MALFORMED",
        ),
        "oversize": (os.urandom(limits.envelope_bytes_max + 100), "TOO_LARGE"),
        "empty": (b"", "MALFORMED"),
    }
    envelope = codec.decode_envelope(valid[1])
    signed_cases = {
        "bad signature": (
            codec.encode_envelope(Envelope(envelope.body, envelope.public_key, os.urandom(64))),
            "BAD_SIGNATURE",
        ),
        "expired": (
            alice.sign(
                build_tx_body("main", usd("alice", "bob", 1), now_ms=1_000, validity_ms=1_000)
            ),
            "EXPIRED",
        ),
        "overdraft": (
            alice.sign(build_tx_body("main", usd("alice", "bob", 10**17))),
            "INSUFFICIENT_FUNDS",
        ),
        "overflow": (
            test_ledger.signer("usd-issuer").sign(
                build_tx_body("main", usd("usd.issuer", "alice", limits.int64_max))
            ),
            "OVERFLOW",
        ),
        "unknown account": (
            alice.sign(build_tx_body("main", usd("alice", "no-such", 1))),
            "UNKNOWN_ACCOUNT",
        ),
        "unknown key": (
            Signer.generate().sign(build_tx_body("main", usd("alice", "bob", 1))),
            "UNKNOWN_KEY",
        ),
    }
    valid_set = valid[2:]
    mixed = valid_set + [value for value, _ in signed_cases.values()]
    random.Random(7).shuffle(mixed)
    positions = await publish_raw(settings, [value for value, _ in raw_cases.values()])
    outcomes = await submit_and_wait(settings, mixed)
    by_envelope = dict(zip(mixed, outcomes, strict=True))
    assert all(isinstance(by_envelope[value], Sealed) for value in valid_set)
    for name, (value, code) in signed_cases.items():
        outcome = by_envelope[value]
        assert isinstance(outcome, Refused) and outcome.code == code, (name, outcome)
    for (name, (_, code)), (partition, offset) in zip(raw_cases.items(), positions, strict=True):
        [row] = await fetch_until(
            settings,
            "SELECT code FROM ledger.rejections WHERE source_topic = 'ledger.submissions' "
            "AND source_partition = $1 AND source_offset = $2",
            partition,
            offset,
        )
        assert row["code"] == code, name


def _with_union_index(body: bytes, index: int) -> bytes:
    """``body`` with its op union index replaced; it sits after tx_id, ledger and two longs."""
    decoded = codec.decode_tx_body(body)
    prefix = (
        16
        + 1
        + len(decoded.ledger.encode())
        + _varint_size(decoded.created_at_ms)
        + _varint_size(decoded.expires_at_ms)
    )
    return body[:prefix] + bytes([index * 2]) + body[prefix + 1 :]


def _varint_size(value: int) -> int:
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size
