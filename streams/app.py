"""The faust application: ``faust -A streams.app worker``.

One app, three roles; ``LEDGER_ROLES`` (comma-separated, default all) chooses which run in this
worker process, so ``ledger up`` starts each role as its own process and a crash of one never
takes down another. Faust's ``exactly_once`` guarantee and ``concurrency>1`` are deliberately not
used (DESIGN.md section 6): verify is idempotent, and sequence and project checkpoint in their
own outputs.
"""

from __future__ import annotations

import logging
import os

import faust

from ledger import limits
from ledger.settings import Settings

settings = Settings.from_env()
ROLES = frozenset(
    role.strip() for role in os.environ.get("LEDGER_ROLES", "verify,sequence,project").split(",")
)
KNOWN_ROLES = frozenset({"verify", "sequence", "project"})
if not ROLES <= KNOWN_ROLES:
    raise SystemExit(f"LEDGER_ROLES has unknown roles: {sorted(ROLES - KNOWN_ROLES)}")

datadir = settings.data_dir / "faust" / "-".join(sorted(ROLES))
datadir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level

app = faust.App(
    "ledger",
    broker=";".join(f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")),
    store="memory://",
    datadir=str(datadir),
    key_serializer="raw",
    value_serializer="raw",
    processing_guarantee="at_least_once",
    web_enabled=False,
    topic_disable_leader=True,
    topic_allow_declare=False,
    consumer_auto_offset_reset="earliest",
    # A killed worker's partitions wait for its session to expire: keep that short.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
    broker_commit_every=10_000,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=8_192,
    producer_acks=-1,
    producer_linger_ms=2,
    producer_max_batch_size=256 * 1024,
    producer_max_request_size=limits.message_bytes_max,
    consumer_max_fetch_size=limits.message_bytes_max,
)

logging.getLogger("aiokafka").setLevel(logging.WARNING)

if "verify" in ROLES:
    from streams import verify

    verify.register(app, settings)
if "sequence" in ROLES:
    from streams import sequence

    sequence.register(app, settings)
if "project" in ROLES:
    from streams import project

    project.register(app, settings)
