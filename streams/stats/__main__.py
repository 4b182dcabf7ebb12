"""``python -m streams.stats [--metrics-port PORT]``: the stats worker, as ``ledger up`` runs it
(worker ``stats``).

Exit codes: 0 stopped by SIGTERM or SIGINT (faust's own handling); 3 Kafka unreachable or the
summary topic cannot be created; 4 a bad setting.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys

from ledger.errors import ConfigError, InfraError
from ledger.kafka.admin import ensure_topics
from ledger.kafka.principals import STATS
from ledger.settings import TOPIC_STATS, Settings
from streams.lifecycle import collect_less
from streams.telemetry import add_metrics_port_argument, serve_metrics

EXIT_INFRA = 3
EXIT_BAD_INPUT = 4

topic_replication = 1
"""As ``ledger up`` creates it; a cluster prepared by its operators already has the topic."""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.stats", description=__doc__)
    add_metrics_port_argument(parser)
    args = parser.parse_args()
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"stats: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        # ``ledger up`` creates it too; a stack brought up before the stats process existed
        # has no such topic, and the broker does not create topics on first use.
        asyncio.run(
            ensure_topics(
                settings.kafka(STATS),
                {TOPIC_STATS: settings.topic_partitions()[TOPIC_STATS]},
                replication=topic_replication,
            )
        )
    except InfraError as exc:
        print(f"stats: {exc}", file=sys.stderr)
        sys.exit(EXIT_INFRA)
    from streams.stats.app import build_app

    app = build_app(settings)
    # Before faust configures logging: a warning goes to stderr (the worker's log) as it is.
    serve_metrics(args.metrics_port, "stats")
    collect_less()  # every block allocates a few thousand objects that reference counting frees
    gc.freeze()
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    sys.argv = ["faust", "worker", "--without-web", "--loglevel", "info"]
    app.main()


if __name__ == "__main__":
    main()
