"""``ledger up`` / ``down`` / ``status``: the whole local stack, idempotently.

Order of ``up`` (each step is a no-op when already done):
  1. Kafka (when KAFKA_BOOTSTRAP_SERVERS is not set), then wait for a metadata answer;
  2. the ledger topics, with partition counts from the settings;
  3. PostgreSQL (when LEDGER_DATABASE_URL is not set), then wait for connections;
  4. the database migrations;
  5. the Schema Registry (when LEDGER_SCHEMA_REGISTRY_URL is not set; its schemas in database
     ``registry`` of that PostgreSQL), then every ledger schema registered in it, local or not,
     before any worker asks for an id;
  6. the local sealer and witness keys, when their files do not exist yet (local development
     only);
  7. the worker processes: LEDGER_VERIFY_WORKERS verify workers (one consumer group that
     shares the submission partitions), one sequencer, one projector, the finality recorder,
     LEDGER_WITNESSES witnesses (keys created on first ``up``), one stats worker
     (``streams.stats``: windowed figures) and the dashboard. The supervisor
     (``ledger.local.supervisor``) starts them and restarts those that exit; ``up`` clears every
     stop marker (``ledger stop``) first, starts the supervisor if it does not run, asks it for
     the missing workers, and waits for them.
``down`` stops the supervisor first, so that it restarts nothing, then the rest in the reverse
order, by pid files only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError, InfraError
from ledger.kafka.admin import ensure_acls, ensure_topics, wait_for_brokers
from ledger.kafka.principals import ADMIN
from ledger.kafka.registry import SchemaRegistry
from ledger.local import process
from ledger.local.kafka import KafkaCluster, kafka_version
from ledger.local.postgres import PostgresCluster
from ledger.local.registry import APPS_DIR, LocalRegistry, registry_version
from ledger.local.supervision import early_exit_s
from ledger.local.supervisor import RESTARTING, RUNNING, STOPPED
from ledger.local.workers import (
    SUPERVISOR,
    hold,
    release,
    request_start,
    stop_reason,
    supervisor_files,
)

# Re-exported: callers (the bench, tests) took these from here before ledger.local.workers.
from ledger.local.workers import running_workers as running_workers
from ledger.local.workers import start_worker as start_worker
from ledger.local.workers import stop_worker as stop_worker
from ledger.local.workers import worker_files as worker_files
from ledger.settings import Settings
from ledger.signing import Signer, save_private_key

external_wait_s = 15.0
"""A cluster the user points us at should already run; do not wait for it long."""

witness_nice = 10
"""CPU priority the local witnesses give up: on one machine they lag rather than slow sealing."""

worker_start_wait_s = early_exit_s
"""A worker that dies this soon after start has a configuration problem worth reporting."""

supervisor_wait_s = 15.0
"""The supervisor looks at start requests 4 times a second, and a new one starts within about
half a second; past this it is stuck, or keeps failing to start the worker."""


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
    state: str
    """running, stopped, or as the supervisor says: restarting, gave-up."""
    restart_count: int | None = None
    """Restarts by the supervisor; None for what it does not supervise."""
    detail: str = ""
    """Why it is not running (a stop marker, the supervisor's reason), or when it restarts."""
    metrics: str = ""
    """Where Prometheus scrapes the worker's own metrics (``ledger.local.metrics_ports``)."""

    def cells(self) -> list[tuple[str, int]]:
        """The columns of ``line``, each with its width (0: as wide as its text)."""
        owner = f"pid {self.pid}" if self.pid else ("external" if not self.managed else "-")
        restarts = "" if self.restart_count is None else f"restarts {self.restart_count}"
        return [
            (self.name, 10),
            (self.state, 10),
            (owner, 12),
            (restarts, 11),
            (self.address, 0),
            (self.metrics, 0),
            (self.detail, 0),
        ]

    def line(self) -> str:
        return " ".join(text.ljust(width) for text, width in self.cells()).rstrip()


def kafka_cluster(settings: Settings) -> KafkaCluster:
    return KafkaCluster(
        settings.data_dir / "kafka" / "cluster",
        settings.kafka_libs_dir / kafka_version(),
        settings.kafka_port,
        settings.kafka_brokers,
        settings.kafka_heap_mb,
        settings.kafka_credentials_dir if settings.kafka_local_auth else None,
    )


def postgres_cluster(settings: Settings) -> PostgresCluster:
    return PostgresCluster(settings.data_dir / "postgres", settings.postgres_port)


def local_registry(settings: Settings) -> LocalRegistry:
    return LocalRegistry(
        settings.data_dir / "registry",
        APPS_DIR / registry_version(),
        settings.registry_port,
        settings.database_url,
    )


def up(settings: Settings) -> list[str]:
    """Bring the stack up; returns what was started (empty when all already ran)."""
    started: list[str] = []
    if settings.local_kafka and kafka_cluster(settings).up():  # it writes users' passwords
        started.append("kafka")
    admin = settings.kafka(ADMIN)
    if not settings.local_kafka:
        asyncio.run(wait_for_brokers(admin, 1, external_wait_s))
    elif settings.kafka_local_auth:
        asyncio.run(ensure_acls(admin))
    created = asyncio.run(
        ensure_topics(
            admin,
            settings.topic_partitions(),
            replication=min(3, settings.kafka_brokers),
        )
    )
    started.extend(f"topic {name}" for name in created)
    if settings.local_postgres and postgres_cluster(settings).up():
        started.append("postgres")
    from streams.postgres.migrate import migrate

    started.extend(f"migration {name}" for name in asyncio.run(migrate(settings.database_url)))
    if settings.local_registry and local_registry(settings).up():
        started.append("registry")
    SchemaRegistry(settings.schema_registry_url).register_all()
    if ensure_sealer_key(settings):
        started.append(f"sealer key {settings.sealer_key_file}")
    started.extend(f"witness key {path}" for path in ensure_witness_keys(settings))
    return started + start_workers(settings)


def start_workers(settings: Settings) -> list[str]:
    """Step 7: every worker of ``worker_commands`` runs, under the supervisor. Returns what was
    started."""
    commands = worker_commands(settings)
    for name in commands:
        release(settings, name)  # `up` means the whole stack up
    missing = [name for name in commands if not worker_running(settings, name)]
    started = []
    if start_supervisor(settings, commands):
        started.append(SUPERVISOR)  # it starts what is missing at once
    else:
        for name in missing:
            request_start(settings, name)
    wait_for_supervisor(settings, missing)
    check_workers_started(settings, missing)
    return started + [f"{name} worker" for name in missing]


def start_supervisor(settings: Settings, commands: dict[str, list[str]]) -> bool:
    """Write the command table for it (it re-reads a changed one), and start the supervisor
    unless it runs; True when started."""
    files = supervisor_files(settings)
    table = json.dumps(commands, indent=1) + "\n"
    try:
        unchanged = files.commands.read_text() == table
    except FileNotFoundError:
        unchanged = False
    if not unchanged:
        process.write_atomically(files.commands, table)
    supervisor = [
        sys.executable,
        "-m",
        "ledger.local.supervisor",
        "--commands",
        str(files.commands),
    ]
    return start_worker(settings, SUPERVISOR, supervisor) is not None


def wait_for_supervisor(settings: Settings, names: list[str]) -> None:
    """Until every worker of ``names`` runs; InfraError naming those that do not after
    ``supervisor_wait_s``, with the supervisor's reason."""
    if process.wait_until(
        lambda: all(worker_running(settings, name) for name in names), supervisor_wait_s
    ):
        return
    watched = supervised_workers(settings)
    for name in names:
        if not worker_running(settings, name):
            reason = watched.get(name, {}).get("reason") or (
                "no answer from the supervisor: "
                + process.log_tail(supervisor_files(settings).log, 3)
            )
            log_file = worker_files(settings, name)[1]
            raise InfraError(
                f"the {name} worker did not start within {supervisor_wait_s:.0f} s: {reason} "
                f"(log: {log_file})"
            )


def worker_running(settings: Settings, name: str) -> bool:
    return process.read_pid(worker_files(settings, name)[0]) is not None


def supervised_workers(settings: Settings) -> dict[str, dict[str, Any]]:
    """The supervisor's word on each worker (``supervisor.Watch.document``); empty when no
    supervisor runs."""
    files = supervisor_files(settings)
    if process.read_pid(files.pid) is None:
        return {}
    try:
        workers = json.loads(files.status.read_text())["workers"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return workers if isinstance(workers, dict) else {}


def stop_on_purpose(settings: Settings, name: str, reason: str) -> bool:
    """``ledger stop NAME``: set its stop marker, so that nothing starts it again, then stop it
    (SIGTERM); True if it ran."""
    if name not in worker_commands(settings) and name not in running_workers(settings):
        raise ConfigError(f"no worker named {name}: `ledger status` lists them")
    hold(settings, name, reason)
    return stop_worker(settings, name)


def hand_back(settings: Settings, name: str) -> bool:
    """``ledger start NAME``: clear its stop marker and start it, through the supervisor when one
    runs (its child, so that it learns the exit code); False when it already ran."""
    commands = worker_commands(settings)
    if name not in commands:
        raise ConfigError(f"no worker named {name} in these settings: `ledger status` lists them")
    release(settings, name)
    if worker_running(settings, name):
        return False
    if process.read_pid(supervisor_files(settings).pid) is not None:
        start_supervisor(settings, commands)  # the table may lack it
        request_start(settings, name)
        wait_for_supervisor(settings, [name])
    else:
        start_worker(settings, name, commands[name])
    check_workers_started(settings, [name])
    return True


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


def down(settings: Settings) -> list[str]:
    stopped = [SUPERVISOR] if process.stop(supervisor_files(settings).pid) else []
    stopped += [
        f"{name} worker"
        for name in reversed(running_workers(settings))
        if stop_worker(settings, name)
    ]
    if settings.local_registry and local_registry(settings).down():
        stopped.append("registry")
    if settings.local_postgres and postgres_cluster(settings).down():
        stopped.append("postgres")
    if settings.local_kafka and kafka_cluster(settings).down():
        stopped.append("kafka")
    return stopped


def status(settings: Settings) -> list[ComponentStatus]:
    components: list[ComponentStatus] = []
    if settings.local_kafka:
        pid = kafka_cluster(settings).running()[1]
        components.append(local_status("kafka", pid, settings.kafka_bootstrap_servers))
    else:
        components.append(
            ComponentStatus("kafka", True, None, settings.kafka_bootstrap_servers, False, RUNNING)
        )
    if settings.local_postgres:
        pg_pid = postgres_cluster(settings).pid()
        components.append(local_status("postgres", pg_pid, f"127.0.0.1:{settings.postgres_port}"))
    else:
        components.append(
            ComponentStatus("postgres", True, None, "LEDGER_DATABASE_URL", False, RUNNING)
        )
    if settings.local_registry:
        registry_pid = local_registry(settings).pid()
        components.append(local_status("registry", registry_pid, settings.schema_registry_url))
    else:
        components.append(
            ComponentStatus("registry", True, None, settings.schema_registry_url, False, RUNNING)
        )
    files = supervisor_files(settings)
    components.append(local_status(SUPERVISOR, process.read_pid(files.pid), str(files.log)))
    watched = supervised_workers(settings)
    running = running_workers(settings)
    # metrics_ports reads the ports back from worker_commands, so it imports this module.
    from ledger.local.metrics_ports import metrics_address

    for name in {**worker_commands(settings), **watched, **running}:
        line = worker_status(settings, name, running.get(name), watched.get(name))
        address = metrics_address(settings, name)
        components.append(line if address is None else dataclasses.replace(line, metrics=address))
    return components


def local_status(name: str, pid: int | None, address: str) -> ComponentStatus:
    return ComponentStatus(name, pid is not None, pid, address, True, RUNNING if pid else STOPPED)


def worker_status(
    settings: Settings, name: str, pid: int | None, watched: dict[str, Any] | None
) -> ComponentStatus:
    """A worker's line: its pid file says whether it runs; its stop marker, else the
    supervisor, why not."""
    log_file = str(worker_files(settings, name)[1])
    restart_count = None if watched is None else int(watched.get("restart_count", 0))
    reason = stop_reason(settings, name)
    if pid is not None:
        detail = "" if reason is None else f"not restarted when it exits: {reason}"
        return ComponentStatus(name, True, pid, log_file, True, RUNNING, restart_count, detail)
    state, detail = STOPPED, ""
    if reason is not None:
        detail = f"on purpose: {reason}"
    elif watched is not None and watched.get("state") not in (None, RUNNING):
        state, detail = str(watched["state"]), str(watched.get("reason") or "")
        restart_at_ms = watched.get("restart_at_ms")
        if state == RESTARTING and isinstance(restart_at_ms, int):
            wait_s = max(0.0, restart_at_ms / 1000 - time.time())
            detail = f"in {wait_s:.0f} s, {detail}"
    return ComponentStatus(name, False, None, log_file, True, state, restart_count, detail)
