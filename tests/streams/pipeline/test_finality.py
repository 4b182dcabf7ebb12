"""Witnesses on the running stack: a transfer becomes final once 2 of the 3 local witnesses
co-signed it, stays sealed but not final while only one runs, and a witness killed with kill -9
co-signs every block once it is back, never two different ones at a height."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import TopicPartition
from support.ledger_fixture import TestLedger
from support.waiting import eventually

from ledger import codec
from ledger.client import queries
from ledger.client.publisher import Publisher, Sealed
from ledger.client.queries import NotFound
from ledger.client.reader import BlockReader
from ledger.errors import DecodeError
from ledger.kafka.clients import committed_reader, idempotent_producer
from ledger.kafka.principals import ADMIN
from ledger.kafka.wire import plain
from ledger.local import process
from ledger.local.stack import start_worker, witness_public_keys, worker_commands, worker_files
from ledger.local.workers import hold, release
from ledger.model import BlockHeader, Posting, Transfer
from ledger.settings import TOPIC_COSIGNATURES, Settings
from ledger.signing import Signer, build_tx_body, key_id, load_private_key
from ledger.tools.demo import ensure_demo_ledger, ensure_load_accounts
from ledger.tools.workload import transfers
from ledger.witnessing import WitnessPolicy, cosign

pytestmark = pytest.mark.services

threshold = 2
outcome_wait_s = 60.0
cosignature_wait_s = 60.0
restart_wait_s = 30.0
catch_up_wait_s = 120.0
"""A restarted witness replays the whole chain from block 0 before it co-signs anything new."""

load_count = 2_000
load_chunk_count = 100
load_account_count = 200


def policy(settings: Settings) -> WitnessPolicy:
    return WitnessPolicy(frozenset(witness_public_keys(settings)), threshold)


def witness_key(settings: Settings, name: str) -> bytes:
    """The public key of the local witness ``witness-N``."""
    return witness_public_keys(settings)[int(name.rsplit("-", 1)[1]) - 1]


def transfer(ledger: TestLedger, amount: int = 1) -> tuple[bytes, bytes]:
    op = Transfer(
        (Posting(ledger.alice, ledger.asset, -amount), Posting(ledger.bob, ledger.asset, amount))
    )
    body = build_tx_body(ledger.ledger, op, external_ref="finality-test")
    return body.tx_id, ledger.signer(ledger.alice).sign(body)


async def kill_9(settings: Settings, name: str) -> None:
    """SIGKILL a running worker (no warning, no cleanup) and wait until it is gone. Its stop
    marker keeps the supervisor from restarting it until ``start_and_wait``."""
    pid = process.read_pid(worker_files(settings, name)[0])
    assert pid is not None, f"{name} does not run; the test needs the stack's witnesses"
    await asyncio.to_thread(hold, settings, name, "test_finality: killed on purpose")
    os.kill(pid, signal.SIGKILL)
    gone = await asyncio.to_thread(process.wait_until, lambda: not process.pid_alive(pid), 10.0)
    assert gone, f"{name} (pid {pid}) outlived SIGKILL"


async def start_and_wait(settings: Settings, name: str) -> None:
    """Hand a witness back (its stop marker cleared), start it unless it runs, and wait until
    it follows the chain (its log says so)."""
    release(settings, name)
    await asyncio.to_thread(start_worker, settings, name, worker_commands(settings)[name])
    pid_file, log_file = worker_files(settings, name)

    def following() -> bool:
        pid = process.read_pid(pid_file)
        if pid is None:
            return False
        try:
            text = log_file.read_text(errors="replace")
        except OSError:
            return False
        return f"[{pid}] [INFO] ledger.witness: witness {name} " in text

    await eventually(following, what=f"{name} runs and follows the chain", timeout_s=restart_wait_s)


@contextlib.asynccontextmanager
async def restarted_in_the_end(settings: Settings, names: list[str]) -> AsyncIterator[None]:
    """Whatever happens inside, every witness in ``names`` runs again afterwards."""
    try:
        yield
    finally:
        for name in names:
            await start_and_wait(settings, name)


async def is_final(settings: Settings, tx_id: bytes) -> bool | None:
    """PostgreSQL's word on the transaction: None while it is not projected yet."""
    try:
        return bool((await queries.transaction(settings.database_url, tx_id))["final"])
    except NotFound:
        return None


async def test_a_transfer_awaited_until_final_comes_back_final(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """submit_and_wait(until="final") under the local witnesses' policy returns Sealed(final=True),
    and PostgreSQL eventually says the transaction is final too."""
    tx_id, envelope = transfer(test_ledger)
    async with Publisher(settings.kafka(ADMIN), witness_policy=policy(settings)) as pub:
        [outcome] = await pub.submit_and_wait([envelope], outcome_wait_s, until="final")
    assert isinstance(outcome, Sealed), outcome
    assert outcome.tx_id == tx_id and outcome.final is True
    await eventually(
        lambda: is_final(settings, tx_id),
        lambda final: final is True,
        what="PostgreSQL says the transaction is final",
        timeout_s=cosignature_wait_s,
    )


async def test_finality_needs_two_of_three_witnesses(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """With witness-1 killed a transfer still becomes final; with witness-2 killed too it is
    sealed but not final although witness-3 co-signed it, and final once witness-2 is back."""
    third_key_id = key_id(witness_key(settings, "witness-3"))
    async with restarted_in_the_end(settings, ["witness-1", "witness-2"]):
        await kill_9(settings, "witness-1")
        tx_id, envelope = transfer(test_ledger)
        async with Publisher(settings.kafka(ADMIN), witness_policy=policy(settings)) as publisher:
            [outcome] = await publisher.submit_and_wait([envelope], outcome_wait_s, until="final")
            assert isinstance(outcome, Sealed) and outcome.tx_id == tx_id, outcome
            assert outcome.final is True, "two of three witnesses run: the block must be final"

            await kill_9(settings, "witness-2")
            tx_id, envelope = transfer(test_ledger)
            [outcome] = await publisher.submit_and_wait([envelope], outcome_wait_s, until="sealed")
        assert isinstance(outcome, Sealed) and outcome.tx_id == tx_id, outcome
        height = outcome.height

        connection = await asyncpg.connect(settings.database_url)
        try:
            await eventually(
                lambda: connection.fetchval(
                    "SELECT count(*) FROM ledger.cosignatures"
                    " WHERE ledger = 'main' AND witness_key_id = $1 AND height = $2",
                    third_key_id,
                    height,
                ),
                lambda count: count == 1,
                what=f"witness-3's cosignature of height {height} is recorded",
                timeout_s=cosignature_wait_s,
            )
            final_height = await connection.fetchval("SELECT analytics.final_height('main')")
        finally:
            await connection.close()
        assert final_height is not None and final_height < height, (final_height, height)
        assert await is_final(settings, tx_id) is False

        await start_and_wait(settings, "witness-2")
        await eventually(
            lambda: is_final(settings, tx_id),
            lambda final: final is True,
            what=f"height {height} is final once witness-2 runs again",
            timeout_s=catch_up_wait_s,
            interval_s=0.5,
        )


def head_height(settings: Settings, name: str) -> int:
    """The height a witness saved in its head.json (-1 when it has none yet)."""
    path = settings.data_dir / "witnesses" / name / "head.json"
    try:
        return int(json.loads(path.read_text()).get("main", {}).get("height", -1))
    except (OSError, ValueError):
        return -1


async def cosignatures_in_kafka(
    settings: Settings, witness: bytes
) -> tuple[int, dict[int, set[tuple[bytes, bytes]]]]:
    """Every cosignature of ``witness`` on ledger main's partition of ledger.cosignatures, read
    from the beginning (read_committed): its first offset and height -> {(block_hash, signature)}."""
    partition = settings.shard_partition("main")
    assert partition is not None
    topic_partition = TopicPartition(TOPIC_COSIGNATURES, partition)
    reader = committed_reader(settings.kafka(ADMIN), "test-finality-cosignatures")
    await reader.start()
    try:
        reader.assign([topic_partition])
        await reader.seek_to_beginning(topic_partition)
        first = (await reader.beginning_offsets([topic_partition]))[topic_partition]
        end = (await reader.end_offsets([topic_partition]))[topic_partition]
        signed: dict[int, set[tuple[bytes, bytes]]] = {}
        deadline = time.monotonic() + outcome_wait_s
        while await reader.position(topic_partition) < end:
            assert time.monotonic() < deadline, "ledger.cosignatures was not read back in time"
            for messages in (await reader.getmany(timeout_ms=500)).values():
                for message in messages:
                    try:  # other tests put junk on the topic on purpose
                        cosignature = codec.decode_cosignature(
                            plain(message.value or b"", "Cosignature")
                        )
                    except DecodeError:
                        continue
                    if cosignature.witness_key == witness and cosignature.ledger == "main":
                        signed.setdefault(cosignature.height, set()).add(
                            (cosignature.block_hash, cosignature.signature)
                        )
        return first, signed
    finally:
        await reader.stop()


async def test_a_witness_killed_during_load_cosigns_every_block_once(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """kill -9 of witness-3 under 2,000 transfers: once restarted it co-signs every block up to
    the newest without a gap, and never two different (block_hash, signature) at one height."""
    name = "witness-3"
    witness = witness_key(settings, name)
    witness_id = key_id(witness)
    demo = await ensure_demo_ledger(settings, test_ledger.ledger)
    accounts = await ensure_load_accounts(settings, demo, load_account_count)
    created = int(time.time() * 1000)
    envelopes = transfers(accounts, load_count, 1, [created] * load_count, seed=created)

    connection = await asyncpg.connect(settings.database_url)
    try:
        # The baseline: the witness has co-signed the chain's head before the load starts.
        start = await connection.fetchval(
            "SELECT max(height) FROM ledger.blocks WHERE ledger = 'main'"
        )
        await eventually(
            lambda: connection.fetchval(
                "SELECT max(height) FROM ledger.cosignatures"
                " WHERE ledger = 'main' AND witness_key_id = $1",
                witness_id,
            ),
            lambda cosigned: cosigned is not None and cosigned >= start,
            what=f"{name} co-signed height {start} before the load",
            timeout_s=cosignature_wait_s,
        )

        async def load() -> list[object]:
            outcomes: list[object] = []
            async with Publisher(settings.kafka(ADMIN)) as publisher:
                for first in range(0, load_count, load_chunk_count):
                    chunk = envelopes[first : first + load_chunk_count]
                    outcomes += await publisher.submit_and_wait(chunk, outcome_wait_s)
            return outcomes

        loading = asyncio.create_task(load())
        try:
            async with restarted_in_the_end(settings, [name]):
                await eventually(
                    lambda: head_height(settings, name),
                    lambda height: height > start or loading.done(),
                    what=f"{name} co-signs blocks of the load",
                    timeout_s=outcome_wait_s,
                )
                assert not loading.done(), "the load ended before the witness could be killed"
                await kill_9(settings, name)
                killed_at = head_height(settings, name)
                # Let the chain grow while the witness is down.
                await eventually(
                    lambda: connection.fetchval(
                        "SELECT max(height) FROM ledger.blocks WHERE ledger = 'main'"
                    ),
                    lambda head: head >= killed_at + 3 or loading.done(),
                    what="blocks are sealed while the witness is down",
                    timeout_s=outcome_wait_s,
                )
            outcomes = await loading
        finally:
            if not loading.done():
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading

        assert len(outcomes) == load_count
        refused = [outcome for outcome in outcomes if not isinstance(outcome, Sealed)]
        assert not refused, refused[:3]
        newest = max(outcome.height for outcome in outcomes if isinstance(outcome, Sealed))
        assert newest > killed_at, (newest, killed_at)

        chain = {
            row["height"]: bytes(row["hash"])
            for row in await eventually(
                lambda: connection.fetch(
                    "SELECT height, hash FROM ledger.blocks"
                    " WHERE ledger = 'main' AND height BETWEEN $1 AND $2",
                    start,
                    newest,
                ),
                lambda rows: len(rows) == newest - start + 1,
                what=f"blocks {start}..{newest} are projected",
                timeout_s=outcome_wait_s,
            )
        }

        async def missing() -> list[int]:
            rows = await connection.fetch(
                "SELECT height FROM ledger.cosignatures"
                " WHERE ledger = 'main' AND witness_key_id = $1 AND height BETWEEN $2 AND $3",
                witness_id,
                start,
                newest,
            )
            return sorted(set(chain) - {row["height"] for row in rows})

        await eventually(
            missing,
            lambda gaps: not gaps,
            what=f"{name}'s cosignatures of every block {start}..{newest} are recorded",
            timeout_s=catch_up_wait_s,
            interval_s=0.5,
        )
        recorded = await connection.fetch(
            "SELECT height, block_hash FROM ledger.cosignatures"
            " WHERE ledger = 'main' AND witness_key_id = $1 AND height BETWEEN $2 AND $3",
            witness_id,
            start,
            newest,
        )
        assert {row["height"]: bytes(row["block_hash"]) for row in recorded} == chain
    finally:
        await connection.close()

    first_offset, signed = await cosignatures_in_kafka(settings, witness)
    twice = {height: pairs for height, pairs in signed.items() if len(pairs) > 1}
    assert not twice, f"{name} signed two different things at heights {sorted(twice)[:10]}"
    lowest = 0 if first_offset == 0 else min(signed)
    gaps = sorted(set(range(lowest, newest + 1)) - set(signed))
    assert not gaps, f"{name} published no cosignature of heights {gaps[:20]}"
    for height, block_hash in chain.items():
        [(signed_hash, _)] = signed[height]
        assert signed_hash == block_hash, f"{name} co-signed another block at height {height}"


async def test_bad_messages_on_the_cosignature_topic_never_count(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """Garbage bytes, a cosignature by an unregistered key and a registered witness's signature
    over another block than the chain's: each is a row of ledger.ignored_messages with its
    reason, and none is a vote."""
    tx_id, envelope = transfer(test_ledger)
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        [outcome] = await publisher.submit_and_wait([envelope], outcome_wait_s)
    assert isinstance(outcome, Sealed)
    connection = await asyncpg.connect(settings.database_url)
    try:
        row = await eventually(
            lambda: connection.fetchrow(
                "SELECT hash, blocks_root FROM ledger.blocks WHERE ledger = $1 AND height = $2",
                test_ledger.ledger,
                outcome.height,
            ),
            what=f"block {outcome.height} projected",
        )
        header = BlockHeader(
            test_ledger.ledger,
            outcome.height,
            bytes(32),
            bytes(32),
            0,
            0,
            0,
            bytes(row["blocks_root"]),
            bytes(32),
            0,
            0,
        )
        stranger = Signer.generate()
        witness = load_private_key(settings.witness_key_file(1), settings.witness_passphrase)
        values = [
            b"\x00not a cosignature",
            codec.encode_cosignature(cosign(stranger, header, bytes(row["hash"]), 0)),
            codec.encode_cosignature(cosign(witness, header, bytes(32), 0)),
        ]
        producer = idempotent_producer(settings.kafka(ADMIN), "test-finality", linger_ms=0)
        await producer.start()
        try:
            sent = [
                await producer.send_and_wait(TOPIC_COSIGNATURES, value, partition=0)
                for value in values
            ]
        finally:
            await producer.stop()
        offsets = [metadata.offset for metadata in sent]
        ignored = await eventually(
            lambda: connection.fetch(
                'SELECT "offset", reason FROM ledger.ignored_messages'
                ' WHERE topic = $1 AND partition = 0 AND "offset" = ANY ($2::bigint[])'
                ' ORDER BY "offset"',
                TOPIC_COSIGNATURES,
                offsets,
            ),
            lambda rows: len(rows) == 3,
            what="the three messages ignored",
        )
        reasons = [row["reason"] for row in ignored]
        assert reasons[0].startswith("not a Cosignature")
        assert reasons[1] == "not signed by a registered witness key"
        assert reasons[2] == "co-signs another block than the chain's at that height"
        counted = await connection.fetchval(
            "SELECT count(*) FROM ledger.cosignatures WHERE witness_key_id = $1 OR block_hash = $2",
            stranger.key_id,
            bytes(32),
        )
        assert counted == 0
    finally:
        await connection.close()


async def test_a_block_reader_with_a_witness_policy_yields_only_final_blocks(
    settings: Settings, test_ledger: TestLedger
) -> None:
    """With two of three witnesses stopped, a BlockReader given the 2-of-3 policy stops before
    the newest sealed block; a reader without a policy reads it; once a witness is back, the
    policy reader reaches it too."""
    try:
        for name in ("witness-1", "witness-2"):
            await kill_9(settings, name)
        tx_id, envelope = transfer(test_ledger)
        async with Publisher(settings.kafka(ADMIN)) as publisher:
            [outcome] = await publisher.submit_and_wait([envelope], outcome_wait_s)
        assert isinstance(outcome, Sealed)

        async def newest(witness_policy: WitnessPolicy | None) -> int:
            height = -1
            async with BlockReader(
                settings.kafka(ADMIN),
                test_ledger.ledger,
                witness_policy=witness_policy,
            ) as reader:
                async for item in reader:
                    height = item.height
            return height

        assert await newest(None) >= outcome.height
        assert await newest(policy(settings)) < outcome.height
    finally:
        for name in ("witness-1", "witness-2"):
            await start_and_wait(settings, name)
    await eventually(
        lambda: newest(policy(settings)),
        lambda height: height >= outcome.height,
        what=f"block {outcome.height} final for a policy reader",
        timeout_s=catch_up_wait_s,
    )
