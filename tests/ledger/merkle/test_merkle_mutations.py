"""Every proof for every tree up to 64 leaves verifies, and every mutation of it is caught.

Mutations follow transparency-dev/merkle's verifier tests: wrong leaf, wrong index, a flipped
bit in each proof element, truncated, extended and reordered proofs, swapped or wrong roots,
wrong sizes. One honest exception, inherent to RFC 6962: a root does not commit to its tree's
size, so a wrong size whose proof has the same shape (the same left/right steps) still leads
to the same root. The tests pin that exact boundary; the ledger signs each size (a height) in
the same header as its root, so the exception is harmless there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import ProofError
from ledger.merkle.nodes import consistency_ranges, inclusion_ranges

size_max = 64
HASHES = [merkle.leaf_hash(hashlib.sha256(bytes([number])).digest()) for number in range(130)]
ROOTS = [merkle.root(HASHES[:size]) for size in range(len(HASHES) + 1)]
OTHER_HASH = hashlib.sha256(b"not in any tree").digest()


def _flip_bit(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def _refused(check: Callable[..., None], *arguments: object) -> None:
    with pytest.raises(ProofError):
        check(*arguments)


def _inclusion_shape(index: int, size: int) -> tuple[bool, ...]:
    return tuple(begin < index for begin, _ in inclusion_ranges(index, size))


def _consistency_shape(old_size: int, new_size: int) -> tuple[bool, ...]:
    return tuple(begin < old_size for begin, _ in consistency_ranges(old_size, new_size))


def _proof_mutations(proof: list[bytes], root: bytes) -> list[list[bytes]]:
    """Truncated, extended, reordered and element-replaced variants of a proof."""
    variants: list[list[bytes]] = [
        proof + [OTHER_HASH],
        proof + [root],
        [OTHER_HASH, *proof],
        [root, *proof],
        proof + [b""],
    ]
    if proof:
        variants += [proof[:-1], proof[1:], [proof[0], *proof]]
    if len(proof) > 1:
        variants.append(list(reversed(proof)))
    for position, element in enumerate(proof):
        for replacement in (OTHER_HASH, element[:-1], element + b"\x00"):
            variants.append(proof[:position] + [replacement] + proof[position + 1 :])
    return [variant for variant in variants if variant != proof]


@pytest.mark.parametrize("size", range(1, size_max + 1))
def test_every_inclusion_proof_verifies_and_every_mutation_fails(size: int) -> None:
    """For each leaf of a tree of ``size``: the proof verifies; any mutated input is refused."""
    hashes, root = HASHES[:size], ROOTS[size]
    for index in range(size):
        leaf, proof = hashes[index], merkle.inclusion_proof(index, hashes)
        merkle.verify_inclusion(leaf, index, size, proof, root)

        _refused(merkle.verify_inclusion, OTHER_HASH, index, size, proof, root)
        _refused(merkle.verify_inclusion, _flip_bit(leaf, 0), index, size, proof, root)
        _refused(merkle.verify_inclusion, leaf, index, size, proof, OTHER_HASH)
        _refused(merkle.verify_inclusion, leaf, index, size, proof, _flip_bit(root, 255))
        for wrong_index in {index - 1, index + 1, index ^ 2, size, -1} - {index}:
            _refused(merkle.verify_inclusion, leaf, wrong_index, size, proof, root)
        for position, element in enumerate(proof):
            bit = (position * 37 + index) % 256
            mutated = proof[:position] + [_flip_bit(element, bit)] + proof[position + 1 :]
            _refused(merkle.verify_inclusion, leaf, index, size, mutated, root)
        for variant in _proof_mutations(proof, root):
            _refused(merkle.verify_inclusion, leaf, index, size, variant, root)
        for wrong_size in range(index + 1, 2 * size + 2):
            if wrong_size == size:
                continue
            if _inclusion_shape(index, wrong_size) == _inclusion_shape(index, size):
                # Same steps to the root: the root cannot tell the sizes apart (see module doc).
                merkle.verify_inclusion(leaf, index, wrong_size, proof, root)
            else:
                _refused(merkle.verify_inclusion, leaf, index, wrong_size, proof, root)


@pytest.mark.parametrize("new_size", range(1, size_max + 1))
def test_every_consistency_proof_verifies_and_every_mutation_fails(new_size: int) -> None:
    """For each old size up to ``new_size``: the proof verifies; any mutated input is refused."""
    hashes, new_root = HASHES[:new_size], ROOTS[new_size]
    for old_size in range(0, new_size + 1):
        old_root, proof = ROOTS[old_size], merkle.consistency_proof(old_size, hashes)
        merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)

        if old_root != new_root:
            _refused(merkle.verify_consistency, old_size, new_size, new_root, old_root, proof)
        _refused(merkle.verify_consistency, old_size, new_size, OTHER_HASH, new_root, proof)
        if old_size > 0:
            # Against the empty tree every new root is consistent: nothing binds it.
            _refused(merkle.verify_consistency, old_size, new_size, old_root, OTHER_HASH, proof)
        if old_size != new_size:
            _refused(merkle.verify_consistency, new_size, old_size, new_root, old_root, proof)
        for wrong_old_size in {old_size - 1, old_size + 1, old_size ^ 2} - {old_size}:
            _refused(merkle.verify_consistency, wrong_old_size, new_size, old_root, new_root, proof)
        for position, element in enumerate(proof):
            bit = (position * 37 + old_size) % 256
            mutated = proof[:position] + [_flip_bit(element, bit)] + proof[position + 1 :]
            _refused(merkle.verify_consistency, old_size, new_size, old_root, new_root, mutated)
        for variant in _proof_mutations(proof, new_root):
            _refused(merkle.verify_consistency, old_size, new_size, old_root, new_root, variant)
        if old_size == 0:
            continue
        for wrong_new_size in range(old_size, 2 * new_size + 2):
            if wrong_new_size == new_size:
                continue
            if old_size == wrong_new_size or _consistency_shape(
                old_size, wrong_new_size
            ) != _consistency_shape(old_size, new_size):
                _refused(
                    merkle.verify_consistency, old_size, wrong_new_size, old_root, new_root, proof
                )
            else:
                merkle.verify_consistency(old_size, wrong_new_size, old_root, new_root, proof)


@st.composite
def inclusion_case(draw: st.DrawFn) -> tuple[int, int, int, int]:
    size = draw(st.integers(2, 129))
    index = draw(st.integers(0, size - 1))
    proof_count = len(inclusion_ranges(index, size))
    return size, index, draw(st.integers(0, proof_count - 1)), draw(st.integers(0, 255))


@given(inclusion_case())
def test_any_flipped_bit_in_an_inclusion_proof_fails(case: tuple[int, int, int, int]) -> None:
    """Flipping any one bit of any inclusion proof element makes verification fail."""
    size, index, position, bit = case
    proof = merkle.inclusion_proof(index, HASHES[:size])
    proof[position] = _flip_bit(proof[position], bit)
    _refused(merkle.verify_inclusion, HASHES[index], index, size, proof, ROOTS[size])


@st.composite
def consistency_case(draw: st.DrawFn) -> tuple[int, int, int, int]:
    new_size = draw(st.integers(2, 129))
    old_size = draw(st.integers(1, new_size - 1))
    proof_count = len(consistency_ranges(old_size, new_size))
    return old_size, new_size, draw(st.integers(0, proof_count - 1)), draw(st.integers(0, 255))


@given(consistency_case())
def test_any_flipped_bit_in_a_consistency_proof_fails(case: tuple[int, int, int, int]) -> None:
    """Flipping any one bit of any consistency proof element makes verification fail."""
    old_size, new_size, position, bit = case
    proof = merkle.consistency_proof(old_size, HASHES[:new_size])
    proof[position] = _flip_bit(proof[position], bit)
    _refused(merkle.verify_consistency, old_size, new_size, ROOTS[old_size], ROOTS[new_size], proof)


def test_malformed_inclusion_arguments_are_refused_with_reasons() -> None:
    """Index >= size, negative or non-int numbers, short hashes, a non-list proof: ProofError."""
    hashes, root = HASHES[:5], ROOTS[5]
    proof = merkle.inclusion_proof(2, hashes)
    cases: list[tuple[tuple[object, ...], str]] = [
        ((hashes[2], 5, 5, proof, root), "not below tree size"),
        ((hashes[2], 0, 0, [], ROOTS[0]), "not below tree size"),
        ((hashes[2], -1, 5, proof, root), "negative"),
        ((hashes[2], 2, -5, proof, root), "negative"),
        ((hashes[2], True, 5, proof, root), "expected int"),
        ((hashes[2], 2.0, 5, proof, root), "expected int"),
        ((hashes[2][:31], 2, 5, proof, root), "leaf hash has 31 bytes"),
        ((hashes[2], 2, 5, proof, root[:31]), "root has 31 bytes"),
        ((hashes[2], 2, 5, proof[:-1], root), "proof has 2 hashes, expected 3"),
        ((hashes[2], 2, 5, [*proof, root], root), "proof has 4 hashes, expected 3"),
        ((hashes[2], 2, 5, tuple(proof[:2]) + ("x",), root), "proof element 2 is str"),
        ((hashes[2], 2, 5, b"".join(proof), root), "expected a list of hashes"),
        ((hashes[2], 2, 5, proof, ROOTS[4]), "leads to root"),
    ]
    for arguments, reason in cases:
        with pytest.raises(ProofError, match=reason):
            merkle.verify_inclusion(*arguments)  # type: ignore[arg-type]


def test_malformed_consistency_arguments_are_refused_with_reasons() -> None:
    """old_size > new_size, wrong empty-tree root, unequal equal-size roots: ProofError."""
    proof = merkle.consistency_proof(3, HASHES[:7])
    cases: list[tuple[tuple[object, ...], str]] = [
        ((7, 3, ROOTS[7], ROOTS[3], proof), "larger than new size"),
        ((-1, 3, ROOTS[0], ROOTS[3], []), "negative"),
        ((0, 3, OTHER_HASH, ROOTS[3], []), "not the root of the empty tree"),
        ((0, 3, ROOTS[0], ROOTS[3], [OTHER_HASH]), "proof has 1 hashes, expected 0"),
        ((4, 4, ROOTS[4], ROOTS[5], []), "different roots"),
        ((4, 4, ROOTS[4], ROOTS[4], [ROOTS[4]]), "expected 0"),
        ((3, 7, ROOTS[3], ROOTS[7], []), "proof has 0 hashes"),
        ((3, 7, ROOTS[3][:1], ROOTS[7], proof), "old root has 1 bytes"),
        ((3, 7, ROOTS[4], ROOTS[7], proof), "leads to old root"),
        ((3, 7, ROOTS[3], ROOTS[6], proof), "leads to new root"),
    ]
    for arguments, reason in cases:
        with pytest.raises(ProofError, match=reason):
            merkle.verify_consistency(*arguments)  # type: ignore[arg-type]
    merkle.verify_consistency(0, 0, ROOTS[0], ROOTS[0], [])


def test_builders_refuse_misuse() -> None:
    """Builders raise ValueError for raw data instead of leaf hashes and for impossible indexes."""
    with pytest.raises(ValueError, match="leaf_hash"):
        merkle.root([b"raw data"])
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_proof(3, HASHES[:3])
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_proof(4, HASHES[:3])
