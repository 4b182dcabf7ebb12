"""The fast, iterative ledger.merkle agrees with a naive recursive transcription of RFC 9162."""

from __future__ import annotations

import merkle_reference as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.merkle import nodes

leaf_data = st.lists(st.binary(max_size=12), max_size=300)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(st.lists(st.binary(max_size=12), min_size=1, max_size=300))
    return [reference.leaf_hash(leaf) for leaf in leaves], draw(st.integers(0, len(leaves) - 1))


@st.composite
def tree_and_old_size(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(leaf_data)
    return [reference.leaf_hash(leaf) for leaf in leaves], draw(st.integers(0, len(leaves)))


def test_public_facade_exports_exactly_the_contract() -> None:
    """ledger.merkle's __all__ is the DESIGN.md facade plus the compact tree class."""
    assert sorted(merkle.__all__) == sorted(
        [
            "leaf_hash",
            "node_hash",
            "root",
            "inclusion_proof",
            "verify_inclusion",
            "consistency_proof",
            "verify_consistency",
            "CompactTree",
        ]
    )


@given(st.binary(max_size=64))
def test_leaf_hash_matches_reference(data: bytes) -> None:
    """leaf_hash(data) is SHA-256(0x00 || data) for any data."""
    assert merkle.leaf_hash(data) == reference.leaf_hash(data)


@settings(max_examples=200)
@given(leaf_data)
def test_root_matches_reference(leaves: list[bytes]) -> None:
    """root() over any list of leaf hashes equals the recursive MTH."""
    hashes = [reference.leaf_hash(leaf) for leaf in leaves]
    assert merkle.root(hashes) == reference.mth(hashes)


@settings(max_examples=200)
@given(tree_and_index())
def test_inclusion_proof_matches_reference(case: tuple[list[bytes], int]) -> None:
    """inclusion_proof() equals the recursive PATH(m, D[n]) and verifies."""
    hashes, index = case
    proof = merkle.inclusion_proof(index, hashes)
    assert proof == reference.path(index, hashes)
    merkle.verify_inclusion(hashes[index], index, len(hashes), proof, reference.mth(hashes))


@settings(max_examples=200)
@given(tree_and_old_size())
def test_consistency_proof_matches_reference(case: tuple[list[bytes], int]) -> None:
    """consistency_proof() equals the recursive PROOF(m, D[n]) and verifies."""
    hashes, old_size = case
    proof = merkle.consistency_proof(old_size, hashes)
    assert proof == reference.proof(old_size, hashes)
    merkle.verify_consistency(
        old_size, len(hashes), reference.mth(hashes[:old_size]), reference.mth(hashes), proof
    )


@given(st.integers(2, 2**40))
def test_split_point_is_largest_power_of_two_below(size: int) -> None:
    """split_point(n) is a power of two k with k < n <= 2k."""
    split = nodes.split_point(size)
    assert split & (split - 1) == 0
    assert split < size <= 2 * split


@given(st.integers(0, 2**40))
def test_perfect_subtree_sizes_sum_to_size(size: int) -> None:
    """The compact range of n leaves is the set bits of n, largest first, summing to n."""
    sizes = nodes.perfect_subtree_sizes(size)
    assert sum(sizes) == size
    assert sizes == sorted(sizes, reverse=True)
    assert all(part & (part - 1) == 0 for part in sizes)
