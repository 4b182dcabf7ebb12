"""X25519 public keys derived from the Ed25519 keys the ledger already names.

A recipient of confidential fields is an Ed25519 key (usually registered on chain: a payer,
a payee, an auditor). Its X25519 public key is the image of its Edwards point under the
birational map of RFC 7748, section 4.1: u = (1 + y) / (1 - y) mod p, which needs only the
point's y coordinate. The holder of the key derives the matching X25519 private key from the
same seed (``ledger.signing.Signer.x25519_private_key``). This is libsodium's
``crypto_sign_ed25519_pk_to_curve25519`` / ``crypto_sign_ed25519_sk_to_curve25519`` pair, which
the tests use as the independent reference. docs/confidential.md argues the key reuse.

The map is computed here with Python integers (``cryptography`` has no such conversion) and
refuses, with ``RecipientKeyError``, what could make an exchange with the key predictable:
an encoding that is not canonical (y >= p, or the sign of x set where x = 0), bytes that are
not a point of the curve, and points of small order (the identity and the 8-torsion), whose
X25519 shared secrets take at most eight values whatever the other side's key.
"""

from __future__ import annotations

import functools
from typing import Final

from ledger.errors import RecipientKeyError

field_prime: Final = 2**255 - 19
"""p: the field of both Curve25519 forms."""

_edwards_d: Final = -121665 * pow(121666, field_prime - 2, field_prime) % field_prime
"""d of the twisted Edwards curve -x^2 + y^2 = 1 + d x^2 y^2 (RFC 8032, section 5.1)."""

_a24: Final = 121665
"""(A - 2) / 4 for Curve25519's A = 486662: the doubling formula's constant (RFC 7748, 5)."""

_cofactor_doublings: Final = 3
"""Curve25519's cofactor is 8 = 2^3: a point of small order is at infinity after 3 doublings."""

_point_bytes: Final = 32

conversion_cache_count: Final = 1_024
"""Public keys whose X25519 form is remembered: a sender encrypts to the same few counterparties
over and over, and one conversion costs two 255-bit modular exponentiations (about 190 µs)."""


@functools.lru_cache(maxsize=conversion_cache_count)
def x25519_public_key(ed25519_public_key: bytes) -> bytes:
    """The X25519 public key (32 bytes, little-endian u) of an Ed25519 public key.

    RecipientKeyError when the bytes are not a canonical encoding of a point of the curve, or the
    point has small order.
    """
    if len(ed25519_public_key) != _point_bytes:
        raise RecipientKeyError(
            f"an Ed25519 public key is {_point_bytes} bytes, not {len(ed25519_public_key)}"
        )
    encoded = int.from_bytes(ed25519_public_key, "little")
    y = encoded & ((1 << 255) - 1)
    x_is_odd = encoded >> 255
    if y >= field_prime:
        raise RecipientKeyError("the public key is not canonical (y is not below p)")
    if y == 1:  # x = 0: the identity, whatever the sign bit says
        raise RecipientKeyError("the public key is the identity point (small order)")
    y_squared = y * y % field_prime
    curve_denominator = _edwards_d * y_squared + 1  # never 0: d is not a square mod p
    # One inversion serves both quotients (each costs a 255-bit exponentiation, ~90 µs).
    inverse = pow((1 - y) * curve_denominator, field_prime - 2, field_prime)
    x_squared = (y_squared - 1) * (1 - y) * inverse % field_prime
    if x_squared == 0 and x_is_odd:
        raise RecipientKeyError("the public key is not canonical (x = 0 has no sign)")
    if pow(x_squared, (field_prime - 1) // 2, field_prime) > 1:
        raise RecipientKeyError("the public key is not a point of the Ed25519 curve")
    u = (1 + y) * curve_denominator * inverse % field_prime
    if has_small_order(u):
        raise RecipientKeyError("the public key has small order")
    return u.to_bytes(_point_bytes, "little")


def has_small_order(u: int) -> bool:
    """Whether the Curve25519 point with Montgomery coordinate ``u`` has an order dividing 8:
    doubled three times (x-only, projective), it reaches the point at infinity (Z = 0)."""
    x, z = u % field_prime, 1
    for _ in range(_cofactor_doublings):
        sum_squared = (x + z) ** 2 % field_prime
        difference_squared = (x - z) ** 2 % field_prime
        product = sum_squared - difference_squared  # 4xz
        x = sum_squared * difference_squared % field_prime
        z = product * (sum_squared + _a24 * product) % field_prime
        if z == 0:
            return True
    return False
