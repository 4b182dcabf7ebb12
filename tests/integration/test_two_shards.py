"""Two shards for real, on a stack of their own: one sequencer process per shard, load spread
over both by ``ledger bench --ledgers 2``, each chain verifies, and every sealed transaction
belongs to the shard that sealed it."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support.cli import assert_one_line_error, run_ledger
from support.stacks import isolated_stack, stack_kafka, stack_settings
from support.waiting import eventually, eventually_sync

from ledger import codec
from ledger.client.publisher import Publisher
from ledger.client.reader import BlockReader
from ledger.crossshard import AuditFinding, Destination, Step, audit, destination_memo, step_tx_id
from ledger.kafka_access import KafkaAccess
from ledger.local import process
from ledger.model import Hold, Transfer
from ledger.replica import Replica
from ledger.settings import REPO_ROOT, Settings
from ledger.signing import build_tx_body, load_private_key

pytestmark = pytest.mark.services

SHARDS = ("main", "east")
DEMO_LEDGERS = """
import asyncio
from ledger.settings import Settings
from ledger.tools.demo import ensure_demo_ledger
settings = Settings.from_env()
for ledger in settings.shards:
    asyncio.run(ensure_demo_ledger(settings, ledger))
"""
"""The demo ledger of every shard, genesis and keys, as `ledger bench --ledgers` makes them."""
rate_per_s = 300
seconds = 5
up_timeout_s = 240.0
bench_timeout_s = 300.0


@pytest.fixture(scope="module")
def two_shards(settings: Settings) -> Iterator[dict[str, str]]:
    """The environment of a running two-shard stack (one witness, to keep it light)."""
    extra = {
        "LEDGER_SHARDS": ",".join(SHARDS),
        "LEDGER_WITNESSES": "1",
        "LEDGER_VERIFY_WORKERS": "1",
    }
    with isolated_stack("test-two-shards", settings, **extra) as env:
        started = run_ledger("up", env=env, timeout_s=up_timeout_s)
        assert started.returncode == 0, started.stderr
        demo = subprocess.run(
            [sys.executable, "-c", DEMO_LEDGERS],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=up_timeout_s,
        )
        assert demo.returncode == 0, demo.stderr
        yield env


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
    kafka = stack_kafka(two_shards)
    registry_url = stack_settings(two_shards).schema_registry_url
    for partition, shard in enumerate(SHARDS):
        assert asyncio.run(_foreign_transactions(kafka, registry_url, shard, partition)) == 0


async def _foreign_transactions(
    kafka: KafkaAccess, registry_url: str, ledger: str, partition: int
) -> int:
    """Transactions in ``ledger``'s blocks whose body names another ledger (must be none)."""
    foreign = 0
    async with BlockReader(kafka, ledger, partition=partition, registry_url=registry_url) as reader:
        async for item in reader:
            for sealed in item.block.transactions:
                body = codec.decode_submission(sealed.envelope)[1]
                foreign += body.ledger != ledger
    return foreign


# ---- cross-shard transfers -----------------------------------------------------------------

cross_shard_count = 30
coordinator_kills = 10


def _transfer_across(env: dict[str, str], to_account: str, amount: int) -> Any:
    data_dir = Path(env["LEDGER_DATA_DIR"])
    return run_ledger(
        "submit",
        "transfer",
        "--ledger",
        "main",
        "--key",
        str(data_dir / "demo" / "main" / "alice.key"),
        "--from",
        "alice",
        "--to",
        to_account,
        "--to-ledger",
        "east",
        "--asset",
        "USD",
        "--amount",
        str(amount),
        "--json",
        env={**env, "LEDGER_KEY_PASSPHRASE": "demo"},
        timeout_s=bench_timeout_s,
    )


def _balance(env: dict[str, str], ledger: str, account: str) -> int:
    result = run_ledger("balance", account, "--ledger", ledger, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["balance"])


def test_a_cross_shard_transfer_completes_on_both_sides(two_shards: dict[str, str]) -> None:
    """alice on main pays bob on east: held on main, credited on east; alice is 7 down, bob 7
    up, and each shard's USD issuer account moved by 7 the other way."""
    alice, bob = _balance(two_shards, "main", "alice"), _balance(two_shards, "east", "bob")
    result = _transfer_across(two_shards, "bob", 7)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert _eventually_balance(two_shards, "main", "alice", alice - 7)
    assert _eventually_balance(two_shards, "east", "bob", bob + 7)


def test_a_credit_the_destination_refuses_is_refunded(two_shards: dict[str, str]) -> None:
    """To an account east does not have: the credit is refused there and alice is refunded on
    main, one line, exit 1; her balance is back where it was."""
    alice = _balance(two_shards, "main", "alice")
    result = _transfer_across(two_shards, "nobody", 5)
    assert "refunded" in assert_one_line_error(result, 1)
    assert _eventually_balance(two_shards, "main", "alice", alice)


def test_an_asset_the_destination_account_does_not_hold_is_refunded(
    two_shards: dict[str, str],
) -> None:
    """carol's EUR to bob on east, whose account holds USD: ASSET_MISMATCH there, refunded to
    carol on main; an unknown destination shard is refused before anything is sent."""
    carol = _balance(two_shards, "main", "carol")
    data_dir = Path(two_shards["LEDGER_DATA_DIR"])
    arguments = [
        "submit",
        "transfer",
        "--ledger",
        "main",
        "--key",
        str(data_dir / "demo" / "main" / "carol.key"),
    ]
    env = {**two_shards, "LEDGER_KEY_PASSPHRASE": "demo"}
    refunded = run_ledger(
        *arguments,
        "--from",
        "carol",
        "--to",
        "bob",
        "--to-ledger",
        "east",
        "--asset",
        "EUR",
        "--amount",
        "3",
        env=env,
        timeout_s=bench_timeout_s,
    )
    assert "refunded" in assert_one_line_error(refunded, 1)
    assert _eventually_balance(two_shards, "main", "carol", carol)
    unknown = run_ledger(
        *arguments,
        "--from",
        "carol",
        "--to",
        "bob",
        "--to-ledger",
        "west",
        "--asset",
        "EUR",
        "--amount",
        "3",
        env=env,
    )
    assert "not in LEDGER_SHARDS" in assert_one_line_error(unknown, 4)


def test_coordinator_killed_again_and_again_loses_and_doubles_nothing(
    two_shards: dict[str, str],
) -> None:
    """30 cross-shard transfers while the coordinator is killed -9 ten times: every one ends
    completed on both sides exactly once (the audit finds nothing), and for each asset the sum
    of all balances over both shards is still zero; each shard's PostgreSQL balances equal a
    replay of its chain."""
    kafka = stack_kafka(two_shards)
    registry_url = stack_settings(two_shards).schema_registry_url
    data_dir = Path(two_shards["LEDGER_DATA_DIR"])
    alice = load_private_key(data_dir / "demo" / "main" / "alice.key", b"demo")
    holds = [
        alice.sign(
            build_tx_body(
                "main",
                Hold("alice", "usd.issuer", "USD", 1 + index, int(time.time() * 1000) + 600_000),
                memo=destination_memo(Destination("east", "bob")),
            )
        )
        for index in range(cross_shard_count)
    ]
    hold_ids = [codec.decode_submission(envelope)[1].tx_id for envelope in holds]
    pid_file = data_dir / "workers" / "crossshard.pid"

    async def submit_while_killing() -> None:
        async with Publisher(kafka) as publisher:
            for chunk in range(coordinator_kills):
                start = chunk * cross_shard_count // coordinator_kills
                end = (chunk + 1) * cross_shard_count // coordinator_kills
                await publisher.submit_and_wait(holds[start:end])
                pid = process.read_pid(pid_file)
                assert pid is not None, "the coordinator does not run"
                os.kill(pid, signal.SIGKILL)
                gone = functools.partial(_dead, pid)
                await asyncio.to_thread(process.wait_until, gone, 10)
                restarted = await asyncio.to_thread(run_ledger, "up", env=two_shards)
                assert restarted.returncode == 0, restarted.stderr

    asyncio.run(submit_while_killing())
    findings = asyncio.run(_eventually_audited(kafka, registry_url, hold_ids))
    assert findings == []
    sums = asyncio.run(_asset_sums(two_shards))
    assert sums and all(total == 0 for total in sums.values()), sums
    states = asyncio.run(_cross_shard_states(two_shards, hold_ids))
    assert states == {"completed": cross_shard_count}, states
    for partition, ledger in enumerate(SHARDS):
        replayed, projected = asyncio.run(_replayed_and_projected(two_shards, ledger, partition))
        assert projected == replayed, ledger


def _dead(pid: int) -> bool:
    return not process.pid_alive(pid)


def _eventually_balance(env: dict[str, str], ledger: str, account: str, expected: int) -> bool:
    eventually_sync(
        lambda: _balance(env, ledger, account),
        lambda balance: balance == expected,
        what=f"{account} on {ledger} at {expected}",
    )
    return True


async def _eventually_audited(
    kafka: KafkaAccess, registry_url: str, hold_ids: list[bytes]
) -> list[AuditFinding]:
    """The audit of both chains once every hold is captured and credited (or refunded)."""

    async def audit_now() -> tuple[int, list[AuditFinding]]:
        captured: dict[bytes, int] = {}
        credited: dict[bytes, list[int]] = {}
        refunded: dict[bytes, list[int]] = {}
        amounts: dict[bytes, int] = {}
        steps = {
            step_tx_id(hold_id, step): (hold_id, step) for hold_id in hold_ids for step in Step
        }
        for partition, ledger in enumerate(SHARDS):
            async with BlockReader(
                kafka, ledger, partition=partition, registry_url=registry_url
            ) as reader:
                async for item in reader:
                    for sealed in item.block.transactions:
                        body = codec.decode_submission(sealed.envelope)[1]
                        if body.tx_id in hold_ids and isinstance(body.op, Hold):
                            amounts[body.tx_id] = body.op.amount
                        if body.tx_id not in steps:
                            continue
                        hold_id, step = steps[body.tx_id]
                        if step is Step.CAPTURE:
                            captured[hold_id] = amounts[hold_id]
                        else:
                            assert isinstance(body.op, Transfer)
                            moved = max(posting.amount for posting in body.op.postings)
                            target = credited if step is Step.CREDIT else refunded
                            target.setdefault(hold_id, []).append(moved)
        ended = sum(1 for hold_id in hold_ids if hold_id in credited or hold_id in refunded)
        return ended, audit(captured, credited, refunded)

    ended, findings = await eventually(
        audit_now,
        lambda result: result[0] == len(hold_ids),
        what="every cross-shard transfer credited or refunded",
        timeout_s=120.0,
    )
    return findings


async def _asset_sums(env: dict[str, str]) -> dict[str, int]:
    """Sum of all balances per asset over both shards, from PostgreSQL."""
    connection = await asyncpg.connect(
        f"postgresql://ledger:ledger@127.0.0.1:{env['LEDGER_POSTGRES_PORT']}/ledger"
    )
    try:
        rows = await connection.fetch(
            "SELECT asset, sum(balance)::bigint AS total FROM ledger.balances GROUP BY asset"
        )
    finally:
        await connection.close()
    return {row["asset"]: int(row["total"]) for row in rows}


async def _cross_shard_states(env: dict[str, str], hold_ids: list[bytes]) -> dict[str, int]:
    """analytics.v_cross_shard's states of these transfers, once the projector has them all."""
    connection = await asyncpg.connect(
        f"postgresql://ledger:ledger@127.0.0.1:{env['LEDGER_POSTGRES_PORT']}/ledger"
    )

    async def states() -> dict[str, int]:
        rows = await connection.fetch(
            "SELECT state, count(*) AS count FROM analytics.v_cross_shard"
            " WHERE hold_id = ANY ($1::bytea[]) GROUP BY state",
            hold_ids,
        )
        return {row["state"]: row["count"] for row in rows}

    try:
        return await eventually(
            states,
            lambda found: found.get("completed", 0) == len(hold_ids),
            what="every transfer completed in analytics.v_cross_shard",
        )
    finally:
        await connection.close()


async def _replayed_and_projected(
    env: dict[str, str], ledger: str, partition: int
) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Every account's (balance, held) from a replay of the chain, and from PostgreSQL once the
    projector reached the chain's newest block (nothing else writes to this stack by then)."""
    kafka = stack_kafka(env)
    registry_url = stack_settings(env).schema_registry_url
    replica = Replica(ledger)
    async with BlockReader(kafka, ledger, partition=partition, registry_url=registry_url) as reader:
        async for item in reader:
            replica.apply_block(item.block)
    assert replica.checkpoint is not None
    connection = await asyncpg.connect(
        f"postgresql://ledger:ledger@127.0.0.1:{env['LEDGER_POSTGRES_PORT']}/ledger"
    )
    try:
        await eventually(
            lambda: connection.fetchval(
                "SELECT position FROM ledger.tracking WHERE processor = 'project' AND stream = $1",
                f"blocks:{ledger}",
            ),
            lambda height: height == replica.checkpoint.height,  # type: ignore[union-attr]
            what=f"{ledger} projected to block {replica.checkpoint.height}",
        )
        rows = await connection.fetch(
            "SELECT account, balance, held FROM ledger.balances WHERE ledger = $1", ledger
        )
    finally:
        await connection.close()
    replayed = {name: (a.balance, a.held) for name, a in replica.state.accounts.items()}
    return replayed, {row["account"]: (row["balance"], row["held"]) for row in rows}


def test_the_dashboard_shows_both_shards(two_shards: dict[str, str]) -> None:
    """/api/status has a row per shard, each with its chain verified and projected."""
    url = f"http://127.0.0.1:{two_shards['LEDGER_DASHBOARD_PORT']}/api/status"

    def ledgers() -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(url, timeout=5) as response:
            document = json.loads(response.read())
        return {row["ledger"]: row for row in document["ledgers"]}

    rows = eventually_sync(
        ledgers,
        lambda found: (
            set(found) == set(SHARDS)
            and all(
                row["chain_height"] >= 0 and row["projected_height"] >= 0 for row in found.values()
            )
        ),
        what="both shards on the dashboard",
    )
    assert all(row["chain_verified_height"] is not None for row in rows.values()), rows
