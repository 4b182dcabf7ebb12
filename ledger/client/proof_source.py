"""Proofs from the live chain: find a transaction with ``BlockReader``, prove it with ``ledger.proofs``.

``prove_transaction`` reads the ledger from genesis (verifying every block on the way, so a
proof is never built from a chain that does not verify), keeps the hashes of all blocks (32
bytes each), the block holding the transaction and the newest block, and anchors the proof in
the newest block: a header's ``blocks_root`` covers only earlier blocks, so a transaction in the
newest block has no proof until the next block is sealed.

The scan is linear in the chain's length; an index (tx_id -> height, as the projector keeps in
PostgreSQL) would make finding the block O(1), but the proof still needs every block hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger import codec
from ledger.client.reader import BlockReader
from ledger.errors import DecodeError, LedgerError
from ledger.model import Block
from ledger.proofs import build_proof
from ledger.settings import TOPIC_BLOCKS


class TransactionNotFound(LedgerError):
    """The transaction is not in any block of the ledger (yet, or at all)."""


class NoLaterBlock(LedgerError):
    """The transaction is in the newest block: its proof needs one block more."""


@dataclass(frozen=True, slots=True)
class _Found:
    block: Block
    envelope: bytes


def _find_envelope(block: Block, tx_id: bytes) -> bytes | None:
    for sealed in block.transactions:
        try:
            sealed_tx_id = codec.decode_submission(sealed.envelope)[1].tx_id
        except DecodeError:
            continue  # not a transaction anyone could ask for; the chain itself verified
        if sealed_tx_id == tx_id:
            return sealed.envelope
    return None


async def prove_transaction(
    bootstrap_servers: str,
    ledger: str,
    tx_id: bytes,
    *,
    partition: int | None = None,
    topic: str = TOPIC_BLOCKS,
    trusted_sealer_key: bytes | None = None,
) -> dict[str, Any]:
    """The JSON-ready proof (``ledger.proofs`` format) of ``tx_id``, anchored at the newest block.

    Raises TransactionNotFound, NoLaterBlock, ChainError (the chain does not verify) or
    InfraError (Kafka).
    """
    block_hashes: list[bytes] = []
    found: _Found | None = None
    newest: Block | None = None
    async with BlockReader(
        bootstrap_servers,
        ledger,
        partition=partition,
        topic=topic,
        trusted_sealer_key=trusted_sealer_key,
        client_id="ledger-proof",
    ) as reader:
        async for item in reader:
            block_hashes.append(item.block_hash)
            newest = item.block
            if found is None:
                envelope = _find_envelope(item.block, tx_id)
                if envelope is not None:
                    found = _Found(item.block, envelope)
    if found is None:
        searched = "no blocks" if newest is None else f"blocks 0..{newest.header.height}"
        raise TransactionNotFound(
            f"transaction {tx_id.hex()} is not in ledger {ledger!r} ({searched} searched)"
        )
    assert newest is not None
    height = found.block.header.height
    if newest.header.height == height:
        raise NoLaterBlock(
            f"transaction {tx_id.hex()} is in block {height}, the newest block: a proof needs "
            "one later block, whose blocks_root covers it; try again after the next block"
        )
    return build_proof(found.envelope, found.block, newest, block_hashes)


__all__ = ["NoLaterBlock", "TransactionNotFound", "prove_transaction"]
