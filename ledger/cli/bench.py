"""``ledger demo`` and ``ledger bench``: load through the running pipeline."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import time

import click

from ledger.cli import cli
from ledger.kafka.principals import PUBLISHER
from ledger.settings import REPO_ROOT, Settings


@cli.command()
@click.option(
    "--rate",
    default=3000,
    show_default=True,
    help="Transfers per second offered; 0 = as fast as possible.",
)
@click.option("--seconds", default=60.0, show_default=True, help="How long to offer load.")
@click.option(
    "--accounts", default=1000, show_default=True, help="Load accounts (opened and funded once)."
)
@click.option(
    "--hot-accounts", default=10, show_default=True, help="Accounts that take the hot share."
)
@click.option(
    "--hot-share", default=0.2, show_default=True, help="Share of transfers paid by a hot account."
)
@click.option(
    "--ledgers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Spread the load evenly over the first N shards of LEDGER_SHARDS (accounts on each).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-record", is_flag=True, help="Do not append the result to BENCHMARKS.md.")
def bench(
    rate: int,
    seconds: float,
    accounts: int,
    hot_accounts: int,
    hot_share: float,
    ledgers: int,
    as_json: bool,
    no_record: bool,
) -> None:
    """Measure sealed transfers per second and latency through the running pipeline."""
    from ledger.tools.bench.load import BenchConfig, record, run_bench

    if rate < 0 or seconds <= 0 or accounts < 2 or not 0 <= hot_share <= 1:
        raise click.BadParameter("need rate >= 0, seconds > 0, accounts >= 2, 0 <= hot-share <= 1")
    config = BenchConfig(rate, seconds, accounts, hot_accounts, hot_share, ledger_count=ledgers)
    result = asyncio.run(run_bench(Settings.from_env(), config))
    if not no_record:
        record(result, "ledger " + shlex.join(sys.argv[1:]), REPO_ROOT / "BENCHMARKS.md")
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"sealed {result['sealed_tx_per_s']} tx/s (offered {result['offered_tx_per_s']}), "
        f"{result['sealed']} sealed, {result['rejected']} rejected\n"
        f"latency to sealed  p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms\n"
        f"latency to visible p50 {result['visible_latency_ms']['p50']} ms, p99 {result['visible_latency_ms']['p99']} ms\n"
        f"Ed25519 ceiling {result['verify_ceiling_per_s']}/s, ratio {result['ratio_to_ceiling']}\n"
        f"CPU seconds {result['cpu_seconds']}"
        + "".join(
            f"\n  {ledger}: sealed {figures['sealed_tx_per_s']} tx/s, p99 sealed "
            f"{figures['latency_ms']['p99']} ms"
            for ledger, figures in result["ledgers"].items()
            if len(result["ledgers"]) > 1
        )
    )


@cli.command("bench-core")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_core(as_json: bool) -> None:
    """Measure the pure core on one core: codec, signatures, state machine, Merkle."""
    from ledger.tools.bench import codec, merkle, state

    results = {"codec": codec.run(), "state": state.run(), "merkle": merkle.run()}
    if as_json:
        click.echo(json.dumps(results))
        return
    for part, figures in results.items():
        for name, value in figures.items():
            click.echo(f"{part:<7} {name:<45} {value:>14,.1f}")


@cli.command()
@click.option("--rate", default=100, show_default=True, help="Transfers per second.")
@click.option("--seconds", default=30.0, show_default=True, help="How long to run the load.")
def demo(rate: int, seconds: float) -> None:
    """Initialise the demo ledger (once) and run a light transfer load through it."""
    from ledger.client.publisher import Publisher
    from ledger.tools.demo import ensure_demo_ledger, ensure_load_accounts
    from ledger.tools.workload import transfers

    async def run() -> None:
        settings = Settings.from_env()
        demo_ledger = await ensure_demo_ledger(settings)
        click.echo(f"demo ledger {demo_ledger.ledger}: keys and genesis in {demo_ledger.directory}")
        accounts = await ensure_load_accounts(settings, demo_ledger, 100)
        async with Publisher(settings.kafka(PUBLISHER), client_id="ledger-demo") as publisher:
            deadline = time.monotonic() + seconds
            sent = 0
            while time.monotonic() < deadline:
                now_ms = int(time.time() * 1000)
                batch = transfers(
                    accounts, rate, 100, [now_ms] * rate, seed=now_ms, validity_ms=60_000
                )
                await publisher.submit_many(batch)
                sent += len(batch)
                if sys.stdout.isatty():
                    click.echo(f"\rsubmitted {sent} transfers", nl=False)
                elif sent % (10 * rate) < rate:
                    click.echo(f"submitted {sent} transfers")
                await asyncio.sleep(max(0.0, 1 - (time.time() * 1000 - now_ms) / 1000))
        click.echo(f"\rsubmitted {sent} transfers: watch them on the dashboard")

    asyncio.run(run())


@cli.command("bench-restart")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_restart(as_json: bool) -> None:
    """Kill -9 the sequencer and projector of the local stack and time their return."""
    from ledger.tools.bench.restart import run_restart_bench

    result = asyncio.run(run_restart_bench(Settings.from_env()))
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"history {result['history_transactions']:,} transactions: sealed again "
        f"{result['sequencer_restart_to_sealed_s']} s after the restart, visible in PostgreSQL "
        f"after {result['projector_restart_to_visible_s']} s"
    )
