"""An append-only Merkle tree that remembers O(log n) hashes: its compact range.

A tree of n leaves is a row of perfect subtrees whose sizes are the set bits of n, largest
first. Appending a leaf adds a subtree of size 1 and merges equal neighbours, like adding 1 to
a binary counter; the root folds the row from the right. The sequencer keeps one of these for
``blocks_root`` and persists it with ``to_bytes`` so a restart does not rehash the history.
"""

from __future__ import annotations

import hashlib

from ledger.errors import DecodeError
from ledger.merkle.hashing import EMPTY_ROOT, NODE_PREFIX, hash_size_bytes

_size_field_bytes = 8
"""Serialised size: unsigned big-endian, ample for any number of blocks or transactions."""

_size_max = 2 ** (8 * _size_field_bytes) - 1

_sha256 = hashlib.sha256


class CompactTree:
    """Leaf count and the roots of the perfect subtrees covering them, left to right."""

    __slots__ = ("_size", "_subtree_roots")

    def __init__(self) -> None:
        self._size = 0
        self._subtree_roots: list[bytes] = []

    @property
    def size(self) -> int:
        """How many leaves have been appended."""
        return self._size

    @property
    def subtree_roots(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, largest (leftmost) first: one per set bit of size."""
        return tuple(self._subtree_roots)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf (its hash, as from ``leaf_hash``) at the right edge."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != hash_size_bytes:
            raise ValueError(f"a leaf hash is {hash_size_bytes} bytes")
        if self._size >= _size_max:
            raise ValueError("tree is full")
        roots = self._subtree_roots
        node = leaf_hash
        # Each trailing 1 bit of the old size is a perfect subtree of the new leaf's height that
        # the new node completes: merge and carry, as in binary addition.
        carries = self._size
        while carries & 1:
            node = _sha256(NODE_PREFIX + roots.pop() + node).digest()
            carries >>= 1
        roots.append(node)
        self._size += 1

    def extend(self, leaf_hashes: list[bytes] | tuple[bytes, ...]) -> None:
        """Append several leaves in order."""
        for leaf_hash in leaf_hashes:
            self.append(leaf_hash)

    def root(self) -> bytes:
        """The Merkle tree hash of all leaves appended so far."""
        roots = self._subtree_roots
        if not roots:
            return EMPTY_ROOT
        result = roots[-1]
        for left in reversed(roots[:-1]):
            result = _sha256(NODE_PREFIX + left + result).digest()
        return result

    def copy(self) -> CompactTree:
        """An independent tree with the same leaves, to append to without touching this one."""
        other = CompactTree()
        other._size = self._size
        other._subtree_roots = list(self._subtree_roots)
        return other

    def to_bytes(self) -> bytes:
        """Size (8 bytes, big-endian) followed by the subtree roots, left to right."""
        return self._size.to_bytes(_size_field_bytes, "big") + b"".join(self._subtree_roots)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactTree:
        """The tree that ``to_bytes`` wrote; raises DecodeError on anything else."""
        if len(data) < _size_field_bytes:
            raise DecodeError(f"tree state has {len(data)} bytes, shorter than its size field")
        size = int.from_bytes(data[:_size_field_bytes], "big")
        count = size.bit_count()
        expected_bytes = _size_field_bytes + count * hash_size_bytes
        if len(data) != expected_bytes:
            raise DecodeError(
                f"tree state of {size} leaves needs {expected_bytes} bytes, got {len(data)}"
            )
        tree = cls()
        tree._size = size
        tree._subtree_roots = [
            data[offset : offset + hash_size_bytes]
            for offset in range(_size_field_bytes, expected_bytes, hash_size_bytes)
        ]
        return tree

    @classmethod
    def from_subtree_roots(cls, size: int, subtree_roots: list[bytes]) -> CompactTree:
        """A tree known only by its size and compact range, e.g. from a trusted checkpoint."""
        if not 0 <= size <= _size_max:
            raise ValueError(f"a tree cannot have {size} leaves")
        if len(subtree_roots) != size.bit_count():
            raise ValueError(
                f"a tree of {size} leaves has {size.bit_count()} subtree roots, "
                f"got {len(subtree_roots)}"
            )
        if any(len(node) != hash_size_bytes for node in subtree_roots):
            raise ValueError(f"subtree roots are {hash_size_bytes} bytes each")
        tree = cls()
        tree._size = size
        tree._subtree_roots = list(subtree_roots)
        return tree

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactTree):
            return NotImplemented
        return self._size == other._size and self._subtree_roots == other._subtree_roots

    __hash__ = None  # type: ignore[assignment]  # mutable: not a dict key

    def __repr__(self) -> str:
        return f"CompactTree(size={self._size}, root={self.root().hex()})"
