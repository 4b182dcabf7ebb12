"""Run as ``python tests/support/leader_kill.py`` against a stack with LEDGER_KAFKA_BROKERS=3
(its settings from the environment): publishes transfers, kills -9 the broker leading
``ledger.blocks`` partition 0 a third of the way in, starts it again at two thirds, then prints
one JSON line: how many of the transfers were sealed, how many more than once, which workers
died (not running at the end, or running with another pid: the supervisor restarts a worker
that died), and the longest gap between two blocks while it ran (the recovery time)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
import time

from ledger import codec
from ledger.client.publisher import Publisher
from ledger.client.reader import BlockReader
from ledger.kafka.admin import describe_topics
from ledger.kafka.principals import ADMIN
from ledger.local.stack import kafka_cluster, running_workers, worker_commands
from ledger.settings import Settings
from ledger.tools.demo import ensure_demo_ledger, ensure_load_accounts
from ledger.tools.workload import transfers

chunk_count = 300
chunk_pause_s = 0.5
seal_wait_s = 180
seal_poll_s = 0.5
"""The chain is read again this often until every transfer is sealed or seal_wait_s passed."""


async def main(count: int) -> dict[str, object]:
    settings = Settings.from_env()
    demo = await ensure_demo_ledger(settings)
    accounts = await ensure_load_accounts(settings, demo, 50)
    now_ms = int(time.time() * 1000)
    envelopes = transfers(accounts, count, 1, [now_ms + 2 * i for i in range(count)], seed=now_ms)
    ours = {codec.decode_submission(envelope)[1].tx_id for envelope in envelopes}
    cluster = kafka_cluster(settings)
    [blocks] = await describe_topics(settings.kafka(ADMIN), ["ledger.blocks"])
    leader = blocks["partitions"][0]["leader"]
    pids_before = running_workers(settings)
    started_ms = int(time.time() * 1000)
    async with Publisher(settings.kafka(ADMIN)) as publisher:
        for start in range(0, count, chunk_count):
            await publisher.submit_many(envelopes[start : start + chunk_count])
            if start == count // 3 // chunk_count * chunk_count:
                pid = cluster.running()[leader]
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
            if start == 2 * count // 3 // chunk_count * chunk_count:
                cluster.start_node(leader)
            await asyncio.sleep(chunk_pause_s)
    pids_after = running_workers(settings)
    dead = sorted(
        name
        for name in worker_commands(settings)
        if name not in pids_after or pids_after[name] != pids_before.get(name)
    )
    deadline = time.monotonic() + seal_wait_s
    while True:
        sealed: collections.Counter[bytes] = collections.Counter()
        times = []
        async with BlockReader(settings.kafka(ADMIN), demo.ledger, partition=0) as reader:
            async for item in reader:
                if item.block.header.sealed_at_ms >= started_ms:
                    times.append(item.block.header.sealed_at_ms)
                for tx in item.block.transactions:
                    tx_id = codec.decode_submission(tx.envelope)[1].tx_id
                    if tx_id in ours:
                        sealed[tx_id] += 1
        if len(sealed) == count or time.monotonic() > deadline:
            break
        await asyncio.sleep(seal_poll_s)
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    return {
        "leader": leader,
        "sealed": len(sealed),
        "duplicated": sum(1 for copies in sealed.values() if copies > 1),
        "dead_workers": dead,
        "recovery_ms": max(gaps, default=0),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))))
