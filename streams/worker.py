"""``python -m streams.worker ROLE``: one pipeline role in its own process, as ``ledger up`` runs them.

Every role is a plain asyncio process that owns its Kafka clients: verify a consumer-group
member, sequence a transactional producer per shard with manual seeks after replay, project a
manual reader with its PostgreSQL connection, finality a consumer-group member recording
witnesses' cosignatures (``streams.finality``). Witnesses run as ``python -m streams.witness``.
A crash of one never takes down another. With ``--metrics-port PORT`` a worker serves its own
metrics there (``streams.telemetry``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from collections.abc import Sequence

from ledger.settings import Settings
from streams.telemetry import add_metrics_port_argument, serve_metrics

ROLES = ("verify", "sequence", "project", "finality")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.worker", description=__doc__)
    parser.add_argument("role", choices=ROLES)
    parser.add_argument(
        "ledgers",
        nargs="*",
        metavar="LEDGER",
        help="sequence only: these shards (default: LEDGER_SEQUENCER_SHARDS)",
    )
    add_metrics_port_argument(parser)
    args = parser.parse_args(argv)
    if args.ledgers and args.role != "sequence":
        parser.error("only sequence takes ledger names")
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    if args.ledgers:
        unknown = set(args.ledgers) - set(settings.shards)
        if unknown:
            raise SystemExit(f"not in LEDGER_SHARDS: {', '.join(sorted(unknown))}")
        settings = dataclasses.replace(settings, sequencer_shards=tuple(args.ledgers))
    if args.role == "verify":
        from streams.verify import run_forever
    elif args.role == "sequence":
        from streams.sequence import run_forever
    elif args.role == "project":
        from streams.project import run_forever
    else:
        from streams.finality import run_forever
    # After the role's module is imported: its metrics are registered before the first scrape.
    serve_metrics(args.metrics_port, args.role)
    asyncio.run(run_forever(settings))


if __name__ == "__main__":
    main()
