"""The local demo ledger: keys and a genesis under the data directory, initialised once.

``make run``, the test suite and ``ledger bench`` all use it, so a stack started by any of them
is usable by the others. Its keys share one passphrase (DEMO_PASSPHRASE): demo use only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import TopicPartition

from ledger.client.publisher import Publisher, Refused
from ledger.errors import ConfigError, InfraError
from ledger.genesis import GenesisSpec, build_genesis
from ledger.kafka.admin import publish_genesis
from ledger.kafka.clients import committed_reader, kafka_errors
from ledger.kafka.principals import PUBLISHER, SEQUENCER
from ledger.local.stack import witness_public_keys
from ledger.model import Role
from ledger.settings import TOPIC_BLOCKS, Settings
from ledger.signing import Signer, load_private_key, save_private_key
from ledger.tools.workload import LoadAccounts, accounts_per_key_count, setup_phases

DEMO_PASSPHRASE = b"demo"
DEMO_ASSETS = {"USD": "usd.issuer", "EUR": "eur.issuer"}
DEMO_ACCOUNTS = {
    "alice": ("USD", 1_000_000_00),
    "bob": ("USD", 50_000_00),
    "carol": ("EUR", 250_000_00),
}
funding_per_load_account = 1_000_000_00


@dataclass(frozen=True)
class DemoLedger:
    ledger: str
    directory: Path
    admin: Signer
    issuers: dict[str, Signer]
    owners: dict[str, Signer]

    def key_file(self, name: str) -> Path:
        return self.directory / f"{name}.key"


def demo_directory(settings: Settings, ledger: str) -> Path:
    return settings.data_dir / "demo" / ledger


def _key(directory: Path, name: str) -> Signer:
    path = directory / f"{name}.key"
    if path.exists():
        return load_private_key(path, DEMO_PASSPHRASE)
    signer = Signer.generate()
    save_private_key(path, signer, DEMO_PASSPHRASE)
    return signer


def demo_finality_threshold(witness_count: int) -> int:
    """The demo's policy: two witnesses of three (or all of fewer)."""
    return min(2, witness_count)


def write_demo_genesis(
    directory: Path, ledger: str, witness_keys: Sequence[bytes] = ()
) -> DemoLedger:
    """Create (or load) the demo keys and write genesis.json next to them; ``witness_keys``
    are registered as witnesses, with ``demo_finality_threshold`` of them needed."""
    directory.mkdir(parents=True, exist_ok=True)
    admin = _key(directory, "admin")
    issuers = {asset: _key(directory, f"{asset.lower()}-issuer") for asset in DEMO_ASSETS}
    owners = {account: _key(directory, account) for account in DEMO_ACCOUNTS}
    genesis = {
        "ledger": ledger,
        "admin_key_file": "admin.key",
        "assets": [
            {
                "asset": asset,
                "scale": 2,
                "issuer_account": issuer_account,
                "issuer_key_file": f"{asset.lower()}-issuer.key",
            }
            for asset, issuer_account in DEMO_ASSETS.items()
        ],
        "accounts": [
            {"account": account, "asset": asset, "opening_balance": amount}
            for account, (asset, amount) in DEMO_ACCOUNTS.items()
        ],
        "keys": [
            {"public_key": owners[account].public_key.hex(), "roles": [], "accounts": [account]}
            for account in DEMO_ACCOUNTS
        ]
        + [
            {"public_key": key.hex(), "roles": [Role.WITNESS.value], "accounts": []}
            for key in witness_keys
        ],
        "finality_threshold": demo_finality_threshold(len(witness_keys)),
    }
    (directory / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
    return DemoLedger(ledger, directory, admin, issuers, owners)


async def chain_is_empty(settings: Settings, partition: int) -> bool:
    kafka = settings.kafka(SEQUENCER)
    consumer = committed_reader(kafka, "ledger-demo")
    try:
        with kafka_errors(f"reading {TOPIC_BLOCKS} at {kafka}"):
            await consumer.start()  # inside: a consumer that failed to start is stopped too
            topic_partition = TopicPartition(TOPIC_BLOCKS, partition)
            end: int = (await consumer.end_offsets([topic_partition]))[topic_partition]
        return end == 0
    finally:
        await consumer.stop()


async def ensure_demo_ledger(settings: Settings, ledger: str | None = None) -> DemoLedger:
    """The demo ledger, initialised with its genesis if the shard has no block yet."""
    ledger = ledger or settings.shards[0]
    partition = settings.shard_partition(ledger)
    if partition is None:
        raise ConfigError(f"ledger {ledger!r} is not in LEDGER_SHARDS")
    directory = demo_directory(settings, ledger)
    empty = await chain_is_empty(settings, partition)
    if not empty and not (directory / "genesis.json").exists():
        raise InfraError(
            f"ledger {ledger!r} was initialised with another genesis than the demo's ({directory}); "
            f"use that genesis's keys, or start from an empty data directory"
        )
    demo = write_demo_genesis(directory, ledger, witness_public_keys(settings))
    if empty:
        sealer = load_private_key(settings.sealer_key_file, settings.sealer_passphrase)
        spec = GenesisSpec.load(directory / "genesis.json")
        block = build_genesis(spec, DEMO_PASSPHRASE, sealer, int(time.time() * 1000), partition)
        await publish_genesis(settings.kafka(SEQUENCER), block)
    return demo


async def ensure_load_accounts(
    settings: Settings, demo: DemoLedger, count: int, asset: str = "USD"
) -> LoadAccounts:
    """``count`` funded load accounts of ``asset``, opened once per count and reused after.

    Set-up goes in three sealed phases (accounts, owner keys, funding); a phase that is
    repeated after an interrupted set-up is refused as ALREADY_EXISTS, which is fine.
    """
    name = f"load{count}-{asset.lower()}"
    owners = tuple(
        _key(demo.directory, f"{name}-owner-{index}")
        for index in range(-(-count // accounts_per_key_count))
    )
    accounts = LoadAccounts(demo.ledger, asset, name, count, owners)
    done_marker = demo.directory / f"{name}.ready"
    if done_marker.exists():
        return accounts
    phases = setup_phases(
        accounts, demo.admin, demo.issuers[asset], DEMO_ASSETS[asset], funding_per_load_account
    )
    async with Publisher(settings.kafka(PUBLISHER)) as publisher:
        for phase in phases:
            outcomes = await publisher.submit_and_wait(phase, timeout_s=120)
            refused = [o for o in outcomes if isinstance(o, Refused) and o.code != "ALREADY_EXISTS"]
            if refused:
                raise InfraError(
                    f"setting up load accounts failed: {refused[0].code}: {refused[0].detail}"
                )
    done_marker.write_text("ready\n")
    return accounts
