"""Block 0 of a ledger, from a genesis file: admin and sealer keys, assets, accounts, issuance.

A genesis file is JSON (paths are relative to the file; every key file is an encrypted PKCS#8
key written by ``ledger keygen``, all under one passphrase)::

    {
      "ledger": "main",
      "admin_key_file": "admin.key",
      "assets": [{"asset": "USD", "scale": 2, "issuer_account": "usd.issuer",
                  "issuer_key_file": "usd-issuer.key"}],
      "accounts": [{"account": "alice", "asset": "USD", "max_balance": null,
                    "opening_balance": 100000}],
      "keys": [{"public_key": "<64 hex>", "roles": [], "accounts": ["alice"]},
               {"public_key": "<64 hex>", "roles": ["witness"], "accounts": []}],
      "finality_threshold": 2
    }

``keys`` with the ``witness`` role are the witnesses (``ledger.witnessing``);
``finality_threshold`` (optional, default 0: final when sealed) is how many of them must co-sign
a block for it to be final. Only an admin ``SetFinality`` changes it later.

Block 0 holds, in this order, each a signed transaction like any other: the admin key
registering itself, the sealer key, every asset, every account, every issuer key (owning its
issuer account), every listed key, the finality policy when its threshold is not 0, and one
issuance transfer per non-zero opening balance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.blocks import build_block
from ledger.errors import ConfigError
from ledger.model import (
    Block,
    DefineAsset,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    Role,
    SetFinality,
    Transfer,
    TxBody,
)
from ledger.replica import tx_from_envelope
from ledger.signing import Signer, load_private_key, new_tx_id
from ledger.state import Accepted, State, apply, begin_block, decide

genesis_validity_ms = 60_000


@dataclass(frozen=True)
class GenesisSpec:
    ledger: str
    admin_key_file: Path
    assets: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    keys: list[dict[str, Any]]
    finality_threshold: int = 0

    @classmethod
    def load(cls, path: Path) -> GenesisSpec:
        try:
            raw = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read genesis file {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"genesis file {path} is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"genesis file {path} must hold a JSON object")
        try:
            base = path.parent
            return cls(
                ledger=str(raw["ledger"]),
                admin_key_file=base / raw["admin_key_file"],
                assets=[
                    {**asset, "issuer_key_file": base / asset["issuer_key_file"]}
                    for asset in raw.get("assets", [])
                ],
                accounts=list(raw.get("accounts", [])),
                keys=list(raw.get("keys", [])),
                finality_threshold=int(raw.get("finality_threshold", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"genesis file {path}: missing or malformed field {exc}") from exc


def build_genesis(
    spec: GenesisSpec, passphrase: bytes, sealer: Signer, now_ms: int, source_partition: int
) -> Block:
    """Sign every genesis transaction, check that each is accepted, and seal block 0."""
    admin = load_private_key(spec.admin_key_file, passphrase)
    issuers = {
        asset["asset"]: load_private_key(asset["issuer_key_file"], passphrase)
        for asset in spec.assets
    }
    signed: list[tuple[Signer, Operation]] = [
        (admin, RegisterKey(admin.public_key, (Role.ADMIN.value,), ())),
        (admin, RegisterKey(sealer.public_key, (Role.SEALER.value,), ())),
    ]
    signed += [
        (admin, DefineAsset(asset["asset"], int(asset["scale"]), asset["issuer_account"]))
        for asset in spec.assets
    ]
    signed += [
        (admin, OpenAccount(account["account"], account["asset"], account.get("max_balance")))
        for account in spec.accounts
    ]
    signed += [
        (admin, RegisterKey(issuers[asset["asset"]].public_key, (), (asset["issuer_account"],)))
        for asset in spec.assets
    ]
    signed += [(admin, _register_listed_key(key)) for key in spec.keys]
    if spec.finality_threshold:
        signed.append((admin, SetFinality(spec.finality_threshold)))
    issuer_accounts = {asset["asset"]: asset["issuer_account"] for asset in spec.assets}
    for account in spec.accounts:
        amount = int(account.get("opening_balance", 0))
        if amount:
            asset = account["asset"]
            postings = (
                Posting(issuer_accounts[asset], asset, -amount),
                Posting(account["account"], asset, amount),
            )
            signed.append((issuers[asset], Transfer(postings)))
    envelopes = [_sign(signer, spec.ledger, op, now_ms) for signer, op in signed]
    _check_all_accepted(envelopes, now_ms)
    block, _ = build_block(
        None,
        ledger=spec.ledger,
        envelopes=envelopes,
        sealed_at_ms=now_ms,
        source_partition=source_partition,
        source_offset_end=0,
        signing_key=sealer,
    )
    return block


def _register_listed_key(key: dict[str, Any]) -> RegisterKey:
    try:
        public_key = bytes.fromhex(key["public_key"])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"genesis key {key!r} needs a 64-hex-digit public_key") from exc
    return RegisterKey(public_key, tuple(key.get("roles", ())), tuple(key.get("accounts", ())))


def _sign(signer: Signer, ledger: str, op: Operation, now_ms: int) -> bytes:
    body = TxBody(new_tx_id(), ledger, now_ms, now_ms + genesis_validity_ms, op, memo="genesis")
    return signer.sign(body)


def _check_all_accepted(envelopes: list[bytes], now_ms: int) -> None:
    state = State()
    begin_block(state, now_ms)
    for index, envelope in enumerate(envelopes):
        tx = tx_from_envelope(envelope)
        decision = decide(state, tx, now_ms)
        if not isinstance(decision, Accepted):
            raise ConfigError(
                f"genesis transaction {index} ({tx.body.kind}) is refused: "
                f"{decision.code.name}: {decision.detail}"
            )
        apply(state, decision)
