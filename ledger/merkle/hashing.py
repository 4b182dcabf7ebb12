"""The hashing rule of RFC 9162 section 2.1.1 (identical to RFC 6962 section 2.1).

Leaves and interior nodes get different one-byte prefixes, so that no leaf can be passed off as
an interior node (a second-preimage attack on unprefixed Merkle trees).
"""

from __future__ import annotations

import hashlib

hash_size_bytes = 32
"""SHA-256 output: every leaf hash, node hash, root and proof element has exactly this size."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree with no leaves: SHA-256 of the empty string."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def root(leaf_hashes: list[bytes] | tuple[bytes, ...]) -> bytes:
    """The Merkle tree hash (RFC 9162 MTH) of ``leaf_hashes``, computed level by level.

    Pairing neighbours left to right on each level and carrying an odd last node up unchanged
    builds exactly the tree that splits at the largest power of two below n: the left part is
    always a perfect subtree, so it pairs up completely before the carried node meets it.
    No recursion, one list per level: this is the hot path of block sealing.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha256 = _sha256
    prefix = NODE_PREFIX
    while len(level) > 1:
        pairs = iter(level)
        # Not strict: an odd last node has no partner here and is carried up below.
        parents = [
            sha256(prefix + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) & 1:
            parents.append(level[-1])
        level = parents
    return level[0]
