"""Ledger "main" with keys the integration tests hold: the project's demo ledger, made once.

``make run``, ``ledger bench`` and the tests share one genesis for ``main``
(``ledger.tools.demo``: keys under ``<data dir>/demo/main``, passphrase ``demo``), so whichever
of them starts first initialises it and the others can use it. A second, test-only genesis would
make whichever came second fail. Any test module can call ``ensure_test_ledger(settings)`` (from
synchronous code, e.g. a session fixture):

  1. under an exclusive file lock (test processes on one machine wait for each other), run
     ``ensure_demo_ledger``: it writes the demo keys and genesis if missing and publishes block 0
     when the shard has none;
  2. read block 0 back with ``BlockReader`` (so it verifies) and check that it was made from the
     demo directory: its first transaction is signed by the demo admin key. Otherwise the test
     fails with a message saying what is there and what to do; it never re-initialises a ledger.

Import it as ``from support.ledger_fixture import ensure_test_ledger``: ``tests/support`` is a
package, so test modules in a package directory (``tests/client/``) find it; modules in plain
directories need an empty ``__init__.py`` in theirs too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger import codec
from ledger.client.reader import BlockReader
from ledger.errors import LedgerError
from ledger.kafka.principals import ADMIN
from ledger.model import Block
from ledger.settings import Settings
from ledger.signing import Signer, load_private_key
from ledger.tools.demo import DEMO_PASSPHRASE, demo_directory, ensure_demo_ledger

LEDGER = "main"
ASSET = "USD"

insufficient_amount = 4 * 10**18
"""More than any account of the demo ledger will ever hold (int64 ends at 9.2e18)."""


@dataclass(frozen=True)
class TestLedger:
    """Keys and accounts of the test ledger; key files are encrypted with ``passphrase``."""

    __test__ = False  # not a test class, whatever its name says

    ledger: str
    directory: Path
    passphrase: str
    asset: str
    sealer_public_key: bytes
    alice: str = "alice"
    """USD, owned by the key in ``alice.key``."""
    bob: str = "bob"
    """USD, owned by the key in ``bob.key``."""

    def key_file(self, name: str) -> Path:
        """``admin``, ``usd-issuer``, or an account's owner: ``alice``, ``bob``, ``carol``."""
        return self.directory / f"{name}.key"

    def signer(self, name: str) -> Signer:
        return load_private_key(self.key_file(name), self.passphrase.encode())

    @property
    def passphrase_env(self) -> dict[str, str]:
        """Environment for ``ledger`` subprocesses using the default --passphrase-env."""
        return {"LEDGER_KEY_PASSPHRASE": self.passphrase}


def ensure_test_ledger(settings: Settings) -> TestLedger:
    """The demo ledger ``main`` of this stack, initialised first when it has no block 0."""
    if settings.shard_partition(LEDGER) is None:
        pytest.fail(f"LEDGER_SHARDS has no {LEDGER!r}; the tests need it", pytrace=False)
    directory = demo_directory(settings, LEDGER)
    with _exclusive(settings.data_dir / "demo-ledger.lock"):
        try:
            asyncio.run(ensure_demo_ledger(settings, LEDGER))
        except LedgerError as exc:
            pytest.fail(f"the demo ledger is not usable: {exc}", pytrace=False)
        genesis = asyncio.run(_block_zero(settings))
    if genesis is None:
        pytest.fail(f"ledger {LEDGER!r} still has no block 0 after initialising it", pytrace=False)
    return _matching(directory, genesis)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


async def _block_zero(settings: Settings) -> Block | None:
    async with BlockReader(settings.kafka(ADMIN), LEDGER, client_id="ledger-tests") as reader:
        async for item in reader:
            return item.block
    return None


def _matching(directory: Path, genesis: Block) -> TestLedger:
    """The demo ledger, once block 0 is shown to be made from the demo directory's keys."""
    signed_by = _admin_public_key(genesis)
    try:
        demo_admin = load_private_key(directory / "admin.key", DEMO_PASSPHRASE).public_key.hex()
    except LedgerError as exc:
        demo_admin = f"unreadable ({exc})"
    if signed_by != demo_admin:
        pytest.fail(
            f"ledger {LEDGER!r} was initialised from another genesis than the demo's (block 0 "
            f"signed by admin key {signed_by}, demo admin key {demo_admin}), so the tests hold "
            "no keys that may spend on it. Run them on a stack whose ledger the demo initialised: "
            "an empty one, or another one (LEDGER_DATA_DIR, LEDGER_KAFKA_PORT, "
            "LEDGER_POSTGRES_PORT)",
            pytrace=False,
        )
    return TestLedger(
        ledger=LEDGER,
        directory=directory,
        passphrase=DEMO_PASSPHRASE.decode(),
        asset=ASSET,
        sealer_public_key=genesis.header.sealer_key,
    )


def _admin_public_key(genesis: Block) -> str:
    """Block 0's first transaction is the admin key registering itself (ledger.genesis)."""
    if not genesis.transactions:
        return "(none: block 0 is empty)"
    return codec.decode_envelope(genesis.transactions[0].envelope).public_key.hex()
