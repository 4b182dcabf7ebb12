"""ledger.ed25519: the compiled checks give libsodium's verdict on every vector, crafted or mutated.

The vectors are built with tests/support/edwards25519.py: small-order, mixed-order and
non-canonical points and scalars, each with the equation it satisfies stated and checked, so a
rule missing from one implementation shows as a disagreement with the other.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from support import edwards25519 as ed

from ledger import ed25519
from ledger.signing import TX_SIGNATURE_DOMAIN

Holds = Literal["exact", "cofactored", "neither"]
"""Which equation a vector satisfies: encode([S]B - [k]A) == R byte for byte (what libsodium
checks), only [8]([S]B - [k]A - R) == 0, or neither (or its points do not decode)."""


@dataclass(frozen=True)
class Case:
    name: str
    public_key: bytes
    signature: bytes
    body: bytes
    prefix: bytes
    accept: bool
    holds: Holds


def _scalar(label: str) -> int:
    return int.from_bytes(hashlib.sha512(label.encode()).digest(), "little") % ed.L


SECRET = _scalar("secret a")
NONCE = _scalar("nonce r")
A_POINT = ed.multiply(SECRET, ed.BASE)
R_POINT = ed.multiply(NONCE, ed.BASE)
A_PRIME = ed.encode(A_POINT)
R_PRIME = ed.encode(R_POINT)
A_MIXED = ed.encode(ed.add(A_POINT, ed.TORSION[1]))
"""aB + T with T of order 8: a valid key, whose signatures verify only when k T vanishes."""
NACL_KEY = SigningKey(hashlib.sha256(b"test_ed25519 signing key").digest())
NACL_PUBLIC = bytes(NACL_KEY.verify_key)
LONG_BODY = bytes(range(256)) * 39 + bytes(16)
Y_MASK = 2**255 - 1


def _y_and_sign(encoding: bytes) -> tuple[int, int]:
    number = int.from_bytes(encoding, "little")
    return number & Y_MASK, number >> 255


def _describe(encoding: bytes) -> str:
    y, sign = _y_and_sign(encoding)
    names = {0: "0", 1: "1", ed.P - 1: "p-1", ed.P: "p", ed.P + 1: "p+1"}
    return f"y={names.get(y, f'{y:064x}'[:8])}-sign-{sign}"


def _small_order_spellings() -> list[bytes]:
    """Every 32 bytes that decode to a point of order 1, 2, 4 or 8 (non-canonical y included)."""
    spellings: list[bytes] = []
    for point in ed.TORSION:
        y, _ = _y_and_sign(ed.encode(point))
        for spelled_y in (y, y + ed.P):
            for sign in (0, 1):
                spelling = ed.spell(spelled_y, sign)
                if spelled_y <= Y_MASK and spelling not in spellings:
                    spellings.append(spelling)
    return spellings


SMALL_ORDER_SPELLINGS = _small_order_spellings()


def _torsion_index(point: ed.Point) -> int:
    return next(n for n, torsion in enumerate(ed.TORSION) if ed.equal(point, torsion))


def _body(
    prefix: bytes, r: bytes, public_key: bytes, label: str, modulus: int, residue: int, hit: bool
) -> bytes:
    """The first body ``label #n`` whose challenge k with this R and A is ``residue`` modulo
    ``modulus`` (when ``hit``), or is not (when not ``hit``)."""
    for n in range(1_000):
        body = f"{label} #{n}".encode()
        if (ed.challenge(r, public_key, prefix + body) % modulus == residue) is hit:
            return body
    raise AssertionError(f"no body for {label}")


def _s(value: int) -> bytes:
    return value.to_bytes(32, "little")


def _cases(prefix: bytes) -> dict[str, list[Case]]:
    """The crafted vectors for signatures of ``prefix`` + body, by kind."""
    cases: dict[str, list[Case]] = defaultdict(list)
    tag = "tx-domain" if prefix else "no-prefix"

    def case(
        kind: str, name: str, key: bytes, signature: bytes, body: bytes, accept: bool, holds: Holds
    ) -> None:
        cases[kind].append(Case(f"{tag}-{name}", key, signature, body, prefix, accept, holds))

    for label, body in (("short", b"transfer 100 EUR"), ("empty", b""), ("10000B", LONG_BODY)):
        signature = NACL_KEY.sign(prefix + body).signature
        case("valid", f"libsodium-signer-{label}-body", NACL_PUBLIC, signature, body, True, "exact")
        signature = ed.sign(SECRET, NONCE, prefix + body)
        case("valid", f"reference-signer-{label}-body", A_PRIME, signature, body, True, "exact")

    body = b"transfer 100 EUR"
    other = b"" if prefix else TX_SIGNATURE_DOMAIN
    signature = NACL_KEY.sign(other + body).signature
    case("domain", "signed-under-the-other-prefix", NACL_PUBLIC, signature, body, False, "neither")

    body = b"non-canonical S"
    signature = ed.sign(SECRET, NONCE, prefix + body)
    s = int.from_bytes(signature[32:], "little")
    for n in range(1, 16):
        if s + n * ed.L < 2**256:
            case("s", f"S+{n}L", A_PRIME, R_PRIME + _s(s + n * ed.L), body, False, "exact")
    for name, bad in (
        ("S-top-bit-set", s | 1 << 255),
        ("S-top-3-bits-set", s | 7 << 253),
        ("S=L", ed.L),
        ("S=2^256-1", 2**256 - 1),
    ):
        case("s", name, A_PRIME, R_PRIME + _s(bad), body, False, "neither")

    for spelling in SMALL_ORDER_SPELLINGS:
        # A = T: [S]B - [k]T = [r]B = R exactly when the order of T divides k.
        order = ed.order(ed.decode(spelling, allow_non_canonical=True) or ed.IDENTITY)
        body = _body(prefix, R_PRIME, spelling, "small A", order, 0, True)
        name = f"A-order-{order}-{_describe(spelling)}"
        case("small-A", name, spelling, R_PRIME + _s(NONCE), body, False, "exact")

    for spelling in SMALL_ORDER_SPELLINGS:
        # A = aB + T1, S = k a: [S]B - [k]A = [-k]T1, which is R = Tj when -k = j mod 8.
        point = ed.decode(spelling, allow_non_canonical=True) or ed.IDENTITY
        j = _torsion_index(point)
        body = _body(prefix, spelling, A_MIXED, "small R", 8, -j % 8, True)
        k = ed.challenge(spelling, A_MIXED, prefix + body)
        holds: Holds = "exact" if ed.encode(point) == spelling else "cofactored"
        name = f"R-order-{ed.order(point)}-{_describe(spelling)}"
        case("small-R", name, A_MIXED, spelling + _s(k * SECRET % ed.L), body, False, holds)

    body = b"non-canonical point"
    for y in range(2, 19):
        for sign in (0, 1):
            spelling = ed.spell(y + ed.P, sign)
            name = f"y=p+{y}-sign-{sign}"
            signature = ed.sign(SECRET, NONCE, prefix + body, r=spelling)
            case("non-canonical-R", f"R-{name}", A_PRIME, signature, body, False, "neither")
            if ed.x_for(y, sign) is not None:  # y + p spells a point: only the check refuses it
                signature = ed.sign(SECRET, NONCE, prefix + body, public_key=spelling)
                case("non-canonical-A", f"A-{name}", spelling, signature, body, False, "neither")

    for j in range(1, 8):
        # A = aB + Tj, S = r + k a: [S]B - [k]A = R - [k]Tj, R exactly when k Tj = 0.
        order = ed.order(ed.TORSION[j])
        key = ed.encode(ed.add(A_POINT, ed.TORSION[j]))
        for accept in (True, False):
            body = _body(prefix, R_PRIME, key, "mixed A", order, 0, accept)
            signature = ed.sign(SECRET, NONCE, prefix + body, public_key=key)
            name = f"A=aB+T{j}-order-{order}-kT{'=' if accept else '!='}0"
            holds = "exact" if accept else "cofactored"
            case("mixed-A", name, key, signature, body, accept, holds)

    for j in range(1, 8):
        # R = rB + Tj, S = r + k a: with A = aB, [S]B - [k]A = rB != R; with A = aB + T1,
        # [S]B - [k]A = rB - [k]T1, which is R exactly when -k = j mod 8.
        r = ed.encode(ed.add(R_POINT, ed.TORSION[j]))
        body = b"mixed R"
        signature = ed.sign(SECRET, NONCE, prefix + body, r=r)
        case("mixed-R", f"R=rB+T{j}-A=aB", A_PRIME, signature, body, False, "cofactored")
        for accept in (True, False):
            body = _body(prefix, r, A_MIXED, "mixed R", 8, -j % 8, accept)
            signature = ed.sign(SECRET, NONCE, prefix + body, public_key=A_MIXED, r=r)
            name = f"R=rB+T{j}-A=aB+T1-kT1{'=' if accept else '!='}-T{j}"
            holds = "exact" if accept else "cofactored"
            case("mixed-R", name, A_MIXED, signature, body, accept, holds)

    body = b"off the curve"
    high_y = next(y for y in range(2**254, 2**254 + 100) if ed.x_for(y, 0) is None)
    for y in [y for y in range(2, 19) if ed.x_for(y, 0) is None] + [high_y]:
        spelling = ed.spell(y, 0)
        signature = ed.sign(SECRET, NONCE, prefix + body, public_key=spelling)
        name = f"A-y={y if y < 19 else '2^254+' + str(y - 2**254)}-off-the-curve"
        case("off-curve-A", name, spelling, signature, body, False, "neither")

    body = b"wrong length"
    valid = NACL_KEY.sign(prefix + body).signature
    for name, key, signature in (
        ("key-31-bytes", NACL_PUBLIC[:31], valid),
        ("key-33-bytes", NACL_PUBLIC + b"\0", valid),
        ("key-empty", b"", valid),
        ("signature-63-bytes", NACL_PUBLIC, valid[:63]),
        ("signature-65-bytes", NACL_PUBLIC, valid + b"\0"),
        ("signature-empty", NACL_PUBLIC, b""),
    ):
        case("length", name, key, signature, body, False, "neither")
    return cases


PREFIXES = (b"", TX_SIGNATURE_DOMAIN)
CASES_BY_PREFIX = {prefix: _cases(prefix) for prefix in PREFIXES}
CASES = {
    kind: [case for prefix in PREFIXES for case in CASES_BY_PREFIX[prefix][kind]]
    for kind in CASES_BY_PREFIX[b""]
}
ALL_CASES = [case for cases in CASES.values() for case in cases]


def _named(kind: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", CASES[kind], ids=[case.name for case in CASES[kind]])


def both(
    public_key: bytes, signature: bytes, body: bytes, prefix: bytes = TX_SIGNATURE_DOMAIN
) -> tuple[bool, bool]:
    """(libsodium's verdict, the compiled library's verdict) on one signature of prefix + body."""
    libsodium = ed25519.verifies(public_key, signature, prefix + body)
    compiled = ed25519.verify_all([(public_key, signature, body)], prefix)[0]
    return libsodium, compiled


def _check(case: Case) -> None:
    libsodium, compiled = both(case.public_key, case.signature, case.body, case.prefix)
    assert compiled == libsodium, (
        f"{case.name}: libsodium {libsodium}, compiled {compiled}: public key "
        f"{case.public_key.hex()}, signature {case.signature.hex()}, prefix {case.prefix!r}, "
        f"body {case.body!r}"
    )
    assert libsodium is case.accept, case.name


def test_the_suite_runs_the_compiled_checks() -> None:
    """make install builds the library: the suite tests what runs."""
    assert ed25519.active(), ed25519.status()


def test_the_reference_arithmetic_is_libsodiums() -> None:
    """The vectors' helper computes what libsodium computes, and finds libsodium's 7 y spellings."""
    for scalar in (1, 2, 8, NONCE, ed.L - 1):
        expected = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(_s(scalar))
        assert ed.encode(ed.multiply(scalar, ed.BASE)) == expected
    assert ed.encode(ed.add(A_POINT, R_POINT)) == nacl.bindings.crypto_core_ed25519_add(
        A_PRIME, R_PRIME
    )
    assert sorted(ed.order(point) for point in ed.TORSION) == [1, 2, 4, 4, 8, 8, 8, 8]
    assert len({ed.encode(point) for point in ed.TORSION}) == 8
    assert len({_y_and_sign(spelling)[0] for spelling in SMALL_ORDER_SPELLINGS}) == 7
    assert not nacl.bindings.crypto_core_ed25519_is_valid_point(ed.encode(ed.TORSION[1]))
    assert nacl.bindings.crypto_core_ed25519_is_valid_point(A_PRIME)


@pytest.mark.parametrize("case", ALL_CASES, ids=[case.name for case in ALL_CASES])
def test_each_vector_satisfies_the_equation_it_is_built_for(case: Case) -> None:
    """So a rejection is the rule under test's, not an accident of a broken vector."""
    message = case.prefix + case.body
    exact = ed.cofactorless_holds(case.public_key, case.signature, message)
    cofactored = ed.cofactored_holds(case.public_key, case.signature, message)
    holds = "exact" if exact else "cofactored" if cofactored else "neither"
    assert holds == case.holds
    assert not exact or cofactored


@_named("valid")
def test_valid_signatures_are_accepted(case: Case) -> None:
    _check(case)


@_named("domain")
def test_a_signature_under_the_other_prefix_is_refused(case: Case) -> None:
    _check(case)


@_named("s")
def test_non_canonical_s_is_refused(case: Case) -> None:
    """S + n L satisfies the equation; libsodium refuses any S >= L."""
    _check(case)


@_named("small-A")
def test_small_order_public_keys_are_refused(case: Case) -> None:
    """Every spelling of a point of order 1, 2, 4 or 8, with a signature whose equation holds."""
    _check(case)


@_named("small-R")
def test_small_order_r_is_refused(case: Case) -> None:
    """Every spelling of a small-order R, A valid (mixed order) and the equation holding."""
    _check(case)


@_named("non-canonical-A")
def test_non_canonical_public_keys_are_refused(case: Case) -> None:
    """y + p spellings of points on the curve (y + p for y = 0 and 1 are small-order keys)."""
    _check(case)


@_named("non-canonical-R")
def test_non_canonical_r_is_refused(case: Case) -> None:
    _check(case)


@_named("mixed-A")
def test_mixed_order_public_keys_verify_by_the_cofactorless_equation(case: Case) -> None:
    """A = aB + T: accepted when [S]B - [k]A is R exactly, refused when off by a torsion point."""
    _check(case)


@_named("mixed-R")
def test_mixed_order_r_verifies_by_the_cofactorless_equation(case: Case) -> None:
    """R = rB + T: accepted when [S]B - [k]A is R exactly, refused when off by a torsion point."""
    _check(case)


@_named("off-curve-A")
def test_public_keys_off_the_curve_are_refused(case: Case) -> None:
    _check(case)


@_named("length")
def test_wrong_lengths_are_refused_without_raising(case: Case) -> None:
    _check(case)


@pytest.mark.parametrize("with_wrong_lengths", [True, False], ids=["wrong-lengths", "well-formed"])
@pytest.mark.parametrize("prefix", PREFIXES, ids=["no-prefix", "tx-domain"])
def test_a_mixed_batch_gets_libsodiums_verdict_item_by_item(
    prefix: bytes, with_wrong_lengths: bool
) -> None:
    """One call over every vector and more valid ones in random order: offsets and prefix."""
    batch = [
        case
        for kind, cases in CASES_BY_PREFIX[prefix].items()
        if with_wrong_lengths or kind != "length"
        for case in cases
    ]
    for n in range(24):
        body = LONG_BODY[: n * 419 % 10_001] if n % 3 else b""
        signature = NACL_KEY.sign(prefix + body).signature
        batch.append(Case(f"extra-{n}", NACL_PUBLIC, signature, body, prefix, True, "exact"))
    random.Random(len(batch) + len(prefix)).shuffle(batch)
    verdicts = ed25519.verify_all([(c.public_key, c.signature, c.body) for c in batch], prefix)
    libsodium = [ed25519.verifies(c.public_key, c.signature, prefix + c.body) for c in batch]
    disagreements = [c.name for c, v, s in zip(batch, verdicts, libsodium, strict=True) if v != s]
    assert not disagreements
    assert libsodium == [case.accept for case in batch]
    assert sum(verdicts) >= 30


def test_an_empty_batch_has_no_verdicts() -> None:
    assert ed25519.verify_all([], TX_SIGNATURE_DOMAIN) == []


MUTATION_BASES = [
    case
    for case in ALL_CASES
    if case.accept and ("short" in case.name or "T1" in case.name or "T4" in case.name)
]
"""Valid triples to mutate: ordinary keys, and mixed-order A and R whose torsion cancels."""


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(MUTATION_BASES),
    changes=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2**16),
            st.one_of(st.sampled_from([1 << bit for bit in range(8)]), st.integers(1, 255)),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_signatures_get_libsodiums_verdict(
    base: Case, changes: list[tuple[int, int]]
) -> None:
    """Flipped bits or bytes anywhere in key, signature or body: refused by both, unless undone."""
    original = base.public_key + base.signature + base.body
    mutated = bytearray(original)
    for position, mask in changes:
        mutated[position % len(mutated)] ^= mask
    key, signature, body = bytes(mutated[:32]), bytes(mutated[32:96]), bytes(mutated[96:])
    libsodium, compiled = both(key, signature, body, base.prefix)
    assert compiled == libsodium, (base.name, key.hex(), signature.hex(), body.hex())
    assert libsodium is (bytes(mutated) == original)
