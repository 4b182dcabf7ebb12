"""When each remembered tx_id leaves the replay window: tx_ids bucketed by expiry time.

``begin_block`` forgets every tx_id whose ``expires_at_ms`` is before the block's time. A heap
of (expires_at_ms, tx_id) pairs did that in O(log n) a tx_id, with a cache miss at nearly every
level: with a 600k-entry window (60 s at 10,000/s) popping it was a fifth of the sequencer's and
the projector's CPU. Here a tx_id costs one list append when remembered and one dict look-up
when forgotten; the heap holds only the bucket keys (about 470 for a 60 s window).
"""

from __future__ import annotations

import heapq

bucket_shift = 7
"""A bucket spans 2**7 = 128 ms of expiry time: blocks come every 150 ms or so under load, so
a block scans about one partly expired bucket (the one its time falls in)."""


class TxExpiry:
    """The tx_ids of a replay window grouped by expiry time, to forget them in time order.

    An index over ``recent`` (tx_id -> expires_at_ms), which stays the truth: a bucket may list
    a tx_id that was forgotten already or remembered again with another expiry, and
    ``forget_expired`` looks each one up before it deletes anything.
    """

    __slots__ = ("_buckets", "_keys")

    def __init__(self) -> None:
        self._buckets: dict[int, list[bytes]] = {}
        self._keys: list[int] = []
        """Heap of the bucket keys (``expires_at_ms >> bucket_shift``)."""

    @classmethod
    def of(cls, recent: dict[bytes, int]) -> TxExpiry:
        """The index of a whole window (after a restore)."""
        index = cls()
        buckets = index._buckets
        for tx_id, expires_at_ms in recent.items():
            key = expires_at_ms >> bucket_shift
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = []
            bucket.append(tx_id)
        index._keys = sorted(buckets)  # a sorted list is a heap
        return index

    def add(self, tx_id: bytes, expires_at_ms: int) -> None:
        key = expires_at_ms >> bucket_shift
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [tx_id]
            heapq.heappush(self._keys, key)
        else:
            bucket.append(tx_id)

    def forget_expired(self, recent: dict[bytes, int], now_ms: int) -> None:
        """Delete from ``recent`` every tx_id whose ``expires_at_ms < now_ms``."""
        keys = self._keys
        buckets = self._buckets
        current = now_ms >> bucket_shift
        while keys and keys[0] < current:  # wholly before now_ms
            for tx_id in buckets.pop(heapq.heappop(keys)):
                expires_at_ms = recent.get(tx_id)
                if expires_at_ms is not None and expires_at_ms < now_ms:
                    del recent[tx_id]
        if not keys or keys[0] != current:
            return
        kept = []  # the bucket now_ms falls in: forget its earlier part only
        for tx_id in buckets[current]:
            expires_at_ms = recent.get(tx_id)
            if expires_at_ms is None:
                continue
            if expires_at_ms < now_ms:
                del recent[tx_id]
            elif expires_at_ms >> bucket_shift == current:
                kept.append(tx_id)
        if kept:
            buckets[current] = kept
        else:
            del buckets[current]
            heapq.heappop(keys)

    def __len__(self) -> int:
        """Entries listed, forgotten ones not yet dropped included."""
        return sum(map(len, self._buckets.values()))
