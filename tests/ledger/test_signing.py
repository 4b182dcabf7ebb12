"""ledger.signing: signatures over exact bytes, tampering, key ids and encrypted key files."""

from __future__ import annotations

import dataclasses
import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import codec, ed25519, limits, signing
from ledger.errors import KeyFileError, SignatureError
from ledger.model import Attest, Posting, Transfer, TxBody
from ledger.signing import Signer

# RFC 8032, section 7.1, TEST 2: a one-byte message.
RFC8032_SECRET = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC8032_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC8032_MESSAGE = bytes.fromhex("72")
RFC8032_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)

SIGNER = Signer.from_private_bytes(RFC8032_SECRET)
BODY = TxBody(
    tx_id=bytes(16),
    ledger="main",
    created_at_ms=1_000,
    expires_at_ms=61_000,
    op=Transfer((Posting("alice", "EUR", -100), Posting("bob", "EUR", 100))),
)
BODY_BYTES = codec.encode_tx_body(BODY)
PASSPHRASE = b"correct horse battery staple"


def test_key_id_is_hex_of_the_first_16_bytes_of_sha256() -> None:
    """key_id is the lowercase hex of SHA-256(public key)[:16], checked on a known digest."""
    assert signing.key_id(bytes(32)) == "66687aadf862bd776c8fc18b8e9f8e20"
    assert signing.key_id(RFC8032_PUBLIC) == hashlib.sha256(RFC8032_PUBLIC).hexdigest()[:32]


def test_signer_matches_rfc8032_vector() -> None:
    """A signer from the RFC 8032 secret has its public key and signs the message identically."""
    assert SIGNER.public_key == RFC8032_PUBLIC
    assert SIGNER.key_id == signing.key_id(RFC8032_PUBLIC)
    assert SIGNER.sign_message(RFC8032_MESSAGE) == RFC8032_SIGNATURE
    assert signing.message_signature_ok(RFC8032_PUBLIC, RFC8032_SIGNATURE, RFC8032_MESSAGE)


def test_signature_covers_domain_and_exact_body_bytes() -> None:
    """sign_body signs b"ledger.v1.tx\\x00" + body, checked with cryptography directly."""
    envelope = SIGNER.sign_body(BODY_BYTES)
    assert envelope.body is BODY_BYTES and envelope.public_key == RFC8032_PUBLIC
    public_key = Ed25519PublicKey.from_public_bytes(RFC8032_PUBLIC)
    public_key.verify(envelope.signature, b"ledger.v1.tx\x00" + BODY_BYTES)  # raises if wrong
    signing.verify_envelope(envelope)


def test_a_raw_signature_of_the_body_is_not_a_transaction_signature() -> None:
    """Domain separation: a signature of the body without the prefix does not verify."""
    undomained = SIGNER.sign_message(BODY_BYTES)
    assert not signing.signature_ok(SIGNER.public_key, undomained, BODY_BYTES)


def test_sign_returns_a_decodable_verified_envelope() -> None:
    """Signer.sign encodes body and envelope; the result decodes and verifies."""
    envelope, body = codec.decode_submission(SIGNER.sign(BODY))
    assert body == BODY and envelope.body == BODY_BYTES and envelope.body_version == 1
    signing.verify_envelope(envelope)


def test_verification_never_re_encodes() -> None:
    """The signature covers the bytes as received: other bytes of an equal value do not verify."""
    envelope = SIGNER.sign_body(BODY_BYTES)
    other_spelling = BODY_BYTES[:-1] + b"\x80\x00"  # external_ref's null branch, overlong
    assert not signing.signature_ok(envelope.public_key, envelope.signature, other_spelling)


@given(st.sampled_from(["body", "signature", "public_key"]), st.data())
@settings(max_examples=200)
def test_any_flipped_bit_fails(field: str, data: st.DataObject) -> None:
    """Flipping any bit of the body, the signature or the public key fails verification."""
    envelope = SIGNER.sign_body(BODY_BYTES)
    value: bytes = getattr(envelope, field)
    bit = data.draw(st.integers(min_value=0, max_value=len(value) * 8 - 1))
    flipped = bytearray(value)
    flipped[bit // 8] ^= 1 << (bit % 8)
    changes: dict[str, Any] = {field: bytes(flipped)}
    tampered = dataclasses.replace(envelope, **changes)
    assert not signing.signature_ok(tampered.public_key, tampered.signature, tampered.body)
    with pytest.raises(SignatureError, match="does not verify"):
        signing.verify_envelope(tampered)


def test_another_key_fails() -> None:
    """A valid signature presented with another signer's public key fails."""
    envelope = SIGNER.sign_body(BODY_BYTES)
    assert not signing.signature_ok(Signer.generate().public_key, envelope.signature, BODY_BYTES)


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        (b"\x00" * 31, b"\x00" * 64),
        (b"\x00" * 33, b"\x00" * 64),
        (RFC8032_PUBLIC, b"\x00" * 63),
        (RFC8032_PUBLIC, b""),
        (b"\xff" * 32, b"\x00" * 64),  # not a point on the curve
        (b"\x00" * 32, b"\x00" * 64),  # a small-order point
    ],
)
def test_malformed_keys_and_signatures_fail_without_raising(
    public_key: bytes, signature: bytes
) -> None:
    """Wrong lengths and invalid points make signature_ok False; it never raises."""
    assert not signing.signature_ok(public_key, signature, BODY_BYTES)


def test_public_key_cache_is_bounded() -> None:
    """Loaded public keys are cached, at most public_key_cache_max_count of them."""
    ed25519._verify_key.cache_clear()
    for _ in range(3):
        assert signing.signature_ok(*_signed_triple())
    info = ed25519._verify_key.cache_info()
    assert info.maxsize == ed25519.public_key_cache_max_count
    assert 1 <= info.currsize <= ed25519.public_key_cache_max_count


def _signed_triple() -> tuple[bytes, bytes, bytes]:
    envelope = SIGNER.sign_body(BODY_BYTES)
    return envelope.public_key, envelope.signature, envelope.body


def test_new_tx_id_is_16_fresh_bytes() -> None:
    """new_tx_id returns 16 bytes, different every time."""
    tx_ids = {signing.new_tx_id() for _ in range(100)}
    assert len(tx_ids) == 100 and all(len(tx_id) == 16 for tx_id in tx_ids)


def test_build_tx_body_sets_the_validity_window() -> None:
    """build_tx_body starts the window at now_ms, ends it validity_ms later, picks a tx_id."""
    body = signing.build_tx_body("main", Attest(bytes(32)), now_ms=5_000, validity_ms=1_000)
    assert (body.created_at_ms, body.expires_at_ms, len(body.tx_id)) == (5_000, 6_000, 16)
    with pytest.raises(ValueError, match="validity_ms"):
        signing.build_tx_body(
            "main", Attest(bytes(32)), validity_ms=limits.validity_window_ms_max + 1
        )


# ---- keys at rest ----------------------------------------------------------------------------


def test_key_file_round_trip(tmp_path: Path) -> None:
    """A saved key is encrypted, mode 0600, alone in its directory, and loads back the same."""
    path = tmp_path / "admin.key"
    signing.save_private_key(path, SIGNER, PASSPHRASE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = signing.load_private_key(path, PASSPHRASE)
    assert loaded.public_key == SIGNER.public_key
    assert loaded.sign_message(RFC8032_MESSAGE) == RFC8032_SIGNATURE
    assert [entry.name for entry in tmp_path.iterdir()] == ["admin.key"]  # no temporary left


def test_wrong_passphrase_is_a_key_file_error(tmp_path: Path) -> None:
    """Loading with the wrong passphrase raises KeyFileError saying so."""
    path = tmp_path / "admin.key"
    signing.save_private_key(path, SIGNER, PASSPHRASE)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        signing.load_private_key(path, b"not it")


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    """An existing key file is kept unless overwrite=True; then it is replaced, still 0600."""
    path = tmp_path / "admin.key"
    signing.save_private_key(path, SIGNER, PASSPHRASE)
    other = Signer.generate()
    with pytest.raises(KeyFileError, match="already exists"):
        signing.save_private_key(path, other, PASSPHRASE)
    assert signing.load_private_key(path, PASSPHRASE).public_key == SIGNER.public_key
    path.chmod(0o644)
    signing.save_private_key(path, other, PASSPHRASE, overwrite=True)
    assert signing.load_private_key(path, PASSPHRASE).public_key == other.public_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_into_a_missing_directory_is_a_key_file_error(tmp_path: Path) -> None:
    """A key file that cannot be created raises KeyFileError naming the path."""
    with pytest.raises(KeyFileError, match="cannot write"):
        signing.save_private_key(tmp_path / "missing" / "admin.key", SIGNER, PASSPHRASE)


def test_an_empty_passphrase_is_refused(tmp_path: Path) -> None:
    """Keys at rest are always encrypted: an empty passphrase is a ValueError, no file written."""
    with pytest.raises(ValueError, match="passphrase"):
        signing.save_private_key(tmp_path / "k", SIGNER, b"")
    assert not (tmp_path / "k").exists()


def _pem(private_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey, encrypted: bool) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(PASSPHRASE)
        if encrypted
        else serialization.NoEncryption()
    )
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no key file"),
        (b"hello\n", "not a key file"),
        (b"", "not a key file"),
        (_pem(Ed25519PrivateKey.generate(), encrypted=False), "in the clear"),
        (_pem(ec.generate_private_key(ec.SECP256R1()), encrypted=True), "not an Ed25519 key"),
        (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "wrong passphrase, or the key file is damaged",
        ),
    ],
)
def test_unloadable_key_files_say_why(tmp_path: Path, content: bytes | None, reason: str) -> None:
    """Missing, foreign, clear-text, non-Ed25519 or damaged files raise KeyFileError with a reason."""
    path = tmp_path / "some.key"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError, match=reason) as caught:
        signing.load_private_key(path, PASSPHRASE)
    assert str(path) in str(caught.value)
