"""The encryption of a confidential part: one content key, wrapped for each recipient.

``encrypt`` (the steps ``decrypt`` undoes, in reverse):

1. a random 32-byte content key; ciphertext = ChaCha20-Poly1305(content key, plaintext,
   aad = ``CONTENT_DOMAIN`` + context);
2. one ephemeral X25519 key for the transaction, its public half stored once;
3. per recipient (an Ed25519 public key, converted by ``ledger.confidential.keys``): shared =
   X25519(ephemeral, recipient), KEK = HKDF-SHA256(shared, salt = ephemeral public key ||
   recipient X25519 public key, info = ``KEK_INFO``), wrapped key = ChaCha20-Poly1305(KEK,
   content key, aad = ``WRAP_DOMAIN`` + context), named by the recipient's key_id.

The context is the transaction's tx_id (16 bytes) and ledger name: a ciphertext or wrapped key
copied into another transaction does not open there. Every nonce is zero because every key
encrypts exactly one message: the content key is new for each transaction, and a KEK is unique
to its ephemeral key and recipient. A random nonce would cost 12 bytes per ciphertext in a
4 KiB envelope and protect nothing (age wraps its file keys the same way).

One ephemeral key serves all recipients of a transaction: each KEK still differs (each
recipient's key enters both the exchange and the HKDF salt), and a transaction carries 32
bytes per recipient less. The X25519 exchange refuses an all-zero result, so an ephemeral key
of small order cannot make the KEK public.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.confidential.keys import x25519_public_key
from ledger.errors import ConfidentialError
from ledger.model import Confidential, Recipient
from ledger.signing import key_id

CONTENT_DOMAIN: Final = b"ledger.v1.confidential.content\x00"
"""Prefix of the ciphertext's associated data."""

WRAP_DOMAIN: Final = b"ledger.v1.confidential.key\x00"
"""Prefix of each wrapped key's associated data: a wrapped key never passes as a ciphertext."""

KEK_INFO: Final = b"ledger.v1.confidential"
"""HKDF's info: KEKs of this scheme are never keys of anything else."""

_zero_nonce: Final = bytes(12)
"""ChaCha20-Poly1305's nonce, for keys that encrypt one message each (module docstring)."""


def context(tx_id: bytes, ledger: str) -> bytes:
    """What every ciphertext of a transaction is bound to: its tx_id (fixed 16 bytes) and ledger."""
    return tx_id + ledger.encode("utf-8")


def encrypt(
    plaintext: bytes, commitment: bytes, bound_to: bytes, recipients: Sequence[bytes]
) -> Confidential:
    """``plaintext`` encrypted to each Ed25519 public key in ``recipients`` (step list above);
    RecipientKeyError names a key that cannot receive."""
    recipient_keys = [(key_id(key), x25519_public_key(key)) for key in recipients]
    content_key = ChaCha20Poly1305.generate_key()
    ciphertext = ChaCha20Poly1305(content_key).encrypt(
        _zero_nonce, plaintext, CONTENT_DOMAIN + bound_to
    )
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    wrapped = []
    for name, recipient_public in recipient_keys:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
        key_encryption_key = _kek(shared, ephemeral_public, recipient_public)
        wrapped_key = ChaCha20Poly1305(key_encryption_key).encrypt(
            _zero_nonce, content_key, WRAP_DOMAIN + bound_to
        )
        wrapped.append(Recipient(name, wrapped_key))
    return Confidential(ephemeral_public, tuple(wrapped), commitment, ciphertext)


def decrypt(
    confidential: Confidential,
    recipient: Recipient,
    bound_to: bytes,
    private_key: X25519PrivateKey,
) -> bytes:
    """The plaintext of ``confidential``, opened through its entry ``recipient`` with that key's
    X25519 ``private_key``. ConfidentialError when the wrapped key or the ciphertext does not
    open (altered, or not encrypted to this key after all). The commitment is the caller's to
    check."""
    name = recipient.key_id
    ephemeral_public = confidential.ephemeral_public_key
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError as exc:  # an all-zero shared secret: the ephemeral key has small order
        raise ConfidentialError("the ephemeral key has small order: nothing to open") from exc
    own_public = private_key.public_key().public_bytes_raw()
    key_encryption_key = _kek(shared, ephemeral_public, own_public)
    try:
        content_key = ChaCha20Poly1305(key_encryption_key).decrypt(
            _zero_nonce, recipient.wrapped_key, WRAP_DOMAIN + bound_to
        )
    except InvalidTag as exc:
        raise ConfidentialError(
            f"the content key wrapped for key {name} does not open: altered, or wrapped for "
            "another key under this key's name"
        ) from exc
    try:
        return ChaCha20Poly1305(content_key).decrypt(
            _zero_nonce, confidential.ciphertext, CONTENT_DOMAIN + bound_to
        )
    except InvalidTag as exc:
        raise ConfidentialError("the ciphertext does not open: it was altered") from exc


def _kek(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral_public + recipient_public,
        info=KEK_INFO,
    ).derive(shared)
