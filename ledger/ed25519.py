"""Ed25519 signature checks, with exactly libsodium's acceptance set.

The set is the contract: an auditor in another language must agree with every sealed block, and
libsodium's rules are the strict ones (RFC 8032 checks plus the refusal of small-order keys and
R values, and of non-canonical S and keys). Two implementations give the same verdicts:

- ``verifies``, one signature through libsodium itself (PyNaCl): seals, cosignatures, proofs;
- ``verify_all``, many signatures in one call: the verify stage and the witnesses, where every
  transaction's signature is checked. It runs ``native/ed25519``, a small Rust library that takes
  libsodium's steps in libsodium's order on curve25519-dalek's arithmetic (30 µs a signature here
  against libsodium's 52, BENCHMARKS.md), with the GIL released for the whole batch. Its
  equivalence with libsodium is tested on crafted small-order, mixed-order and non-canonical
  vectors (tests/ledger/test_ed25519.py).

The rules are those of libsodium's releases up to 1.0.20 (PyNaCl 1.6.2 bundles 1.0.20), which
check the equation without the cofactor. libsodium's unreleased master checks it with the
cofactor and would accept signatures whose error is a small-order point: a PyNaCl built on that
fails the equivalence tests, and adopting it would change the contract for every auditor.

``make install`` builds the library (``infra/build_native.py``, with cargo) into ``BUILD_DIR``
with a manifest of its sources' SHA-256; it is loaded only while they match, like the modules of
``ledger.native``. Without it (no build, a stale one, ``LEDGER_NATIVE=0``), ``verify_all`` asks
libsodium for each signature: the same verdicts, slower.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import json
import os
import sysconfig
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

public_key_bytes: Final = 32
signature_bytes: Final = 64

public_key_cache_max_count: Final = 4_096
"""Loaded public keys kept for single checks: loading one costs about a microsecond, and the
number of keys that sign is small (payment systems, admins, sealers, witnesses)."""

SOURCE_ROOT: Final = Path(__file__).resolve().parent.parent
CRATE_DIR: Final = SOURCE_ROOT / "native" / "ed25519"
CRATE_SOURCES: Final = ("Cargo.toml", "Cargo.lock", "src/lib.rs")
BUILD_DIR: Final = SOURCE_ROOT / ".build" / "ed25519"
LIBRARY: Final = BUILD_DIR / "libledger_ed25519.so"
MANIFEST: Final = BUILD_DIR / "manifest.json"
ABI_VERSION: Final = 1
"""``ledger_ed25519_abi_version()`` of the library this module can call."""


@functools.lru_cache(maxsize=public_key_cache_max_count)
def _verify_key(public_key: bytes) -> VerifyKey:
    return VerifyKey(public_key)


def verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``; never raises.

    libsodium (PyNaCl) is twice OpenSSL's rate on this project's machines and the stricter of
    the two, so every signature admitted here also verifies with ``cryptography`` offline.
    """
    if len(public_key) != public_key_bytes or len(signature) != signature_bytes:
        return False
    try:
        _verify_key(public_key).verify(message, signature)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


def expected_manifest() -> dict[str, object]:
    """The manifest of a build of the crate as it is now."""
    return {
        "platform": sysconfig.get_platform(),
        "abi_version": ABI_VERSION,
        "sources": {
            name: hashlib.sha256((CRATE_DIR / name).read_bytes()).hexdigest()
            for name in CRATE_SOURCES
        },
    }


_Batch = Callable[..., int]


def _load() -> tuple[_Batch | None, str]:
    """The library's batch function and a status line, or None and why it is not used."""
    if os.environ.get("LEDGER_NATIVE", "1") == "0":
        return None, "libsodium: compiled checks turned off (LEDGER_NATIVE=0)"
    try:
        manifest = json.loads(MANIFEST.read_text("utf-8"))
    except FileNotFoundError:
        return None, "libsodium: compiled checks not built (make install builds them)"
    except (OSError, ValueError) as exc:
        return None, f"libsodium: unreadable manifest {MANIFEST}: {exc}"
    if manifest != expected_manifest():
        return None, "libsodium: compiled checks are stale (make install rebuilds them)"
    try:
        library = ctypes.CDLL(str(LIBRARY))  # CDLL, not PyDLL: calls release the GIL
        version = library.ledger_ed25519_abi_version()
    except (OSError, AttributeError) as exc:
        return None, f"libsodium: cannot load {LIBRARY}: {exc}"
    if version != ABI_VERSION:
        return None, f"libsodium: {LIBRARY} has ABI {version}, this module calls {ABI_VERSION}"
    batch = library.ledger_ed25519_verify_batch
    batch.argtypes = [
        ctypes.c_char_p,  # items: public key and signature, 96 bytes each
        ctypes.c_size_t,  # count
        ctypes.c_char_p,  # bodies, joined
        ctypes.c_size_t,
        ctypes.c_void_p,  # ends: uint64 per item
        ctypes.c_char_p,  # prefix
        ctypes.c_size_t,
        ctypes.c_void_p,  # verdicts: one byte per item
    ]
    batch.restype = ctypes.c_int
    return batch, "compiled (native/ed25519, curve25519-dalek)"


_batch, _status = _load()


def status() -> str:
    """Which implementation ``verify_all`` runs, in one line."""
    return _status


def active() -> bool:
    return _batch is not None


def verify_all(items: Sequence[tuple[bytes, bytes, bytes]], prefix: bytes = b"") -> list[bool]:
    """Per (public key, signature, body): whether the signature signs ``prefix`` + body.

    The verdicts are ``verifies``'s, for any bytes (wrong sizes included); the compiled library
    gives them in one call, which releases the GIL, so threads check batches in parallel.
    """
    if _batch is None:
        return [verifies(key, signature, prefix + body) for key, signature, body in items]
    well_formed = [
        len(key) == public_key_bytes and len(signature) == signature_bytes
        for key, signature, _ in items
    ]
    if all(well_formed):
        return list(map(bool, _compiled_verdicts(items, prefix)))
    checked = [item for item, ok in zip(items, well_formed, strict=True) if ok]
    compiled = iter(_compiled_verdicts(checked, prefix))
    return [bool(next(compiled)) if ok else False for ok in well_formed]


def _compiled_verdicts(items: Sequence[tuple[bytes, bytes, bytes]], prefix: bytes) -> bytearray:
    assert _batch is not None
    count = len(items)
    verdicts = bytearray(count)
    if not count:
        return verdicts
    keys_and_signatures = b"".join(key + signature for key, signature, _ in items)
    bodies = [body for _, _, body in items]
    joined = b"".join(bodies)
    ends = array("Q", itertools.accumulate(map(len, bodies)))
    result = _batch(
        keys_and_signatures,
        count,
        joined,
        len(joined),
        (ctypes.c_uint64 * count).from_buffer(ends),
        prefix,
        len(prefix),
        (ctypes.c_char * count).from_buffer(verdicts),
    )
    if result != 0:
        raise RuntimeError(f"ledger_ed25519_verify_batch refused its arguments ({result})")
    return verdicts
