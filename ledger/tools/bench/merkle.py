"""How fast ledger.merkle is on a 1,000-leaf tree: roots, proofs built and checked.

1,000 leaves is the order of a full block (``block_tx_max_count``) and of a few hours of block
hashes, so these figures bound the Merkle share of sealing a block and of serving a proof.
Each figure is the best of a few rounds, to report the machine's speed rather than its noise.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from ledger import merkle

leaf_count = 1_000
"""Tree size of every measurement."""

round_count = 5
"""Rounds per figure; the best one is reported."""

proof_count_per_round = 200
"""Proofs built and checked per round: ~0.1 s per round at ~2,000 per second."""

root_count_per_round = 100
"""Roots computed per round."""


def _leaf_hashes(count: int) -> list[bytes]:
    return [
        merkle.leaf_hash(hashlib.sha256(number.to_bytes(8, "big")).digest())
        for number in range(count)
    ]


def _best_seconds(work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(round_count):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def run() -> dict[str, float]:
    """Measure and return the figures, named with their units."""
    hashes = _leaf_hashes(leaf_count)
    tree_root = merkle.root(hashes)
    indexes = [(number * 7919) % leaf_count for number in range(proof_count_per_round)]
    old_sizes = [1 + (number * 7919) % (leaf_count - 1) for number in range(proof_count_per_round)]
    old_roots = {size: merkle.root(hashes[:size]) for size in old_sizes}
    inclusion_proofs = [merkle.inclusion_proof(index, hashes) for index in indexes]

    def roots() -> None:
        for _ in range(root_count_per_round):
            merkle.root(hashes)

    def compact_tree() -> None:
        merkle.CompactTree().extend(hashes)

    def inclusion_build_and_check() -> None:
        for index in indexes:
            proof = merkle.inclusion_proof(index, hashes)
            merkle.verify_inclusion(hashes[index], index, leaf_count, proof, tree_root)

    def inclusion_check() -> None:
        for index, proof in zip(indexes, inclusion_proofs, strict=True):
            merkle.verify_inclusion(hashes[index], index, leaf_count, proof, tree_root)

    def consistency_build_and_check() -> None:
        for size in old_sizes:
            proof = merkle.consistency_proof(size, hashes)
            merkle.verify_consistency(size, leaf_count, old_roots[size], tree_root, proof)

    return {
        "root_1000_leaves_ms": _best_seconds(roots) / root_count_per_round * 1000,
        "compact_tree_1000_appends_ms": _best_seconds(compact_tree) * 1000,
        "inclusion_build_and_check_per_second": (
            proof_count_per_round / _best_seconds(inclusion_build_and_check)
        ),
        "inclusion_check_per_second": proof_count_per_round / _best_seconds(inclusion_check),
        "consistency_build_and_check_per_second": (
            proof_count_per_round / _best_seconds(consistency_build_and_check)
        ),
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:>42} {value:12.3f}")
