"""Building a ``Reverse``: the original transfer's envelope with the proof that it was sealed.

The state machine keeps no copy of past transfers, so a reversal carries its original: the
envelope exactly as sealed, the header and seal of its block, and its audit path in the block's
tx_root (``ledger.model.Reverse``). ``reverse_operation`` builds that from a block;
``reversal_from_postgres`` finds the block in the projector's tables (nothing read there is
trusted: the sequencer checks the proof).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ledger import blocks, codec, limits, merkle
from ledger.errors import InfraError, ProofError
from ledger.model import Block, Posting, Reverse

reverse_overhead_bytes_max = 1_536
"""What a Reverse adds around its original: a header (about 250 bytes), a seal, an audit path
of at most 11 hashes and a few postings. An original larger than the envelope limit minus this
cannot be reversed by proof (a 16-leg transfer with a long memo and 7 cosigners)."""


projection_poll_s = 0.2


def reverse_operation(block: Block, envelope: bytes, postings: Sequence[Posting] = ()) -> Reverse:
    """The Reverse of the transaction ``envelope`` sealed in ``block`` (``postings``: the
    reversing postings; none: all that remains). ValueError when it is not in the block."""
    index = next(
        (i for i, sealed in enumerate(block.transactions) if sealed.envelope == envelope), None
    )
    if index is None:
        raise ValueError(f"the envelope is not in block {block.header.height}")
    path = merkle.inclusion_proof(index, blocks.tx_leaf_hashes(block.transactions))
    return Reverse(
        original=envelope,
        block_header=codec.encode_block_header(block.header),
        seal=block.seal,
        tx_index=index,
        audit_path=tuple(path),
        postings=tuple(postings),
    )


async def reversal_from_postgres(
    database_url: str,
    ledger: str,
    tx_id: bytes,
    postings: Sequence[Posting] = (),
    *,
    projection_wait_s: float = 10.0,
) -> Reverse:
    """The Reverse of sealed transaction ``tx_id``, from the projector's tables.

    A transaction sealed a moment ago may not be projected yet: it is looked for again for up
    to ``projection_wait_s``. ProofError when PostgreSQL does not have it then, or it is too
    large to carry; InfraError when PostgreSQL cannot be reached.
    """
    import asyncpg

    from ledger.client.proof_source import block_from_postgres

    try:
        connection = await asyncpg.connect(database_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise InfraError(f"cannot reach PostgreSQL: {exc}") from exc
    deadline = time.monotonic() + projection_wait_s
    try:
        while True:
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                row = await connection.fetchrow(
                    "SELECT height, envelope FROM ledger.transactions "
                    "WHERE ledger = $1 AND tx_id = $2",
                    ledger,
                    tx_id,
                )
                if row is not None:
                    block = await block_from_postgres(connection, ledger, row["height"])
                    break
            if time.monotonic() >= deadline:
                raise ProofError(
                    f"transaction {tx_id.hex()} is not sealed in ledger {ledger!r} "
                    f"(PostgreSQL has no such transaction after {projection_wait_s:.0f} s)"
                )
            await asyncio.sleep(projection_poll_s)
    finally:
        await connection.close()
    envelope = bytes(row["envelope"])
    if len(envelope) > limits.envelope_bytes_max - reverse_overhead_bytes_max:
        raise ProofError(
            f"transaction {tx_id.hex()} is {len(envelope)} bytes: too large to carry in a "
            f"Reverse (at most {limits.envelope_bytes_max - reverse_overhead_bytes_max})"
        )
    return reverse_operation(block, envelope, postings)
