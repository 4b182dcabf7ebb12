"""Replicas to snapshot: one fixed (the old-format fixture was written from it) and random ones.

The random states need not be reachable by the state machine: a snapshot must carry any value of
every field exactly, so the strategies draw each field over its whole type.
"""

from __future__ import annotations

import hashlib

from hypothesis import strategies as st

from ledger import merkle
from ledger.blocks import ChainCheckpoint
from ledger.limits import int64_max, int64_min
from ledger.model import AccountStatus
from ledger.replica import Replica
from ledger.state import Account, Asset, HoldRecord, HoldStatus, Key, State

FIXED_LEDGER = "main"
FIXED_SOURCE_OFFSET_END = 120
FIXED_BLOCKS_OFFSET_NEXT = 7
expiry_base_ms = 1_790_000_060_000


def checkpoint(ledger: str, height: int) -> ChainCheckpoint:
    """A checkpoint at ``height`` whose blocks tree has the right size (its hashes are made up)."""
    tree = merkle.CompactTree()
    tree.extend([merkle.leaf_hash(index.to_bytes(8, "big")) for index in range(height + 1)])
    return ChainCheckpoint(
        ledger=ledger,
        height=height,
        block_hash=hashlib.sha256(f"block {height}".encode()).digest(),
        next_first_seq=height * 10,
        blocks_tree=tree.to_bytes(),
    )


def fixed_replica() -> Replica:
    """A small replica with every kind of data, always the same."""
    state = State()
    state.now_ms = expiry_base_ms - 60_000
    state.tx_count = 57
    state.assets = {"EUR": Asset(2, "eur-issuer"), "BOND": Asset(0, "bond-issuer")}
    state.accounts = {
        "eur-issuer": Account("EUR", AccountStatus.ACTIVE, None, True, -5_000, 0),
        "alice": Account("EUR", AccountStatus.ACTIVE, 10_000, False, 4_000, 300),
        "bob": Account("EUR", AccountStatus.FROZEN, None, False, 1_000, 0),
    }
    state.keys = {
        "00" * 16: Key(bytes(32), frozenset({"admin"}), frozenset(), None),
        "11" * 16: Key(bytes([1]) * 32, frozenset(), frozenset({"alice"}), expiry_base_ms),
    }
    state.holds = {
        bytes([7]) * 16: HoldRecord("alice", "bob", "EUR", 300, expiry_base_ms, "11" * 16),
        bytes([8]) * 16: HoldRecord(
            "alice", "bob", "EUR", 50, expiry_base_ms, "11" * 16, HoldStatus.CAPTURED, 40
        ),
    }
    state.recent_tx_ids = {
        hashlib.sha256(number.to_bytes(4, "big")).digest()[:16]: expiry_base_ms + number // 3
        for number in range(50)
    }
    state.rebuild_indexes()
    return Replica(
        FIXED_LEDGER,
        state=state,
        checkpoint=checkpoint(FIXED_LEDGER, 6),
        last_sealed_at_ms=state.now_ms,
    )


int64s = st.integers(int64_min, int64_max)
names = st.text(max_size=12)
tx_ids = st.binary(min_size=16, max_size=16)
expiries = st.integers(expiry_base_ms, expiry_base_ms + 50) | int64s
"""Mostly a few shared expiry times (runs, as live traffic makes), sometimes anything."""

accounts = st.builds(
    Account,
    names,
    st.sampled_from(AccountStatus),
    st.none() | int64s,
    st.booleans(),
    int64s,
    st.integers(0, int64_max),
)
assets = st.builds(Asset, st.integers(0, 18), names)
keys = st.builds(
    Key,
    st.binary(min_size=32, max_size=32),
    st.frozensets(names, max_size=3),
    st.frozensets(names, max_size=3),
    st.none() | int64s,
)
holds = st.builds(
    HoldRecord,
    names,
    names,
    names,
    int64s,
    int64s,
    names,
    st.sampled_from(HoldStatus),
    int64s,
)


@st.composite
def states(draw: st.DrawFn, window_min_count: int = 0) -> State:
    state = State()
    state.now_ms = draw(int64s)
    state.tx_count = draw(st.integers(0, int64_max))
    state.accounts = draw(st.dictionaries(names, accounts, max_size=5))
    state.assets = draw(st.dictionaries(names, assets, max_size=3))
    state.keys = draw(st.dictionaries(names, keys, max_size=3))
    state.holds = draw(st.dictionaries(tx_ids, holds, max_size=4))
    state.recent_tx_ids = draw(
        st.dictionaries(
            tx_ids, expiries, min_size=window_min_count, max_size=window_min_count + 300
        )
    )
    state.rebuild_indexes()
    return state


@st.composite
def replicas(draw: st.DrawFn) -> Replica:
    ledger = draw(st.text(min_size=1, max_size=64))
    return Replica(
        ledger,
        state=draw(states()),
        checkpoint=checkpoint(ledger, draw(st.integers(0, 40))),
        last_sealed_at_ms=draw(int64s),
    )
