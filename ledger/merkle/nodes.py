"""Which subtrees a proof needs: pure index math, no hashing and no I/O.

A proof element is the Merkle tree hash of a contiguous range of leaves ``[begin, end)``.
These functions return those ranges in proof order (deepest first, as RFC 9162 sections
2.1.3.1 and 2.1.4.1 emit them); the caller computes or fetches the hashes. Ranges either cover
a perfect subtree or end at the tree's right edge, so a store of perfect-subtree hashes plus the
right edge is enough to serve any proof.
"""

from __future__ import annotations

LeafRange = tuple[int, int]
"""Leaves ``[begin, end)``; the proof element is the Merkle tree hash of exactly these leaves."""


def split_point(size: int) -> int:
    """The largest power of two strictly below ``size`` (size >= 2): where RFC 9162 splits."""
    if size < 2:
        raise ValueError(f"a tree of {size} leaves has no split point")
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[LeafRange]:
    """The leaf ranges of the audit path of leaf ``index`` in a tree of ``size`` leaves.

    Follows RFC 9162 PATH(m, D[n]) top-down without recursion, then reverses, because the
    proof lists the sibling nearest the leaf first.
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of {size} leaves")
    ranges: list[LeafRange] = []
    begin, end = 0, size
    while end - begin > 1:
        middle = begin + split_point(end - begin)
        if index < middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((begin, middle))
            begin = middle
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[LeafRange]:
    """The leaf ranges of the consistency proof from ``old_size`` leaves to ``new_size`` leaves.

    Follows RFC 9162 SUBPROOF(m, D[n], b) top-down without recursion. The proof is empty when
    the sizes are equal or the old tree is empty: nothing needs proving.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
    if old_size in (0, new_size):
        return []
    ranges: list[LeafRange] = []
    begin, end = 0, new_size
    old_end = old_size
    # ``complete`` is SUBPROOF's b: true while the old tree's root is exactly the subtree we are
    # in, in which case the verifier already knows that hash and it is left out.
    complete = True
    while old_end != end:
        middle = begin + split_point(end - begin)
        if old_end <= middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((begin, middle))
            begin = middle
            complete = False
    if not complete:
        ranges.append((begin, end))
    ranges.reverse()
    return ranges


def inclusion_proof_count(index: int, size: int) -> int:
    """How many hashes the inclusion proof of ``index`` in ``size`` leaves has."""
    return len(inclusion_ranges(index, size))


def consistency_proof_count(old_size: int, new_size: int) -> int:
    """How many hashes the consistency proof from ``old_size`` to ``new_size`` leaves has."""
    return len(consistency_ranges(old_size, new_size))


def perfect_subtree_sizes(size: int) -> list[int]:
    """Sizes of the perfect subtrees that make up a tree of ``size`` leaves, left to right.

    They are the set bits of ``size``, largest first: the compact range of an append-only tree.
    """
    if size < 0:
        raise ValueError(f"a tree cannot have {size} leaves")
    return [1 << bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
