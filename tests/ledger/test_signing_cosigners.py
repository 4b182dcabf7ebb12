"""ledger.signing with several keys: signing at once, adding signatures one by one (offline), and
the refusals (a key twice, too many cosigners, an envelope whose signatures do not hold)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import codec, limits, signing
from ledger.errors import SignatureError, SigningError
from ledger.model import Cosigner, Envelope, Posting, Transfer, TxBody
from ledger.signing import Signer, add_signature

BODY = TxBody(
    tx_id=bytes(range(16)),
    ledger="main",
    created_at_ms=1_000,
    expires_at_ms=61_000,
    op=Transfer((Posting("treasury", "USD", -500_000), Posting("bob", "USD", 500_000))),
)
BODY_BYTES = codec.encode_tx_body(BODY)
SIGNERS = tuple(Signer.from_private_bytes(bytes([index + 1]) * 32) for index in range(9))
SUBMITTER, FIRST, SECOND = SIGNERS[:3]

seeds = st.lists(
    st.binary(min_size=32, max_size=32), min_size=1, max_size=limits.cosigners_max_count + 1
).filter(lambda items: len(set(items)) == len(items))


def test_without_cosigners_the_envelope_is_a_plain_one() -> None:
    """sign(body) with no cosigners is byte for byte what it was before multi-signature."""
    plain = SUBMITTER.sign(BODY)
    assert plain == SUBMITTER.sign(BODY, cosigners=())
    assert codec.decode_envelope(plain).cosigners == ()


def test_signing_with_several_keys_at_once() -> None:
    """Every key signs the same body bytes, the submitting one first, cosigners in order."""
    raw = SUBMITTER.sign(BODY, cosigners=[FIRST, SECOND])
    envelope, body = codec.decode_submission(raw)
    assert body == BODY and envelope.body == BODY_BYTES
    assert [key for key, _ in envelope.signers()] == [
        SUBMITTER.public_key,
        FIRST.public_key,
        SECOND.public_key,
    ]
    signing.verify_envelope(envelope)


def test_adding_signatures_one_by_one_equals_signing_at_once() -> None:
    """Ed25519 is deterministic: collected offline or at once, the envelope is the same."""
    collected = add_signature(add_signature(SUBMITTER.sign_body(BODY_BYTES), FIRST), SECOND)
    assert collected == SUBMITTER.sign_body(BODY_BYTES, cosigners=[FIRST, SECOND])
    assert codec.decode_envelope(codec.encode_envelope(collected)) == collected


@settings(max_examples=25, deadline=None)
@given(seeds)
def test_any_signers_collected_in_any_order_verify(private_keys: list[bytes]) -> None:
    """Any distinct keys, up to the maximum, added one at a time: every signature verifies and
    the envelope round-trips through its bytes."""
    submitter, *cosigners = (Signer.from_private_bytes(seed) for seed in private_keys)
    envelope = submitter.sign_body(BODY_BYTES)
    for cosigner in cosigners:
        envelope = add_signature(envelope, cosigner)
    signing.verify_envelope(envelope)
    assert len(envelope.cosigners) == len(cosigners)
    assert codec.decode_envelope(codec.encode_envelope(envelope)) == envelope


@pytest.mark.parametrize("who", ["submitting signer", "cosigner"])
def test_a_key_that_already_signed_is_refused(who: str) -> None:
    """Neither the submitting key nor a cosigner may sign a second time."""
    envelope = SUBMITTER.sign_body(BODY_BYTES, cosigners=[FIRST])
    again = SUBMITTER if who == "submitting signer" else FIRST
    with pytest.raises(SigningError, match=f"key {again.key_id} already signed"):
        add_signature(envelope, again)


def test_no_signature_past_the_maximum() -> None:
    """An envelope with the most cosigners it may carry takes no further one."""
    full = SUBMITTER.sign_body(BODY_BYTES, cosigners=SIGNERS[1 : 1 + limits.cosigners_max_count])
    assert len(full.cosigners) == limits.cosigners_max_count
    with pytest.raises(SigningError, match="at most|the most it may"):
        add_signature(full, SIGNERS[1 + limits.cosigners_max_count])


def test_signing_at_once_refuses_a_key_twice_and_too_many_keys() -> None:
    """The same checks when several keys sign at once, before anything is signed."""
    with pytest.raises(SigningError, match=f"key {FIRST.key_id} is given twice"):
        SUBMITTER.sign_body(BODY_BYTES, cosigners=[FIRST, FIRST])
    with pytest.raises(SigningError, match="given twice"):
        SUBMITTER.sign(BODY, cosigners=[SUBMITTER])
    with pytest.raises(SigningError, match="at most"):
        SUBMITTER.sign_body(BODY_BYTES, cosigners=SIGNERS[1:])


@pytest.mark.parametrize("damage", ["body", "submitting signature", "cosignature"])
def test_no_signature_is_added_to_an_envelope_that_does_not_verify(damage: str) -> None:
    """A changed body or a bad signature already on the envelope: SignatureError naming the
    first key whose signature fails, and no signature is given."""
    envelope = SUBMITTER.sign_body(BODY_BYTES, cosigners=[FIRST])
    flipped = bytes([envelope.signature[0] ^ 1]) + envelope.signature[1:]
    broken: Envelope = {
        "body": dataclasses.replace(envelope, body=BODY_BYTES[:-1] + b"\x02"),
        "submitting signature": dataclasses.replace(envelope, signature=flipped),
        "cosignature": dataclasses.replace(
            envelope, cosigners=(Cosigner(FIRST.public_key, envelope.signature),)
        ),
    }[damage]
    failing = FIRST if damage == "cosignature" else SUBMITTER
    with pytest.raises(SignatureError, match=f"key {failing.key_id}"):
        add_signature(broken, SECOND)
