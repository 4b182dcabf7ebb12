"""The PostgreSQL rows of replayed blocks and of rejections: pure, so it is tested without a database.

Rows of one batch are gathered here and written by ``streams.project`` in one transaction:
inserts first (COPY), then upserts and updates whose last value in the batch wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.model import RejectionRecord
from ledger.replica import AppliedBlock
from ledger.state import (
    AccountOpened,
    AccountStatusChanged,
    AssetDefined,
    Attested,
    BalanceChanged,
    Effect,
    HoldOpened,
    HoldResolved,
    KeyRegistered,
    KeyRevoked,
    Posted,
)

Row = tuple[Any, ...]


def timestamp(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass
class Rows:
    """Everything one batch writes. Insert lists are in chain order; dicts keep the last value."""

    blocks: list[Row] = field(default_factory=list)
    transactions: list[Row] = field(default_factory=list)
    postings: list[Row] = field(default_factory=list)
    attestations: list[Row] = field(default_factory=list)
    accounts: list[Row] = field(default_factory=list)
    assets: list[Row] = field(default_factory=list)
    keys: list[Row] = field(default_factory=list)
    holds: list[Row] = field(default_factory=list)
    rejections: list[Row] = field(default_factory=list)
    balances: dict[tuple[str, str], Row] = field(default_factory=dict)
    account_statuses: dict[tuple[str, str], str] = field(default_factory=dict)
    key_revocations: dict[tuple[str, str], int] = field(default_factory=dict)
    hold_resolutions: dict[tuple[str, bytes], Row] = field(default_factory=dict)
    tracking: dict[tuple[str, str], int] = field(default_factory=dict)
    snapshots: dict[str, Row] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.blocks) + len(self.rejections)

    def add_block(self, applied: AppliedBlock, size_bytes: int) -> None:
        block = applied.block
        header = block.header
        ledger, height = header.ledger, header.height
        sealed_at = timestamp(header.sealed_at_ms)
        self.blocks.append(
            (
                ledger,
                height,
                applied.block_hash,
                header.prev_hash,
                header.tx_root,
                header.blocks_root,
                header.tx_count,
                header.first_seq,
                sealed_at,
                header.sealer_key,
                header.source_partition,
                header.source_offset_end,
                size_bytes,
                block.seal,
            )
        )
        # Expiry at the block's start is attributed to the block's first seq position.
        for effect in applied.expiry_effects:
            self._add_effect(ledger, height, header.first_seq, sealed_at, None, effect)
        for item in applied.transactions:
            tx = item.accepted.tx
            body = tx.body
            self.transactions.append(
                (
                    ledger,
                    item.seq,
                    body.tx_id,
                    height,
                    item.index_in_block,
                    body.kind,
                    tx.key_id,
                    timestamp(body.created_at_ms),
                    timestamp(body.expires_at_ms),
                    sealed_at,
                    body.external_ref,
                    body.memo,
                    tx.envelope_bytes,
                )
            )
            posting_index = 0
            for effect in item.accepted.effects:
                if isinstance(effect, Posted):
                    self.postings.append(
                        (
                            ledger,
                            item.seq,
                            posting_index,
                            effect.account,
                            effect.asset,
                            effect.amount,
                            height,
                            sealed_at,
                        )
                    )
                    posting_index += 1
                else:
                    self._add_effect(ledger, height, item.seq, sealed_at, body.tx_id, effect)
        self.tracking[("project", f"blocks:{ledger}")] = height

    def _add_effect(
        self,
        ledger: str,
        height: int,
        seq: int,
        sealed_at: datetime,
        tx_id: bytes | None,
        effect: Effect,
    ) -> None:
        match effect:
            case BalanceChanged(account, asset, balance, held):
                self.balances[(ledger, account)] = (
                    ledger,
                    account,
                    asset,
                    balance,
                    held,
                    height,
                    seq,
                )
            case AccountOpened(account, asset, max_balance, allow_negative):
                self.accounts.append(
                    (ledger, account, asset, "active", max_balance, allow_negative, height, seq)
                )
                # Every account has a balance row from its opening; later changes overwrite it.
                self.balances.setdefault(
                    (ledger, account), (ledger, account, asset, 0, 0, height, seq)
                )
            case AccountStatusChanged(account, status, _):
                self.account_statuses[(ledger, account)] = status.value.lower()
            case AssetDefined(asset, scale, issuer_account):
                self.assets.append((ledger, asset, scale, issuer_account, height, seq))
            case KeyRegistered(key_id, public_key, roles, accounts):
                self.keys.append(
                    (ledger, key_id, public_key, list(roles), list(accounts), height, seq, None)
                )
            case KeyRevoked(key_id, _):
                self.key_revocations[(ledger, key_id)] = height
            case HoldOpened(hold_id, payer, payee, asset, amount, expires_at_ms, _):
                self.holds.append(
                    (
                        ledger,
                        hold_id,
                        payer,
                        payee,
                        asset,
                        amount,
                        None,
                        "open",
                        timestamp(expires_at_ms),
                        seq,
                        None,
                        None,
                    )
                )
            case HoldResolved(hold_id, status, captured_amount):
                self.hold_resolutions[(ledger, hold_id)] = (
                    status.value.lower(),
                    captured_amount,
                    seq,
                    height,
                )
            case Attested(digest, algorithm, key_id):
                assert tx_id is not None
                self.attestations.append(
                    (ledger, digest, algorithm, seq, tx_id, key_id, height, sealed_at)
                )
            case Posted():
                raise AssertionError("postings are numbered by the caller")

    def add_rejection(self, partition: int, offset: int, rejection: RejectionRecord) -> None:
        self.rejections.append(
            (
                rejection.tx_id,
                rejection.ledger,
                rejection.code,
                rejection.detail,
                rejection.stage,
                rejection.key_id,
                rejection.source_topic,
                rejection.source_partition,
                rejection.source_offset,
                timestamp(rejection.rejected_at_ms),
                rejection.height,
                rejection.external_ref,
            )
        )
        self.tracking[("project", f"rejections:{partition}")] = offset + 1
