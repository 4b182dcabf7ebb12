"""Self-contained JSON proofs that one transaction is in the ledger, checked offline.

A proof carries the exact envelope bytes, the header and seal of its block, the envelope's
inclusion proof in that block's ``tx_root``, a *later* sealed header (the anchor), and the
inclusion proof of the block's hash in the anchor's ``blocks_root``. With nothing but the
sealer's public key, ``verify_proof`` checks the whole path::

    envelope --(signature)--> its author
    leaf_hash(envelope) --(tx_inclusion)--> block.tx_root
    block hash (recomputed from the header) --(block_inclusion)--> anchor.blocks_root
    block and anchor headers --(seals)--> the sealer key

The anchor must be later than the block, because a header's ``blocks_root`` covers only
earlier blocks: a transaction's proof is available once one more block has been sealed after
its own. The newest anchor is the best one (it also proves the block is still in the history
the sealer signs today), but any later block works.

Finality: ``anchor_cosignatures`` (optional; absent from proofs made before witnesses) lists
witnesses' cosignatures of the anchor, ``{"witness_key", "signature"}`` each, over the anchor's
cosignature statement (``ledger.witnessing``); each must verify, so no byte of them can change
either. Given a ``WitnessPolicy``, ``verify_proof`` holds
only if at least its threshold of distinct policy witnesses signed: the anchor, and so the block
it covers, is final, whatever the sealer alone might claim.

Sealer rotation (docs/sealer-rotation.md): ``rotations`` (optional; absent when the ledger
never rotated its sealer before the anchor) lists one step per block up to the anchor that ends
in a RotateSealer, in height order: the step's header and seal, the RotateSealer envelope, its
``tx_index`` (the block's last) and its ``tx_inclusion`` in the block's ``tx_root``. From the
steps the verifier derives the sealer keys K0..Kn: step i is sealed by Ki and names K(i+1),
who cosigned it. The given sealer key must be one of them (Ki's seal vouches for K(i+1), and
K(i+1)'s cosignature for Ki as its predecessor), and the block and the anchor must each be
sealed by the key in force at their height. What a proof cannot show: that no rotation *after*
the anchor retired a key; ``ledger verify-chain`` and the witnesses can.

Every byte is checked: hex must be lowercase and canonical, keys exact, integers integers, so
changing any byte of a proof makes it fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ledger import blocks, codec, merkle, proof_json, proof_rotations, signing
from ledger.errors import DecodeError, ProofError, SignatureError
from ledger.model import Block, BlockHeader, Cosignature, Envelope, TxBody
from ledger.witnessing import WitnessPolicy, cosignature_ok

PROOF_VERSION: Final = 1

_PROOF_KEYS: Final = frozenset(
    {
        "version",
        "ledger",
        "envelope",
        "seq",
        "block",
        "block_seal",
        "tx_index",
        "tx_inclusion",
        "anchor",
        "block_inclusion",
    }
)
_OPTIONAL_PROOF_KEYS: Final = frozenset({"anchor_cosignatures", "rotations"})
_COSIGNATURE_KEYS: Final = frozenset({"witness_key", "signature"})


# ---- building -------------------------------------------------------------------------------


def _tx_index(envelope_bytes_or_index: bytes | int, block: Block) -> int:
    if isinstance(envelope_bytes_or_index, bytes):
        for index, tx in enumerate(block.transactions):
            if tx.envelope == envelope_bytes_or_index:
                return index
        raise ValueError(f"the envelope is not in block {block.header.height}")
    index = envelope_bytes_or_index
    if not 0 <= index < len(block.transactions):
        raise ValueError(f"block {block.header.height} has no transaction {index}")
    return index


def build_proof(
    envelope_bytes_or_index: bytes | int,
    block: Block,
    anchor_block: Block,
    block_hashes: Sequence[bytes],
    anchor_cosignatures: Sequence[Cosignature] = (),
    *,
    rotation_blocks: Sequence[Block] = (),
) -> dict[str, Any]:
    """The JSON-ready proof of one transaction of ``block``, anchored in ``anchor_block``.

    ``block_hashes`` are the hashes of blocks 0.. at least up to ``anchor_block``'s height - 1
    (more are ignored); ``anchor_cosignatures`` are witnesses' cosignatures of the anchor (only
    those of its exact height and hash are kept); ``rotation_blocks`` are the blocks ending in a
    RotateSealer, every one below the anchor's height, in height order (later ones are
    ignored). Raises ValueError when the inputs cannot make a valid proof.
    """
    header, anchor = block.header, anchor_block.header
    if anchor.ledger != header.ledger:
        raise ValueError(f"anchor is of ledger {anchor.ledger!r}, not {header.ledger!r}")
    if anchor.height <= header.height:
        raise ValueError(
            f"anchor block {anchor.height} is not later than block {header.height}: a proof "
            "needs a later block, whose blocks_root covers this one"
        )
    if len(block_hashes) < anchor.height:
        raise ValueError(f"need {anchor.height} block hashes, got {len(block_hashes)}")
    history = list(block_hashes[: anchor.height])
    if history[header.height] != blocks.block_hash(header):
        raise ValueError(f"block_hashes[{header.height}] is not the hash of the block")
    leaf_hashes = [merkle.leaf_hash(digest) for digest in history]
    if merkle.root(leaf_hashes) != anchor.blocks_root:
        raise ValueError(f"block_hashes do not lead to the blocks_root of block {anchor.height}")
    rotations = proof_rotations.rotations_json(rotation_blocks, anchor, history)
    tx_index = _tx_index(envelope_bytes_or_index, block)
    tx = block.transactions[tx_index]
    document = {
        "version": PROOF_VERSION,
        "ledger": header.ledger,
        "envelope": tx.envelope.hex(),
        "seq": tx.seq,
        "block": proof_json.header_json(header),
        "block_seal": block.seal.hex(),
        "tx_index": tx_index,
        "tx_inclusion": proof_json.tx_inclusion_json(block, tx_index),
        "anchor": {**proof_json.header_json(anchor), "seal": anchor_block.seal.hex()},
        "block_inclusion": [
            element.hex() for element in merkle.inclusion_proof(header.height, leaf_hashes)
        ],
        "anchor_cosignatures": _cosignatures_json(anchor_block, anchor_cosignatures),
    }
    if rotations:  # absent, not empty, when nothing rotated: such proofs stay as they were
        document["rotations"] = rotations
    return document


def _cosignatures_json(anchor: Block, cosignatures: Sequence[Cosignature]) -> list[dict[str, str]]:
    header = anchor.header
    digest = blocks.block_hash(header)
    kept = {
        cosignature.witness_key: cosignature.signature
        for cosignature in cosignatures
        if (cosignature.ledger, cosignature.height, cosignature.block_hash)
        == (header.ledger, header.height, digest)
    }
    return [
        {"witness_key": key.hex(), "signature": signature.hex()}
        for key, signature in sorted(kept.items())
    ]


# ---- verifying --------------------------------------------------------------------------------


def verify_proof(
    proof: object, sealer_public_key: bytes, witness_policy: WitnessPolicy | None = None
) -> dict[str, Any]:
    """Check ``proof`` offline against the sealer's 32-byte public key and, when given, a
    witness policy; a summary if it holds.

    With ``rotations``, ``sealer_public_key`` may be any of the keys they lead through (module
    docstring); each seal is checked by the key in force at its height.

    Raises ProofError (structure, numbering, Merkle paths, a rotation step that does not hold,
    too few witnesses) or SignatureError (the envelope signature, any seal, a sealer other than
    the one in force, a ``sealer_public_key`` that is none of the sealers) with the precise
    reason.
    """
    if not isinstance(sealer_public_key, bytes) or len(sealer_public_key) != proof_json.hash_bytes:
        raise ValueError("the sealer public key is 32 raw bytes")
    record = proof_json.read_mapping(proof, _PROOF_KEYS, "proof", _OPTIONAL_PROOF_KEYS)
    version = proof_json.read_integer(record["version"], "version")
    if version != PROOF_VERSION:
        raise ProofError(f"proof version {version} is not supported (this reader: {PROOF_VERSION})")
    ledger = proof_json.read_text(record["ledger"], "ledger")
    envelope_bytes = proof_json.read_hex(record["envelope"], "envelope")
    seq = proof_json.read_natural(record["seq"], "seq")
    header = proof_json.read_header(record["block"], "block")
    block_seal = proof_json.read_hex(record["block_seal"], "block_seal", proof_json.seal_bytes)
    tx_index = proof_json.read_natural(record["tx_index"], "tx_index")
    tx_inclusion = proof_json.read_hash_list(record["tx_inclusion"], "tx_inclusion")
    anchor = proof_json.read_header(record["anchor"], "anchor", frozenset({"seal"}))
    anchor_seal = proof_json.read_hex(
        record["anchor"]["seal"], "anchor.seal", proof_json.seal_bytes
    )
    block_inclusion = proof_json.read_hash_list(record["block_inclusion"], "block_inclusion")

    if header.ledger != ledger or anchor.ledger != ledger:
        raise ProofError(
            f"ledger {ledger!r} does not match block ({header.ledger!r}) "
            f"and anchor ({anchor.ledger!r})"
        )
    sealers = proof_rotations.sealers(
        record.get("rotations", []), ledger, anchor, "anchor", sealer_public_key
    )
    block_hash = proof_rotations.sealed(header, block_seal, sealers, "block")
    anchor_hash = proof_rotations.sealed(anchor, anchor_seal, sealers, "anchor")
    if anchor.height <= header.height:
        raise ProofError(f"anchor {anchor.height} is not later than block {header.height}")

    envelope, tx_body = _checked_transaction(envelope_bytes, ledger)
    if tx_index >= header.tx_count:
        raise ProofError(f"tx_index {tx_index} is not below the block's tx_count {header.tx_count}")
    if seq != header.first_seq + tx_index:
        raise ProofError(
            f"seq {seq} is not first_seq {header.first_seq} + tx_index {tx_index} of the block"
        )
    try:
        blocks.check_tx_inclusion(envelope_bytes, tx_index, tx_inclusion, header)
    except ProofError as exc:
        raise ProofError(f"tx_inclusion in block {header.height}: {exc}") from exc
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(block_hash),
            header.height,
            anchor.height,
            block_inclusion,
            anchor.blocks_root,
        )
    except ProofError as exc:
        raise ProofError(f"block_inclusion in anchor {anchor.height}: {exc}") from exc
    cosignatures = _cosignatures(record.get("anchor_cosignatures", []), anchor, anchor_hash)
    finality: dict[str, Any] = {"anchor_cosignatures": len(cosignatures)}
    if witness_policy is not None:
        signers = witness_policy.signers(cosignatures, ledger, anchor.height, anchor_hash)
        if len(signers) < witness_policy.threshold:
            raise ProofError(
                f"the anchor is co-signed by {len(signers)} of the given witnesses, "
                f"{witness_policy.threshold} needed: not final"
            )
        finality["final_by"] = sorted(signing.key_id(key) for key in signers)

    return {
        "ledger": ledger,
        "tx_id": tx_body.tx_id.hex(),
        "kind": tx_body.kind,
        "external_ref": tx_body.external_ref,
        "key_id": signing.key_id(envelope.public_key),
        "seq": seq,
        "height": header.height,
        "tx_index": tx_index,
        "sealed_at_ms": header.sealed_at_ms,
        "block_hash": block_hash.hex(),
        "anchor_height": anchor.height,
        "anchor_hash": anchor_hash.hex(),
        "sealer_key_id": signing.key_id(sealer_public_key),
        "rotations": len(sealers.heights),
        **finality,
    }


def _cosignatures(value: object, anchor: BlockHeader, anchor_hash: bytes) -> list[Cosignature]:
    """The listed cosignatures of the anchor: each must verify by the key it names, and the
    keys are distinct and in ascending order (one spelling per proof)."""
    if not isinstance(value, list):
        raise ProofError(f"anchor_cosignatures is {type(value).__name__}, expected a list")
    cosignatures = []
    for index, item in enumerate(value):
        where = f"anchor_cosignatures[{index}]"
        record = proof_json.read_mapping(item, _COSIGNATURE_KEYS, where)
        cosignatures.append(
            Cosignature(
                ledger=anchor.ledger,
                height=anchor.height,
                block_hash=anchor_hash,
                blocks_root=anchor.blocks_root,
                witness_key=proof_json.read_hex(
                    record["witness_key"], f"{where}.witness_key", proof_json.hash_bytes
                ),
                signature=proof_json.read_hex(
                    record["signature"], f"{where}.signature", proof_json.seal_bytes
                ),
                signed_at_ms=0,
            )
        )
        if not cosignature_ok(cosignatures[-1]):
            raise SignatureError(f"{where} does not verify over the anchor")
        if index and cosignatures[-1].witness_key <= cosignatures[-2].witness_key:
            raise ProofError(f"{where}: witness keys must be distinct and in ascending order")
    return cosignatures


def _checked_transaction(envelope_bytes: bytes, ledger: str) -> tuple[Envelope, TxBody]:
    """Envelope and body, once the envelope decodes and its signature covers its body."""
    try:
        envelope = codec.decode_envelope(envelope_bytes)
    except DecodeError as exc:
        raise ProofError(f"envelope does not decode: {exc}") from exc
    signing.verify_envelope(envelope)
    try:
        tx_body = codec.decode_tx_body(envelope.body, envelope.body_version)
    except DecodeError as exc:
        raise ProofError(f"envelope body does not decode: {exc}") from exc
    if tx_body.ledger != ledger:
        raise ProofError(f"transaction is for ledger {tx_body.ledger!r}, not {ledger!r}")
    return envelope, tx_body


# ---- consistency: the chain at a later height extends an earlier head ------------------------

_CONSISTENCY_KEYS: Final = frozenset(
    {"version", "ledger", "old", "new", "consistency", "old_inclusion"}
)


def build_consistency_proof(
    old_block: Block,
    new_block: Block,
    block_hashes: Sequence[bytes],
    *,
    rotation_blocks: Sequence[Block] = (),
) -> dict[str, Any]:
    """The JSON-ready proof that the chain up to ``new_block`` extends the one up to
    ``old_block``: whoever kept only the old head's hash can check that nothing before it, nor
    the head itself, was rewritten.

    ``new_block``'s ``blocks_root`` covers blocks 0..new-1; the proof holds the RFC 9162
    consistency proof from ``old_block``'s ``blocks_root`` (blocks 0..old-1) to it, and the
    inclusion proof of the old block's own hash at index old. ``block_hashes`` are the hashes of
    blocks 0.. at least up to new-1; ``rotation_blocks`` the blocks ending in a RotateSealer
    below ``new_block``, in height order (as for ``build_proof``). Raises ValueError when the
    inputs cannot make a valid proof.
    """
    old, new = old_block.header, new_block.header
    if old.ledger != new.ledger:
        raise ValueError(f"blocks of two ledgers: {old.ledger!r} and {new.ledger!r}")
    if new.height <= old.height:
        raise ValueError(
            f"block {new.height} is not later than block {old.height}: a header's blocks_root "
            "covers only earlier blocks"
        )
    if len(block_hashes) < new.height:
        raise ValueError(f"need {new.height} block hashes, got {len(block_hashes)}")
    leaves = [merkle.leaf_hash(digest) for digest in block_hashes[: new.height]]
    if block_hashes[old.height] != blocks.block_hash(old):
        raise ValueError(f"block_hashes[{old.height}] is not the hash of the old block")
    if merkle.root(leaves) != new.blocks_root:
        raise ValueError(f"block_hashes do not lead to the blocks_root of block {new.height}")
    rotations = proof_rotations.rotations_json(rotation_blocks, new, block_hashes[: new.height])
    document: dict[str, Any] = {
        "version": PROOF_VERSION,
        "ledger": old.ledger,
        "old": {**proof_json.header_json(old), "seal": old_block.seal.hex()},
        "new": {**proof_json.header_json(new), "seal": new_block.seal.hex()},
        "consistency": [element.hex() for element in merkle.consistency_proof(old.height, leaves)],
        "old_inclusion": [element.hex() for element in merkle.inclusion_proof(old.height, leaves)],
    }
    if rotations:
        document["rotations"] = rotations
    return document


def verify_consistency_proof(proof: object, sealer_public_key: bytes) -> dict[str, Any]:
    """Check a consistency proof offline against the sealer's key; a summary if it holds:
    both headers sealed (each by the key in force at its height, when the proof carries
    ``rotations``: as for ``verify_proof``), the old ``blocks_root`` a prefix of the new one, and
    the old block's hash in the new tree at its height. Compare ``old_hash`` with the head you
    kept.

    Raises ProofError or SignatureError naming what failed.
    """
    if not isinstance(sealer_public_key, bytes) or len(sealer_public_key) != proof_json.hash_bytes:
        raise ValueError("the sealer public key is 32 raw bytes")
    record = proof_json.read_mapping(proof, _CONSISTENCY_KEYS, "proof", frozenset({"rotations"}))
    version = proof_json.read_integer(record["version"], "version")
    if version != PROOF_VERSION:
        raise ProofError(f"proof version {version} is not supported (this reader: {PROOF_VERSION})")
    ledger = proof_json.read_text(record["ledger"], "ledger")
    old = proof_json.read_header(record["old"], "old", frozenset({"seal"}))
    new = proof_json.read_header(record["new"], "new", frozenset({"seal"}))
    consistency = proof_json.read_hash_list(record["consistency"], "consistency")
    old_inclusion = proof_json.read_hash_list(record["old_inclusion"], "old_inclusion")
    if old.ledger != ledger or new.ledger != ledger:
        raise ProofError(
            f"ledger {ledger!r} does not match old ({old.ledger!r}) and new ({new.ledger!r})"
        )
    sealers = proof_rotations.sealers(
        record.get("rotations", []), ledger, new, "new block", sealer_public_key
    )
    old_hash = proof_rotations.sealed(
        old,
        proof_json.read_hex(record["old"]["seal"], "old.seal", proof_json.seal_bytes),
        sealers,
        "old",
    )
    new_hash = proof_rotations.sealed(
        new,
        proof_json.read_hex(record["new"]["seal"], "new.seal", proof_json.seal_bytes),
        sealers,
        "new",
    )
    if new.height <= old.height:
        raise ProofError(f"new block {new.height} is not later than old block {old.height}")
    try:
        merkle.verify_consistency(
            old.height, new.height, old.blocks_root, new.blocks_root, consistency
        )
    except ProofError as exc:
        raise ProofError(f"consistency from block {old.height} to {new.height}: {exc}") from exc
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(old_hash), old.height, new.height, old_inclusion, new.blocks_root
        )
    except ProofError as exc:
        raise ProofError(f"old_inclusion in block {new.height}: {exc}") from exc
    return {
        "ledger": ledger,
        "old_height": old.height,
        "old_hash": old_hash.hex(),
        "new_height": new.height,
        "new_hash": new_hash.hex(),
        "sealer_key_id": signing.key_id(sealer_public_key),
        "rotations": len(sealers.heights),
    }
