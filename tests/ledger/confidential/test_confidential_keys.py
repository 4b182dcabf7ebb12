"""ledger.confidential.keys: the Ed25519 -> X25519 map against libsodium and a naive reference.

libsodium (through PyNaCl, which the verify stage already uses) is the independent reference for
both halves of the conversion; a textbook Edwards implementation (RFC 8032, section 6) builds
the points libsodium and the project must refuse: every point of small order, non-canonical
encodings, and bytes off the curve.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_scalarmult_base,
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
)
from nacl.exceptions import RuntimeError as NaclRuntimeError

from ledger.confidential.keys import has_small_order, x25519_public_key
from ledger.errors import RecipientKeyError
from ledger.signing import Signer

# ---- a naive Edwards25519 reference (RFC 8032, section 6) -------------------------------------

P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
SQRT_MINUS_ONE = pow(2, (P - 1) // 4, P)
Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z
IDENTITY: Point = (0, 1, 1, 0)


def point_add(first: Point, second: Point) -> Point:
    a = (first[1] - first[0]) * (second[1] - second[0]) % P
    b = (first[1] + first[0]) * (second[1] + second[0]) % P
    c = 2 * first[3] * second[3] * D % P
    d = 2 * first[2] * second[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_multiply(scalar: int, point: Point) -> Point:
    result = IDENTITY
    while scalar:
        if scalar & 1:
            result = point_add(result, point)
        point = point_add(point, point)
        scalar >>= 1
    return result


def recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x_squared = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x_squared == 0:
        return None if sign else 0
    x = pow(x_squared, (P + 3) // 8, P)
    if (x * x - x_squared) % P:
        x = x * SQRT_MINUS_ONE % P
    if (x * x - x_squared) % P:
        return None
    return P - x if (x & 1) != sign else x


def compress(point: Point) -> bytes:
    z_inverse = pow(point[2], P - 2, P)
    x, y = point[0] * z_inverse % P, point[1] * z_inverse % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decompress(encoded: bytes) -> Point | None:
    y = int.from_bytes(encoded, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def point_for(counter: int) -> Point:
    """A point of the whole curve (any torsion component) from a counter: y from a hash."""
    while True:
        counter += 1
        y = int.from_bytes(hashlib.sha256(counter.to_bytes(8, "big")).digest(), "little") % P
        x = recover_x(y, 0)
        if x is not None:
            return (x, y, 1, x * y % P)


def torsion_points() -> set[bytes]:
    """The 8 points of order dividing 8, as [L]P for points P of the whole curve."""
    found: set[bytes] = set()
    counter = 0
    while len(found) < 8:
        counter += 1000
        found.add(compress(point_multiply(GROUP_ORDER, point_for(counter))))
    return found


TORSION = sorted(torsion_points())


def libsodium_refuses(public_key: bytes) -> bool:
    try:
        crypto_sign_ed25519_pk_to_curve25519(public_key)
    except NaclRuntimeError:
        return True
    return False


# ---- the conversion --------------------------------------------------------------------------

seeds = st.binary(min_size=32, max_size=32)


@given(seeds)
def test_public_key_is_libsodiums(seed: bytes) -> None:
    """The X25519 public key of any Ed25519 key is libsodium's crypto_sign_ed25519_pk_to_curve25519."""
    signer = Signer.from_private_bytes(seed)
    assert x25519_public_key(signer.public_key) == crypto_sign_ed25519_pk_to_curve25519(
        signer.public_key
    )


@given(seeds)
def test_private_key_is_libsodiums_and_matches_the_public_key(seed: bytes) -> None:
    """The derived private key is libsodium's crypto_sign_ed25519_sk_to_curve25519, and
    X25519(derived private key, base point) is the public key derived from the Ed25519 one."""
    signer = Signer.from_private_bytes(seed)
    private = signer.x25519_private_key().private_bytes_raw()
    assert private == crypto_sign_ed25519_sk_to_curve25519(seed + signer.public_key)
    assert crypto_scalarmult_base(private) == x25519_public_key(signer.public_key)
    assert signer.x25519_private_key().public_key().public_bytes_raw() == x25519_public_key(
        signer.public_key
    )


def test_rfc_8032_first_key() -> None:
    """RFC 8032's first test key converts to fixed bytes (libsodium's result, pinned)."""
    signer = Signer.from_private_bytes(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    assert signer.public_key.hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert x25519_public_key(signer.public_key).hex() == (
        "d85e07ec22b0ad881537c2f44d662d1a143cf830c57aca4305d85c7a90f6b62e"
    )
    assert signer.x25519_private_key().private_bytes_raw().hex() == (
        "307c83864f2833cb427a2ef1c00a013cfdff2768d980c0a3a520f006904de94f"
    )


def test_the_two_sides_agree_on_a_shared_secret() -> None:
    """An exchange with a recipient's derived public key equals the one its private key makes."""
    recipient = Signer.generate()
    sender = X25519PrivateKey.generate()
    recipient_public = X25519PublicKey.from_public_bytes(x25519_public_key(recipient.public_key))
    assert sender.exchange(recipient_public) == recipient.x25519_private_key().exchange(
        sender.public_key()
    )


# ---- keys that must be refused ---------------------------------------------------------------


@pytest.mark.parametrize("encoded", TORSION, ids=lambda encoded: encoded.hex()[:8])
def test_every_point_of_small_order_is_refused(encoded: bytes) -> None:
    """Each of the 8 torsion points is refused, as libsodium refuses it."""
    assert libsodium_refuses(encoded)
    with pytest.raises(RecipientKeyError, match="small order|identity|not canonical"):
        x25519_public_key(encoded)


def test_torsion_points_are_the_small_order_u_values() -> None:
    """has_small_order is true for the torsion points' u and false for ordinary keys."""
    for encoded in TORSION:
        point = decompress(encoded)
        assert point is not None
        y = point[1]
        if y != 1:  # the identity has no u: it maps to the point at infinity
            assert has_small_order((1 + y) * pow(1 - y, P - 2, P) % P)
    for _ in range(20):
        public = Signer.generate().public_key
        assert not has_small_order(int.from_bytes(x25519_public_key(public), "little"))


def test_non_canonical_encodings_are_refused() -> None:
    """y + p for a small y, and the sign bit set where x = 0, are refused like libsodium does."""
    for y in (2, 3, 4, 5, 10, 18):  # y + p still fits 255 bits for y < 19
        encoded = (y + P).to_bytes(32, "little")
        with pytest.raises(RecipientKeyError):
            x25519_public_key(encoded)
    for y in (1, P - 1):  # the points with x = 0
        with pytest.raises(RecipientKeyError):
            x25519_public_key((y | 1 << 255).to_bytes(32, "little"))


def test_bytes_off_the_curve_are_refused() -> None:
    """A y whose x^2 is not a square is no point: refused, as libsodium refuses it."""
    refused = 0
    for y in range(2, 60):
        encoded = y.to_bytes(32, "little")
        if decompress(encoded) is None:
            assert libsodium_refuses(encoded)
            with pytest.raises(RecipientKeyError, match="not a point"):
                x25519_public_key(encoded)
            refused += 1
    assert refused > 10


def test_a_key_of_the_wrong_size_is_refused() -> None:
    """31 or 33 bytes are no Ed25519 public key."""
    for size in (31, 33):
        with pytest.raises(RecipientKeyError, match="32 bytes"):
            x25519_public_key(bytes(size))


def test_a_mixed_order_key_is_accepted_and_harmless() -> None:
    """A key with a torsion component (libsodium refuses it) is accepted: X25519's clamped
    scalars are multiples of 8, so the exchange equals the one with its prime-order part."""
    signer = Signer.generate()
    prime_order = decompress(signer.public_key)
    assert prime_order is not None
    torsion = decompress(next(point for point in TORSION if decompress(point) != IDENTITY))
    assert torsion is not None
    mixed = compress(point_add(prime_order, torsion))
    assert libsodium_refuses(mixed)
    sender = X25519PrivateKey.generate()
    with_mixed = sender.exchange(X25519PublicKey.from_public_bytes(x25519_public_key(mixed)))
    plain = X25519PublicKey.from_public_bytes(x25519_public_key(signer.public_key))
    assert with_mixed == sender.exchange(plain)
