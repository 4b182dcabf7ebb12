"""``ledger bench``: signed transfers through the whole running pipeline, measured.

Steps, in order:
  1. the demo ledger and funded load accounts (opened once, reused by later runs);
  2. the ceiling: bare Ed25519 verifications per second on this machine, both cores;
  3. pre-generate and sign every transfer (not measured; written to the data directory),
     each created at its scheduled send time;
  4. publish on schedule (or as fast as possible with rate 0);
  5. wait until every transfer is sealed or refused and projected into PostgreSQL;
  6. read the figures back from PostgreSQL: sealed per second, latency from created_at to
     sealed and to visible in PostgreSQL, rejections, CPU seconds of every process.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from ledger import codec, ed25519, native
from ledger.client.publisher import Publisher
from ledger.errors import InfraError
from ledger.kafka.principals import PUBLISHER
from ledger.local.stack import kafka_cluster, postgres_cluster, running_workers
from ledger.settings import Settings
from ledger.signing import TX_SIGNATURE_DOMAIN, Signer
from ledger.tools.demo import ensure_demo_ledger, ensure_load_accounts
from ledger.tools.workload import LoadAccounts, transfers

ceiling_measure_s = 2.0
publish_tick_s = 0.02
"""Pacing granularity of the offer: a tenth of block_wait_ms, and each Publisher call (about
0.3 ms of CPU for its produce request) then carries a tick's transfers, 200 at 10,000/s."""

publish_chunk_count_max = 5_000
"""Transfers handed to the Publisher in one call (one record batch per partition)."""

publish_tasks_max = 4
"""Calls in flight at once: the next chunk is batched while the previous one is acknowledged.
The Publisher's back-pressure still bounds what the ledger has not verified."""

publish_age_s_max = 40.0
"""Transfers still unsent this long after their created_at are abandoned, not sent: with the
60 s validity, what is sent later could expire waiting in the pipeline."""

saturation_offer_per_s = 16_000
"""``--rate 0`` offers this rate, above what two cores seal, and lets the Publisher's
back-pressure pace it to what the pipeline takes; what it held back too long is abandoned and
counted. Created on a schedule rather than all at the start, so a long run's tail is as fresh as
its head."""
calibration_count = 500
"""Transfers signed first, and thrown away, to time signing on this machine right now."""

validity_ms = 60_000
"""The SDK's default validity window: what payment systems send (it also sizes the replay
window the sequencer keeps, and so its snapshots)."""

assert publish_age_s_max < validity_ms / 1000

start_margin_s = 3.0
"""Slack between the expected end of signing and the first scheduled send. Transfers are created
at their scheduled send time, so a send that starts late would count its lateness as latency."""

drain_wait_s_min = 60.0


@dataclass(frozen=True)
class BenchConfig:
    rate_per_s: int
    duration_s: float
    account_count: int
    hot_account_count: int
    hot_share: float
    amount: int = 1
    ledger_count: int = 1
    """Shards the load is spread over: the first ``ledger_count`` of LEDGER_SHARDS."""


def verify_ceiling_per_s(thread_count: int = os.cpu_count() or 1) -> float:
    """Bare Ed25519 verifications per second with ``thread_count`` threads, in batches of 100
    the way the verify stage checks them (``ledger.ed25519``: the GIL is released)."""
    signer = Signer.generate()
    body = os.urandom(120)
    signature = signer.sign_message(TX_SIGNATURE_DOMAIN + body)
    batch = [(signer.public_key, signature, body)] * 100

    def spin(deadline: float) -> int:
        count = 0
        while time.monotonic() < deadline:
            assert all(ed25519.verify_all(batch, TX_SIGNATURE_DOMAIN))
            count += len(batch)
        return count

    deadline = time.monotonic() + ceiling_measure_s
    with ThreadPoolExecutor(thread_count) as pool:
        counts = list(pool.map(spin, [deadline] * thread_count))
    return sum(counts) / ceiling_measure_s


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def process_cpu(settings: Settings) -> dict[tuple[str, int], float]:
    """CPU seconds so far of each local process by (role, pid); PostgreSQL with its backends."""
    usage: dict[tuple[str, int], float] = {}
    for name, pid in running_workers(settings).items():
        # verify-1 and verify-2 are one role; sequence-<ledger> is one shard's sequencer
        role = name if name.startswith("sequence-") else name.split("-")[0]
        usage[(role, pid)] = cpu_seconds(pid)
    kafka_pid = kafka_cluster(settings).running().get(1)
    if kafka_pid:
        usage[("kafka", kafka_pid)] = cpu_seconds(kafka_pid)
    postgres_pid = postgres_cluster(settings).pid()
    if postgres_pid:
        for pid in (postgres_pid, *children(postgres_pid)):
            usage[("postgres", pid)] = cpu_seconds(pid)
    usage[("bench", os.getpid())] = cpu_seconds(os.getpid())
    return usage


def cpu_used(
    before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]
) -> dict[str, float]:
    """CPU seconds per role between two readings. A process started in between (a restarted
    worker, a new backend) counts whole; one that ended in between is not seen after its last
    reading, so a run with restarts reads slightly low."""
    used: dict[str, float] = {role: 0.0 for role, _ in before}
    for (role, pid), seconds in after.items():
        used[role] = used.get(role, 0.0) + seconds - before.get((role, pid), 0.0)
    return used


def machine() -> str:
    model = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} {platform.release()}"


async def run_bench(settings: Settings, config: BenchConfig) -> dict[str, Any]:
    """One run: transfers offered at ``rate_per_s`` (spread evenly over the first
    ``ledger_count`` shards), drained, then measured per ledger and in total."""
    ledgers = settings.shards[: config.ledger_count]
    if len(ledgers) < config.ledger_count:
        raise InfraError(
            f"--ledgers {config.ledger_count} needs that many shards; LEDGER_SHARDS has "
            f"{len(settings.shards)} ({', '.join(settings.shards)})"
        )
    load = []
    for ledger in ledgers:
        demo = await ensure_demo_ledger(settings, ledger)
        load.append(await ensure_load_accounts(settings, demo, config.account_count))
    ceiling = await asyncio.to_thread(verify_ceiling_per_s)
    count = (
        int(config.rate_per_s * config.duration_s)
        if config.rate_per_s
        else int(config.duration_s * saturation_offer_per_s)
    )
    rate = config.rate_per_s or saturation_offer_per_s
    signing_s = await asyncio.to_thread(_time_signing, load[0], config)
    start_ms = int(
        (time.time() + signing_s * count / calibration_count * 1.2 + start_margin_s) * 1000
    )
    created = [start_ms + int(index * 1000 / rate) for index in range(count)]
    # Transfer i goes to ledger i mod N: every ledger gets rate / N, evenly spaced.
    envelopes: list[bytes] = [b""] * count
    for position, accounts in enumerate(load):
        envelopes[position :: len(load)] = await asyncio.to_thread(
            transfers,
            accounts,
            len(created[position :: len(load)]),
            config.amount,
            created[position :: len(load)],
            hot_account_count=config.hot_account_count,
            hot_share=config.hot_share,
            validity_ms=validity_ms,
            seed=start_ms + position,
        )
    tx_ids = [codec.decode_body_head(codec.decode_envelope(e).body).tx_id for e in envelopes]
    connection = await asyncpg.connect(settings.database_url, timeout=10)
    publisher = Publisher(settings.kafka(PUBLISHER), client_id="ledger-bench")
    try:
        await publisher.start()
        first_seqs = {
            ledger: await connection.fetchval(
                "SELECT coalesce(max(seq) + 1, 0) FROM ledger.transactions WHERE ledger = $1",
                ledger,
            )
            for ledger in ledgers
        }
        cpu_before = process_cpu(settings)
        late_ms = int(time.time() * 1000) - start_ms
        if late_ms > 0:
            raise InfraError(
                f"signing ran {late_ms} ms past the scheduled start; the measurement would count "
                "that as latency (is the machine busy?)"
            )
        abandoned = await _publish(publisher, envelopes, tx_ids, created)
        publish_end_ms = int(time.time() * 1000)
        drain_wait_s = max(drain_wait_s_min, config.duration_s * 3)
        for position, ledger in enumerate(ledgers):
            offered = len(created[position :: len(ledgers)])
            await _drain(
                connection, ledger, first_seqs[ledger], offered - abandoned, start_ms, drain_wait_s
            )
        cpu_after = process_cpu(settings)
        per_ledger = {
            ledger: await _figures(connection, ledger, first_seqs[ledger], start_ms)
            for ledger in ledgers
        }
        witnesses = [name for name in running_workers(settings) if name.startswith("witness")]
        # With no witness running nothing will become final: do not wait for it.
        final_wait_s = drain_wait_s if witnesses else 0.0
        final = await _final_figures(connection, ledgers[0], first_seqs[ledgers[0]], final_wait_s)
    finally:
        await publisher.stop()
        await connection.close()
    sealed = sum(figures["sealed"] for figures in per_ledger.values())
    last_sealed_ms = max(figures["last_sealed_ms"] for figures in per_ledger.values())
    sealed_per_s = sealed / max(0.001, (last_sealed_ms - start_ms) / 1000)
    cpu = cpu_used(cpu_before, cpu_after)
    published_s = max(0.001, (publish_end_ms - start_ms) / 1000)
    first = per_ledger[ledgers[0]]
    rejected_by_code: dict[str, int] = {}
    for figures in per_ledger.values():
        for code, number in figures["rejected_by_code"].items():
            rejected_by_code[code] = rejected_by_code.get(code, 0) + number
    return {
        "sealed_tx_per_s": round(sealed_per_s, 1),
        "offered_tx_per_s": config.rate_per_s or "as fast as possible",
        "published_tx_per_s": round((count - abandoned) / published_s, 1),
        "abandoned": abandoned,
        "throttled_s": round(publisher.throttled_s, 1),
        "transactions": count,
        "sealed": sealed,
        "rejected": sum(rejected_by_code.values()),
        "rejected_by_code": rejected_by_code,
        "latency_ms": _worst(per_ledger, "latency_ms") if len(ledgers) > 1 else first["latency_ms"],
        "visible_latency_ms": _worst(per_ledger, "visible_latency_ms")
        if len(ledgers) > 1
        else first["visible_latency_ms"],
        "ledgers": {
            ledger: {
                "sealed": figures["sealed"],
                "sealed_tx_per_s": round(
                    figures["sealed"] / max(0.001, (figures["last_sealed_ms"] - start_ms) / 1000), 1
                ),
                "latency_ms": figures["latency_ms"],
                "visible_latency_ms": figures["visible_latency_ms"],
            }
            for ledger, figures in per_ledger.items()
        },
        "witnesses_running": len(witnesses),
        "final": final,
        "verify_ceiling_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(sealed_per_s / ceiling, 3) if ceiling else 0.0,
        "cpu_seconds": {name: round(seconds, 1) for name, seconds in cpu.items()},
        "cpu_us_per_tx": cpu_per_tx(cpu, sealed),
        "duration_s": config.duration_s,
        "accounts": config.account_count,
        "machine": machine(),
        "native": native.status(),
        "ed25519": ed25519.status(),
    }


def _worst(per_ledger: dict[str, dict[str, Any]], key: str) -> dict[str, float]:
    """Each percentile at its worst over the ledgers: what the slowest shard's users saw."""
    return {
        name: max(figures[key][name] for figures in per_ledger.values())
        for name in ("p50", "p95", "p99")
    }


def cpu_per_tx(cpu_seconds: dict[str, float], sealed: int) -> dict[str, float]:
    """CPU µs per sealed transaction of each process, and their total: the figure that
    survives a noisy machine."""
    per_tx = {
        name: round(seconds * 1e6 / max(1, sealed), 1) for name, seconds in cpu_seconds.items()
    }
    per_tx["total"] = round(sum(cpu_seconds.values()) * 1e6 / max(1, sealed), 1)
    return per_tx


def _time_signing(accounts: LoadAccounts, config: BenchConfig) -> float:
    """Seconds to sign ``calibration_count`` transfers like the real ones."""
    started = time.perf_counter()
    transfers(accounts, calibration_count, config.amount, [0] * calibration_count, seed=0)
    return time.perf_counter() - started


async def _publish(
    publisher: Publisher,
    envelopes: list[bytes],
    tx_ids: list[bytes],
    created_ms: list[int],
) -> int:
    """Send each transfer at its ``created_at`` and never before (a transfer that arrives more
    than the clock skew early is refused NOT_YET_VALID), in record batches through the
    Publisher, whose back-pressure holds the offer back while the ledger lags.

    A transfer the back-pressure held back for ``publish_age_s_max`` is not sent: its payment
    system would have created a fresh one by then rather than publish one about to expire.
    Returns how many were abandoned so.
    """
    in_flight: set[asyncio.Task[Any]] = set()
    index = abandoned = 0
    while index < len(envelopes):
        now_ms = time.time() * 1000
        if created_ms[index] > now_ms:
            # A whole tick at least: waking when the next transfer is due sent one or two per
            # call at 10,000/s, and the calls cost the load generator and the broker about 35 µs
            # of CPU a transfer. Sent up to a tick after its created_at, which counts as latency.
            await asyncio.sleep(max(publish_tick_s, (created_ms[index] - now_ms) / 1000))
            continue
        if created_ms[index] < now_ms - publish_age_s_max * 1000:
            index += 1
            abandoned += 1
            continue
        stop = index
        while (
            stop < len(envelopes)
            and stop - index < publish_chunk_count_max
            and created_ms[stop] <= now_ms
        ):
            stop += 1
        if len(in_flight) >= publish_tasks_max:
            done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        in_flight.add(
            asyncio.create_task(publisher.submit_many(envelopes[index:stop], tx_ids[index:stop]))
        )
        index = stop
    await asyncio.gather(*in_flight)
    return abandoned


async def _drain(
    connection: asyncpg.Connection,
    ledger: str,
    first_seq: int,
    count: int,
    start_ms: int,
    wait_s: float,
) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        done = await connection.fetchval(
            """SELECT (SELECT count(*) FROM ledger.transactions WHERE ledger = $1 AND seq >= $2)
                    + (SELECT count(*) FROM ledger.rejections WHERE ledger = $1 AND rejected_at >= to_timestamp($3 / 1000.0))""",
            ledger,
            first_seq,
            start_ms,
        )
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise InfraError(
                f"only {done} of {count} transfers were sealed or refused within {wait_s:.0f} s"
            )
        await asyncio.sleep(0.5)


async def _figures(
    connection: asyncpg.Connection, ledger: str, first_seq: int, start_ms: int
) -> dict[str, Any]:
    row = await connection.fetchrow(
        """
        WITH ours AS (
            SELECT extract(epoch FROM t.sealed_at - t.created_at) * 1000 AS sealed_ms,
                   extract(epoch FROM b.projected_at - t.created_at) * 1000 AS visible_ms,
                   t.sealed_at
            FROM ledger.transactions t JOIN ledger.blocks b USING (ledger, height)
            WHERE t.ledger = $1 AND t.seq >= $2 AND t.external_ref LIKE 'load-%'
        )
        SELECT count(*) AS sealed,
               extract(epoch FROM max(sealed_at)) * 1000 AS last_sealed_ms,
               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY sealed_ms) AS sealed_p,
               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY visible_ms) AS visible_p
        FROM ours
        """,
        ledger,
        first_seq,
    )
    by_code = {
        row["code"]: row["count"]
        for row in await connection.fetch(
            """SELECT code, count(*) AS count FROM ledger.rejections
               WHERE ledger = $1 AND rejected_at >= to_timestamp($2 / 1000.0) GROUP BY code""",
            ledger,
            start_ms,
        )
    }

    def percentiles(values: list[float] | None) -> dict[str, float]:
        values = values or [0.0, 0.0, 0.0]
        return {"p50": round(values[0], 1), "p95": round(values[1], 1), "p99": round(values[2], 1)}

    return {
        "sealed": row["sealed"],
        "last_sealed_ms": float(row["last_sealed_ms"] or start_ms),
        "latency_ms": percentiles(row["sealed_p"]),
        "visible_latency_ms": percentiles(row["visible_p"]),
        "rejected": sum(by_code.values()),
        "rejected_by_code": by_code,
    }


async def _final_figures(
    connection: asyncpg.Connection, ledger: str, first_seq: int, wait_s: float
) -> dict[str, Any] | None:
    """created -> final of the run's transactions (None without a finality policy): a block is
    final when the threshold-th witness signed it, by that witness's clock. Waits up to
    ``wait_s`` for the run's last block to become final, since witnesses may lag."""
    threshold = await connection.fetchval(
        "SELECT threshold FROM ledger.finality_policies WHERE ledger = $1", ledger
    )
    last_height = await connection.fetchval(
        "SELECT max(height) FROM ledger.transactions WHERE ledger = $1 AND seq >= $2",
        ledger,
        first_seq,
    )
    if not threshold or last_height is None:
        return None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        final_height = await connection.fetchval("SELECT analytics.final_height($1)", ledger)
        if final_height is not None and final_height >= last_height:
            break
        await asyncio.sleep(0.5)
    row = await connection.fetchrow(
        """
        WITH ours AS (
            SELECT height, created_at FROM ledger.transactions
            WHERE ledger = $1 AND seq >= $2 AND external_ref LIKE 'load-%'
        ),
        final_at AS (
            SELECT height, signed_at FROM (
                SELECT height, signed_at,
                       row_number() OVER (PARTITION BY height ORDER BY signed_at) AS rank
                FROM ledger.cosignatures
                WHERE ledger = $1 AND height >= (SELECT min(height) FROM ours)
            ) AS ranked
            WHERE rank = $3
        )
        SELECT count(*) AS final,
               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
                   ORDER BY extract(epoch FROM f.signed_at - o.created_at) * 1000
               ) AS final_p
        FROM ours o JOIN final_at f USING (height)
        """,
        ledger,
        first_seq,
        threshold,
    )
    values = row["final_p"] or [0.0, 0.0, 0.0]
    return {
        "threshold": threshold,
        "final": row["final"],
        "latency_ms": {
            "p50": round(values[0], 1),
            "p95": round(values[1], 1),
            "p99": round(values[2], 1),
        },
    }


CPU_COLUMNS = (
    "verify",
    "sequence",
    "project",
    "stats",
    "kafka",
    "postgres",
    "bench",
    "witness",
    "finality",
)

RUNS_HEADER = (
    "| date (UTC) | machine | command | sealed tx/s | published tx/s, throttled s "
    "| p50 / p99 sealed ms | p50 / p99 visible ms | witnesses: p50 / p99 final ms | rejected "
    f"| CPU µs per tx: total ({', '.join(CPU_COLUMNS)}) |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
)


def record(result: dict[str, Any], command: str, path: Path) -> None:
    """Append one row to the runs table at the end of BENCHMARKS.md (started when missing)."""
    if not path.exists() or RUNS_HEADER.splitlines()[0] not in path.read_text():
        with open(path, "a") as out:
            out.write(
                "\n## Runs (CPU per transaction, finality)\n\nEvery `ledger bench` run appends a "
                "row here.\n\n" + RUNS_HEADER
            )
    per_tx = result["cpu_us_per_tx"]
    cpu_text = (
        f"**{per_tx['total']}** ("
        + ", ".join(str(per_tx.get(name, "-")) for name in CPU_COLUMNS)
        + ")"
    )
    rejected = result["rejected"]
    if rejected:
        rejected = f"{rejected} {result['rejected_by_code']}"
    row = (
        f"| {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} | {result['machine']}"
        f"{', mypyc' if result.get('native', '').startswith('compiled') else ''}"
        f"{', dalek' if result.get('ed25519', '').startswith('compiled') else ''} | `{command}` "
        f"| {result['sealed_tx_per_s']} | {result['published_tx_per_s']}, {result['throttled_s']} "
        f"| {result['latency_ms']['p50']} / {result['latency_ms']['p99']} "
        f"| {result['visible_latency_ms']['p50']} / {result['visible_latency_ms']['p99']} "
        f"| {_final_text(result)} | {rejected} | {cpu_text} |\n"
    )
    with open(path, "a") as out:
        out.write(row)


def _final_text(result: dict[str, Any]) -> str:
    final = result.get("final")
    if not result.get("witnesses_running") or final is None:
        return "off"
    latency = final["latency_ms"]
    return f"{result['witnesses_running']}, k={final['threshold']}: {latency['p50']} / {latency['p99']}"
