"""The projector's rows come straight from the replayed effects: no database needed to check them."""

from __future__ import annotations

import os

from ledger.blocks import build_block
from ledger.model import (
    AccountStatus,
    Attest,
    Capture,
    DefineAsset,
    Hold,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    RejectionRecord,
    SetAccountStatus,
    Transfer,
)
from ledger.replica import AppliedBlock, Replica
from ledger.signing import Signer, build_tx_body
from streams.rows import Rows

NOW_MS = 1_800_000_000_000


class ChainBuilder:
    """Seals blocks of signed operations and replays them, as the sequencer and projector do."""

    def __init__(self) -> None:
        self.sealer = Signer.generate()
        self.replica = Replica("main")
        self.checkpoint = None
        self.now_ms = NOW_MS

    def block(self, *signed_ops: tuple[Signer, Operation]) -> AppliedBlock:
        self.now_ms += 1_000
        envelopes = [
            signer.sign(build_tx_body("main", op, now_ms=self.now_ms, external_ref=f"r{index}"))
            for index, (signer, op) in enumerate(signed_ops)
        ]
        block, self.checkpoint = build_block(
            self.checkpoint,
            ledger="main",
            envelopes=envelopes,
            sealed_at_ms=self.now_ms,
            source_partition=0,
            source_offset_end=len(envelopes),
            signing_key=self.sealer,
        )
        return self.replica.apply_block(block)


def test_rows_of_a_small_ledger() -> None:
    """Genesis, a transfer, a hold captured in part, a freeze and an attestation become the rows
    an analyst expects: postings numbered per transaction, last balance per account, statuses."""
    admin, issuer, alice = Signer.generate(), Signer.generate(), Signer.generate()
    chain = ChainBuilder()
    rows = Rows()
    rows.add_block(
        chain.block(
            (admin, RegisterKey(admin.public_key, ("admin",), ())),
            (admin, DefineAsset("USD", 2, "usd.issuer")),
            (admin, OpenAccount("alice", "USD")),
            (admin, OpenAccount("bob", "USD", max_balance=10_000)),
            (admin, RegisterKey(issuer.public_key, (), ("usd.issuer",))),
            (admin, RegisterKey(alice.public_key, (), ("alice",))),
        ),
        size_bytes=1,
    )
    rows.add_block(
        chain.block(
            (issuer, Transfer((Posting("usd.issuer", "USD", -500), Posting("alice", "USD", 500))))
        ),
        1,
    )
    hold = chain.block((alice, Hold("alice", "bob", "USD", 200, NOW_MS + 60_000)))
    rows.add_block(hold, 1)
    hold_id = hold.transactions[0].accepted.tx.body.tx_id
    rows.add_block(chain.block((alice, Capture(hold_id, 150))), 1)
    rows.add_block(
        chain.block(
            (admin, SetAccountStatus("bob", AccountStatus.FROZEN)), (alice, Attest(os.urandom(32)))
        ),
        1,
    )

    assert [row[1] for row in rows.blocks] == [0, 1, 2, 3, 4]
    assert [row[5] for row in rows.transactions] == [
        "RegisterKey",
        "DefineAsset",
        "OpenAccount",
        "OpenAccount",
        "RegisterKey",
        "RegisterKey",
        "Transfer",
        "Hold",
        "Capture",
        "SetAccountStatus",
        "Attest",
    ]
    # (account, amount) of every posting, numbered within its transaction
    assert [(row[2], row[3], row[5]) for row in rows.postings] == [
        (0, "usd.issuer", -500),
        (1, "alice", 500),
        (0, "alice", -150),
        (1, "bob", 150),
    ]
    balances = {account: (row[3], row[4]) for (_, account), row in rows.balances.items()}
    assert balances == {"usd.issuer": (-500, 0), "alice": (350, 0), "bob": (150, 0)}
    assert {row[1]: row[5] for row in rows.accounts} == {
        "usd.issuer": True,
        "alice": False,
        "bob": False,
    }
    assert rows.account_statuses == {("main", "bob"): "frozen"}
    assert [row[7] for row in rows.holds] == ["open"]
    assert list(rows.hold_resolutions.values())[0][:2] == ("captured", 150)
    assert len(rows.attestations) == 1 and len(rows.keys) == 3
    assert rows.tracking == {("project", "blocks:main"): 4}


def test_rejections_advance_their_partition_position() -> None:
    """Each rejection row moves the tracking position of its partition past its offset."""
    rows = Rows()
    for offset in (7, 8):
        rejection = RejectionRecord(
            code="EXPIRED",
            detail="late",
            stage="sequence",
            source_topic="ledger.verified",
            source_partition=0,
            source_offset=offset,
            rejected_at_ms=NOW_MS,
        )
        rows.add_rejection(2, 40 + offset, rejection)
    assert len(rows) == 2 and rows.tracking == {("project", "rejections:2"): 49}
