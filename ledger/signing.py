"""Ed25519 signatures over the exact bytes of a transaction body, and keys at rest.

signature = Ed25519(private key, ``TX_SIGNATURE_DOMAIN`` + body bytes). Verifiers check the body
bytes they received and never re-encode: two encoders may disagree, a signature may not. An
envelope may carry further signatures over the same body bytes (cosigners, for account policies
that need several keys): ``Signer.sign(body, cosigners=...)`` signs with several keys at once,
``add_signature`` adds one to an envelope signed elsewhere (signatures collected offline).
Private keys live in PKCS#8 PEM files encrypted with a passphrase.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ledger import codec, ed25519, limits
from ledger.errors import KeyFileError, SignatureError, SigningError
from ledger.model import NO_METADATA, Cosigner, Envelope, Operation, TxBody

TX_SIGNATURE_DOMAIN: Final = b"ledger.v1.tx\x00"
"""Prefix of every signed body, so a transaction signature can never pass as another message's."""

public_key_bytes: Final = ed25519.public_key_bytes
signature_bytes: Final = ed25519.signature_bytes
tx_id_bytes: Final = 16
private_key_bytes: Final = 32

_PEM_HEADER: Final = b"-----BEGIN "
_ENCRYPTED_PEM_HEADER: Final = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"

key_id_cache_count: Final = 4_096
"""Keys whose id is remembered: more than the signing keys a busy ledger sees at once."""

key_file_mode: Final = 0o600
"""Owner read and write only: the passphrase protects the key, the mode keeps it from others."""


@functools.lru_cache(maxsize=key_id_cache_count)
def key_id(public_key: bytes) -> str:
    """Lowercase hex of the first 16 bytes of SHA-256(public_key): how keys are named.

    Cached: every replayed transaction names its key, and a ledger has few keys (5 % of the
    sequencer's time went to hashing the same keys again).
    """
    return hashlib.sha256(public_key).digest()[:16].hex()


def new_tx_id() -> bytes:
    """16 random bytes from the operating system: a fresh idempotency key."""
    return os.urandom(tx_id_bytes)


class Signer:
    """An Ed25519 private key that signs transaction bodies (and, for a sealer, block hashes)."""

    __slots__ = ("_private_key", "public_key", "key_id")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key: Final = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id: Final = key_id(self.public_key)

    @classmethod
    def generate(cls) -> Signer:
        """A signer with a new random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, private_bytes: bytes) -> Signer:
        """A signer from the 32 raw bytes of an Ed25519 private key (a seed)."""
        if len(private_bytes) != private_key_bytes:
            raise ValueError(f"an Ed25519 private key is {private_key_bytes} bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(private_bytes))

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"

    def x25519_private_key(self) -> X25519PrivateKey:
        """The X25519 key that opens confidential fields encrypted to this key: the first 32
        bytes of SHA-512(seed), clamped, as libsodium's ``crypto_sign_ed25519_sk_to_curve25519``.
        Its public key is ``ledger.confidential.keys.x25519_public_key(self.public_key)``.

        Derived here rather than stored beside the key: the seed never leaves this object, and
        a party needs no second key file (docs/confidential.md argues the reuse)."""
        scalar = bytearray(hashlib.sha512(self._private_key.private_bytes_raw()).digest()[:32])
        scalar[0] &= 248  # RFC 7748 clamping, which X25519 applies anyway: the same bytes
        scalar[31] &= 127  # as libsodium's, so the two can be compared
        scalar[31] |= 64
        return X25519PrivateKey.from_private_bytes(bytes(scalar))

    def sign_message(self, message: bytes) -> bytes:
        """The raw Ed25519 signature of ``message``, no domain prefix: seals of block hashes."""
        return self._private_key.sign(message)

    def sign_body(
        self,
        body: bytes,
        body_version: int = codec.BASE_BODY_VERSION,
        *,
        cosigners: Sequence[Signer] = (),
    ) -> Envelope:
        """An envelope carrying ``body`` exactly as given, signed by this key (the submitting
        signer) and then by each of ``cosigners`` over the same bytes.

        SigningError, before anything is signed, when a key appears twice or there are more
        than ``limits.cosigners_max_count`` cosigners.
        """
        public_keys = [self.public_key, *(cosigner.public_key for cosigner in cosigners)]
        if len(set(public_keys)) != len(public_keys):
            twice = next(key for key in public_keys if public_keys.count(key) > 1)
            raise SigningError(f"key {key_id(twice)} is given twice; each key signs once")
        if len(cosigners) > limits.cosigners_max_count:
            raise SigningError(
                f"{len(cosigners)} cosigners: an envelope carries at most "
                f"{limits.cosigners_max_count} besides the submitting signer"
            )
        return Envelope(
            body=body,
            public_key=self.public_key,
            signature=self._private_key.sign(TX_SIGNATURE_DOMAIN + body),
            body_version=body_version,
            cosigners=tuple(cosigner.cosignature(body) for cosigner in cosigners),
        )

    def sign(self, tx_body: TxBody, *, cosigners: Sequence[Signer] = ()) -> bytes:
        """The encoded Envelope of ``tx_body`` signed by this key and then by ``cosigners``: a
        submission's message value (a plain Envelope without cosigners)."""
        return codec.encode_envelope(
            self.sign_body(
                codec.encode_tx_body(tx_body), codec.body_version_of(tx_body), cosigners=cosigners
            )
        )

    def cosignature(self, body: bytes) -> Cosigner:
        """This key's signature of ``body`` as a further signer of its envelope."""
        return Cosigner(self.public_key, self._private_key.sign(TX_SIGNATURE_DOMAIN + body))

    def encrypted_pem(self, passphrase: bytes) -> bytes:
        """The private key as PKCS#8 PEM, encrypted with ``passphrase``."""
        if not passphrase:
            raise ValueError("a key at rest needs a non-empty passphrase")
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )

    @classmethod
    def from_encrypted_pem(cls, pem: bytes, passphrase: bytes) -> Signer:
        """The signer in an encrypted PKCS#8 PEM; KeyFileError says why when it is not one."""
        if _ENCRYPTED_PEM_HEADER not in pem:
            if _PEM_HEADER in pem and b"PRIVATE KEY-----" in pem:
                raise KeyFileError("the key is stored in the clear; keys at rest must be encrypted")
            raise KeyFileError("not a key file (no encrypted PKCS#8 PEM private key in it)")
        try:
            private_key = serialization.load_pem_private_key(pem, password=passphrase)
        except (TypeError, ValueError) as exc:  # OpenSSL reports a bad decrypt as ValueError
            raise KeyFileError("wrong passphrase, or the key file is damaged") from exc
        except UnsupportedAlgorithm as exc:
            raise KeyFileError("the key uses an algorithm this build cannot read") from exc
        if not isinstance(private_key, Ed25519PrivateKey):
            raise KeyFileError("the key is not an Ed25519 key")
        return cls(private_key)


def save_private_key(
    path: Path | str, signer: Signer, passphrase: bytes, *, overwrite: bool = False
) -> None:
    """Write ``signer``'s key to ``path``, encrypted, readable by the owner only.

    1. write the key to a new temporary file beside ``path``, created with mode 0600 (never
       readable by others, not even for a moment), and fsync it;
    2. move it into place: a hard link refuses an existing ``path``, a rename replaces it when
       ``overwrite``; either way ``path`` holds the old key or the whole new one, never a part;
    3. fsync the directory, so the name survives a crash too.
    """
    pem = signer.encrypted_pem(passphrase)
    target = Path(path)
    if target.exists() and not overwrite:
        raise KeyFileError(f"{target} already exists; refusing to overwrite a key")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.unlink(missing_ok=True)  # left by a crashed process that had our pid
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, key_file_mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        if overwrite:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)
    except FileExistsError as exc:
        raise KeyFileError(f"{target} already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot write {target}: {exc.strerror}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_private_key(path: Path | str, passphrase: bytes) -> Signer:
    """The signer stored at ``path``; KeyFileError in one sentence when it cannot be loaded."""
    try:
        pem = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"no key file at {path}") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return Signer.from_encrypted_pem(pem, passphrase)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


message_signature_ok = ed25519.verifies
"""One signature over any message, by libsodium (``ledger.ed25519``): seals, cosignatures."""


def signature_ok(public_key: bytes, signature: bytes, body: bytes) -> bool:
    """Whether ``signature`` signs these exact ``body`` bytes: the verify stage's fast path."""
    return message_signature_ok(public_key, signature, TX_SIGNATURE_DOMAIN + body)


def bad_signer(envelope: Envelope) -> bytes | None:
    """The public key of the first signer (submitting one first, then the cosigners) whose
    signature does not cover the envelope's exact body bytes; None when every one does."""
    return bad_signers([envelope])[0]


def bad_signers(envelopes: Sequence[Envelope]) -> list[bytes | None]:
    """``bad_signer`` of each envelope, every signature checked in one ``ed25519.verify_all``
    call (compiled, GIL released): the verify stage's and the witnesses' path."""
    items: list[tuple[bytes, bytes, bytes]] = []
    for envelope in envelopes:
        items.append((envelope.public_key, envelope.signature, envelope.body))
        items += [(c.public_key, c.signature, envelope.body) for c in envelope.cosigners]
    verdicts = ed25519.verify_all(items, TX_SIGNATURE_DOMAIN)
    if len(verdicts) == len(envelopes):  # no cosigners: one signature each
        return [None if ok else key for ok, (key, _, _) in zip(verdicts, items, strict=True)]
    failed: list[bytes | None] = []
    position = 0
    for envelope in envelopes:
        keys = [envelope.public_key, *(cosigner.public_key for cosigner in envelope.cosigners)]
        oks = verdicts[position : position + len(keys)]
        position += len(keys)
        failed.append(next((key for key, ok in zip(keys, oks, strict=True) if not ok), None))
    return failed


def verify_envelope(envelope: Envelope) -> None:
    """Raise SignatureError unless every signature of the envelope covers its exact body."""
    public_key = bad_signer(envelope)
    if public_key is not None:
        raise SignatureError(f"signature by key {key_id(public_key)} does not verify over the body")


def add_signature(envelope: Envelope, signer: Signer) -> Envelope:
    """``envelope`` with ``signer``'s signature over the same body bytes added as a cosigner.

    Signatures collected offline: the submitting signer makes the envelope
    (``Signer.sign_body``), each further signer adds theirs with this function, in any order, and
    anyone publishes the result. Decode the body first (``codec.decode_tx_body(envelope.body,
    envelope.body_version)``) to see what you approve.

    1. every signature already on the envelope must cover its body, else SignatureError naming
       the first key that does not: a body changed after it was signed, or a forged signature,
       would get the envelope refused whoever else signs it, so it is found before signing;
    2. ``signer`` must not be among its signers, and the envelope must have room for one more
       cosigner (``limits.cosigners_max_count``), else SigningError.
    """
    verify_envelope(envelope)
    if signer.public_key in {public_key for public_key, _ in envelope.signers()}:
        raise SigningError(f"key {signer.key_id} already signed this envelope")
    if len(envelope.cosigners) >= limits.cosigners_max_count:
        raise SigningError(
            f"the envelope already carries {len(envelope.cosigners)} cosigners, the most it may "
            f"({limits.cosigners_max_count} besides the submitting signer)"
        )
    return dataclasses.replace(
        envelope, cosigners=(*envelope.cosigners, signer.cosignature(envelope.body))
    )


def build_tx_body(
    ledger: str,
    op: Operation,
    *,
    validity_ms: int = 60_000,
    now_ms: int | None = None,
    memo: str | None = None,
    external_ref: str | None = None,
    tx_id: bytes | None = None,
    metadata: Mapping[str, str] | None = None,
) -> TxBody:
    """A body valid from ``now_ms`` (default: the local clock) for ``validity_ms``, new tx_id."""
    if not 0 <= validity_ms <= limits.validity_window_ms_max:
        raise ValueError(f"validity_ms must be 0 to {limits.validity_window_ms_max}")
    created_at_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return TxBody(
        tx_id=new_tx_id() if tx_id is None else tx_id,
        ledger=ledger,
        created_at_ms=created_at_ms,
        expires_at_ms=created_at_ms + validity_ms,
        op=op,
        memo=memo,
        external_ref=external_ref,
        metadata=MappingProxyType(dict(metadata)) if metadata else NO_METADATA,
    )
