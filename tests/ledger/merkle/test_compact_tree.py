"""The append-only CompactTree: same root as root(), O(log n) state, byte round trips."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import DecodeError
from ledger.merkle import CompactTree
from ledger.merkle.nodes import perfect_subtree_sizes

HASHES = [
    merkle.leaf_hash(hashlib.sha256(number.to_bytes(4, "big")).digest()) for number in range(600)
]


def test_root_equals_root_function_after_every_append() -> None:
    """After each of 600 appends, tree.root() == root(all leaves so far) and state is log-sized."""
    tree = CompactTree()
    assert tree.size == 0
    assert tree.root() == merkle.root([])
    for count, leaf in enumerate(HASHES, start=1):
        tree.append(leaf)
        assert tree.size == count
        assert tree.root() == merkle.root(HASHES[:count])
        assert len(tree.subtree_roots) == count.bit_count()


def test_subtree_roots_are_the_perfect_subtrees() -> None:
    """Each stored node is the root of the perfect subtree its set bit of size names."""
    for size in range(0, 70):
        tree = CompactTree()
        tree.extend(HASHES[:size])
        begin = 0
        for subtree_size, node in zip(perfect_subtree_sizes(size), tree.subtree_roots, strict=True):
            assert node == merkle.root(HASHES[begin : begin + subtree_size])
            begin += subtree_size
        assert begin == size


@given(st.integers(0, 600), st.integers(0, 600))
def test_bytes_round_trip_then_append_continues_the_same_tree(size: int, more: int) -> None:
    """from_bytes(to_bytes()) restores a tree that keeps growing exactly like the original."""
    tree = CompactTree()
    tree.extend(HASHES[:size])
    restored = CompactTree.from_bytes(tree.to_bytes())
    assert restored == tree
    assert restored.size == size and restored.root() == tree.root()
    extra = HASHES[:more]
    restored.extend(extra)
    assert restored.root() == merkle.root(HASHES[:size] + extra)
    assert tree.size == size, "the original must not change"


def test_state_size_is_logarithmic() -> None:
    """The serialised state is 8 bytes plus one hash per set bit of size."""
    tree = CompactTree()
    tree.extend(HASHES[:511])
    assert len(tree.to_bytes()) == 8 + 9 * 32
    tree.append(HASHES[511])
    assert len(tree.to_bytes()) == 8 + 1 * 32


def test_copy_is_independent() -> None:
    """Appending to a copy leaves the original untouched."""
    tree = CompactTree()
    tree.extend(HASHES[:5])
    other = tree.copy()
    other.append(HASHES[5])
    assert tree.size == 5 and tree.root() == merkle.root(HASHES[:5])
    assert other.root() == merkle.root(HASHES[:6])


def test_from_subtree_roots_rebuilds_a_checkpoint() -> None:
    """A tree rebuilt from (size, subtree roots) equals the one that produced them."""
    tree = CompactTree()
    tree.extend(HASHES[:13])
    rebuilt = CompactTree.from_subtree_roots(13, list(tree.subtree_roots))
    assert rebuilt == tree
    with pytest.raises(ValueError, match="3 subtree roots"):
        CompactTree.from_subtree_roots(13, list(tree.subtree_roots[:2]))
    with pytest.raises(ValueError, match="32 bytes"):
        CompactTree.from_subtree_roots(1, [b"short"])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 7,
        (1).to_bytes(8, "big"),
        (1).to_bytes(8, "big") + b"\x00" * 31,
        (1).to_bytes(8, "big") + b"\x00" * 33,
        (3).to_bytes(8, "big") + b"\x00" * 32,
        (0).to_bytes(8, "big") + b"\x00" * 32,
    ],
)
def test_malformed_state_bytes_are_refused(data: bytes) -> None:
    """Bytes whose length does not match the size field raise DecodeError."""
    with pytest.raises(DecodeError):
        CompactTree.from_bytes(data)


def test_append_refuses_anything_but_a_leaf_hash() -> None:
    """append() takes a 32-byte leaf hash, not raw data."""
    with pytest.raises(ValueError, match="32 bytes"):
        CompactTree().append(b"raw")
