"""Known-answer tests: the RFC 6962 test tree used by certificate-transparency and Trillian.

Vectors come from the certificate-transparency test suites (python ``merkle_test.py``, Go
``log_verifier_test.go``): the 8 leaves below, the roots of their prefixes, and the inclusion and
consistency proofs those suites check. Indexes here are 0-based (the Go suite counts from 1).
"""

from __future__ import annotations

import pytest

from ledger import merkle
from ledger.merkle.hashing import EMPTY_ROOT

LEAVES = [
    bytes.fromhex(value)
    for value in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAF_HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]

ROOTS_BY_SIZE = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

# (index, size, proof)
INCLUSION_VECTORS = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]

# (old_size, new_size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        3,
        8,
        [
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    """The empty tree's root is SHA-256(b"") both from root() and the constant."""
    assert merkle.root([]) == EMPTY_ROOT == bytes.fromhex(ROOTS_BY_SIZE[0])


def test_leaf_and_node_hash_known_answers() -> None:
    """leaf_hash and node_hash apply the 0x00 / 0x01 prefixes of RFC 6962 (CT TreeHasher)."""
    assert merkle.leaf_hash(b"").hex() == ROOTS_BY_SIZE[1]
    assert merkle.leaf_hash(bytes.fromhex("101112131415161718191a1b1c1d1e1f")).hex() == (
        "3bfb960453ebaebf33727da7a1f4db38acc051d381b6da20d6d4e88f0eabfd7a"
    )
    left = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    right = bytes.fromhex("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
    assert merkle.node_hash(left, right).hex() == (
        "1a378704c17da31e2d05b6d121c2bb2c7d76f6ee6fa8f983e596c2d034963c57"
    )


@pytest.mark.parametrize("size", sorted(ROOTS_BY_SIZE))
def test_reference_roots(size: int) -> None:
    """root() over the first ``size`` test leaves equals the published RFC 6962 root."""
    assert merkle.root(LEAF_HASHES[:size]).hex() == ROOTS_BY_SIZE[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_reference_inclusion_proofs(index: int, size: int, expected: list[str]) -> None:
    """inclusion_proof() emits the published audit path, and it verifies against the root."""
    proof = merkle.inclusion_proof(index, LEAF_HASHES[:size])
    assert [element.hex() for element in proof] == expected
    root = bytes.fromhex(ROOTS_BY_SIZE[size])
    merkle.verify_inclusion(LEAF_HASHES[index], index, size, proof, root)


@pytest.mark.parametrize(("old_size", "new_size", "expected"), CONSISTENCY_VECTORS)
def test_reference_consistency_proofs(old_size: int, new_size: int, expected: list[str]) -> None:
    """consistency_proof() emits the published proof, and it verifies between the two roots."""
    proof = merkle.consistency_proof(old_size, LEAF_HASHES[:new_size])
    assert [element.hex() for element in proof] == expected
    old_root = bytes.fromhex(ROOTS_BY_SIZE[old_size])
    new_root = bytes.fromhex(ROOTS_BY_SIZE[new_size])
    merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
