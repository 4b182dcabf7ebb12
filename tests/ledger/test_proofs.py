"""Transaction proofs: every one verifies offline, and any single changed byte makes it fail."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sealed_chain import LEDGER, NOW_MS, Chain, build_chain, envelope

from ledger import blocks, codec, proofs, signing
from ledger.errors import LedgerError, ProofError, SignatureError
from ledger.model import Envelope

TX_COUNTS = [1, 3, 0, 5, 2, 1]
HEX_DIGITS = "0123456789abcdef"


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain(TX_COUNTS)


@pytest.fixture(scope="module")
def proof(chain: Chain) -> dict[str, Any]:
    """Transaction 2 of block 3, anchored in block 5: both Merkle paths are non-trivial."""
    return proofs.build_proof(2, chain.blocks[3], chain.blocks[5], chain.hashes)


def _refused(proof: object, sealer_key: bytes) -> LedgerError:
    with pytest.raises((ProofError, SignatureError)) as caught:
        proofs.verify_proof(proof, sealer_key)
    return caught.value


def test_every_transaction_with_every_later_anchor_verifies(chain: Chain) -> None:
    """For each transaction and each later block as anchor, the proof verifies after a JSON trip."""
    checked = 0
    for height, block in enumerate(chain.blocks):
        for tx_index, tx in enumerate(block.transactions):
            for anchor in chain.blocks[height + 1 :]:
                proof = proofs.build_proof(tx.envelope, block, anchor, chain.hashes)
                decoded = json.loads(json.dumps(proof))
                summary = proofs.verify_proof(decoded, chain.sealer.public_key)
                body = codec.decode_tx_body(codec.decode_envelope(tx.envelope).body)
                assert summary["tx_id"] == body.tx_id.hex()
                assert summary["seq"] == tx.seq
                assert (summary["height"], summary["tx_index"]) == (height, tx_index)
                assert summary["anchor_height"] == anchor.header.height
                assert summary["block_hash"] == chain.hashes[height].hex()
                assert summary["key_id"] == chain.author.key_id
                assert summary["kind"] == "Attest"
                checked += 1
    assert checked == sum(
        count * (len(TX_COUNTS) - 1 - height) for height, count in enumerate(TX_COUNTS)
    )


def test_proof_by_envelope_bytes_equals_proof_by_index(chain: Chain) -> None:
    """build_proof finds the envelope by its exact bytes, or takes its index."""
    block = chain.blocks[3]
    by_bytes = proofs.build_proof(
        block.transactions[4].envelope, block, chain.blocks[4], chain.hashes
    )
    assert by_bytes == proofs.build_proof(4, block, chain.blocks[4], chain.hashes)


def test_a_proof_needs_a_later_block(chain: Chain) -> None:
    """The newest block cannot anchor its own transactions: a proof exists once one more block
    is sealed, because a header's blocks_root covers only earlier blocks."""
    newest = chain.blocks[-1]
    with pytest.raises(ValueError, match="needs a later block"):
        proofs.build_proof(0, newest, newest, chain.hashes)
    with pytest.raises(ValueError, match="needs a later block"):
        proofs.build_proof(0, chain.blocks[3], chain.blocks[1], chain.hashes)


def test_build_refuses_inputs_that_cannot_make_a_proof(chain: Chain) -> None:
    """Unknown envelope, index out of range, short or wrong block hashes: ValueError."""
    block, anchor = chain.blocks[3], chain.blocks[5]
    with pytest.raises(ValueError, match="not in block 3"):
        proofs.build_proof(envelope(chain.author, 10_000), block, anchor, chain.hashes)
    with pytest.raises(ValueError, match="no transaction 5"):
        proofs.build_proof(5, block, anchor, chain.hashes)
    with pytest.raises(ValueError, match="need 5 block hashes"):
        proofs.build_proof(0, block, anchor, chain.hashes[:4])
    wrong = list(chain.hashes)
    wrong[0] = bytes(32)
    with pytest.raises(ValueError, match="blocks_root of block 5"):
        proofs.build_proof(0, block, anchor, wrong)
    wrong = list(chain.hashes)
    wrong[3] = bytes(32)
    with pytest.raises(ValueError, match="not the hash of the block"):
        proofs.build_proof(0, block, anchor, wrong)


def _hex_fields(proof: dict[str, Any]) -> Iterator[tuple[str, list[str | int]]]:
    """(name, path) of every hex string in the proof."""
    for key in ("envelope", "block_seal"):
        yield key, [key]
    for section in ("block", "anchor"):
        for name, value in proof[section].items():
            if isinstance(value, str) and name != "ledger":
                yield f"{section}.{name}", [section, name]
    for key in ("tx_inclusion", "block_inclusion"):
        for index in range(len(proof[key])):
            yield f"{key}[{index}]", [key, index]


def _set(proof: dict[str, Any], path: list[str | int], value: object) -> dict[str, Any]:
    changed = copy.deepcopy(proof)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def _get(proof: dict[str, Any], path: list[str | int]) -> Any:
    target: Any = proof
    for step in path:
        target = target[step]
    return target


def test_every_byte_of_every_hex_field_is_checked(chain: Chain, proof: dict[str, Any]) -> None:
    """Changing any single byte of any hex field (envelope, header hashes, seals, both Merkle
    paths) makes verification fail."""
    proofs.verify_proof(proof, chain.sealer.public_key)
    fields = list(_hex_fields(proof))
    # envelope and block_seal; 4 hashes in the block header; 4 hashes and the seal in the anchor
    assert len(fields) == 2 + 4 + 5 + len(proof["tx_inclusion"]) + len(proof["block_inclusion"])
    checked = 0
    for name, path in fields:
        data = bytes.fromhex(_get(proof, path))
        for position in range(len(data)):
            changed = bytearray(data)
            changed[position] ^= 0x01
            _refused(_set(proof, path, bytes(changed).hex()), chain.sealer.public_key)
            checked += 1
        assert len(data) > 0, name
    assert checked >= 2 * (4 * 32 + 64)  # both headers: four hashes and a seal each


def _other_character(character: str) -> str:
    if character in HEX_DIGITS:
        return HEX_DIGITS[(HEX_DIGITS.index(character) + 1) % 16]
    if character.isdigit():
        return str((int(character) + 1) % 10)
    return "x" if character != "x" else "y"


def test_every_character_of_the_json_text_is_checked(chain: Chain, proof: dict[str, Any]) -> None:
    """Changing any one character of the serialised proof either breaks the JSON or makes
    verification fail: keys, numbers, the ledger name, the version, every hex digit."""
    text = json.dumps(proof, separators=(",", ":"))
    verified = 0
    for position, character in enumerate(text):
        changed_text = text[:position] + _other_character(character) + text[position + 1 :]
        try:
            changed = json.loads(changed_text)
        except json.JSONDecodeError:
            continue
        assert changed != proof
        _refused(changed, chain.sealer.public_key)
        verified += 1
    assert verified > len(text) // 2


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: {**p, "version": 2}, "version 2 is not supported"),
        (lambda p: {**p, "version": True}, "version is bool"),
        (lambda p: {key: p[key] for key in p if key != "seq"}, "missing keys \\['seq'\\]"),
        (lambda p: {**p, "note": "x"}, "unknown keys \\['note'\\]"),
        (lambda p: {**p, "envelope": p["envelope"].upper()}, "envelope is not lowercase hex"),
        (lambda p: {**p, "block_seal": p["block_seal"][:2] + " " + p["block_seal"][2:]}, "hex"),
        (lambda p: {**p, "envelope": p["envelope"] + "0"}, "envelope is not hex"),
        (lambda p: {**p, "block_seal": p["block_seal"][:-2]}, "block_seal has 63 bytes"),
        (lambda p: {**p, "tx_inclusion": "00"}, "tx_inclusion is str"),
        (lambda p: {**p, "tx_inclusion": p["tx_inclusion"][:-1]}, "tx_inclusion in block 3"),
        (lambda p: {**p, "block_inclusion": []}, "block_inclusion in anchor 5"),
        (lambda p: {**p, "seq": p["seq"] + 1}, "seq .* is not first_seq"),
        (lambda p: {**p, "tx_index": 1}, "seq .* is not first_seq"),
        (lambda p: {**p, "tx_index": 9}, "not below the block's tx_count"),
        (lambda p: {**p, "ledger": "other"}, "does not match block"),
        (lambda p: {**p, "block": {**p["block"], "height": -1}}, "block.height is -1"),
        (lambda p: {**p, "block": {**p["block"], "height": "3"}}, "block.height is str"),
        (lambda p: {**p, "anchor": {**p["anchor"], "tx_count": 2**31}}, "does not encode"),
        (lambda p: [p], "proof is list"),
    ],
)
def test_malformed_proofs_are_refused_with_a_reason(
    chain: Chain, proof: dict[str, Any], change: Any, reason: str
) -> None:
    """Each structural defect is named in the error."""
    with pytest.raises((ProofError, SignatureError), match=reason):
        proofs.verify_proof(change(proof), chain.sealer.public_key)


def test_only_the_given_sealer_key_is_accepted(chain: Chain, proof: dict[str, Any]) -> None:
    """A proof checked against another sealer key fails on the block's sealer."""
    error = _refused(proof, signing.Signer.generate().public_key)
    assert isinstance(error, SignatureError) and "block names sealer" in str(error)


def test_an_anchor_forged_by_another_key_is_refused(chain: Chain, proof: dict[str, Any]) -> None:
    """An anchor resealed by a forger under the forger's own key fails on the anchor's sealer."""
    forger = signing.Signer.generate()
    header = dataclasses.replace(chain.blocks[5].header, sealer_key=forger.public_key)
    forged_anchor = {
        **proof["anchor"],
        "sealer_key": forger.public_key.hex(),
        "seal": blocks.seal(header, forger).hex(),
    }
    error = _refused({**proof, "anchor": forged_anchor}, chain.sealer.public_key)
    assert isinstance(error, SignatureError) and "anchor names sealer" in str(error)


def test_an_envelope_with_a_bad_signature_is_refused_even_if_sealed() -> None:
    """A sealed block holding a badly signed envelope still yields no valid proof for it."""
    author, sealer = signing.Signer.generate(), signing.Signer.generate()
    genuine = codec.decode_envelope(envelope(author, 1))
    bad = codec.encode_envelope(
        Envelope(genuine.body, genuine.public_key, bytes(64), genuine.body_version)
    )
    block, checkpoint = blocks.build_block(
        None,
        ledger=LEDGER,
        envelopes=[bad],
        sealed_at_ms=NOW_MS,
        source_partition=0,
        source_offset_end=1,
        signing_key=sealer,
    )
    anchor, _ = blocks.build_block(
        checkpoint,
        ledger=LEDGER,
        envelopes=[],
        sealed_at_ms=NOW_MS + 1,
        source_partition=0,
        source_offset_end=1,
        signing_key=sealer,
    )
    proof = proofs.build_proof(0, block, anchor, [blocks.block_hash(block.header)])
    with pytest.raises(SignatureError, match="does not verify over the body"):
        proofs.verify_proof(proof, sealer.public_key)


def test_an_envelope_of_another_ledger_is_refused() -> None:
    """A sealed transaction whose body names another ledger yields no valid proof."""
    author, sealer = signing.Signer.generate(), signing.Signer.generate()
    block, checkpoint = blocks.build_block(
        None,
        ledger=LEDGER,
        envelopes=[envelope(author, 1, ledger="elsewhere")],
        sealed_at_ms=NOW_MS,
        source_partition=0,
        source_offset_end=1,
        signing_key=sealer,
    )
    anchor, _ = blocks.build_block(
        checkpoint,
        ledger=LEDGER,
        envelopes=[],
        sealed_at_ms=NOW_MS + 1,
        source_partition=0,
        source_offset_end=1,
        signing_key=sealer,
    )
    proof = proofs.build_proof(0, block, anchor, [blocks.block_hash(block.header)])
    with pytest.raises(ProofError, match="for ledger 'elsewhere'"):
        proofs.verify_proof(proof, sealer.public_key)


def test_the_sealer_key_argument_must_be_32_raw_bytes(proof: dict[str, Any]) -> None:
    """verify_proof refuses a sealer key that is not 32 raw bytes (a caller bug)."""
    with pytest.raises(ValueError, match="32 raw bytes"):
        proofs.verify_proof(proof, b"\x00" * 31)


# ---- consistency proofs -----------------------------------------------------------------------

CONSISTENCY_TX_COUNTS = [1, 2, 0, 3, 1, 1, 2, 0, 1, 4, 1, 1, 2]


@pytest.fixture(scope="module")
def long_chain() -> Chain:
    return build_chain(CONSISTENCY_TX_COUNTS)


def _consistency(chain: Chain, old: int, new: int) -> dict[str, Any]:
    proof = proofs.build_consistency_proof(chain.blocks[old], chain.blocks[new], chain.hashes)
    loaded: dict[str, Any] = json.loads(json.dumps(proof))
    return loaded


def test_consistency_between_every_pair_of_heights_verifies(long_chain: Chain) -> None:
    """For every old < new, the proof verifies after a JSON trip and names both heads."""
    for old in range(len(long_chain.blocks)):
        for new in range(old + 1, len(long_chain.blocks)):
            summary = proofs.verify_consistency_proof(
                _consistency(long_chain, old, new), long_chain.sealer.public_key
            )
            assert (summary["old_height"], summary["new_height"]) == (old, new)
            assert summary["old_hash"] == long_chain.hashes[old].hex()
            assert summary["new_hash"] == long_chain.hashes[new].hex()


def _consistency_hex_paths(proof: dict[str, Any]) -> Iterator[list[str | int]]:
    for section in ("old", "new"):
        for name, value in proof[section].items():
            if isinstance(value, str) and name != "ledger":
                yield [section, name]
    for key in ("consistency", "old_inclusion"):
        for index in range(len(proof[key])):
            yield [key, index]


@pytest.mark.parametrize(("old", "new"), [(0, 1), (3, 7), (5, 12), (8, 9)])
def test_any_changed_byte_of_a_consistency_proof_fails(
    long_chain: Chain, old: int, new: int
) -> None:
    """Changing any single byte of any hex field (both headers, both seals, both paths) fails."""
    proof = _consistency(long_chain, old, new)
    checked = 0
    for path in _consistency_hex_paths(proof):
        data = bytes.fromhex(_get(proof, path))
        for position in range(len(data)):
            changed = bytearray(data)
            changed[position] ^= 0x01
            with pytest.raises((ProofError, SignatureError)):
                proofs.verify_consistency_proof(
                    _set(proof, path, changed.hex()), long_chain.sealer.public_key
                )
            checked += 1
    assert checked >= 2 * (4 * 32 + 64)  # both headers: four hashes and a seal each


def test_a_rewritten_history_has_no_consistency_proof(long_chain: Chain) -> None:
    """A chain that differs at a block before the old head (same sealer) cannot prove it
    extends the old head: the proof built from it fails against the kept head's hash."""
    rewritten = build_chain(
        [*CONSISTENCY_TX_COUNTS[:2], 5, *CONSISTENCY_TX_COUNTS[3:]], sealer=long_chain.sealer
    )
    proof = proofs.build_consistency_proof(
        rewritten.blocks[4], rewritten.blocks[9], rewritten.hashes
    )
    summary = proofs.verify_consistency_proof(proof, long_chain.sealer.public_key)
    assert summary["old_hash"] != long_chain.hashes[4].hex()  # not the head the auditor kept
    mixed = {**proof, "old": _consistency(long_chain, 4, 9)["old"]}
    with pytest.raises(ProofError):
        proofs.verify_consistency_proof(mixed, long_chain.sealer.public_key)


def test_consistency_needs_a_later_block_and_one_sealer(long_chain: Chain) -> None:
    """new <= old cannot be built; another sealer key is refused."""
    with pytest.raises(ValueError, match="not later"):
        proofs.build_consistency_proof(
            long_chain.blocks[3], long_chain.blocks[3], long_chain.hashes
        )
    with pytest.raises(SignatureError):
        proofs.verify_consistency_proof(
            _consistency(long_chain, 1, 2), signing.Signer.generate().public_key
        )
