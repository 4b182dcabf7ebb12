"""A confidential transaction's proof verifies offline like any other, and a reveal checked
against the proven body convinces a third party that holds no key."""

from __future__ import annotations

import json

import pytest

from ledger import blocks, codec, proofs, signing
from ledger.confidential import check_reveal, make_confidential, open_confidential, reveal
from ledger.errors import ConfidentialError, ProofError, SignatureError
from ledger.model import ConfidentialFields, Posting, Transfer

LEDGER = "test-ledger"
NOW_MS = 1_700_000_000_000
SEALER, ALICE, BOB, AUDITOR = (signing.Signer.generate() for _ in range(4))


def confidential_envelope() -> bytes:
    body = signing.build_tx_body(
        LEDGER,
        Transfer((Posting("alice", "USD", -5), Posting("bob", "USD", 5))),
        now_ms=NOW_MS,
        memo="invoice 42, paid in full",
        external_ref="INV-42",
    )
    return ALICE.sign(make_confidential(body, [ALICE.public_key, BOB.public_key]))


def test_a_confidential_transaction_proof_verifies_offline_and_backs_a_reveal() -> None:
    """Sealed in block 0 and anchored in block 1, the proof verifies with the sealer's public
    key only; the envelope it carries opens for Bob, and Bob's reveal checks against it."""
    envelope = confidential_envelope()
    block_0, checkpoint = blocks.build_block(
        None,
        ledger=LEDGER,
        envelopes=[envelope],
        sealed_at_ms=NOW_MS,
        source_partition=0,
        source_offset_end=1,
        signing_key=SEALER,
    )
    block_1, _ = blocks.build_block(
        checkpoint,
        ledger=LEDGER,
        envelopes=[],
        sealed_at_ms=NOW_MS + 1,
        source_partition=0,
        source_offset_end=1,
        signing_key=SEALER,
    )
    hashes = [blocks.block_hash(block.header) for block in (block_0, block_1)]
    proof = json.loads(json.dumps(proofs.build_proof(envelope, block_0, block_1, hashes)))

    summary = proofs.verify_proof(proof, SEALER.public_key)
    assert (summary["kind"], summary["external_ref"], summary["height"]) == ("Transfer", None, 0)

    proven = codec.decode_submission(bytes.fromhex(proof["envelope"]))[1]
    fields = ConfidentialFields("invoice 42, paid in full", "INV-42")
    assert open_confidential(proven, BOB) == fields
    assert check_reveal(proven, reveal(proven, BOB)) == fields  # the auditor's side: no key
    with pytest.raises(ConfidentialError):
        check_reveal(proven, reveal(proven, BOB).replace(b"42", b"43"))

    last_body_byte = len(envelope) - 32 - 64 - 1  # the ciphertext's tag ends the body
    flipped = bytearray(envelope)
    flipped[last_body_byte] ^= 1
    with pytest.raises((ProofError, SignatureError)):
        proofs.verify_proof(dict(proof, envelope=flipped.hex()), SEALER.public_key)
