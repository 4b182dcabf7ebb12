"""RFC 9162 Merkle trees (RFC 6962 hashing): roots, inclusion and consistency proofs.

The public facade of ``ledger.merkle``. Leaves are given by their hashes (``leaf_hash(data)``);
proofs are lists of 32-byte hashes in RFC 9162 order, so any RFC 6962/9162 verifier (the
certificate-transparency and transparency-dev libraries, for instance) can check ours and we
can check theirs. Builders trust their caller and raise ValueError on misuse; verifiers trust
nothing and raise ProofError on any mismatch.

Layout, after transparency-dev/merkle: ``hashing`` (the hashing rule), ``nodes`` (which leaf
ranges a proof needs), ``verify`` (checking proofs), ``tree`` (append-only compact tree).
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.merkle import hashing
from ledger.merkle.hashing import hash_size_bytes, leaf_hash, node_hash
from ledger.merkle.nodes import consistency_ranges, inclusion_ranges
from ledger.merkle.tree import CompactTree
from ledger.merkle.verify import verify_consistency, verify_inclusion

__all__ = [
    "CompactTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]


def _checked(leaf_hashes: Sequence[bytes]) -> list[bytes]:
    hashes = list(leaf_hashes)
    for position, value in enumerate(hashes):
        if not isinstance(value, bytes) or len(value) != hash_size_bytes:
            raise ValueError(
                f"leaf hash {position} is not {hash_size_bytes} bytes: pass leaf_hash(data)"
            )
    return hashes


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash over ``leaf_hashes``; SHA-256(b"") for none."""
    return hashing.root(_checked(leaf_hashes))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree over ``leaf_hashes``, nearest sibling first."""
    hashes = _checked(leaf_hashes)
    return [hashing.root(hashes[begin:end]) for begin, end in inclusion_ranges(index, len(hashes))]


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree over ``leaf_hashes`` extends its first ``old_size`` leaves."""
    hashes = _checked(leaf_hashes)
    return [
        hashing.root(hashes[begin:end]) for begin, end in consistency_ranges(old_size, len(hashes))
    ]
