"""ledger.confidential: each named key opens the fields, no other key does, and any change to
the ciphertext, a wrapped key, the ephemeral key or the commitment is detected."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import codec, limits, signing
from ledger.confidential import (
    check_reveal,
    commitment,
    encryption,
    make_confidential,
    open_confidential,
    reveal,
)
from ledger.errors import ConfidentialError, NotARecipient, RecipientKeyError
from ledger.model import NO_METADATA, Confidential, ConfidentialFields, Posting, Transfer, TxBody

ALICE, BOB, AUDITOR, MALLORY = (signing.Signer.generate() for _ in range(4))
PARTIES = [ALICE, BOB, AUDITOR]


def transfer(**fields: object) -> TxBody:
    return signing.build_tx_body(
        "main",
        Transfer((Posting("alice", "USD", -250), Posting("bob", "USD", 250))),
        now_ms=1_800_000_000_000,
        **fields,  # type: ignore[arg-type]
    )


PLAIN = transfer(memo="rent März 2026", external_ref="INV-2026-03", metadata={"unit": "4b"})
SEALED = make_confidential(PLAIN, [signer.public_key for signer in PARTIES])
FIELDS = ConfidentialFields(PLAIN.memo, PLAIN.external_ref, PLAIN.metadata)


def test_each_named_party_and_the_auditor_open_the_fields() -> None:
    """Alice, Bob and the auditor they named each read the memo, reference and metadata."""
    for signer in PARTIES:
        assert open_confidential(SEALED, signer) == FIELDS


def test_the_clear_body_carries_none_of_them() -> None:
    """The body keeps its postings and loses its memo, reference and metadata; version 3."""
    assert (SEALED.memo, SEALED.external_ref, SEALED.metadata) == (None, None, NO_METADATA)
    assert SEALED.op == PLAIN.op and SEALED.tx_id == PLAIN.tx_id
    assert SEALED.confidential is not None
    assert SEALED.confidential.key_ids() == tuple(signer.key_id for signer in PARTIES)
    assert codec.body_version_of(SEALED) == 3
    raw = codec.encode_tx_body(SEALED)
    assert b"INV-2026" not in raw and "März".encode() not in raw


def test_a_non_recipient_gets_a_clear_error() -> None:
    """Mallory's key is not named: NotARecipient names her key, the tx and the recipients."""
    with pytest.raises(NotARecipient) as caught:
        open_confidential(SEALED, MALLORY)
    message = str(caught.value)
    assert f"key {MALLORY.key_id} is not a recipient of tx {SEALED.tx_id.hex()}" in message
    assert all(signer.key_id in message for signer in PARTIES)


def test_the_fields_survive_signing_and_decoding() -> None:
    """Signed, encoded and decoded canonically, the body opens to the same fields."""
    envelope, body = codec.decode_submission(BOB.sign(SEALED))
    signing.verify_envelope(envelope)
    assert envelope.body_version == 3 and body == SEALED
    assert open_confidential(body, AUDITOR) == FIELDS


def _with(**changes: object) -> TxBody:
    assert SEALED.confidential is not None
    return dataclasses.replace(
        SEALED,
        confidential=dataclasses.replace(SEALED.confidential, **changes),  # type: ignore[arg-type]
    )


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def test_every_flipped_bit_of_the_ciphertext_is_detected() -> None:
    """Any one flipped bit of the ciphertext makes every recipient's open fail."""
    assert SEALED.confidential is not None
    ciphertext = SEALED.confidential.ciphertext
    for index in range(len(ciphertext)):
        with pytest.raises(ConfidentialError, match="ciphertext does not open"):
            open_confidential(_with(ciphertext=_flip(ciphertext, index)), BOB)


def test_a_changed_wrapped_key_ephemeral_key_or_context_is_detected() -> None:
    """A flipped wrapped key, another ephemeral key, or the parts moved to another tx_id or
    ledger: the content key does not unwrap."""
    assert SEALED.confidential is not None
    alice_entry, *others = SEALED.confidential.recipients
    flipped = dataclasses.replace(alice_entry, wrapped_key=_flip(alice_entry.wrapped_key, 5))
    with pytest.raises(ConfidentialError, match="wrapped for key"):
        open_confidential(_with(recipients=(flipped, *others)), ALICE)
    ephemeral = _flip(SEALED.confidential.ephemeral_public_key, 0)
    with pytest.raises(ConfidentialError):
        open_confidential(_with(ephemeral_public_key=ephemeral), ALICE)
    for moved in (
        dataclasses.replace(SEALED, tx_id=bytes(16)),
        dataclasses.replace(SEALED, ledger="elsewhere"),
    ):
        with pytest.raises(ConfidentialError, match="wrapped for key"):
            open_confidential(moved, ALICE)


def test_entries_relabelled_to_another_key_do_not_open() -> None:
    """Bob's wrapped key under Alice's name does not open with Alice's key."""
    assert SEALED.confidential is not None
    alice_entry, bob_entry, auditor_entry = SEALED.confidential.recipients
    swapped = dataclasses.replace(bob_entry, key_id=alice_entry.key_id)
    with pytest.raises(ConfidentialError, match="wrapped for key"):
        open_confidential(_with(recipients=(swapped, auditor_entry)), ALICE)


def test_a_changed_commitment_is_detected() -> None:
    """The ciphertext opens, but the fields no longer match the signed commitment."""
    assert SEALED.confidential is not None
    changed = _with(commitment=_flip(SEALED.confidential.commitment, 31))
    with pytest.raises(ConfidentialError, match="does not match the commitment"):
        open_confidential(changed, BOB)


def test_an_author_cannot_show_recipients_fields_it_did_not_commit_to() -> None:
    """Fields encrypted under a commitment to other fields are refused by every recipient."""
    honest = codec.encode_confidential_fields(bytes(32), FIELDS)
    other = codec.encode_confidential_fields(bytes(32), ConfidentialFields(memo="other"))
    lying = encryption.encrypt(
        honest,
        commitment(other),
        encryption.context(PLAIN.tx_id, PLAIN.ledger),
        [ALICE.public_key],
    )
    body = dataclasses.replace(
        PLAIN, memo=None, external_ref=None, metadata=NO_METADATA, confidential=lying
    )
    with pytest.raises(ConfidentialError, match="commitment"):
        open_confidential(body, ALICE)


def test_a_reveal_checks_without_any_key() -> None:
    """A recipient's reveal convinces a third party holding only the body; altered, it fails."""
    revealed = reveal(SEALED, BOB)
    assert check_reveal(SEALED, revealed) == FIELDS
    assert revealed[:32] != bytes(32)  # the salt leads: random, so the memo cannot be guessed
    for index in (0, 40, len(revealed) - 1):
        with pytest.raises(ConfidentialError, match="commitment"):
            check_reveal(SEALED, _flip(revealed, index))
    with pytest.raises(ConfidentialError, match="no confidential fields"):
        check_reveal(PLAIN, revealed)


def test_each_transaction_gets_its_own_salt_and_keys() -> None:
    """The same fields to the same keys twice: different salt, commitment, ephemeral key and
    ciphertext, so equal memos cannot be spotted across transactions."""
    again = make_confidential(PLAIN, [signer.public_key for signer in PARTIES])
    first, second = SEALED.confidential, again.confidential
    assert isinstance(first, Confidential) and isinstance(second, Confidential)
    assert first.commitment != second.commitment
    assert first.ephemeral_public_key != second.ephemeral_public_key
    assert first.ciphertext != second.ciphertext
    assert reveal(SEALED, ALICE)[:32] != reveal(again, ALICE)[:32]


def test_making_refuses_what_could_not_be_read_or_means_nothing() -> None:
    """No recipients, too many, one twice, a key of small order, nothing to hide, or a body
    that is confidential already: refused before anything is encrypted."""
    keys = [signing.Signer.generate().public_key for _ in range(9)]
    with pytest.raises(RecipientKeyError, match="1 to"):
        make_confidential(PLAIN, [])
    with pytest.raises(RecipientKeyError, match="1 to"):
        make_confidential(PLAIN, keys[: limits.confidential_recipients_max_count + 1])
    with pytest.raises(RecipientKeyError, match="named twice"):
        make_confidential(PLAIN, [keys[0], keys[1], keys[0]])
    with pytest.raises(RecipientKeyError, match="identity"):
        make_confidential(PLAIN, [keys[0], (1).to_bytes(32, "little")])
    with pytest.raises(ConfidentialError, match="nothing to encrypt"):
        make_confidential(transfer(), [keys[0]])
    with pytest.raises(ConfidentialError, match="confidential already"):
        make_confidential(SEALED, [keys[0]])
    with pytest.raises(codec.EncodeError, match="memo"):
        make_confidential(transfer(memo="x" * (limits.memo_chars_max + 1)), [keys[0]])


texts = st.text(max_size=40)


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(st.none(), texts),
    st.one_of(st.none(), texts),
    st.dictionaries(st.text(min_size=1, max_size=10), texts, max_size=4),
    st.integers(min_value=1, max_value=limits.confidential_recipients_max_count),
)
def test_any_fields_to_any_recipients_round_trip(
    memo: str | None, external_ref: str | None, metadata: dict[str, str], count: int
) -> None:
    """Any fields within the limits, to 1 to 8 keys: every recipient reads exactly them."""
    if memo is None and external_ref is None and not metadata:
        memo = ""
    recipients = [ALICE, *(signing.Signer.generate() for _ in range(count - 1))]
    body = transfer(memo=memo, external_ref=external_ref, metadata=metadata)
    sealed = make_confidential(body, [signer.public_key for signer in recipients])
    decoded = codec.decode_tx_body(codec.encode_tx_body(sealed), 3)
    for signer in recipients:
        assert open_confidential(decoded, signer) == ConfidentialFields(
            body.memo, body.external_ref, body.metadata
        )
