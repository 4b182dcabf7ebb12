"""Proofs from the live chain: find a transaction with ``BlockReader``, prove it with ``ledger.proofs``.

``prove_transaction`` reads the ledger from genesis (verifying every block on the way, so a
proof is never built from a chain that does not verify), keeps the hashes of all blocks (32
bytes each), the block holding the transaction and the newest block, and anchors the proof in
the newest block: a header's ``blocks_root`` covers only earlier blocks, so a transaction in the
newest block has no proof until the next block is sealed.

The scan is linear in the chain's length. ``prove_from_postgres`` builds the same proof from the
projector's tables in a few indexed queries (the proof is checked in full by whoever verifies it,
so PostgreSQL need not be trusted); ``ledger proof`` tries it first. It anchors the proof in the
newest block that witnesses co-signed, when there is one after the transaction's, and carries
those cosignatures, so the proof also shows the transaction final (``ledger.witnessing``).

Both carry the ledger's sealer rotations up to the anchor (``ledger.proofs``): the blocks that
end in a RotateSealer, so the proof verifies under any sealer key the ledger has had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger import blocks, codec
from ledger.client.reader import BlockReader
from ledger.errors import DecodeError, InfraError, LedgerError, ProofError
from ledger.kafka_access import KafkaAccess
from ledger.model import Block, BlockHeader, Cosignature, SealedTx
from ledger.proofs import build_consistency_proof, build_proof
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
    kafka: KafkaAccess | str,
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
    rotation_blocks: list[Block] = []
    found: _Found | None = None
    newest: Block | None = None
    async with BlockReader(
        kafka,
        ledger,
        partition=partition,
        topic=topic,
        trusted_sealer_key=trusted_sealer_key,
        client_id="ledger-proof",
    ) as reader:
        async for item in reader:
            block_hashes.append(item.block_hash)
            newest = item.block
            if blocks.sealer_rotation(item.block) is not None:
                rotation_blocks.append(item.block)  # whole blocks, but rotations are rare
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
    return build_proof(
        found.envelope, found.block, newest, block_hashes, rotation_blocks=rotation_blocks
    )


__all__ = [
    "NoLaterBlock",
    "TransactionNotFound",
    "prove_consistency",
    "prove_from_postgres",
    "prove_transaction",
]


HASHES_AND_SEALER_CHANGES = """
SELECT hash, sealer_key <> lead(sealer_key) OVER (ORDER BY height) AS sealer_changes_after
FROM ledger.blocks
WHERE ledger = $1
ORDER BY height
"""
"""Every block's hash, and whether the next block has another sealer. The sealer changes after a
block exactly when that block ends in a RotateSealer (nothing else may change it, as
``ChainVerifier`` holds), so this finds the rotation blocks in rows the proof reads anyway.
``ledger.transactions.kind`` names them too, but has no index: finding the few rotations there
would read every transaction of the ledger. ``build_proof`` checks that each ends in one."""


async def prove_from_postgres(
    database_url: str, ledger: str, tx_id: bytes, *, final_only: bool = False
) -> dict[str, Any] | None:
    """The same proof built from the projector's tables in a few queries, or None when
    PostgreSQL does not have the transaction, or a block after it, yet (with ``final_only``: a
    final block after it). Nothing read there is trusted: the proof carries the envelope, both
    headers, both seals and the anchor's cosignatures, and ``verify_proof`` checks them all.

    The anchor is the newest final block when that is later than the transaction's (so the
    proof carries the threshold's cosignatures), else the newest block.
    """
    import asyncpg

    try:
        connection = await asyncpg.connect(database_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise InfraError(f"cannot reach PostgreSQL: {exc}") from exc
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            height = await connection.fetchval(
                "SELECT height FROM ledger.transactions WHERE ledger = $1 AND tx_id = $2",
                ledger,
                tx_id,
            )
            if height is None:
                return None
            hashes = await connection.fetch(HASHES_AND_SEALER_CHANGES, ledger)
            if len(hashes) - 1 == height:
                return None  # no later block projected yet: the chain itself may have one
            final = await connection.fetchval("SELECT analytics.final_height($1)", ledger)
            if final is not None and final > height:
                anchor_height = final
            elif final_only:
                return None
            else:
                anchor_height = len(hashes) - 1
            block = await block_from_postgres(connection, ledger, height)
            anchor = await block_from_postgres(connection, ledger, anchor_height)
            rotation_blocks = [
                await block_from_postgres(connection, ledger, rotation_height)
                for rotation_height, row in enumerate(hashes[:anchor_height])
                if row["sealer_changes_after"]
            ]
            cosignatures = [
                Cosignature(
                    ledger,
                    anchor_height,
                    row["block_hash"],
                    anchor.header.blocks_root,
                    row["witness_key"],
                    row["signature"],
                    0,
                )
                for row in await connection.fetch(
                    "SELECT witness_key, block_hash, signature FROM ledger.cosignatures"
                    " WHERE ledger = $1 AND height = $2",
                    ledger,
                    anchor_height,
                )
            ]
    except (OSError, asyncpg.PostgresError) as exc:
        raise InfraError(f"reading the proof from PostgreSQL failed: {exc}") from exc
    finally:
        await connection.close()
    envelope = _find_envelope(block, tx_id)
    assert envelope is not None
    return build_proof(
        envelope,
        block,
        anchor,
        [row["hash"] for row in hashes],
        cosignatures,
        rotation_blocks=rotation_blocks,
    )


async def block_from_postgres(connection: Any, ledger: str, height: int) -> Block:
    row = await connection.fetchrow(
        "SELECT height, prev_hash, tx_root, tx_count, first_seq, sealed_at, blocks_root, sealer_key, "
        "source_partition, source_offset_end, seal FROM ledger.blocks WHERE ledger = $1 AND height = $2",
        ledger,
        height,
    )
    transactions = await connection.fetch(
        "SELECT seq, envelope FROM ledger.transactions WHERE ledger = $1 AND height = $2 "
        "ORDER BY index_in_block",
        ledger,
        height,
    )
    header = BlockHeader(
        ledger=ledger,
        height=row["height"],
        prev_hash=row["prev_hash"],
        tx_root=row["tx_root"],
        tx_count=row["tx_count"],
        first_seq=row["first_seq"],
        sealed_at_ms=round(row["sealed_at"].timestamp() * 1000),
        blocks_root=row["blocks_root"],
        sealer_key=row["sealer_key"],
        source_partition=row["source_partition"],
        source_offset_end=row["source_offset_end"],
    )
    sealed = tuple(SealedTx(seq=tx["seq"], envelope=tx["envelope"]) for tx in transactions)
    return Block(header=header, transactions=sealed, seal=row["seal"])


async def prove_consistency(
    kafka: KafkaAccess | str,
    ledger: str,
    old_height: int,
    new_height: int | None = None,
    *,
    partition: int | None = None,
    topic: str = TOPIC_BLOCKS,
    trusted_sealer_key: bytes | None = None,
) -> dict[str, Any]:
    """The consistency proof (``ledger.proofs``) from block ``old_height`` to ``new_height``
    (default: the newest block), read from the chain, which is verified on the way.

    Raises ProofError when a height is missing or not in order, ChainError or InfraError.
    """
    hashes: list[bytes] = []
    rotation_blocks: list[Block] = []
    old: Block | None = None
    new: Block | None = None
    async with BlockReader(
        kafka,
        ledger,
        partition=partition,
        topic=topic,
        trusted_sealer_key=trusted_sealer_key,
        client_id="ledger-consistency",
    ) as reader:
        async for item in reader:
            hashes.append(item.block_hash)
            if blocks.sealer_rotation(item.block) is not None:
                rotation_blocks.append(item.block)
            height = item.block.header.height
            if height == old_height:
                old = item.block
            if new_height is None or height <= new_height:
                new = item.block
            if new_height is not None and height >= new_height:
                break
    newest = -1 if new is None else new.header.height
    for wanted, found in ((old_height, old), (new_height, new)):
        if wanted is not None and (found is None or found.header.height != wanted):
            raise ProofError(f"ledger {ledger!r} has blocks 0..{newest}: no block {wanted}")
    assert old is not None and new is not None
    if newest <= old_height:
        raise ProofError(f"block {newest} is not later than block {old_height}: nothing to prove")
    return build_consistency_proof(old, new, hashes, rotation_blocks=rotation_blocks)
