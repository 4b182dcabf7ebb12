"""Sealer rotations in proofs (docs/sealer-rotation.md): writing the ``rotations`` steps of the
blocks that end in a RotateSealer, and deriving from a proof's steps the sealer keys K0..Kn and
which of them sealed a given height.

Step i is sealed by Ki and its last transaction, a RotateSealer cosigned by K(i+1), names K(i+1).
A verifier may trust any of the keys the steps lead through: Ki's seal vouches for K(i+1), and
K(i+1)'s cosignature for Ki as its predecessor.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from typing import Any, Final

from ledger import blocks, proof_json, signing
from ledger.errors import DecodeError, ProofError, SignatureError
from ledger.model import Block, BlockHeader

_ROTATION_KEYS: Final = frozenset({"block", "block_seal", "envelope", "tx_index", "tx_inclusion"})
rotations_max_count: Final = 4_096
"""Steps one proof may carry: more than ten years of daily sealer rotations. A step costs three
Ed25519 checks (its seal, the sealer's and the successor's signatures; nine if every cosigner
seat is used), so this bounds what a hostile proof can make a verifier do to about two seconds."""


def rotations_json(
    rotation_blocks: Sequence[Block], end: BlockHeader, history: Sequence[bytes]
) -> list[dict[str, Any]]:
    """The steps of the rotation blocks below ``end``, whose ``history`` (the hashes of blocks
    0..end-1) they must be in."""
    steps: list[dict[str, Any]] = []
    previous_height = -1
    for block in rotation_blocks:
        header = block.header
        if header.height >= end.height:
            continue
        if header.ledger != end.ledger:
            raise ValueError(f"rotation block {header.height} is of ledger {header.ledger!r}")
        if header.height <= previous_height:
            raise ValueError(
                f"rotation block {header.height} is listed after block {previous_height}: "
                "rotation blocks go in height order, each once"
            )
        if history[header.height] != blocks.block_hash(header):
            raise ValueError(f"rotation block {header.height} is not the chain's block there")
        try:
            rotation = blocks.sealer_rotation(block)
        except DecodeError as exc:
            raise ValueError(f"rotation block {header.height}: its RotateSealer: {exc}") from exc
        if rotation is None:
            raise ValueError(f"block {header.height} does not end in a RotateSealer")
        tx_index = len(block.transactions) - 1
        steps.append(
            {
                "block": proof_json.header_json(header),
                "block_seal": block.seal.hex(),
                "envelope": block.transactions[tx_index].envelope.hex(),
                "tx_index": tx_index,
                "tx_inclusion": proof_json.tx_inclusion_json(block, tx_index),
            }
        )
        previous_height = header.height
    return steps


@dataclasses.dataclass(frozen=True, slots=True)
class Sealers:
    """The sealer keys a proof's rotations lead through: ``keys[i]`` seals the blocks after
    rotation ``heights[i - 1]`` up to and including rotation ``heights[i]``."""

    keys: tuple[bytes, ...]
    heights: tuple[int, ...]

    def at(self, height: int) -> tuple[bytes, str]:
        """The key that seals block ``height``, and how to name it in a message."""
        index = bisect.bisect_left(self.heights, height)  # rotations below this height
        key = self.keys[index]
        if not self.heights:
            return key, ""
        return key, f"{signing.key_id(key)}, the sealer at height {height} by the proof's rotations"


def sealers(value: object, ledger: str, end: BlockHeader, end_name: str, trusted: bytes) -> Sealers:
    """The keys that the ``rotations`` of a proof up to ``end`` lead through, once every step
    holds and ``trusted`` is one of them; with no steps, ``trusted`` alone.

    Per step, the comparisons come first, then its seal, path and signatures.
    """
    if not isinstance(value, list):
        raise ProofError(f"rotations is {type(value).__name__}, expected a list")
    if len(value) > rotations_max_count:
        raise ProofError(f"rotations has {len(value)} steps, at most {rotations_max_count}")
    keys: list[bytes] = []
    heights: list[int] = []
    for index, item in enumerate(value):
        where = f"rotations[{index}]"
        step = RotationStep.parse(item, where)
        header = step.header
        if header.ledger != ledger:
            raise ProofError(f"{where}.block is of ledger {header.ledger!r}, not {ledger!r}")
        if heights and header.height <= heights[-1]:
            raise ProofError(
                f"{where} is block {header.height}, not after block {heights[-1]} of the step "
                "before: steps go in height order, each once"
            )
        if header.height >= end.height:
            raise ProofError(f"{where} is block {header.height}, not before the {end_name}")
        if keys and header.sealer_key != keys[-1]:
            raise SignatureError(
                f"{where}.block names sealer {signing.key_id(header.sealer_key)}, not "
                f"{signing.key_id(keys[-1])}, the successor named by rotations[{index - 1}]"
            )
        successor = step.successor(where)
        keys.extend([successor] if keys else [header.sealer_key, successor])
        heights.append(header.height)
    if not keys:
        return Sealers((trusted,), ())
    if trusted not in keys:
        raise SignatureError(
            f"the given sealer {signing.key_id(trusted)} is none of the sealers the proof's "
            f"rotations lead through ({', '.join(signing.key_id(key) for key in keys)})"
        )
    return Sealers(tuple(keys), tuple(heights))


def sealed(header: BlockHeader, seal: bytes, sealers: Sealers, where: str) -> bytes:
    """The header's hash, once it is sealed by the key in force at its height."""
    sealer_key, sealer_named = sealers.at(header.height)
    return proof_json.check_seal(header, seal, sealer_key, where, sealer_named)


@dataclasses.dataclass(frozen=True, slots=True)
class RotationStep:
    """One entry of ``rotations``, read but not yet checked."""

    header: BlockHeader
    seal: bytes
    envelope: bytes
    tx_index: int
    tx_inclusion: list[bytes]

    @classmethod
    def parse(cls, value: object, where: str) -> RotationStep:
        record = proof_json.read_mapping(value, _ROTATION_KEYS, where)
        return cls(
            header=proof_json.read_header(record["block"], f"{where}.block"),
            seal=proof_json.read_hex(
                record["block_seal"], f"{where}.block_seal", proof_json.seal_bytes
            ),
            envelope=proof_json.read_hex(record["envelope"], f"{where}.envelope"),
            tx_index=proof_json.read_natural(record["tx_index"], f"{where}.tx_index"),
            tx_inclusion=proof_json.read_hash_list(record["tx_inclusion"], f"{where}.tx_inclusion"),
        )

    def successor(self, where: str) -> bytes:
        """The key this step hands sealing to, once its block is sealed by the sealer its header
        names and its last transaction is a RotateSealer that holds (``ledger.blocks``)."""
        header = self.header
        proof_json.check_seal(header, self.seal, header.sealer_key, f"{where}.block")
        if self.tx_index + 1 != header.tx_count:
            raise ProofError(
                f"{where}.tx_index {self.tx_index} is not the last transaction of block "
                f"{header.height} (tx_count {header.tx_count})"
            )
        try:
            blocks.check_tx_inclusion(self.envelope, self.tx_index, self.tx_inclusion, header)
        except ProofError as exc:
            raise ProofError(f"{where}.tx_inclusion in block {header.height}: {exc}") from exc
        try:
            rotation = blocks.read_sealer_rotation(self.envelope)
        except DecodeError as exc:
            raise ProofError(f"{where}.envelope does not decode: {exc}") from exc
        if rotation is None:
            raise ProofError(f"{where}.envelope is not a RotateSealer")
        problem = blocks.rotation_problem(rotation, header)
        if problem is not None:
            raise ProofError(f"{where}: {problem}")
        try:
            signing.verify_envelope(rotation.envelope)
        except SignatureError as exc:
            raise SignatureError(f"{where}: the RotateSealer's {exc}") from exc
        return rotation.successor
