"""Blocks of signed operations sealed and replayed in memory, as the sequencer and projector do."""

from __future__ import annotations

from ledger.blocks import ChainCheckpoint, build_block
from ledger.confidential import make_confidential
from ledger.model import Operation
from ledger.replica import AppliedBlock, Replica
from ledger.signing import Signer, build_tx_body

NOW_MS = 1_800_000_000_000


class ChainBuilder:
    """Seals blocks on ledger ``main``, one second apart, and replays each into ``replica``."""

    def __init__(self) -> None:
        self.sealer = Signer.generate()
        self.replica = Replica("main")
        self.checkpoint: ChainCheckpoint | None = None
        self.now_ms = NOW_MS

    def block(self, *signed_ops: tuple[Signer, Operation]) -> AppliedBlock:
        self.now_ms += 1_000
        envelopes = [
            signer.sign(build_tx_body("main", op, now_ms=self.now_ms, external_ref=f"r{index}"))
            for index, (signer, op) in enumerate(signed_ops)
        ]
        return self._sealed(envelopes)

    def confidential_block(
        self, signer: Signer, op: Operation, recipients: list[Signer]
    ) -> AppliedBlock:
        """One block of ``op`` whose memo ("rent") and external_ref ("INV-7") are encrypted to
        ``recipients``."""
        self.now_ms += 1_000
        body = build_tx_body("main", op, now_ms=self.now_ms, memo="rent", external_ref="INV-7")
        body = make_confidential(body, [recipient.public_key for recipient in recipients])
        return self._sealed([signer.sign(body)])

    def _sealed(self, envelopes: list[bytes]) -> AppliedBlock:
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
