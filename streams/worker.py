"""``python -m streams.worker ROLE``: one pipeline role in its own process, as ``ledger up`` runs them.

Every role is a plain asyncio process that owns its Kafka clients: verify a consumer-group
member, sequence a transactional producer per shard with manual seeks after replay, project a
manual reader with its PostgreSQL connection, finality a consumer-group member recording
witnesses' cosignatures (``streams.finality``). Witnesses run as ``python -m streams.witness``. A crash of one never takes down another.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys

from ledger.settings import Settings

ROLES = ("verify", "sequence", "project", "finality")
USAGE = (
    f"usage: python -m streams.worker {'|'.join(ROLES)}"
    " (sequence LEDGER...: only these shards, else LEDGER_SEQUENCER_SHARDS)"
)


def main() -> None:
    if (
        len(sys.argv) < 2
        or sys.argv[1] not in ROLES
        or (len(sys.argv) > 2 and sys.argv[1] != "sequence")
    ):
        raise SystemExit(USAGE)
    role = sys.argv[1]
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    if len(sys.argv) > 2:
        unknown = set(sys.argv[2:]) - set(settings.shards)
        if unknown:
            raise SystemExit(f"not in LEDGER_SHARDS: {', '.join(sorted(unknown))}")
        settings = dataclasses.replace(settings, sequencer_shards=tuple(sys.argv[2:]))
    if role == "verify":
        from streams.verify import run_forever
    elif role == "sequence":
        from streams.sequence import run_forever
    elif role == "project":
        from streams.project import run_forever
    else:
        from streams.finality import run_forever
    asyncio.run(run_forever(settings))


if __name__ == "__main__":
    main()
