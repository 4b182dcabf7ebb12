"""Checking proofs: RFC 9162 sections 2.1.3.2 (inclusion) and 2.1.4.2 (consistency).

Every input is treated as hostile: sizes, indexes, hash lengths and proof lengths are checked
before any hashing, and every mismatch raises ``ProofError`` with the reason, never returns
False, so a caller cannot forget to look at the answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ledger.errors import ProofError
from ledger.merkle.hashing import EMPTY_ROOT, NODE_PREFIX, hash_size_bytes
from ledger.merkle.nodes import consistency_proof_count, inclusion_proof_count

_sha256 = hashlib.sha256


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise ProofError(f"{what} is {type(value).__name__}, expected bytes")
    if len(value) != hash_size_bytes:
        raise ProofError(f"{what} has {len(value)} bytes, expected {hash_size_bytes}")
    return value


def _check_proof(proof: Sequence[bytes], expected_count: int) -> None:
    if not isinstance(proof, list | tuple):
        raise ProofError(f"proof is {type(proof).__name__}, expected a list of hashes")
    if len(proof) != expected_count:
        raise ProofError(f"proof has {len(proof)} hashes, expected {expected_count}")
    for position, element in enumerate(proof):
        _check_hash(element, f"proof element {position}")


def _check_size(value: object, what: str) -> int:
    # bool is an int subclass; a True index is a bug in the caller, not a leaf number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"{what} is {type(value).__name__}, expected int")
    if value < 0:
        raise ProofError(f"{what} {value} is negative")
    return value


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for ``leaf_hash`` at ``index`` in ``size`` leaves."""
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size:
        raise ProofError(f"index {index} is not below tree size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_proof(proof, inclusion_proof_count(index, size))
    sha256 = _sha256
    prefix = NODE_PREFIX
    # fn walks up from the leaf, sn from the last leaf; where fn is a right child or the last
    # node of its level, the proof element is its left sibling.
    node_index, last_index = index, size - 1
    result = leaf_hash
    for element in proof:
        if last_index == 0:
            raise ProofError("proof is longer than the path to the root")
        if node_index & 1 or node_index == last_index:
            result = sha256(prefix + element + result).digest()
            if not node_index & 1:
                # A carried-up last node skips levels where it has no sibling.
                while node_index and not node_index & 1:
                    node_index >>= 1
                    last_index >>= 1
        else:
            result = sha256(prefix + result + element).digest()
        node_index >>= 1
        last_index >>= 1
    if last_index != 0:
        raise ProofError("proof is shorter than the path to the root")
    return result


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    The root does not commit to the size; callers must get ``size`` from the same signed
    statement as ``root`` (a block header signs both its height and its blocks_root).
    """
    _check_hash(root, "root")
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof of leaf {index} in {size} leaves leads to root "
            f"{computed.hex()}, expected {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` leaves with ``new_root`` extends the older one.

    That is, its first ``old_size`` leaves form the tree with ``old_root``: history was only
    appended to.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    _check_proof(proof, consistency_proof_count(old_size, new_size))
    if old_size == 0:
        # Every tree extends the empty one, whose root is fixed.
        if old_root != EMPTY_ROOT:
            raise ProofError(f"old root {old_root.hex()} is not the root of the empty tree")
        return
    if old_size == new_size:
        if old_root != new_root:
            raise ProofError(f"trees of equal size {old_size} have different roots")
        return
    old_computed, new_computed = _roots_from_consistency_proof(old_size, new_size, old_root, proof)
    if old_computed != old_root:
        raise ProofError(
            f"consistency proof from {old_size} to {new_size} leaves leads to old root "
            f"{old_computed.hex()}, expected {old_root.hex()}"
        )
    if new_computed != new_root:
        raise ProofError(
            f"consistency proof from {old_size} to {new_size} leaves leads to new root "
            f"{new_computed.hex()}, expected {new_root.hex()}"
        )


def _roots_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """RFC 9162 2.1.4.2 steps 2 to 6 for 0 < old_size < new_size: the two implied roots."""
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one: its root is the first node.
        path.insert(0, old_root)
    sha256 = _sha256
    prefix = NODE_PREFIX
    node_index, last_index = old_size - 1, new_size - 1
    while node_index & 1:
        node_index >>= 1
        last_index >>= 1
    old_result = new_result = path[0]
    for element in path[1:]:
        if last_index == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if node_index & 1 or node_index == last_index:
            old_result = sha256(prefix + element + old_result).digest()
            new_result = sha256(prefix + element + new_result).digest()
            if not node_index & 1:
                while node_index and not node_index & 1:
                    node_index >>= 1
                    last_index >>= 1
        else:
            new_result = sha256(prefix + new_result + element).digest()
        node_index >>= 1
        last_index >>= 1
    if last_index != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    return old_result, new_result
