"""Builds small sealed chains for the blocks and proofs tests: real envelopes, real seals."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ledger import blocks, signing
from ledger.blocks import ChainCheckpoint
from ledger.model import Attest, Block

LEDGER = "test-ledger"
NOW_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Chain:
    blocks: list[Block]
    hashes: list[bytes]
    checkpoints: list[ChainCheckpoint]
    sealer: signing.Signer
    author: signing.Signer


def envelope(author: signing.Signer, number: int, ledger: str = LEDGER) -> bytes:
    """A signed Attest transaction, distinct for each ``number``."""
    body = signing.build_tx_body(
        ledger,
        Attest(digest=hashlib.sha256(number.to_bytes(8, "big")).digest()),
        now_ms=NOW_MS,
        tx_id=hashlib.sha256(b"tx" + number.to_bytes(8, "big")).digest()[:16],
        external_ref=f"ref-{number}",
    )
    return author.sign(body)


def build_chain(tx_counts: list[int], sealer: signing.Signer | None = None) -> Chain:
    """Blocks 0..len(tx_counts)-1, block h holding tx_counts[h] transactions."""
    sealer = sealer or signing.Signer.generate()
    author = signing.Signer.generate()
    chain_blocks: list[Block] = []
    checkpoints: list[ChainCheckpoint] = []
    previous: ChainCheckpoint | None = None
    number = 0
    for height, count in enumerate(tx_counts):
        envelopes = [envelope(author, number + offset) for offset in range(count)]
        number += count
        block, previous = blocks.build_block(
            previous,
            ledger=LEDGER,
            envelopes=envelopes,
            sealed_at_ms=NOW_MS + height,
            source_partition=0,
            source_offset_end=number,
            signing_key=sealer,
        )
        chain_blocks.append(block)
        checkpoints.append(previous)
    hashes = [blocks.block_hash(block.header) for block in chain_blocks]
    return Chain(chain_blocks, hashes, checkpoints, sealer, author)
