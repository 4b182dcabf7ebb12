"""Snapshot size and speed at full replay windows, on one core.

The window dominates a snapshot: 600k tx_ids at 10,000 tx/s and 60 s validity, 2M with longer
windows or more traffic. Figures: state snapshot bytes, write (``snapshot_chunks``: encode, hash,
cut) and restore (``restore_chunks``: check, join, decode, rebuild indexes) seconds, best of
``repeat_count``. Run it with ``python -m ledger.bench.snapshot [window sizes...]``.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time

from ledger import merkle
from ledger.blocks import ChainCheckpoint
from ledger.replica import Replica
from ledger.snapshots import restore_chunks, snapshot_chunks
from ledger.state import State

window_sizes = (600_000, 2_000_000)
tx_per_ms = 10
"""10,000 tx/s: about ten tx_ids share each expiry millisecond."""
repeat_count = 3
expiry_base_ms = 1_790_000_060_000


def replica_with_window(tx_id_count: int, seed: int = 1) -> Replica:
    """A replica whose replay window holds ``tx_id_count`` random tx_ids, inserted in the order
    live traffic inserts them (expiry times ascending, a little jitter)."""
    rng = random.Random(seed)
    state = State()
    state.recent_tx_ids = {
        rng.randbytes(16): expiry_base_ms + number // tx_per_ms + rng.randint(-3, 3)
        for number in range(tx_id_count)
    }
    state.rebuild_indexes()
    tree = merkle.CompactTree()
    tree.append(merkle.leaf_hash(b"genesis"))
    checkpoint = ChainCheckpoint("bench", 0, hashlib.sha256(b"0").digest(), 0, tree.to_bytes())
    return Replica("bench", state=state, checkpoint=checkpoint)


def measure(tx_id_count: int) -> dict[str, float]:
    replica = replica_with_window(tx_id_count)
    write_seconds = restore_seconds = float("inf")
    chunks: list[bytes] = []
    for _ in range(repeat_count):
        started = time.perf_counter()
        chunks = snapshot_chunks(replica, 1, 1)
        write_seconds = min(write_seconds, time.perf_counter() - started)
        started = time.perf_counter()
        restored = restore_chunks(chunks)
        restore_seconds = min(restore_seconds, time.perf_counter() - started)
        if restored.replica.state != replica.state:
            raise AssertionError("snapshot round trip differs")
    return {
        "window_tx_ids": float(tx_id_count),
        "snapshot_bytes": float(sum(map(len, chunks))),
        "chunk_count": float(len(chunks)),
        "write_seconds": write_seconds,
        "restore_seconds": restore_seconds,
    }


if __name__ == "__main__":
    for size in [int(arg) for arg in sys.argv[1:]] or window_sizes:
        print("  ".join(f"{name} {value:,.3f}" for name, value in measure(size).items()))
