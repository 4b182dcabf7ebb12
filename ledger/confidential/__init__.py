"""Confidential fields: a transaction's memo, external_ref and metadata readable by named keys only.

The author moves the three fields out of the clear body into ``TxBody.confidential`` (body
version 3) before signing; the ledger seals it like any other transaction, never decrypting
anything, so the chain, Merkle proofs and views keep working. Amounts, accounts, the signer and
the recipients' key ids stay public. docs/confidential.md has the design and threat model.

- ``make_confidential(body, recipients)``: the body with its fields encrypted to the Ed25519
  public keys ``recipients`` (the parties, and any auditor they name: include your own key to
  read it back). Steps: 32 random salt bytes + the fields as Avro (``ConfidentialFields``) are
  the plaintext; its commitment is SHA-256(``COMMITMENT_DOMAIN`` + plaintext); the plaintext
  is encrypted once and its key wrapped for each recipient (``ledger.confidential.encryption``)
  to the X25519 key derived from theirs (``ledger.confidential.keys``).
- ``open_confidential(body, signer)``: the fields, for a recipient holding its key file.
- ``reveal(body, signer)`` and ``check_reveal(body, revealed)``: a recipient hands the plaintext
  to a third party that holds no key (a court, an auditor nobody named); the third party checks
  it against the commitment the body carries, and the body against the chain with a proof.

Opening checks the commitment after decrypting: ChaCha20-Poly1305 does not commit to its key,
so without it a dishonest author could wrap different content keys under which one ciphertext
opens to different plaintexts for different recipients; with it, signed in the body, every
recipient and every checker of a reveal sees the same fields or an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Final

from ledger import codec, limits
from ledger.confidential import encryption
from ledger.errors import ConfidentialError, DecodeError, NotARecipient, RecipientKeyError
from ledger.model import NO_METADATA, Confidential, ConfidentialFields, TxBody
from ledger.signing import Signer, key_id

COMMITMENT_DOMAIN: Final = b"ledger.v1.confidential.commitment\x00"
"""Prefix of the committed bytes: the commitment is no hash of anything else."""

salt_bytes: Final = 32
"""Random bytes before the fields: a memo that can be guessed ("rent", an invoice number
counted up) cannot be confirmed by hashing guesses against the public commitment."""

__all__ = [
    "COMMITMENT_DOMAIN",
    "check_reveal",
    "commitment",
    "make_confidential",
    "open_confidential",
    "reveal",
]


def commitment(plaintext: bytes) -> bytes:
    """SHA-256(``COMMITMENT_DOMAIN`` + the ConfidentialFields bytes ``plaintext``)."""
    return hashlib.sha256(COMMITMENT_DOMAIN + plaintext).digest()


def make_confidential(body: TxBody, recipients: Sequence[bytes]) -> TxBody:
    """``body`` with its memo, external_ref and metadata encrypted to ``recipients`` (Ed25519
    public keys, no key twice) and cleared from the clear fields; sign the result as usual.

    ConfidentialError when the body is confidential already or has none of the three fields;
    RecipientKeyError for a key that cannot receive, a key given twice, or a count outside 1 to
    ``limits.confidential_recipients_max_count``; codec.EncodeError for fields over the limits.
    """
    if body.confidential is not None:
        raise ConfidentialError("the body is confidential already")
    fields = ConfidentialFields(body.memo, body.external_ref, body.metadata)
    if fields.memo is None and fields.external_ref is None and not fields.metadata:
        raise ConfidentialError(
            "nothing to encrypt: the body has no memo, external_ref or metadata"
        )
    _check_recipients(recipients)
    plaintext = codec.encode_confidential_fields(os.urandom(salt_bytes), fields)
    confidential = encryption.encrypt(
        plaintext, commitment(plaintext), encryption.context(body.tx_id, body.ledger), recipients
    )
    return dataclasses.replace(
        body, memo=None, external_ref=None, metadata=NO_METADATA, confidential=confidential
    )


def _check_recipients(recipients: Sequence[bytes]) -> None:
    count_max = limits.confidential_recipients_max_count
    if not 1 <= len(recipients) <= count_max:
        raise RecipientKeyError(
            f"{len(recipients)} recipients: a confidential part names 1 to {count_max} keys"
        )
    names = [key_id(key) for key in recipients]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise RecipientKeyError(f"key {twice} is named twice")


def open_confidential(body: TxBody, signer: Signer) -> ConfidentialFields:
    """The fields of ``body``'s confidential part, for the recipient ``signer``.

    NotARecipient when they are not encrypted to its key; ConfidentialError when they do not
    open or do not match the commitment (altered), or ``body`` has no confidential part.
    """
    return check_reveal(body, _decrypt(body, signer))


def reveal(body: TxBody, signer: Signer) -> bytes:
    """The plaintext of ``body``'s confidential part (its salt and fields, as committed to), for
    a third party to check with ``check_reveal``; raises as ``open_confidential``."""
    plaintext = _decrypt(body, signer)
    check_reveal(body, plaintext)
    return plaintext


def check_reveal(body: TxBody, revealed: bytes) -> ConfidentialFields:
    """The fields in ``revealed`` when it is the plaintext ``body`` commits to; needs no key.
    ConfidentialError otherwise. Check ``body`` against the chain first (``ledger verify-proof``
    or ``ledger.proofs``): the commitment is only as good as the body it is read from."""
    confidential = _confidential(body)
    if not hmac.compare_digest(commitment(revealed), confidential.commitment):
        raise ConfidentialError(
            f"the plaintext does not match the commitment of tx {body.tx_id.hex()}"
        )
    try:
        _, fields = codec.decode_confidential_fields(revealed)
    except DecodeError as exc:  # committed to by its author, yet not ConfidentialFields
        raise ConfidentialError(f"the committed plaintext does not decode: {exc}") from exc
    return fields


def _decrypt(body: TxBody, signer: Signer) -> bytes:
    confidential = _confidential(body)
    recipient = next(
        (entry for entry in confidential.recipients if entry.key_id == signer.key_id), None
    )
    if recipient is None:
        raise NotARecipient(
            f"key {signer.key_id} is not a recipient of tx {body.tx_id.hex()} (its confidential "
            f"fields are encrypted to {', '.join(confidential.key_ids())})"
        )
    return encryption.decrypt(
        confidential,
        recipient,
        encryption.context(body.tx_id, body.ledger),
        signer.x25519_private_key(),
    )


def _confidential(body: TxBody) -> Confidential:
    if body.confidential is None:
        raise ConfidentialError(f"tx {body.tx_id.hex()} has no confidential fields")
    return body.confidential
