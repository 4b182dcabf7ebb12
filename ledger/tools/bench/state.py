"""Throughput of the state machine: decide + apply of plain 2-posting transfers on one core.

Budget: at least 100,000 per second, so that the single-threaded sequencer of a shard is never
the bottleneck (signature checks, at about 12,000 per second on two cores, are). Run it with
``python -m ledger.bench.state``. The clock is read here, never inside the state machine.
"""

from __future__ import annotations

import time

from ledger.model import DefineAsset, OpenAccount, Posting, RegisterKey, Transfer, Tx, TxBody
from ledger.state import Accepted, State, apply, begin_block, decide, key_id_of, snapshot_bytes
from ledger.state import restore as restore_state

transfer_count = 200_000
"""Transfers per measurement: enough for a stable figure, small enough to run in seconds."""

account_count = 1_000
accounts_per_key_count = 250
"""Below ``limits.owned_accounts_max_count``: the bench spreads accounts over several keys."""

start_ms = 1_700_000_000_000
ledger_name = "bench"


def _public_key(index: int) -> bytes:
    return index.to_bytes(4, "big") * 8


def _tx(serial: int, public_key: bytes, op: object) -> Tx:
    body = TxBody(
        tx_id=serial.to_bytes(16, "big"),
        ledger=ledger_name,
        created_at_ms=start_ms,
        expires_at_ms=start_ms + 60_000,
        op=op,  # type: ignore[arg-type]
    )
    return Tx(body=body, public_key=public_key, key_id=key_id_of(public_key), envelope_bytes=b"")


def _must_apply(state: State, tx: Tx) -> None:
    decision = decide(state, tx, start_ms)
    if not isinstance(decision, Accepted):
        raise AssertionError(f"bench setup rejected: {decision}")
    apply(state, decision)


def funded_state() -> tuple[State, list[bytes], int]:
    """A ledger with one asset and ``account_count`` funded accounts; returns the state, the
    spending keys (key i owns accounts i*250 ..) and the next free tx serial."""
    state = State()
    begin_block(state, start_ms)
    admin = _public_key(0)
    serial = 1
    setup: list[tuple[bytes, object]] = [
        (admin, RegisterKey(admin, ("admin",), ())),
        (admin, DefineAsset("EUR", 2, "issuer")),
    ]
    setup += [(admin, OpenAccount(f"a{index}", "EUR")) for index in range(account_count)]
    spenders = [_public_key(1 + index) for index in range(account_count // accounts_per_key_count)]
    for number, spender in enumerate(spenders):
        first = number * accounts_per_key_count
        owned = tuple(f"a{index}" for index in range(first, first + accounts_per_key_count))
        setup.append((admin, RegisterKey(spender, (), owned)))
    issuer_key = _public_key(999)
    setup.append((admin, RegisterKey(issuer_key, (), ("issuer",))))
    for index in range(account_count):
        postings = (
            Posting("issuer", "EUR", -1_000_000_00),
            Posting(f"a{index}", "EUR", 1_000_000_00),
        )
        setup.append((issuer_key, Transfer(postings)))
    for signer, op in setup:
        _must_apply(state, _tx(serial, signer, op))
        serial += 1
    return state, spenders, serial


def transfers(spenders: list[bytes], first_serial: int, count: int) -> list[Tx]:
    """``count`` 2-posting transfers from each account to its neighbour."""
    result = []
    for number in range(count):
        source = number % account_count
        target = (source + 1) % account_count
        postings = (Posting(f"a{source}", "EUR", -1), Posting(f"a{target}", "EUR", 1))
        signer = spenders[source // accounts_per_key_count]
        result.append(_tx(first_serial + number, signer, Transfer(postings)))
    return result


def run() -> dict[str, float]:
    """Per-second figures of decide+apply, decide alone, and snapshot write and restore."""
    state, spenders, serial = funded_state()
    txs = transfers(spenders, serial, transfer_count)
    now_ms = start_ms
    started = time.perf_counter()
    for tx in txs[:20_000]:
        decide(state, tx, now_ms)
    decide_seconds = (time.perf_counter() - started) / 20_000
    started = time.perf_counter()
    for tx in txs:
        decision = decide(state, tx, now_ms)
        if type(decision) is not Accepted:
            raise AssertionError(f"bench transfer rejected: {decision}")
        apply(state, decision)
    decide_apply_seconds = (time.perf_counter() - started) / len(txs)
    started = time.perf_counter()
    data = snapshot_bytes(state)
    snapshot_seconds = time.perf_counter() - started
    started = time.perf_counter()
    restored = restore_state(data)
    restore_seconds = time.perf_counter() - started
    if restored != state:
        raise AssertionError("snapshot round trip differs")
    return {
        "decide_apply_per_second": 1 / decide_apply_seconds,
        "decide_per_second": 1 / decide_seconds,
        "snapshot_bytes": float(len(data)),
        "snapshot_write_seconds": snapshot_seconds,
        "snapshot_restore_seconds": restore_seconds,
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:>28} {value:,.3f}")
