"""Two shards for real, on a stack of their own: one sequencer process per shard, load spread
over both by ``ledger bench --ledgers 2``, each chain verifies, and every sealed transaction
belongs to the shard that sealed it."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator

import pytest
from support.cli import run_ledger
from support.ports import free_port_block

from ledger import codec
from ledger.client.reader import BlockReader
from ledger.local.postgres import cluster_directory
from ledger.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.services

SHARDS = ("main", "east")
rate_per_s = 300
seconds = 5
up_timeout_s = 240.0
bench_timeout_s = 300.0


@pytest.fixture(scope="module")
def two_shards(settings: Settings) -> Iterator[dict[str, str]]:
    """The environment of a running two-shard stack (one witness, to keep it light)."""
    data_dir = REPO_ROOT / ".data" / "test-two-shards"
    base = free_port_block(4, settings)
    env = {
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_KAFKA_PORT": str(base),
        "LEDGER_POSTGRES_PORT": str(base + 2),
        "LEDGER_DASHBOARD_PORT": str(base + 3),
        "LEDGER_KAFKA_HEAP_MB": "384",
        "LEDGER_SHARDS": ",".join(SHARDS),
        "LEDGER_WITNESSES": "1",
        "LEDGER_VERIFY_WORKERS": "1",
    }
    directories = (data_dir, cluster_directory(data_dir / "postgres"))
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    try:
        started = run_ledger("up", env=env, timeout_s=up_timeout_s)
        assert started.returncode == 0, started.stderr
        yield env
    finally:
        run_ledger("down", env=env)
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)


def test_each_shard_has_its_own_sequencer(two_shards: dict[str, str]) -> None:
    """`ledger status` lists sequence-main and sequence-east, both running."""
    status = run_ledger("status", env=two_shards)
    assert status.returncode == 0, status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
    for shard in SHARDS:
        assert "running" in lines[f"sequence-{shard}"], status.stdout


def test_load_over_two_shards_seals_on_both_and_each_chain_verifies(
    two_shards: dict[str, str],
) -> None:
    """Transfers spread over main and east are all sealed, about half on each; verify-chain
    holds for each shard, and every transaction in a shard's blocks names that shard."""
    result = run_ledger(
        "bench",
        "--ledgers",
        "2",
        "--rate",
        str(rate_per_s),
        "--seconds",
        str(seconds),
        "--accounts",
        "20",
        "--no-record",
        "--json",
        env=two_shards,
        timeout_s=bench_timeout_s,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    offered = rate_per_s * seconds
    assert figures["sealed"] == offered and figures["rejected"] == 0, figures
    assert set(figures["ledgers"]) == set(SHARDS)
    assert all(item["sealed"] == offered // 2 for item in figures["ledgers"].values()), figures
    assert {"sequence-main", "sequence-east"} <= set(figures["cpu_us_per_tx"]), figures
    for shard in SHARDS:
        verified = run_ledger("verify-chain", "--ledger", shard, "--json", env=two_shards)
        assert verified.returncode == 0, verified.stderr
        assert json.loads(verified.stdout)["ok"] is True
    bootstrap = f"127.0.0.1:{two_shards['LEDGER_KAFKA_PORT']}"
    for partition, shard in enumerate(SHARDS):
        assert asyncio.run(_foreign_transactions(bootstrap, shard, partition)) == 0


async def _foreign_transactions(bootstrap: str, ledger: str, partition: int) -> int:
    """Transactions in ``ledger``'s blocks whose body names another ledger (must be none)."""
    foreign = 0
    async with BlockReader(bootstrap, ledger, partition=partition) as reader:
        async for item in reader:
            for sealed in item.block.transactions:
                body = codec.decode_submission(sealed.envelope)[1]
                foreign += body.ledger != ledger
    return foreign
