"""The replay window of a snapshot as columns: tx_ids in expiry order, expiry times as runs.

Why: the window is nearly all of a snapshot (600k tx_ids at 10,000 tx/s and 60 s validity, 2M
with longer windows), and restarts wait for it. Snapshot version 2 stored 24 bytes per tx_id
(the id, then its expiry as 8 bytes) and restored them one at a time. Here:

- ``tx_ids``: every remembered tx_id, 16 bytes each, in (expires_at_ms, tx_id) order;
- ``first_expires_at_ms`` and ``steps``: the distinct expiry times, the first one whole, then each
  as its distance to the previous one (always > 0);
- ``counts``: how many tx_ids share each expiry time (always > 0).

``steps`` and ``counts`` are unsigned big-endian integers of one width each (1, 2, 4 or 8 bytes,
``step_bytes``/``count_bytes``: the narrowest that holds the largest), so the standard library's
``array`` decodes them in C. Live traffic shares expiry times (about ten tx_ids a millisecond at
10,000 tx/s), and a window can hold at most ``validity_window_ms_max + clock_skew_ms_max``
distinct ones, so a tx_id costs 16 bytes and a fraction of 3 or so. Restoring builds the dict
with C-level loops.
"""

from __future__ import annotations

import array
import struct
import sys
from collections import Counter, defaultdict
from itertools import accumulate, chain, islice, pairwise, repeat
from operator import itemgetter
from typing import Any

from ledger.errors import DecodeError
from ledger.limits import int64_max

tx_id_bytes = 16
_TX_ID = struct.Struct(f"{tx_id_bytes}s")
_TYPECODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
"""Column width in bytes -> ``array`` typecode of that many bytes."""
assert all(array.array(code).itemsize == width for width, code in _TYPECODES.items())

EMPTY: dict[str, Any] = {
    "first_expires_at_ms": 0,
    "step_bytes": 1,
    "steps": b"",
    "count_bytes": 1,
    "counts": b"",
    "tx_ids": b"",
}
"""The window of a state that remembers nothing (and the schema default that version 2 reads as)."""


def pack(recent_tx_ids: dict[bytes, int]) -> dict[str, Any]:
    """The ``ReplayWindow`` record of ``recent_tx_ids`` (tx_id -> expires_at_ms); canonical.

    Why two ways to the same bytes: the snapshot writer waits for this, and which way is cheaper
    depends on how many tx_ids share an expiry time. The first few thousand show it: tx_ids are
    remembered in about expiry order, so the start of the window is as dense as the rest.
    """
    if not recent_tx_ids:
        return dict(EMPTY)
    sample = list(islice(recent_tx_ids.values(), _SAMPLE_SIZE))
    if len(sample) >= _GROUP_FROM_TIES * len(set(sample)):
        expiries, counts, tx_ids = _order_by_groups(recent_tx_ids)
    else:
        expiries, counts, tx_ids = _order_by_pairs(recent_tx_ids)
    if len(tx_ids) != tx_id_bytes * len(recent_tx_ids):
        raise ValueError(f"every remembered tx_id must be {tx_id_bytes} bytes")
    step_bytes, steps = _pack_column([later - earlier for earlier, later in pairwise(expiries)])
    count_bytes, counts_column = _pack_column(counts)
    return {
        "first_expires_at_ms": expiries[0],
        "step_bytes": step_bytes,
        "steps": steps,
        "count_bytes": count_bytes,
        "counts": counts_column,
        "tx_ids": tx_ids,
    }


_SAMPLE_SIZE = 4096
"""How many of the first expiry times ``pack`` counts ties in: enough to see the traffic's rate."""
_GROUP_FROM_TIES = 2
"""Tx_ids per expiry time from which grouping is no slower than sorting pairs (600k tx_ids,
measured: at 1 a millisecond grouping takes 1.7 times as long, at 2 as long, at 10 half)."""


def _order_by_pairs(recent_tx_ids: dict[bytes, int]) -> tuple[list[int], list[int], bytes]:
    """(expiries, counts, tx_ids) by one sort of (expires_at_ms, tx_id) pairs.

    Cheapest when few tx_ids share an expiry time: the pairs arrive nearly sorted and seldom need
    their tx_ids compared.
    """
    counted = Counter(recent_tx_ids.values())
    expiries = sorted(counted)
    entries = sorted(zip(recent_tx_ids.values(), recent_tx_ids.keys(), strict=True))
    return expiries, list(map(counted.__getitem__, expiries)), b"".join(map(itemgetter(1), entries))


def _order_by_groups(recent_tx_ids: dict[bytes, int]) -> tuple[list[int], list[int], bytes]:
    """(expiries, counts, tx_ids) by sorting the distinct expiry times, then each one's tx_ids.

    Cheapest when many tx_ids share an expiry time (ten a millisecond at 10,000 tx/s): no pair per
    tx_id to build, compare and take apart, tx_ids compared only within their small group, and the
    groups' sizes are the counts.
    """
    by_expiry: defaultdict[int, list[bytes]] = defaultdict(list)
    for tx_id, expires_at_ms in recent_tx_ids.items():
        by_expiry[expires_at_ms].append(tx_id)
    expiries = sorted(by_expiry)
    groups = list(map(by_expiry.__getitem__, expiries))
    return expiries, list(map(len, groups)), b"".join(map(b"".join, map(sorted, groups)))


def unpack(record: dict[str, Any]) -> dict[bytes, int]:
    """``recent_tx_ids`` from a ``ReplayWindow``; DecodeError if malformed."""
    steps = _unpack_column(record["steps"], record["step_bytes"], "steps")
    counts = _unpack_column(record["counts"], record["count_bytes"], "counts")
    packed: bytes = record["tx_ids"]
    if len(counts) != (len(steps) + 1 if counts else 0):
        raise DecodeError("replay window: one count per expiry time, one step between two")
    if (steps and min(steps) < 1) or (counts and min(counts) < 1):
        raise DecodeError("replay window: steps and counts must be positive")
    if sum(counts) * tx_id_bytes != len(packed):
        raise DecodeError("replay window: the counts do not match the tx_ids")
    run_expiries = list(accumulate(steps, initial=record["first_expires_at_ms"]))
    if run_expiries[-1] > int64_max:
        raise DecodeError("replay window: an expiry time is past int64")
    expiries = list(chain.from_iterable(map(repeat, run_expiries, counts)))
    tx_ids = list(map(itemgetter(0), _TX_ID.iter_unpack(packed)))
    recent = dict(zip(tx_ids, expiries, strict=True))
    if len(recent) != len(tx_ids):
        raise DecodeError("replay window: a tx_id appears twice")
    return recent


def _pack_column(values: list[int]) -> tuple[int, bytes]:
    """(width, bytes) of non-negative ``values`` at the narrowest width that holds them all."""
    largest = max(values, default=0)
    width = next(width for width in _TYPECODES if largest < 1 << (8 * width))
    column = array.array(_TYPECODES[width], values)
    if sys.byteorder == "little":
        column.byteswap()
    return width, column.tobytes()


def _unpack_column(data: bytes, width: int, name: str) -> list[int]:
    code = _TYPECODES.get(width)
    if code is None or len(data) % width:
        raise DecodeError(f"replay window: {name} of {len(data)} bytes at width {width}")
    column = array.array(code)
    column.frombytes(data)
    if sys.byteorder == "little":
        column.byteswap()
    return column.tolist()
