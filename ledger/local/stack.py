"""``ledger up`` / ``down`` / ``status``: the whole local stack, idempotently.

Order of ``up`` (each step is a no-op when already done):
  1. Kafka (when KAFKA_BOOTSTRAP_SERVERS is not set), then wait for a metadata answer;
  2. the ledger topics, with partition counts from the settings;
  3. PostgreSQL (when LEDGER_DATABASE_URL is not set), then wait for connections;
  4. the database migrations;
  5. the local sealer and witness keys, when their files do not exist yet (local development
     only);
  6. the worker processes: LEDGER_VERIFY_WORKERS verify workers (one consumer group that
     shares the submission partitions), one sequencer, one projector, the finality recorder,
     LEDGER_WITNESSES witnesses (keys created on first ``up``), one stats worker
     (``streams.stats``: windowed figures) and the dashboard.
``down`` stops in the reverse order, by pid files only.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import InfraError
from ledger.kafka.admin import ensure_topics, wait_for_brokers
from ledger.local import process
from ledger.local.kafka import KafkaCluster, kafka_version
from ledger.local.postgres import PostgresCluster
from ledger.settings import REPO_ROOT, Settings
from ledger.signing import Signer, save_private_key

external_wait_s = 15.0
"""A cluster the user points us at should already run; do not wait for it long."""

witness_nice = 10
"""CPU priority the local witnesses give up: on one machine they lag rather than slow sealing."""

worker_start_wait_s = 5.0
"""A worker that dies this soon after start has a configuration problem worth reporting."""


def worker_commands(settings: Settings) -> dict[str, list[str]]:
    """Worker name -> command line, in start order."""
    commands = {
        f"verify-{index}": [sys.executable, "-m", "streams.worker", "verify"]
        for index in range(1, settings.verify_workers + 1)
    }
    if len(settings.sequencer_shards) == 1:
        commands["sequence"] = [sys.executable, "-m", "streams.worker", "sequence"]
    else:  # one sequencer process per shard: shards seal in parallel, on as many cores
        for ledger in settings.sequencer_shards:
            commands[f"sequence-{ledger}"] = [
                *(sys.executable, "-m", "streams.worker", "sequence", ledger)
            ]
    commands["project"] = [sys.executable, "-m", "streams.worker", "project"]
    commands["finality"] = [sys.executable, "-m", "streams.worker", "finality"]
    if len(settings.shards) > 1:  # cross-shard transfers, cleared with the demo issuer keys
        keys_dir = str(settings.data_dir / "demo")
        commands["crossshard"] = [
            sys.executable,
            "-m",
            "streams.crossshard",
            "--keys-dir",
            keys_dir,
        ]
    for index in range(1, settings.witness_count + 1):
        key_file = str(settings.witness_key_file(index))
        name = f"witness-{index}"
        # Here the witnesses share the machine with the pipeline: they take the CPU it leaves.
        witness = ["streams.witness", "--name", name, "--key", key_file]
        commands[name] = [sys.executable, "-m", *witness, "--nice", str(witness_nice)]
    commands["stats"] = [sys.executable, "-m", "streams.stats"]
    commands["dashboard"] = [sys.executable, "-m", "streams.dashboard"]
    if settings.metrics_port_base:
        # Each worker serves its own metrics on the next port (streams.telemetry; read back by
        # ledger.local.metrics_ports), but the dashboard, whose /metrics is on its own port.
        for index, (name, command) in enumerate(commands.items()):
            if name != "dashboard":
                command += ["--metrics-port", str(settings.metrics_port_base + index)]
    return commands


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    address: str
    managed: bool

    def line(self) -> str:
        state = "running" if self.running else "stopped"
        owner = f"pid {self.pid}" if self.pid else ("external" if not self.managed else "-")
        return f"{self.name:<10} {state:<8} {owner:<12} {self.address}"


def kafka_cluster(settings: Settings) -> KafkaCluster:
    return KafkaCluster(
        settings.data_dir / "kafka" / "cluster",
        settings.kafka_libs_dir / kafka_version(),
        settings.kafka_port,
        settings.kafka_brokers,
        settings.kafka_heap_mb,
    )


def postgres_cluster(settings: Settings) -> PostgresCluster:
    return PostgresCluster(settings.data_dir / "postgres", settings.postgres_port)


def up(settings: Settings) -> list[str]:
    """Bring the stack up; returns what was started (empty when all already ran)."""
    started: list[str] = []
    if settings.local_kafka:
        if kafka_cluster(settings).up():
            started.append("kafka")
    else:
        asyncio.run(wait_for_brokers(settings.kafka_bootstrap_servers, 1, external_wait_s))
    created = asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            settings.topic_partitions(),
            replication=min(3, settings.kafka_brokers),
        )
    )
    started.extend(f"topic {name}" for name in created)
    if settings.local_postgres and postgres_cluster(settings).up():
        started.append("postgres")
    from streams.postgres.migrate import migrate

    started.extend(f"migration {name}" for name in asyncio.run(migrate(settings.database_url)))
    if ensure_sealer_key(settings):
        started.append(f"sealer key {settings.sealer_key_file}")
    started.extend(f"witness key {path}" for path in ensure_witness_keys(settings))
    new_workers = [
        name
        for name, command in worker_commands(settings).items()
        if start_worker(settings, name, command)
    ]
    check_workers_started(settings, new_workers)
    return started + [f"{name} worker" for name in new_workers]


def ensure_witness_keys(settings: Settings) -> list[Path]:
    """Create the local witnesses' keys (and their ``.pub`` files) if missing; returns those
    created."""
    created = []
    for index in range(1, settings.witness_count + 1):
        key_file = settings.witness_key_file(index)
        if key_file.exists():
            continue
        key_file.parent.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate()
        save_private_key(key_file, signer, settings.witness_passphrase)
        key_file.with_suffix(".pub").write_text(signer.public_key.hex() + "\n")
        created.append(key_file)
    return created


def witness_public_keys(settings: Settings) -> list[bytes]:
    """The local witnesses' public keys, from their ``.pub`` files (``ensure_witness_keys``)."""
    return [
        bytes.fromhex(settings.witness_key_file(index).with_suffix(".pub").read_text().strip())
        for index in range(1, settings.witness_count + 1)
        if settings.witness_key_file(index).with_suffix(".pub").exists()
    ]


def ensure_sealer_key(settings: Settings) -> bool:
    """Create the local stack's sealer key if missing; True when created."""
    if settings.sealer_key_file.exists():
        return False
    settings.sealer_key_file.parent.mkdir(parents=True, exist_ok=True)
    save_private_key(settings.sealer_key_file, Signer.generate(), settings.sealer_passphrase)
    return True


def worker_files(settings: Settings, name: str) -> tuple[Path, Path]:
    directory = settings.data_dir / "workers"
    return directory / f"{name}.pid", directory / f"{name}.log"


def running_workers(settings: Settings) -> dict[str, int]:
    """Every worker whose pid file names a live process, whatever the settings say now."""
    found = {}
    for pid_file in sorted((settings.data_dir / "workers").glob("*.pid")):
        pid = process.read_pid(pid_file)
        if pid is not None:
            found[pid_file.stem] = pid
    return found


def start_worker(settings: Settings, name: str, command: list[str]) -> bool:
    """Start one worker unless it runs; False when it already ran. Does not wait for it."""
    pid_file, log_file = worker_files(settings, name)
    if process.read_pid(pid_file) is not None:
        return False
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process.start(command, pid_file, log_file, env=env, cwd=REPO_ROOT)
    return True


def check_workers_started(settings: Settings, names: list[str]) -> None:
    """Watch freshly started workers for worker_start_wait_s; one that died is reported."""
    pid_files = {name: worker_files(settings, name)[0] for name in names}
    pids = {name: process.read_pid(pid_file) for name, pid_file in pid_files.items()}

    def any_died() -> bool:
        return any(pid is None or not process.pid_alive(pid) for pid in pids.values())

    if names and process.wait_until(any_died, worker_start_wait_s):
        for name, pid in pids.items():
            if pid is None or not process.pid_alive(pid):
                pid_files[name].unlink(missing_ok=True)
                log_file = worker_files(settings, name)[1]
                raise InfraError(
                    f"the {name} worker exited at start: {process.log_tail(log_file, 3)} (log: {log_file})"
                )


def stop_worker(settings: Settings, name: str) -> bool:
    return process.stop(worker_files(settings, name)[0])


def down(settings: Settings) -> list[str]:
    stopped = [
        f"{name} worker"
        for name in reversed(running_workers(settings))
        if stop_worker(settings, name)
    ]
    if settings.local_postgres and postgres_cluster(settings).down():
        stopped.append("postgres")
    if settings.local_kafka and kafka_cluster(settings).down():
        stopped.append("kafka")
    return stopped


def status(settings: Settings) -> list[ComponentStatus]:
    components: list[ComponentStatus] = []
    if settings.local_kafka:
        pid = kafka_cluster(settings).running()[1]
        components.append(
            ComponentStatus("kafka", pid is not None, pid, settings.kafka_bootstrap_servers, True)
        )
    else:
        components.append(
            ComponentStatus("kafka", True, None, settings.kafka_bootstrap_servers, False)
        )
    if settings.local_postgres:
        pg_pid = postgres_cluster(settings).pid()
        components.append(
            ComponentStatus(
                "postgres", pg_pid is not None, pg_pid, f"127.0.0.1:{settings.postgres_port}", True
            )
        )
    else:
        components.append(ComponentStatus("postgres", True, None, "LEDGER_DATABASE_URL", False))
    running = running_workers(settings)
    for name in {**worker_commands(settings), **running}:
        worker_pid = running.get(name)
        log_file = worker_files(settings, name)[1]
        components.append(
            ComponentStatus(name, worker_pid is not None, worker_pid, str(log_file), True)
        )
    return components
