"""The replay window's columns (snapshot version 3): exact, compact, heap-ordered, strict."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import DecodeError
from ledger.limits import int64_max, int64_min
from ledger.state import State, begin_block, restore, snapshot_bytes
from ledger.state import replay_window as window

tx_ids = st.binary(min_size=16, max_size=16)
expiries = st.integers(1_000, 1_010) | st.integers(int64_min, int64_max)


def tx_id(number: int) -> bytes:
    return hashlib.sha256(number.to_bytes(8, "big")).digest()[:16]


@settings(max_examples=300, deadline=None)
@given(recent=st.dictionaries(tx_ids, expiries, max_size=200))
def test_window_round_trips(recent: dict[bytes, int]) -> None:
    """Any window unpacks to the same dict, in expiry order, whatever the widths of its steps
    and counts."""
    restored = window.unpack(window.pack(recent))
    assert restored == recent
    assert list(restored.values()) == sorted(recent.values())


def reference_pack(recent: dict[bytes, int]) -> dict[str, Any]:
    """The documented layout, written the obvious way: what ``pack`` must produce byte for byte."""
    entries = sorted((expiry, tx) for tx, expiry in recent.items())
    counted = Counter(recent.values())
    expiries = sorted(counted)
    steps = [later - earlier for earlier, later in pairwise(expiries)]
    counts = [counted[expiry] for expiry in expiries]
    step_bytes = min(w for w in (1, 2, 4, 8) if max(steps, default=0) < 1 << (8 * w))
    count_bytes = min(w for w in (1, 2, 4, 8) if max(counts, default=0) < 1 << (8 * w))
    return {
        "first_expires_at_ms": expiries[0] if expiries else 0,
        "step_bytes": step_bytes,
        "steps": b"".join(step.to_bytes(step_bytes, "big") for step in steps),
        "count_bytes": count_bytes,
        "counts": b"".join(count.to_bytes(count_bytes, "big") for count in counts),
        "tx_ids": b"".join(tx for _, tx in entries),
    }


@st.composite
def live_windows(draw: st.DrawFn) -> dict[bytes, int]:
    """Windows shaped like live traffic: several tx_ids per expiry time, inserted in nearly
    expiry order (a few a millisecond or two late), with gaps that need any step width."""
    size = draw(st.integers(0, 300))
    per_ms = draw(st.integers(1, 12))
    gap = draw(st.sampled_from([1, 200, 300, 70_000, 1 << 32]))
    first = draw(st.integers(int64_min, int64_max - (size + 3) * (1 << 32)))
    jitter = draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=size, max_size=size))
    ids = draw(st.lists(tx_ids, min_size=size, max_size=size, unique=True))
    return {
        tx: first + gap * (number // per_ms) + late
        for number, (tx, late) in enumerate(zip(ids, jitter, strict=True))
    }


def assert_packs_canonically(recent: dict[bytes, int]) -> None:
    """``pack`` writes the reference bytes and restores; and whichever way it orders the window
    (chosen by how many tx_ids share an expiry time), the other way orders it the same."""
    packed = window.pack(recent)
    assert packed == reference_pack(recent)
    assert window._order_by_pairs(recent) == window._order_by_groups(recent)
    assert window.unpack(packed) == recent


@settings(max_examples=300, deadline=None)
@given(recent=st.dictionaries(tx_ids, expiries, max_size=200))
def test_pack_matches_the_reference_layout(recent: dict[bytes, int]) -> None:
    """Any window, with expiry times shared or not, packs to the documented bytes."""
    assert_packs_canonically(recent)


@settings(max_examples=200, deadline=None)
@given(recent=live_windows())
def test_live_shaped_windows_match_the_reference(recent: dict[bytes, int]) -> None:
    """Ties and late tx_ids, the shape pack is tuned for, keep the canonical bytes."""
    assert_packs_canonically(recent)


@pytest.mark.parametrize(
    ("gap", "ties", "widths"),
    [
        (1, 1, (1, 1)),
        (256, 1, (2, 1)),
        (1 << 16, 1, (4, 1)),
        (1 << 32, 1, (8, 1)),
        (1 << 32, 10, (8, 1)),
        (1, 256, (1, 2)),
        (3, 1 << 16, (1, 4)),
    ],
)
def test_every_column_width_matches_the_reference(
    gap: int, ties: int, widths: tuple[int, int]
) -> None:
    """Steps of 1, 2, 4 and 8 bytes and counts of 1, 2 and 4 (8 would take 2**32 tx_ids sharing
    one expiry time), from tx_ids remembered in shuffled order."""
    entries = [(tx_id(number), -7 + gap * (number // ties)) for number in range(3 * ties)]
    random.Random(gap * ties).shuffle(entries)
    recent = dict(entries)
    packed = window.pack(recent)
    assert (packed["step_bytes"], packed["count_bytes"]) == widths
    assert_packs_canonically(recent)


@pytest.mark.parametrize("recent", [{}, {tx_id(1): int64_min}, {tx_id(2): int64_max}])
def test_empty_and_single_windows_match_the_reference(recent: dict[bytes, int]) -> None:
    """No tx_id packs to the schema default; one tx_id to a single count and no step."""
    assert_packs_canonically(recent)


def test_a_live_window_costs_little_more_than_its_tx_ids() -> None:
    """600 tx_ids sharing 60 expiry times (10 a millisecond, as at 10,000 tx/s) cost 16 bytes
    each plus 2 bytes per expiry time; version 2 cost 24 bytes each."""
    recent = {tx_id(number): 1_790_000_000_000 + number // 10 for number in range(600)}
    packed = window.pack(recent)
    assert (packed["step_bytes"], packed["count_bytes"]) == (1, 1)
    size = sum(len(packed[name]) for name in ("steps", "counts", "tx_ids"))
    assert size == 600 * 16 + 59 + 60


def test_a_restored_state_forgets_expired_tx_ids_in_order() -> None:
    """The index rebuilt with the window drives begin_block like the one built by apply."""
    state = State()
    state.recent_tx_ids = {tx_id(number): 100 + number % 7 for number in range(100)}
    state.rebuild_indexes()
    restored = restore(snapshot_bytes(state))
    for now_ms in (100, 103, 106, 107):
        begin_block(state, now_ms)
        begin_block(restored, now_ms)
        assert restored.recent_tx_ids == state.recent_tx_ids
        assert min(restored.recent_tx_ids.values(), default=now_ms) >= now_ms


def _column(values: list[int], width: int = 1) -> bytes:
    return b"".join(value.to_bytes(width, "big") for value in values)


GOOD: dict[str, Any] = {
    "first_expires_at_ms": 10,
    "step_bytes": 1,
    "steps": _column([5]),
    "count_bytes": 1,
    "counts": _column([1, 2]),
    "tx_ids": tx_id(1) + tx_id(2) + tx_id(3),
}


@pytest.mark.parametrize(
    "change",
    [
        {"steps": _column([0])},
        {"counts": _column([1, 0])},
        {"counts": _column([1])},
        {"counts": _column([1, 3])},
        {"step_bytes": 3, "steps": _column([5], 3)},
        {"count_bytes": 2, "counts": _column([1, 2]) + b"\x00"},
        {"tx_ids": tx_id(1) + tx_id(2) + tx_id(2)},
        {"first_expires_at_ms": int64_max},
        {"tx_ids": b"\x00" * 47},
    ],
    ids=[
        "zero step",
        "zero count",
        "a count short",
        "counts exceed tx_ids",
        "width 3",
        "ragged column",
        "tx_id twice",
        "expiry past int64",
        "ragged tx_ids",
    ],
)
def test_malformed_windows_are_refused(change: dict[str, Any]) -> None:
    """Every inconsistency between the columns raises DecodeError instead of a wrong window."""
    assert window.unpack(GOOD) == {tx_id(1): 10, tx_id(2): 15, tx_id(3): 15}
    with pytest.raises(DecodeError):
        window.unpack({**GOOD, **change})


def test_tx_ids_of_another_size_cannot_be_packed() -> None:
    """A window entry that is not a 16-byte tx_id is a bug in the caller, not a snapshot."""
    with pytest.raises(ValueError):
        window.pack({b"short": 1})
