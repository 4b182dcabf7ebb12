"""``python -m streams.worker ROLE``: one pipeline role in its own process, as ``ledger up`` runs them.

verify runs as a faust worker (``faust -A streams.app worker`` with ``LEDGER_ROLES=verify``).
sequence and project run as plain asyncio processes: each owns its Kafka clients (a
transactional producer per shard, manual seeks after replay), which faust's consumer would
only get in the way of; ``faust -A streams.app worker`` with all roles runs them as tasks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

USAGE = "usage: python -m streams.worker verify|sequence|project"


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("verify", "sequence", "project"):
        raise SystemExit(USAGE)
    role = sys.argv[1]
    os.environ["LEDGER_ROLES"] = role
    if role == "verify":
        from streams.app import app

        sys.argv = ["faust", "worker", "--without-web", "--loglevel", "info"]
        app.main()
        return
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    from ledger.settings import Settings

    settings = Settings.from_env()
    if role == "sequence":
        from streams.sequence import run_forever
    else:
        from streams.project import run_forever
    asyncio.run(run_forever(settings))


if __name__ == "__main__":
    main()
