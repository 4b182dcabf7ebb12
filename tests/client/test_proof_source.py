"""Proofs built from PostgreSQL's index and from a scan of the chain agree and both verify."""

from __future__ import annotations

import pytest
from support.ledger_fixture import TestLedger
from support.waiting import eventually

from ledger.client.proof_source import prove_from_postgres, prove_transaction
from ledger.client.publisher import Publisher, Sealed
from ledger.kafka.principals import ADMIN
from ledger.model import Posting, Transfer
from ledger.proofs import verify_proof
from ledger.settings import Settings
from ledger.signing import build_tx_body

pytestmark = pytest.mark.services


async def test_postgres_and_chain_proofs_agree(settings: Settings, test_ledger: TestLedger) -> None:
    """The same transaction, proved both ways, gives the same envelope and block, and both hold."""
    alice = test_ledger.signer("alice")
    postings = (Posting("alice", "USD", -2), Posting("bob", "USD", 2))
    envelopes = [alice.sign(build_tx_body("main", Transfer(postings))) for _ in range(2)]
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        [first] = await publisher.submit_and_wait(envelopes[:1])
        await publisher.submit_and_wait(envelopes[1:])  # a later block to anchor the proof
    assert isinstance(first, Sealed)
    from_postgres = await eventually(  # the projector trails the chain by a moment
        lambda: prove_from_postgres(settings.database_url, "main", first.tx_id),
        lambda proof: proof is not None and proof["anchor"]["height"] > first.height,
        what="PostgreSQL proves the transaction from a later block",
        timeout_s=30.0,
        interval_s=0.5,
    )
    assert from_postgres is not None
    from_chain = await prove_transaction(settings.kafka(ADMIN), "main", first.tx_id)
    sealer = test_ledger.sealer_public_key
    assert verify_proof(from_postgres, sealer)["tx_id"] == verify_proof(from_chain, sealer)["tx_id"]
    for field in ("envelope", "block", "block_seal", "tx_index", "tx_inclusion"):
        assert from_postgres[field] == from_chain[field], field
