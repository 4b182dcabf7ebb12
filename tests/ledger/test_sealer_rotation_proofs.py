"""Proofs across sealer rotations: their ``rotations`` steps lead from K0 to the newest sealer,
any key on the way may be trusted, and every omitted, reordered or changed step fails."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from sealed_chain import envelope
from test_sealer_rotation_chain import (
    TX_COUNTS,
    RotatedChain,
    build_rotated_chain,
    next_block,
    rotation_envelope,
)

from ledger import blocks, codec, merkle, proofs, signing
from ledger.errors import LedgerError, ProofError, SignatureError
from ledger.model import Block, Cosigner

FIXTURES = Path(__file__).parent / "fixtures"
HEAD = len(TX_COUNTS) - 1
"""Block 7: K0 sealed blocks 0..2, K1 blocks 3..5 and K2 blocks 6..7 (rotations end 2 and 5)."""


@pytest.fixture(scope="module")
def chain() -> RotatedChain:
    return build_rotated_chain(TX_COUNTS)


def _rotation_blocks(chain: RotatedChain) -> list[Block]:
    return [chain.blocks[height] for height in chain.rotation_heights]


def _proof(chain: RotatedChain, height: int, tx_index: int, anchor: int = HEAD) -> dict[str, Any]:
    proof = proofs.build_proof(
        tx_index,
        chain.blocks[height],
        chain.blocks[anchor],
        chain.hashes,
        rotation_blocks=_rotation_blocks(chain),
    )
    loaded: dict[str, Any] = json.loads(json.dumps(proof))
    return loaded


def _refused(proof: object, sealer_key: bytes) -> LedgerError:
    with pytest.raises((ProofError, SignatureError)) as caught:
        proofs.verify_proof(proof, sealer_key)
    return caught.value


def _keys(chain: RotatedChain) -> list[bytes]:
    return [sealer.public_key for sealer in chain.sealers]


# ---- proofs that hold ---------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "tx_index"), [(1, 1), (2, 1), (3, 2), (6, 0)])
def test_a_proof_before_or_after_the_rotations_verifies_trusting_any_sealer(
    chain: RotatedChain, height: int, tx_index: int
) -> None:
    """Anchored after both rotations, a proof of a transaction sealed by K0, K1 or K2 holds
    trusting K0, K1 or K2: the steps link them both ways."""
    proof = _proof(chain, height, tx_index)
    assert [step["block"]["height"] for step in proof["rotations"]] == [2, 5]
    for key in _keys(chain):
        summary = proofs.verify_proof(proof, key)
        assert (summary["height"], summary["tx_index"], summary["rotations"]) == (
            height,
            tx_index,
            2,
        )
        assert summary["sealer_key_id"] == signing.key_id(key)
        assert summary["anchor_height"] == HEAD


def test_the_rotate_sealer_transaction_itself_has_a_proof(chain: RotatedChain) -> None:
    """The RotateSealer ending block 2, anchored at block 3 (the first sealed by K1), is
    provable; its step is the one proof step."""
    proof = _proof(chain, 2, 1, anchor=3)
    assert len(proof["rotations"]) == 1
    for key in _keys(chain)[:2]:
        summary = proofs.verify_proof(proof, key)
        assert summary["kind"] == "RotateSealer" and summary["rotations"] == 1
    error = _refused(proof, chain.sealers[2].public_key)
    assert isinstance(error, SignatureError) and "none of the sealers" in str(error)


def test_only_rotations_below_the_anchor_are_carried(chain: RotatedChain) -> None:
    """Anchored at block 2 nothing rotated before it: no ``rotations`` key at all, and only
    K0 verifies. Anchored at 4 one step: K0 and K1 verify, K2 (named later) does not."""
    before = _proof(chain, 1, 0, anchor=2)
    assert "rotations" not in before
    assert proofs.verify_proof(before, chain.sealers[0].public_key)["rotations"] == 0
    assert "block names sealer" in str(_refused(before, chain.sealers[1].public_key))
    between = _proof(chain, 1, 0, anchor=4)
    assert len(between["rotations"]) == 1
    for key in _keys(chain)[:2]:
        assert proofs.verify_proof(between, key)["rotations"] == 1
    assert "none of the sealers" in str(_refused(between, chain.sealers[2].public_key))


def test_a_proof_file_without_rotations_still_verifies() -> None:
    """The committed proof of a ledger that never rotated verifies as before, and an empty
    ``rotations`` list means the same."""
    proof = json.loads((FIXTURES / "proof.v1.json").read_text())
    sealer_key = bytes.fromhex((FIXTURES / "proof.v1.sealer-key").read_text().strip())
    assert "rotations" not in proof
    summary = proofs.verify_proof(proof, sealer_key)
    assert summary["rotations"] == 0
    assert proofs.verify_proof({**proof, "rotations": []}, sealer_key) == summary


def test_a_stranger_key_is_none_of_the_sealers(chain: RotatedChain) -> None:
    """A key outside the rotations is refused, naming every sealer the steps lead through."""
    error = _refused(_proof(chain, 3, 0), signing.Signer.generate().public_key)
    assert isinstance(error, SignatureError)
    assert all(sealer.key_id in str(error) for sealer in chain.sealers)


# ---- steps that are missing, out of order or changed --------------------------------------------


def test_omitting_any_step_fails_whatever_key_is_trusted(chain: RotatedChain) -> None:
    """Without step 0 the block (by K0) is not sealed by the key the steps put in force;
    without step 1 the anchor (by K2) is not; without both neither."""
    proof = _proof(chain, 1, 0)
    for kept in ([proof["rotations"][1]], [proof["rotations"][0]], []):
        changed = {**proof, "rotations": kept}
        for key in _keys(chain):
            assert isinstance(_refused(changed, key), SignatureError)


def test_reordered_or_repeated_steps_fail(chain: RotatedChain) -> None:
    """Steps go in height order, each once."""
    proof = _proof(chain, 1, 0)
    first, second = proof["rotations"]
    for steps in ([second, first], [first, first, second], [first, second, second]):
        error = _refused({**proof, "rotations": steps}, chain.sealers[0].public_key)
        assert isinstance(error, ProofError) and "height order" in str(error)


def test_a_step_at_or_after_the_anchor_fails(chain: RotatedChain) -> None:
    """A proof anchored at block 5 may not carry the step of block 5 itself."""
    proof = _proof(chain, 1, 0, anchor=5)
    step = _proof(chain, 1, 0)["rotations"][1]
    error = _refused({**proof, "rotations": [*proof["rotations"], step]}, _keys(chain)[0])
    assert "not before the anchor" in str(error)


JsonPath = tuple[str | int, ...]


def _hex_paths(proof: dict[str, Any]) -> list[JsonPath]:
    """The path of every hex value in the proof's steps."""
    paths: list[JsonPath] = []
    for index, step in enumerate(proof["rotations"]):
        where = ("rotations", index)
        paths += [
            (*where, "block", name)
            for name, value in step["block"].items()
            if isinstance(value, str) and name != "ledger"
        ]
        paths += [(*where, "block_seal"), (*where, "envelope")]
        paths += [(*where, "tx_inclusion", item) for item in range(len(step["tx_inclusion"]))]
    return paths


def _get(document: Any, path: JsonPath) -> Any:
    for key in path:
        document = document[key]
    return document


def _set(document: dict[str, Any], path: JsonPath, value: object) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    _get(changed, path[:-1])[path[-1]] = value
    return changed


def _flip(hex_text: str, position: int) -> str:
    data = bytearray(bytes.fromhex(hex_text))
    data[position] ^= 0x01
    return data.hex()


def test_any_changed_byte_of_a_step_fails(chain: RotatedChain) -> None:
    """Flipping a bit of any byte of any hex field of either step (headers, seals, the
    RotateSealer envelopes, their paths) fails, trusting K0 or K2."""
    proof = _proof(chain, 3, 1)
    checked = 0
    for path in _hex_paths(proof):
        value = _get(proof, path)
        for position in range(len(value) // 2):
            changed = _set(proof, path, _flip(value, position))
            _refused(changed, chain.sealers[position % 2 * 2].public_key)
            checked += 1
    assert checked >= 2 * (4 * 32 + 64 + 150)


def test_changed_numbers_of_a_step_fail(chain: RotatedChain) -> None:
    """A step's tx_index, height or tx_count changed, or a step that is not a list entry of
    the right shape, fails with its reason."""
    proof = _proof(chain, 3, 1)
    step = proof["rotations"][0]
    cases: list[tuple[Any, str]] = [
        ({**step, "tx_index": 0}, "not the last transaction"),
        ({**step, "block": {**step["block"], "height": 1}}, "seal does not verify"),
        ({**step, "block": {**step["block"], "tx_count": 3}}, "seal does not verify"),
        ({**step, "note": 1}, "unknown keys"),
        ([step], "expected an object"),
    ]
    for changed_step, reason in cases:
        changed = {**proof, "rotations": [changed_step, proof["rotations"][1]]}
        with pytest.raises((ProofError, SignatureError), match=reason):
            proofs.verify_proof(changed, chain.sealers[0].public_key)
    with pytest.raises(ProofError, match="rotations is dict"):
        proofs.verify_proof({**proof, "rotations": {}}, chain.sealers[0].public_key)


# ---- steps of rotations that do not hold ----------------------------------------------------


def _hostile_proof(chain: RotatedChain, rotation: bytes) -> dict[str, Any]:
    """A proof of a transaction in block 4 whose one step is block 2 ending in ``rotation``
    (the chain rebuilt from there, K1 sealing blocks 3 and 4 and the anchor 5)."""
    k0, k1 = chain.sealers[0], chain.sealers[1]
    genuine = [tx.envelope for tx in chain.blocks[2].transactions[:-1]]
    rotated, checkpoint = next_block(chain.checkpoints[1], [*genuine, rotation], k0)
    built = [*chain.blocks[:2], rotated]
    for height in (3, 4, 5):
        block, checkpoint = next_block(checkpoint, [envelope(chain.author, 500 + height)], k1)
        built.append(block)
    hashes = [blocks.block_hash(block.header) for block in built]
    return proofs.build_proof(0, built[4], built[5], hashes, rotation_blocks=[rotated])


def test_a_step_not_cosigned_by_the_successor_fails(chain: RotatedChain) -> None:
    """A RotateSealer without the successor's cosignature vouches for nobody."""
    k0, k1 = chain.sealers[0], chain.sealers[1]
    for cosigners in ([], [signing.Signer.generate()]):
        proof = _hostile_proof(chain, rotation_envelope(k0, k1.public_key, cosigners))
        for key in (k0.public_key, k1.public_key):
            assert "did not cosign" in str(_refused(proof, key))


def test_a_step_signed_by_another_key_than_its_blocks_sealer_fails(chain: RotatedChain) -> None:
    """Only the sealer of the step's block may hand sealing on."""
    k1 = chain.sealers[1]
    stranger = signing.Signer.generate()
    proof = _hostile_proof(chain, rotation_envelope(stranger, k1.public_key, [k1]))
    assert "not by the block's sealer" in str(_refused(proof, k1.public_key))


def test_a_step_with_a_bad_cosignature_fails(chain: RotatedChain) -> None:
    """A flipped bit in the successor's cosignature is a SignatureError naming the step."""
    k0, k1 = chain.sealers[0], chain.sealers[1]
    genuine = codec.decode_envelope(rotation_envelope(k0, k1.public_key, [k1]))
    signature = genuine.cosigners[0].signature
    bad = Cosigner(k1.public_key, bytes([signature[0] ^ 1]) + signature[1:])
    forged = codec.encode_envelope(dataclasses.replace(genuine, cosigners=(bad,)))
    error = _refused(_hostile_proof(chain, forged), k0.public_key)
    assert isinstance(error, SignatureError) and str(error).startswith("rotations[0]: ")


def test_a_step_sealed_by_a_key_the_step_before_did_not_name_fails(chain: RotatedChain) -> None:
    """An intruder who appends their own rotation (sealed by X, cosigned by their Y) after the
    genuine steps cannot anchor a proof in a block Y sealed: X is not K2."""
    intruder, accomplice = signing.Signer.generate(), signing.Signer.generate()
    rotation = rotation_envelope(intruder, accomplice.public_key, [accomplice], number=77)
    forged, checkpoint = next_block(chain.checkpoints[5], [rotation], intruder)
    anchor, _ = next_block(checkpoint, [], accomplice)
    built = [*chain.blocks[:6], forged, anchor]
    proof = proofs.build_proof(
        0,
        built[1],
        anchor,
        [blocks.block_hash(block.header) for block in built],
        rotation_blocks=[*_rotation_blocks(chain), forged],
    )
    for key in _keys(chain):
        error = _refused(proof, key)
        assert isinstance(error, SignatureError)
        assert "the successor named by rotations[1]" in str(error)


def test_a_rotate_sealer_that_is_not_the_last_transaction_fails(chain: RotatedChain) -> None:
    """A step must be its block's last transaction: a RotateSealer followed by another one
    hands nothing on, even with a correct audit path for its own index."""
    k0, k1 = chain.sealers[0], chain.sealers[1]
    rotation = rotation_envelope(k0, k1.public_key, [k1])
    proof = _hostile_proof(chain, rotation)
    envelopes = [rotation, envelope(chain.author, 900)]
    middle, _ = next_block(chain.checkpoints[1], envelopes, k0)
    leaves = blocks.tx_leaf_hashes(middle.transactions)
    step = {
        "block": _header_hex(middle),
        "block_seal": middle.seal.hex(),
        "envelope": rotation.hex(),
        "tx_index": 0,
        "tx_inclusion": [element.hex() for element in merkle.inclusion_proof(0, leaves)],
    }
    error = _refused({**proof, "rotations": [step]}, k0.public_key)
    assert "not the last transaction" in str(error)


def _header_hex(block: Block) -> dict[str, Any]:
    return {
        field.name: value.hex() if isinstance(value, bytes) else value
        for field in dataclasses.fields(block.header)
        for value in [getattr(block.header, field.name)]
    }


# ---- building -----------------------------------------------------------------------------------


def test_build_proof_refuses_rotation_blocks_that_cannot_make_a_step(chain: RotatedChain) -> None:
    """A block not ending in a RotateSealer, blocks out of order, or a block of another chain
    is a caller's mistake (ValueError); rotation blocks at or after the anchor are ignored."""
    block, anchor = chain.blocks[1], chain.blocks[HEAD]
    rotated = _rotation_blocks(chain)
    with pytest.raises(ValueError, match="does not end in a RotateSealer"):
        proofs.build_proof(0, block, anchor, chain.hashes, rotation_blocks=[chain.blocks[1]])
    with pytest.raises(ValueError, match="height order"):
        proofs.build_proof(0, block, anchor, chain.hashes, rotation_blocks=rotated[::-1])
    other = build_rotated_chain(TX_COUNTS)
    with pytest.raises(ValueError, match="not the chain's block"):
        proofs.build_proof(0, block, anchor, chain.hashes, rotation_blocks=_rotation_blocks(other))
    early = proofs.build_proof(0, block, chain.blocks[4], chain.hashes, rotation_blocks=rotated)
    assert len(early["rotations"]) == 1


# ---- consistency proofs -------------------------------------------------------------------------


def _consistency(chain: RotatedChain, old: int, new: int) -> dict[str, Any]:
    proof = proofs.build_consistency_proof(
        chain.blocks[old], chain.blocks[new], chain.hashes, rotation_blocks=_rotation_blocks(chain)
    )
    loaded: dict[str, Any] = json.loads(json.dumps(proof))
    return loaded


def test_consistency_across_rotations_verifies_trusting_any_sealer(chain: RotatedChain) -> None:
    """For every old < new the proof holds trusting any sealer its steps lead through, and
    carries exactly the rotations below the new block."""
    for old in range(HEAD):
        for new in range(old + 1, HEAD + 1):
            proof = _consistency(chain, old, new)
            count = sum(1 for height in chain.rotation_heights if height < new)
            assert len(proof.get("rotations", [])) == count
            for key in _keys(chain)[: count + 1]:
                summary = proofs.verify_consistency_proof(proof, key)
                assert (summary["old_height"], summary["new_height"]) == (old, new)
                assert summary["old_hash"] == chain.hashes[old].hex()
                assert summary["rotations"] == count


def test_consistency_without_a_step_or_with_a_changed_one_fails(chain: RotatedChain) -> None:
    """From block 1 (K0) to block 6 (K2): dropping or swapping a step, or flipping a byte of a
    step's seal, fails."""
    proof = _consistency(chain, 1, 6)
    first, second = proof["rotations"]
    broken_seal = {**second, "block_seal": _flip(second["block_seal"], 0)}
    for steps in ([first], [second], [second, first], [first, broken_seal]):
        with pytest.raises((ProofError, SignatureError)):
            proofs.verify_consistency_proof(
                {**proof, "rotations": steps}, chain.sealers[0].public_key
            )
