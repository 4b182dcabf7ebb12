"""Witnesses: independent keys that co-sign blocks they verified and replayed, and finality.

A witness signs the *cosignature statement* of a block::

    b"ledger.v1.cosignature\\x00" || len(ledger) (2 bytes, big-endian) || ledger (UTF-8)
        || height (8 bytes, big-endian) || block_hash (32) || blocks_root (32)

Because each block hash covers the previous one, co-signing height h vouches for every block
below it too. A ledger's finality policy is on chain: the unrevoked keys with the ``witness``
role and a threshold k (``SetFinality``). A block is **final** once k distinct policy witnesses
co-signed it or a later block of the same chain; with k = 0 a block is final when sealed.

Evidence is signed the same way over ``b"ledger.v1.evidence\\x00"`` and the canonical Avro bytes of
the ``Evidence`` record with an empty signature. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from ledger import codec
from ledger.model import BlockHeader, Cosignature, Evidence
from ledger.signing import Signer, message_signature_ok
from ledger.state import State

COSIGNATURE_DOMAIN: Final = b"ledger.v1.cosignature\x00"
EVIDENCE_DOMAIN: Final = b"ledger.v1.evidence\x00"
_HEIGHT = struct.Struct(">Q")


class EvidenceKind:
    """``Evidence.kind``: what the witness saw (schema ``ledger.v1.Evidence`` says more)."""

    EQUIVOCATION: Final = "EQUIVOCATION"
    NOT_EXTENDING: Final = "NOT_EXTENDING"
    REPLAY_REFUSED: Final = "REPLAY_REFUSED"


assert (
    EvidenceKind.EQUIVOCATION,
    EvidenceKind.NOT_EXTENDING,
    EvidenceKind.REPLAY_REFUSED,
) == codec.EVIDENCE_KINDS


def cosignature_statement(ledger: str, height: int, block_hash: bytes, blocks_root: bytes) -> bytes:
    """The exact bytes a witness signs for one block."""
    name = ledger.encode()
    return (
        COSIGNATURE_DOMAIN
        + len(name).to_bytes(2, "big")
        + name
        + _HEIGHT.pack(height)
        + block_hash
        + blocks_root
    )


def cosign(witness: Signer, header: BlockHeader, block_hash: bytes, now_ms: int) -> Cosignature:
    """``witness``'s cosignature of the block with ``header`` (whose hash is ``block_hash``)."""
    statement = cosignature_statement(header.ledger, header.height, block_hash, header.blocks_root)
    return Cosignature(
        ledger=header.ledger,
        height=header.height,
        block_hash=block_hash,
        blocks_root=header.blocks_root,
        witness_key=witness.public_key,
        signature=witness.sign_message(statement),
        signed_at_ms=now_ms,
    )


def cosignature_ok(cosignature: Cosignature) -> bool:
    """Whether the signature covers the cosignature's statement; never raises."""
    statement = cosignature_statement(
        cosignature.ledger, cosignature.height, cosignature.block_hash, cosignature.blocks_root
    )
    return message_signature_ok(cosignature.witness_key, cosignature.signature, statement)


def _evidence_statement(evidence: Evidence) -> bytes:
    return EVIDENCE_DOMAIN + codec.encode_evidence(dataclasses.replace(evidence, signature=b""))


def sign_evidence(witness: Signer, evidence: Evidence) -> Evidence:
    """``evidence`` signed by ``witness`` (its ``witness_key`` must be the witness's)."""
    if evidence.witness_key != witness.public_key:
        raise ValueError("evidence names another witness key than the signer's")
    unsigned = dataclasses.replace(evidence, signature=b"")
    return dataclasses.replace(
        unsigned, signature=witness.sign_message(_evidence_statement(unsigned))
    )


def evidence_ok(evidence: Evidence) -> bool:
    """Whether the evidence is signed by the witness it names; never raises."""
    return message_signature_ok(
        evidence.witness_key, evidence.signature, _evidence_statement(evidence)
    )


@dataclass(frozen=True)
class WitnessPolicy:
    """Whose cosignatures count, and how many make a block final."""

    witness_keys: frozenset[bytes]
    threshold: int

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= len(self.witness_keys):
            raise ValueError(
                f"threshold {self.threshold} needs 0..{len(self.witness_keys)} (the witnesses)"
            )

    def signers(
        self, cosignatures: Iterable[Cosignature], ledger: str, height: int, block_hash: bytes
    ) -> frozenset[bytes]:
        """The distinct policy witnesses whose valid cosignature covers exactly this block."""
        return frozenset(
            cosignature.witness_key
            for cosignature in cosignatures
            if cosignature.witness_key in self.witness_keys
            and cosignature.ledger == ledger
            and cosignature.height == height
            and cosignature.block_hash == block_hash
            and cosignature_ok(cosignature)
        )

    def is_final(
        self, cosignatures: Iterable[Cosignature], ledger: str, height: int, block_hash: bytes
    ) -> bool:
        """Whether ``cosignatures`` make the block final (at least ``threshold`` signers)."""
        return len(self.signers(cosignatures, ledger, height, block_hash)) >= self.threshold


def cosignature_problem(
    cosignature: Cosignature, witness_keys: frozenset[bytes], chain_hash: bytes | None
) -> str | None:
    """Why ``cosignature`` does not count toward finality, or None when it does.

    ``chain_hash`` is the hash of the chain's block at the cosigned height, None if unknown.
    """
    if cosignature.witness_key not in witness_keys:
        return "not signed by a registered witness key"
    if not cosignature_ok(cosignature):
        return "the signature does not verify"
    if chain_hash is None:
        return "no such block yet"
    if cosignature.block_hash != chain_hash:
        return "co-signs another block than the chain's at that height"
    return None


def policy_of(state: State) -> WitnessPolicy:
    """The finality policy a ledger's state holds: its unrevoked witnesses and threshold."""
    return WitnessPolicy(state.witness_keys(), state.finality_threshold)


@dataclass
class FinalityTracker:
    """One ledger's finalized height from a stream of cosignatures.

    ``add`` takes each cosignature with the hash the *chain* has at its height (or None when
    that block is not known yet) and returns why it does not count, or None when it does.
    """

    policy: WitnessPolicy
    highest: dict[bytes, int] = field(default_factory=dict)
    """Policy witness -> the highest height it co-signed on this chain."""

    def add(self, cosignature: Cosignature, chain_hash: bytes | None) -> str | None:
        problem = cosignature_problem(cosignature, self.policy.witness_keys, chain_hash)
        if problem is not None:
            return problem
        key = cosignature.witness_key
        self.highest[key] = max(self.highest.get(key, -1), cosignature.height)
        return None

    def final_height(self, head_height: int) -> int:
        """The highest final height (-1: none yet); ``head_height`` is the chain's newest."""
        if self.policy.threshold == 0:
            return head_height
        heights = sorted(
            (height for key, height in self.highest.items() if key in self.policy.witness_keys),
            reverse=True,
        )
        if len(heights) < self.policy.threshold:
            return -1
        return min(heights[self.policy.threshold - 1], head_height)
