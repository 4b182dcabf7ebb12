"""ledger.witnessing: cosignatures and evidence verify exactly, and finality counts witnesses."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sealed_chain import LEDGER, NOW_MS, Chain, build_chain

from ledger import codec, limits, witnessing
from ledger.blocks import build_block
from ledger.codec import EncodeError, TooLarge
from ledger.errors import DecodeError
from ledger.genesis import GenesisSpec, build_genesis
from ledger.model import Cosignature, Evidence, RevokeKey
from ledger.replica import Replica
from ledger.signing import Signer, build_tx_body, save_private_key
from ledger.witnessing import (
    EvidenceKind,
    FinalityTracker,
    WitnessPolicy,
    cosign,
    cosignature_ok,
    evidence_ok,
    policy_of,
    sign_evidence,
)

WITNESSES = [Signer.from_private_bytes(bytes([number]) * 32) for number in (1, 2, 3)]
W1, W2, W3 = WITNESSES
STRANGER = Signer.from_private_bytes(b"\x09" * 32)
POLICY_KEYS = frozenset(witness.public_key for witness in WITNESSES)
SIGNED_AT_MS = NOW_MS + 60_000
PASSPHRASE = b"witnessing test passphrase"
_Record = TypeVar("_Record", Cosignature, Evidence)


@pytest.fixture(scope="module")
def chain() -> Chain:
    """Blocks 0..5 of one sealed chain."""
    return build_chain([1, 0, 2, 1, 0, 3])


@pytest.fixture(scope="module")
def fork() -> Chain:
    """Another chain of the same ledger: at every height a different block than ``chain``'s."""
    return build_chain([1, 0, 2, 1, 0, 3])


def _cosign(
    witness: Signer, chain: Chain, height: int, signed_at_ms: int = SIGNED_AT_MS
) -> Cosignature:
    return cosign(witness, chain.blocks[height].header, chain.hashes[height], signed_at_ms)


def _with(value: _Record, field: str, new: Any) -> _Record:
    """``value`` with one field, named at run time, replaced."""
    changes: dict[str, Any] = {field: new}
    return dataclasses.replace(value, **changes)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# ---- the cosignature statement -----------------------------------------------------------------


def test_a_cosignature_names_the_block_and_verifies(chain: Chain) -> None:
    """cosign copies the block's ledger, height, hash and blocks_root, and its signature verifies."""
    cosignature = _cosign(W1, chain, 3)
    header = chain.blocks[3].header
    assert (cosignature.ledger, cosignature.height) == (LEDGER, 3)
    assert cosignature.block_hash == chain.hashes[3]
    assert cosignature.blocks_root == header.blocks_root
    assert cosignature.witness_key == W1.public_key
    assert cosignature.signed_at_ms == SIGNED_AT_MS
    assert len(cosignature.signature) == 64
    assert cosignature_ok(cosignature)


def test_the_statement_has_the_documented_layout() -> None:
    """The statement is the domain, a 2-byte UTF-8 length, the ledger, an 8-byte height, hash, root."""
    block_hash, blocks_root = b"\xaa" * 32, b"\xbb" * 32
    statement = witnessing.cosignature_statement("main", 7, block_hash, blocks_root)
    assert statement == (
        b"ledger.v1.cosignature\x00"
        + bytes.fromhex("0004")
        + b"main"
        + bytes.fromhex("0000000000000007")
        + block_hash
        + blocks_root
    )
    assert statement.startswith(witnessing.COSIGNATURE_DOMAIN)
    # The length counts UTF-8 bytes, not characters: "zé" is 3 bytes.
    assert witnessing.cosignature_statement("zé", 2**40, block_hash, blocks_root) == (
        b"ledger.v1.cosignature\x00"
        + bytes.fromhex("0003")
        + "zé".encode()
        + bytes.fromhex("0000010000000000")
        + block_hash
        + blocks_root
    )


def test_the_signature_covers_exactly_the_statement_built_by_hand(chain: Chain) -> None:
    """The witness's signature verifies, with cryptography directly, over the hand-built bytes."""
    cosignature = _cosign(W2, chain, 4)
    header = chain.blocks[4].header
    statement = (
        b"ledger.v1.cosignature\x00"
        + len(LEDGER.encode()).to_bytes(2, "big")
        + LEDGER.encode()
        + (4).to_bytes(8, "big")
        + chain.hashes[4]
        + header.blocks_root
    )
    Ed25519PublicKey.from_public_bytes(W2.public_key).verify(cosignature.signature, statement)
    # and not over the same bytes without the domain (a signature is not reusable elsewhere)
    undomained = W2.sign_message(statement[len(witnessing.COSIGNATURE_DOMAIN) :])
    assert not cosignature_ok(dataclasses.replace(cosignature, signature=undomained))


def _single_byte_changes(cosignature: Cosignature) -> list[tuple[str, Cosignature]]:
    """Every cosignature that differs from ``cosignature`` in one byte of one signed field."""
    changed: list[tuple[str, Cosignature]] = []
    name = cosignature.ledger.encode()
    for index in range(len(name)):
        ledger = _flip(name, index).decode()
        changed.append((f"ledger[{index}]", dataclasses.replace(cosignature, ledger=ledger)))
    height = cosignature.height.to_bytes(8, "big")
    for index in range(8):
        other = int.from_bytes(_flip(height, index), "big")
        changed.append((f"height[{index}]", dataclasses.replace(cosignature, height=other)))
    for field in ("block_hash", "blocks_root", "witness_key", "signature"):
        value: bytes = getattr(cosignature, field)
        for index in range(len(value)):
            changed.append(
                (
                    f"{field}[{index}]",
                    _with(cosignature, field, _flip(value, index)),
                )
            )
    return changed


def test_any_single_changed_byte_makes_a_cosignature_fail(chain: Chain) -> None:
    """Each byte of ledger, height, block_hash, blocks_root, witness_key and signature is covered."""
    cosignature = _cosign(W1, chain, 5)
    changes = _single_byte_changes(cosignature)
    assert len(changes) == len(LEDGER) + 8 + 32 + 32 + 32 + 64
    still_valid = [name for name, changed in changes if cosignature_ok(changed)]
    assert still_valid == []


def test_signed_at_is_informative_and_not_signed(chain: Chain) -> None:
    """signed_at_ms is outside the statement: another value leaves the cosignature valid."""
    cosignature = _cosign(W1, chain, 2)
    assert cosignature_ok(dataclasses.replace(cosignature, signed_at_ms=0))


def test_a_cosignature_claiming_another_witness_fails(chain: Chain) -> None:
    """W1's signature presented as W2's does not verify."""
    cosignature = _cosign(W1, chain, 2)
    assert not cosignature_ok(dataclasses.replace(cosignature, witness_key=W2.public_key))


def test_a_malformed_cosignature_is_false_not_an_exception(chain: Chain) -> None:
    """Short keys and signatures make cosignature_ok False; it never raises."""
    cosignature = _cosign(W1, chain, 2)
    assert not cosignature_ok(dataclasses.replace(cosignature, signature=b""))
    assert not cosignature_ok(dataclasses.replace(cosignature, witness_key=b"\x01" * 31))


# ---- codec ---------------------------------------------------------------------------------------

COSIGNATURE = Cosignature(
    ledger="main",
    height=7,
    block_hash=b"\xaa" * 32,
    blocks_root=b"\xbb" * 32,
    witness_key=b"\xcc" * 32,
    signature=b"\xdd" * 64,
    signed_at_ms=1_000,
)
COSIGNATURE_HEX = (
    "086d61696e"  # ledger: length 4, "main"
    "0e"  # height 7 -> zigzag 14
    + "aa" * 32  # block_hash: fixed 32
    + "bb" * 32  # blocks_root: fixed 32
    + "cc" * 32  # witness_key: fixed 32
    + "dd" * 64  # signature: fixed 64
    + "d00f"  # signed_at_ms 1000 -> zigzag 2000
)
_FIXED_START = 6  # after the ledger (5 bytes) and the height (1 byte)

EVIDENCE = Evidence(
    ledger="main",
    height=3,
    kind=EvidenceKind.EQUIVOCATION,
    detail="two blocks at height 3",
    first=b"first block",
    second=b"second block",
    witness_key=b"\xcc" * 32,
    observed_at_ms=5_000,
    signature=b"\xee" * 64,
)


def test_a_cosignature_encodes_to_the_documented_bytes() -> None:
    """The Avro bytes of a cosignature, checked field by field against the schema."""
    raw = codec.encode_cosignature(COSIGNATURE)
    assert raw.hex() == COSIGNATURE_HEX
    assert codec.decode_cosignature(raw) == COSIGNATURE


def test_a_real_cosignature_round_trips_and_still_verifies(chain: Chain) -> None:
    """A witness's cosignature decodes to an equal value that verifies."""
    cosignature = _cosign(W3, chain, 1)
    decoded = codec.decode_cosignature(codec.encode_cosignature(cosignature))
    assert decoded == cosignature and cosignature_ok(decoded)


@pytest.mark.parametrize("second", [b"second block", None, b""])
def test_evidence_round_trips(second: bytes | None) -> None:
    """Evidence with a pair, without one, or with an empty second decodes to an equal value."""
    evidence = dataclasses.replace(EVIDENCE, second=second)
    assert codec.decode_evidence(codec.encode_evidence(evidence)) == evidence


def test_decoders_refuse_trailing_bytes() -> None:
    """One byte after a valid record is refused."""
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode_cosignature(codec.encode_cosignature(COSIGNATURE) + b"\x00")
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode_evidence(codec.encode_evidence(EVIDENCE) + b"\x00")


def test_a_cosignature_above_its_bound_is_too_large() -> None:
    """More than cosignature_bytes_max bytes is TooLarge; exactly that many is decoded (and refused
    only for its trailing bytes)."""
    raw = codec.encode_cosignature(COSIGNATURE)
    with pytest.raises(TooLarge):
        codec.decode_cosignature(raw + bytes(codec.cosignature_bytes_max + 1 - len(raw)))
    with pytest.raises(DecodeError) as caught:
        codec.decode_cosignature(raw + bytes(codec.cosignature_bytes_max - len(raw)))
    assert not isinstance(caught.value, TooLarge)


def test_evidence_above_the_message_bound_is_too_large() -> None:
    """Evidence longer than a Kafka message may be is TooLarge."""
    raw = codec.encode_evidence(EVIDENCE)
    with pytest.raises(TooLarge):
        codec.decode_evidence(raw + bytes(limits.message_bytes_max + 1 - len(raw)))


@pytest.mark.parametrize(
    ("field", "start", "size"),
    [
        ("block_hash", _FIXED_START, 32),
        ("blocks_root", _FIXED_START + 32, 32),
        ("witness_key", _FIXED_START + 64, 32),
        ("signature", _FIXED_START + 96, 64),
    ],
)
@pytest.mark.parametrize("delta", [-1, 1])
def test_a_wrong_size_fixed_field_is_refused(field: str, start: int, size: int, delta: int) -> None:
    """A fixed field one byte short or long is a DecodeError (and cannot be encoded either)."""
    # Avro writes a fixed field without its length, so a resized one shows as a record one byte
    # short (the last field runs out) or one byte long (trailing or non-canonical bytes). The
    # last field, signed_at_ms 0, is one byte, so the shift cannot be absorbed by a varint.
    cosignature = dataclasses.replace(COSIGNATURE, signed_at_ms=0)
    raw = codec.encode_cosignature(cosignature)
    value: bytes = getattr(cosignature, field)
    assert raw[start : start + size] == value and raw[-1:] == b"\x00"
    resized = value[:-1] if delta < 0 else value + value[:1]
    with pytest.raises(DecodeError):
        codec.decode_cosignature(raw[:start] + resized + raw[start + size :])
    with pytest.raises(EncodeError):
        codec.encode_cosignature(_with(cosignature, field, resized))


@pytest.mark.parametrize("field", ["block_hash", "blocks_root", "witness_key", "signature"])
@pytest.mark.parametrize("delta", [-1, 1])
def test_a_resized_fixed_field_never_yields_a_valid_cosignature(
    chain: Chain, field: str, delta: int
) -> None:
    """Bytes with a fixed field resized either do not decode or decode to a failing cosignature."""
    cosignature = _cosign(W1, chain, 3)
    raw = codec.encode_cosignature(cosignature)
    value: bytes = getattr(cosignature, field)
    start = raw.index(value)
    resized = value[:-1] if delta < 0 else value + b"\x00"
    try:
        decoded = codec.decode_cosignature(raw[:start] + resized + raw[start + len(value) :])
    except DecodeError:
        return
    assert decoded != cosignature and not cosignature_ok(decoded)


@pytest.mark.parametrize("delta", [-1, 1])
def test_evidence_with_a_wrong_size_witness_key_is_refused(delta: int) -> None:
    """Evidence's witness_key is fixed 32: one byte short or long is a DecodeError."""
    # As above: observed_at_ms 0 and an empty signature leave no varint to absorb the shift.
    unsigned = dataclasses.replace(EVIDENCE, observed_at_ms=0, signature=b"")
    raw = codec.encode_evidence(unsigned)
    start = raw.index(unsigned.witness_key)
    assert raw[start + 32 :] == b"\x00\x00"
    resized = b"\xcc" * (32 + delta)
    with pytest.raises(DecodeError):
        codec.decode_evidence(raw[:start] + resized + raw[start + 32 :])


def test_a_cosignature_of_an_overlong_ledger_name_is_refused() -> None:
    """A ledger name longer than identifier_chars_max does not decode."""
    long_name = dataclasses.replace(COSIGNATURE, ledger="x" * (limits.identifier_chars_max + 1))
    with pytest.raises(DecodeError, match="ledger"):
        codec.decode_cosignature(codec.encode_cosignature(long_name))
    at_limit = dataclasses.replace(COSIGNATURE, ledger="x" * limits.identifier_chars_max)
    assert codec.decode_cosignature(codec.encode_cosignature(at_limit)) == at_limit


# ---- evidence --------------------------------------------------------------------------------------


def _signed_evidence(witness: Signer = W1) -> Evidence:
    unsigned = dataclasses.replace(EVIDENCE, witness_key=witness.public_key, signature=b"")
    return sign_evidence(witness, unsigned)


def test_signed_evidence_verifies_over_its_unsigned_record() -> None:
    """The signature covers the domain and the Avro bytes of the record with an empty signature."""
    evidence = _signed_evidence()
    assert evidence_ok(evidence) and len(evidence.signature) == 64
    unsigned = codec.encode_evidence(dataclasses.replace(evidence, signature=b""))
    Ed25519PublicKey.from_public_bytes(W1.public_key).verify(
        evidence.signature, b"ledger.v1.evidence\x00" + unsigned
    )
    decoded = codec.decode_evidence(codec.encode_evidence(evidence))
    assert decoded == evidence and evidence_ok(decoded)


def test_signing_replaces_an_earlier_signature() -> None:
    """Evidence carrying some other signature is signed as if it had none."""
    evidence = dataclasses.replace(EVIDENCE, witness_key=W1.public_key)  # signature b"\xee" * 64
    assert evidence_ok(sign_evidence(W1, evidence))


EVIDENCE_CHANGES = {
    "ledger": "other",
    "height": 4,
    "kind": EvidenceKind.NOT_EXTENDING,
    "detail": "two blocks at height 4",
    "first": b"first block!",
    "second": None,
    "witness_key": W2.public_key,
    "observed_at_ms": 5_001,
}


@pytest.mark.parametrize("field", sorted(EVIDENCE_CHANGES))
def test_any_changed_evidence_field_fails(field: str) -> None:
    """Changing any one field of signed evidence makes evidence_ok false."""
    evidence = _signed_evidence()
    assert not evidence_ok(_with(evidence, field, EVIDENCE_CHANGES[field]))


def test_evidence_with_a_changed_or_missing_signature_fails() -> None:
    """A flipped signature byte or an empty signature does not verify."""
    evidence = _signed_evidence()
    for index in (0, 31, 63):
        flipped = _flip(evidence.signature, index)
        assert not evidence_ok(dataclasses.replace(evidence, signature=flipped))
    assert not evidence_ok(dataclasses.replace(evidence, signature=b""))


def test_evidence_with_no_pair_is_signed_as_such() -> None:
    """second None and second empty are different statements."""
    evidence = sign_evidence(
        W1, dataclasses.replace(EVIDENCE, second=None, witness_key=W1.public_key)
    )
    assert evidence_ok(evidence)
    assert not evidence_ok(dataclasses.replace(evidence, second=b""))


def test_a_witness_cannot_sign_evidence_naming_another_key() -> None:
    """sign_evidence refuses evidence whose witness_key is not the signer's."""
    with pytest.raises(ValueError, match="another witness key"):
        sign_evidence(W1, dataclasses.replace(EVIDENCE, witness_key=W2.public_key))


def test_a_cosignature_signature_is_not_evidence(chain: Chain) -> None:
    """Domain separation: a signature made for another statement never verifies as evidence."""
    evidence = _signed_evidence()
    stolen = _cosign(W1, chain, 3).signature
    assert not evidence_ok(dataclasses.replace(evidence, signature=stolen))


# ---- WitnessPolicy -------------------------------------------------------------------------------


def test_signers_are_the_distinct_policy_witnesses_of_exactly_this_block(
    chain: Chain, fork: Chain
) -> None:
    """Only valid cosignatures by policy keys of this ledger, height and hash count, each key once."""
    policy = WitnessPolicy(POLICY_KEYS, 2)
    height, block_hash = 3, chain.hashes[3]
    first = _cosign(W1, chain, height)
    cosignatures = [
        first,
        _cosign(W1, chain, height, signed_at_ms=SIGNED_AT_MS + 1),  # W1 again
        _cosign(STRANGER, chain, height),  # valid, but no policy key
        dataclasses.replace(_cosign(W2, chain, height), signature=_flip(first.signature, 0)),
        _cosign(W2, chain, height - 1),  # another height
        _cosign(W3, fork, height),  # another block at this height
    ]
    assert policy.signers(cosignatures, LEDGER, height, block_hash) == {W1.public_key}
    assert not policy.is_final(cosignatures, LEDGER, height, block_hash)
    assert policy.signers(cosignatures, "another-ledger", height, block_hash) == frozenset()
    with_w3 = [*cosignatures, _cosign(W3, chain, height)]
    assert policy.signers(with_w3, LEDGER, height, block_hash) == {W1.public_key, W3.public_key}
    assert policy.is_final(with_w3, LEDGER, height, block_hash)


def test_a_bad_signature_by_a_policy_key_never_counts(chain: Chain) -> None:
    """W2's cosignature with one flipped signature byte is not a signer."""
    policy = WitnessPolicy(POLICY_KEYS, 1)
    good = _cosign(W2, chain, 2)
    bad = dataclasses.replace(good, signature=_flip(good.signature, 10))
    assert policy.signers([bad], LEDGER, 2, chain.hashes[2]) == frozenset()
    assert policy.signers([good], LEDGER, 2, chain.hashes[2]) == {W2.public_key}


@pytest.mark.parametrize("threshold", [1, 2, 3])
def test_a_block_is_final_with_threshold_signers_and_not_one_fewer(
    chain: Chain, threshold: int
) -> None:
    """With K-1 distinct valid signers is_final is False, with K it is True."""
    policy = WitnessPolicy(POLICY_KEYS, threshold)
    cosignatures = [_cosign(witness, chain, 4) for witness in WITNESSES[:threshold]]
    assert not policy.is_final(cosignatures[:-1], LEDGER, 4, chain.hashes[4])
    assert policy.is_final(cosignatures, LEDGER, 4, chain.hashes[4])


def test_with_threshold_zero_every_block_is_final(chain: Chain) -> None:
    """k = 0: final when sealed, without any cosignature."""
    assert WitnessPolicy(POLICY_KEYS, 0).is_final([], LEDGER, 5, chain.hashes[5])
    assert WitnessPolicy(frozenset(), 0).is_final([], LEDGER, 5, chain.hashes[5])


@pytest.mark.parametrize("threshold", [-1, 4])
def test_a_policy_nobody_can_meet_is_refused(threshold: int) -> None:
    """A threshold above the number of witness keys, or negative, raises ValueError."""
    with pytest.raises(ValueError, match="threshold"):
        WitnessPolicy(POLICY_KEYS, threshold)


# ---- FinalityTracker -----------------------------------------------------------------------------


def test_final_height_is_the_kth_highest_cosigned_height(chain: Chain) -> None:
    """3 witnesses, k=2: -1 until two co-signed, then the second-highest of their highest heights."""
    tracker = FinalityTracker(WitnessPolicy(POLICY_KEYS, 2))
    head = 5
    assert tracker.final_height(head) == -1
    assert tracker.add(_cosign(W1, chain, 4), chain.hashes[4]) is None
    assert tracker.final_height(head) == -1  # one witness is not enough
    assert tracker.add(_cosign(W2, chain, 2), chain.hashes[2]) is None
    assert tracker.final_height(head) == 2
    assert tracker.add(_cosign(W3, chain, 3), chain.hashes[3]) is None
    assert tracker.final_height(head) == 3
    assert tracker.add(_cosign(W2, chain, 5), chain.hashes[5]) is None
    assert tracker.final_height(head) == 4
    # a witness co-signing an older block later does not move its height back
    assert tracker.add(_cosign(W1, chain, 0), chain.hashes[0]) is None
    assert tracker.final_height(head) == 4


def test_final_height_never_exceeds_the_head(chain: Chain) -> None:
    """Cosignatures above the caller's head are capped at head_height."""
    tracker = FinalityTracker(WitnessPolicy(POLICY_KEYS, 2))
    for witness in (W1, W2):
        assert tracker.add(_cosign(witness, chain, 5), chain.hashes[5]) is None
    assert tracker.final_height(5) == 5
    assert tracker.final_height(3) == 3


def test_refused_cosignatures_say_why_and_do_not_count(chain: Chain, fork: Chain) -> None:
    """Another hash than the chain's, an unknown key, a bad signature, an unknown block: refused."""
    tracker = FinalityTracker(WitnessPolicy(POLICY_KEYS, 2))
    assert tracker.add(_cosign(W1, chain, 3), chain.hashes[3]) is None
    good = _cosign(W2, chain, 3)
    refused = {
        "fork": tracker.add(_cosign(W2, fork, 3), chain.hashes[3]),
        "stranger": tracker.add(_cosign(STRANGER, chain, 3), chain.hashes[3]),
        "bad signature": tracker.add(
            dataclasses.replace(good, signature=_flip(good.signature, 5)), chain.hashes[3]
        ),
        "unknown block": tracker.add(good, None),
    }
    assert all(isinstance(reason, str) and reason for reason in refused.values()), refused
    assert len(set(refused.values())) == 4  # each refusal names its own reason
    assert tracker.final_height(5) == -1
    assert tracker.highest == {W1.public_key: 3}
    assert tracker.add(good, chain.hashes[3]) is None
    assert tracker.final_height(5) == 3


def test_a_fork_cosignature_is_refused_even_if_its_own_signature_is_valid(
    chain: Chain, fork: Chain
) -> None:
    """A witness that co-signed another chain's block is refused although cosignature_ok holds."""
    tracker = FinalityTracker(WitnessPolicy(POLICY_KEYS, 1))
    other = _cosign(W1, fork, 2)
    assert cosignature_ok(other)
    assert tracker.add(other, chain.hashes[2]) is not None
    assert tracker.final_height(5) == -1


def test_threshold_zero_makes_the_head_final(chain: Chain) -> None:
    """k = 0: the final height is the head height, with no cosignatures at all."""
    tracker = FinalityTracker(WitnessPolicy(POLICY_KEYS, 0))
    assert tracker.final_height(5) == 5
    assert tracker.final_height(0) == 0


# ---- the policy on chain ---------------------------------------------------------------------------


def _genesis(tmp_path: Path, sealer: Signer, admin: Signer) -> Replica:
    """Block 0 of ledger ``main``: the three witnesses and a finality threshold of 2, replayed."""
    admin_key_file = tmp_path / "admin.key"
    save_private_key(admin_key_file, admin, PASSPHRASE)
    spec = GenesisSpec(
        ledger="main",
        admin_key_file=admin_key_file,
        assets=[],
        accounts=[],
        keys=[
            {"public_key": witness.public_key.hex(), "roles": ["witness"], "accounts": []}
            for witness in WITNESSES
        ],
        finality_threshold=2,
    )
    replica = Replica("main")
    replica.apply_block(build_genesis(spec, PASSPHRASE, sealer, NOW_MS, 0))
    return replica


def test_policy_of_a_genesis_state_holds_its_witnesses_and_threshold(tmp_path: Path) -> None:
    """After a genesis with three witness keys and threshold 2, the policy is exactly that."""
    replica = _genesis(tmp_path, Signer.generate(), Signer.generate())
    assert policy_of(replica.state) == WitnessPolicy(POLICY_KEYS, 2)


def test_a_revoked_witness_leaves_the_policy(tmp_path: Path) -> None:
    """Once an admin revoked W3, its cosignatures no longer count toward finality."""
    sealer, admin = Signer.generate(), Signer.generate()
    replica = _genesis(tmp_path, sealer, admin)
    assert replica.checkpoint is not None
    now_ms = NOW_MS + 1_000
    revoke = admin.sign(build_tx_body("main", RevokeKey(W3.key_id), now_ms=now_ms))
    block, _ = build_block(
        replica.checkpoint,
        ledger="main",
        envelopes=[revoke],
        sealed_at_ms=now_ms,
        source_partition=0,
        source_offset_end=1,
        signing_key=sealer,
    )
    applied = replica.apply_block(block)
    policy = policy_of(replica.state)
    assert policy == WitnessPolicy(frozenset({W1.public_key, W2.public_key}), 2)
    by_w3 = cosign(W3, block.header, applied.block_hash, now_ms)
    assert policy.signers([by_w3], "main", 1, applied.block_hash) == frozenset()
