"""edwards25519 in plain Python, for crafting Ed25519 test vectors only.

Slow, variable-time and unaudited: never use it to sign or check anything real. It exists so
tests can build signatures with any R, A and S (small-order, mixed-order, non-canonical) and
state which verification equation they satisfy. Points are extended coordinates (X, Y, Z, T)
with x = X/Z, y = Y/Z and x y = T/Z (RFC 8032, section 5.1.4).
"""

from __future__ import annotations

import hashlib
from typing import Final

Point = tuple[int, int, int, int]

P: Final = 2**255 - 19
L: Final = 2**252 + 27742317777372353535851937790883648493
D: Final = -121665 * pow(121666, -1, P) % P
SQRT_M1: Final = pow(2, (P - 1) // 4, P)
IDENTITY: Final[Point] = (0, 1, 1, 0)


def add(a: Point, b: Point) -> Point:
    """a + b: the complete addition formula of twisted Edwards curves with a = -1."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    e1, e2 = (y1 - x1) * (y2 - x2) % P, (y1 + x1) * (y2 + x2) % P
    c, d = 2 * t1 * t2 * D % P, 2 * z1 * z2 % P
    e, f, g, h = e2 - e1, d - c, d + c, e2 + e1
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def negate(a: Point) -> Point:
    x, y, z, t = a
    return (-x % P, y, z, -t % P)


def multiply(scalar: int, a: Point) -> Point:
    """[scalar] a for any scalar >= 0, not reduced modulo anything (the torsion needs that)."""
    result = IDENTITY
    while scalar > 0:
        if scalar & 1:
            result = add(result, a)
        a = add(a, a)
        scalar >>= 1
    return result


def equal(a: Point, b: Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def order(a: Point) -> int:
    """The order of a point of order 1, 2, 4, 8 or L (others are never needed here)."""
    for n in (1, 2, 4, 8, L):
        if equal(multiply(n, a), IDENTITY):
            return n
    raise ValueError("a point of order 2L, 4L or 8L")


def encode(a: Point) -> bytes:
    """32 bytes: y little-endian, always below p, with the parity of x in the top bit."""
    x, y, z, _ = a
    inverse = pow(z, -1, P)
    x, y = x * inverse % P, y * inverse % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def x_for(y: int, sign: int) -> int | None:
    """The x of the point with this y (0 <= y < p) and parity ``sign``, or None if none exists.

    x = 0 is returned whatever the sign, as libsodium and curve25519-dalek decode it.
    """
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    return P - x if x != 0 and x & 1 != sign else x


def decode(encoding: bytes, *, allow_non_canonical: bool = False) -> Point | None:
    """The point an encoding spells, or None (not on the curve, or y >= p unless allowed)."""
    if len(encoding) != 32:
        return None
    number = int.from_bytes(encoding, "little")
    y, sign = number & (2**255 - 1), number >> 255
    if y >= P:
        if not allow_non_canonical:
            return None
        y -= P
    x = x_for(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def spell(y: int, sign: int) -> bytes:
    """The 32 bytes y (any value below 2**255, p and above included) with ``sign`` on top."""
    return (y | sign << 255).to_bytes(32, "little")


BASE: Final[Point] = decode(spell(4 * pow(5, -1, P) % P, 0)) or IDENTITY


def _torsion() -> tuple[Point, ...]:
    """[0] T .. [7] T for a T of order 8: [L] Q is in the torsion for any point Q."""
    for y in range(2, 100):
        candidate = decode(spell(y, 0))
        if candidate is not None:
            torsion = multiply(L, candidate)
            if order(torsion) == 8:
                return tuple(multiply(n, torsion) for n in range(8))
    raise AssertionError("no point with a torsion component of order 8")


TORSION: Final = _torsion()
"""The 8 points of order dividing 8: TORSION[n] = [n] TORSION[1], and TORSION[1] has order 8."""


def challenge(r: bytes, public_key: bytes, message: bytes) -> int:
    """k = SHA-512(R || A || M) mod L."""
    return int.from_bytes(hashlib.sha512(r + public_key + message).digest(), "little") % L


def sign(
    secret: int,
    nonce: int,
    message: bytes,
    *,
    public_key: bytes | None = None,
    r: bytes | None = None,
) -> bytes:
    """R || S with S = nonce + k secret mod L: R = [nonce] B and A = [secret] B unless given.

    Given bytes are hashed as they are, so a mixed-order A or R is signed "honestly".
    """
    public_key = encode(multiply(secret, BASE)) if public_key is None else public_key
    r = encode(multiply(nonce, BASE)) if r is None else r
    s = (nonce + challenge(r, public_key, message) * secret) % L
    return r + s.to_bytes(32, "little")


def _s_b_minus_k_a(public_key: bytes, signature: bytes, message: bytes) -> Point | None:
    a = decode(public_key, allow_non_canonical=True)
    if a is None or len(signature) != 64:
        return None
    k = challenge(signature[:32], public_key, message)
    s = int.from_bytes(signature[32:], "little")  # not reduced: [S + n L] B = [S] B
    return add(multiply(s, BASE), negate(multiply(k, a)))


def cofactorless_holds(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """encode([S] B - [k] A) == R's bytes, with S unreduced and A decoded even if non-canonical."""
    point = _s_b_minus_k_a(public_key, signature, message)
    return point is not None and encode(point) == signature[:32]


def cofactored_holds(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """[8] ([S] B - [k] A - R) is the identity, R and A decoded even if non-canonical."""
    point = _s_b_minus_k_a(public_key, signature, message)
    r = decode(signature[:32], allow_non_canonical=True)
    if point is None or r is None:
        return False
    return equal(multiply(8, add(point, negate(r))), IDENTITY)
