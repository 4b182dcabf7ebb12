"""Every rejection code a user can reach from outside lands on ledger.rejections and in PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from support.ledger_fixture import TestLedger

from ledger import codec, limits
from ledger.client.publisher import Refused, Sealed
from ledger.model import (
    AccountStatus,
    Attest,
    Capture,
    Envelope,
    Hold,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    RevokeKey,
    SetAccountStatus,
    Transfer,
    TxBody,
    Void,
)
from ledger.rejections import RejectionCode
from ledger.settings import Settings
from ledger.signing import Signer, build_tx_body, new_tx_id

from .support import fetch_until, publish_raw, submit_and_wait

pytestmark = pytest.mark.services

VERIFY_STAGE_CODES = {"MALFORMED", "TOO_LARGE", "UNSUPPORTED_VERSION"}


def now_ms() -> int:
    return int(time.time() * 1000)


def signed(signer: Signer, op: Operation, **body: object) -> bytes:
    return signer.sign(build_tx_body("main", op, **body))  # type: ignore[arg-type]


def usd(*legs: tuple[str, int]) -> Transfer:
    return Transfer(tuple(Posting(account, "USD", amount) for account, amount in legs))


async def sealed(settings: Settings, *envelopes: bytes) -> None:
    for outcome in await submit_and_wait(settings, list(envelopes)):
        assert isinstance(outcome, Sealed), outcome


async def refused_codes(settings: Settings, cases: dict[str, bytes]) -> dict[str, str]:
    outcomes = await submit_and_wait(settings, list(cases.values()))
    return {
        expected: outcome.code if isinstance(outcome, Refused) else "SEALED"
        for expected, outcome in zip(cases, outcomes, strict=True)
    }


async def test_every_reachable_code(settings: Settings, test_ledger: TestLedger) -> None:
    """One submission per code, built the way a client would get it wrong, each refused with it."""
    admin, alice, bob, issuer = (
        test_ledger.signer(n) for n in ("admin", "alice", "bob", "usd-issuer")
    )
    suffix = os.urandom(3).hex()
    closed, frozen, capped = f"closed-{suffix}", f"frozen-{suffix}", f"capped-{suffix}"
    doomed = Signer.generate()
    # Set-up, in sealed phases: accounts, then their states and keys.
    await sealed(
        settings,
        signed(admin, OpenAccount(closed, "USD")),
        signed(admin, OpenAccount(frozen, "USD")),
        signed(admin, OpenAccount(capped, "USD", max_balance=10)),
        signed(admin, RegisterKey(doomed.public_key, (), ())),
    )
    await sealed(
        settings,
        signed(admin, SetAccountStatus(closed, AccountStatus.CLOSED)),
        signed(admin, SetAccountStatus(frozen, AccountStatus.FROZEN)),
        signed(admin, RevokeKey(doomed.key_id)),
    )
    hold_to_void = signed(alice, Hold("alice", "bob", "USD", 10, now_ms() + 60_000))
    hold_to_exceed = signed(alice, Hold("alice", "bob", "USD", 10, now_ms() + 60_000))
    hold_expires_ms = now_ms() + 1_500
    hold_to_expire = signed(alice, Hold("alice", "bob", "USD", 10, hold_expires_ms))
    await sealed(settings, hold_to_void, hold_to_exceed, hold_to_expire)
    void_id, exceed_id, expire_id = (
        codec.decode_submission(envelope)[1].tx_id
        for envelope in (hold_to_void, hold_to_exceed, hold_to_expire)
    )
    await sealed(settings, signed(bob, Void(void_id)))
    # The third hold expires in the first block sealed after its expiry: wait for that time.
    await asyncio.sleep(max(0.0, (hold_expires_ms - now_ms()) / 1000) + 0.05)

    created = now_ms()
    good = signed(alice, usd(("alice", -1), ("bob", 1)))
    envelope = codec.decode_envelope(good)
    bad_signature = codec.encode_envelope(
        Envelope(envelope.body, envelope.public_key, bytes(64), envelope.body_version)
    )

    def body(**fields: object) -> bytes:
        base = {
            "tx_id": new_tx_id(),
            "ledger": "main",
            "created_at_ms": created,
            "expires_at_ms": created + 60_000,
            "op": usd(("alice", -1), ("bob", 1)),
        }
        return alice.sign(TxBody(**{**base, **fields}))  # type: ignore[arg-type]

    cases = {
        "BAD_SIGNATURE": bad_signature,
        "UNKNOWN_LEDGER": body(ledger="nowhere"),
        "VALIDITY_TOO_LONG": body(expires_at_ms=created + limits.validity_window_ms_max + 60_000),
        "EXPIRED": body(created_at_ms=created - 120_000, expires_at_ms=created - 60_000),
        "NOT_YET_VALID": body(created_at_ms=created + 60_000, expires_at_ms=created + 120_000),
        "UNKNOWN_KEY": signed(Signer.generate(), Attest(os.urandom(32))),
        "KEY_REVOKED": signed(doomed, Attest(os.urandom(32))),
        "UNAUTHORIZED": signed(bob, usd(("alice", -1), ("bob", 1))),
        "INVALID_OPERATION": signed(
            admin, RegisterKey(Signer.generate().public_key, ("superuser",), ())
        ),
        "ALREADY_EXISTS": signed(admin, OpenAccount("alice", "USD")),
        "UNKNOWN_ACCOUNT": signed(alice, usd(("alice", -1), (f"nobody-{suffix}", 1))),
        "UNKNOWN_ASSET": signed(admin, OpenAccount(f"gold-{suffix}", "XAU")),
        "ACCOUNT_CLOSED": signed(alice, usd(("alice", -1), (closed, 1))),
        "ACCOUNT_FROZEN": signed(alice, usd(("alice", -1), (frozen, 1))),
        "ASSET_MISMATCH": signed(alice, usd(("alice", -1), ("carol", 1))),
        "INVALID_AMOUNT": signed(alice, Hold("alice", "bob", "USD", 0, now_ms() + 60_000)),
        "UNBALANCED": signed(alice, usd(("alice", -5), ("bob", 4))),
        "ACCOUNT_NOT_EMPTY": signed(admin, SetAccountStatus("alice", AccountStatus.CLOSED)),
        "INSUFFICIENT_FUNDS": signed(alice, usd(("alice", -(4 * 10**18)), ("bob", 4 * 10**18))),
        "LIMIT_EXCEEDED": signed(alice, usd(("alice", -20), (capped, 20))),
        "OVERFLOW": signed(
            issuer, usd(("usd.issuer", -limits.int64_max), ("alice", limits.int64_max))
        ),
        "HOLD_NOT_FOUND": signed(bob, Capture(new_tx_id())),
        "HOLD_EXPIRED": signed(bob, Capture(expire_id)),
        "HOLD_ALREADY_RESOLVED": signed(bob, Void(void_id)),
        "CAPTURE_EXCEEDS_HOLD": signed(bob, Capture(exceed_id, 20)),
    }
    outcomes = await refused_codes(settings, cases)
    assert outcomes == {code: code for code in cases}
    tx_ids = [codec.decode_submission(envelope)[1].tx_id for envelope in cases.values()]
    rows = await fetch_until(
        settings,
        "SELECT DISTINCT code FROM ledger.rejections WHERE tx_id = ANY($1::bytea[])",
        tx_ids,
        done=lambda rows: len(rows) >= len(cases),
    )
    assert {row["code"] for row in rows} == set(cases)


async def test_undecodable_submissions_are_rejected_at_verify(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """Random bytes, oversize and unknown body versions are refused by verify, keyed by position."""
    envelope = codec.decode_envelope(
        test_ledger.signer("alice").sign(build_tx_body("main", Attest(os.urandom(32))))
    )
    future_version = test_ledger.signer("alice").sign_body(envelope.body, body_version=99)
    values = {
        "MALFORMED": os.urandom(200),
        "TOO_LARGE": os.urandom(limits.envelope_bytes_max + 1),
        "UNSUPPORTED_VERSION": codec.encode_envelope(future_version),
    }
    positions = await publish_raw(settings, list(values.values()))
    for expected, (partition, offset) in zip(values, positions, strict=True):
        [row] = await fetch_until(
            settings,
            "SELECT code, stage FROM ledger.rejections WHERE source_topic = 'ledger.submissions' "
            "AND source_partition = $1 AND source_offset = $2",
            partition,
            offset,
        )
        assert (row["code"], row["stage"]) == (expected, "verify")
    assert set(values) == VERIFY_STAGE_CODES
    assert {code.name for code in RejectionCode} >= set(values)
