"""``python -m ledger.local.supervisor --commands FILE``: keep the local workers running.

``ledger up`` starts it (``.data/workers/supervisor.pid`` and ``.log``) with the command table it
wrote (``supervisor-commands.json``, re-read when it changes); ``ledger down`` stops it first, so
that it does not restart what ``down`` stops. Every ``tick_s``, for each worker of the table:

  1. observe: a worker it started is its child, whose exit code it polls; any other it finds by
     its pid file and adopts (a worker started by a test, ``ledger start`` without a supervisor,
     or an earlier supervisor): watched, but its exit status cannot be known;
  2. an exit: ``ledger.local.supervision.after_exit`` decides whether to restart it after a
     backoff, give up (recording the exit and the log's last lines), or leave it stopped;
  3. a worker that does not run and is due, or asked for (a start request): started under its
     start lock, unless its stop marker is set (``ledger.local.workers``);
  4. the status file (``supervisor-status.json``) is replaced when anything in it changed.

It talks to neither Kafka nor PostgreSQL, beyond a TCP connect to tell whether they answer when
a worker failed, so it keeps going while they are down. SIGTERM or SIGINT end it; the workers
keep running.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, assert_never
from urllib.parse import urlsplit

from ledger.errors import ConfigError, InfraError
from ledger.local import process
from ledger.local.supervision import (
    EXIT_BAD_INPUT,
    ExitHistory,
    GiveUp,
    Leave,
    Restart,
    after_exit,
    describe_exit,
)
from ledger.local.workers import (
    SUPERVISOR,
    start_worker,
    stop_reason,
    supervisor_files,
    take_start_request,
    worker_files,
)
from ledger.settings import Settings

log = logging.getLogger("ledger.supervisor")

tick_s = 0.25
"""How often every worker is looked at: a dead one is noticed this long after at most. A look is
a few system calls per worker (a pid file, a stat of its marker and request)."""

log_tail_line_count = 3
"""Lines of a worker's log kept with the reason it was given up on."""

probe_timeout_s = 0.5
"""A TCP connect to Kafka or PostgreSQL that takes longer counts as no answer."""

RUNNING = "running"
RESTARTING = "restarting"
GAVE_UP = "gave-up"
STOPPED = "stopped"


@dataclass
class Watch:
    """One worker as the supervisor sees it: the state ``ledger status`` shows, and what it
    needs to decide the next step."""

    command: list[str]
    state: str = RESTARTING
    pid: int | None = None
    child: subprocess.Popen[bytes] | None = None
    started_at_s: float | None = None
    """Monotonic time of the start, None for an adopted worker (its start was not seen)."""
    started_at_ms: int | None = None
    restart_at_s: float = 0.0
    restart_at_ms: int | None = None
    restart_count: int = 0
    seen_running: bool = False
    held: bool = False
    last_exit_code: int | None = None
    last_exit: str | None = None
    reason: str = ""
    history: ExitHistory = field(default_factory=ExitHistory)

    def document(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "restart_count": self.restart_count,
            "last_exit_code": self.last_exit_code,
            "last_exit": self.last_exit,
            "started_at_ms": self.started_at_ms,
            "restart_at_ms": self.restart_at_ms if self.state == RESTARTING else None,
            "reason": self.reason,
        }


def load_commands(path: Path) -> dict[str, list[str]]:
    """The command table: a JSON object of worker name -> command line (a list of strings)."""
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the command table {path}: {exc}") from exc
    if not isinstance(table, dict) or not all(
        isinstance(command, list) and command and all(isinstance(arg, str) for arg in command)
        for command in table.values()
    ):
        raise ConfigError(f"{path} is not a JSON object of worker name -> command line")
    if SUPERVISOR in table:
        raise ConfigError(f"{path}: {SUPERVISOR!r} is the supervisor's name, not a worker's")
    return table


def services_answer(settings: Settings) -> bool:
    """Whether a Kafka bootstrap server, PostgreSQL and the Schema Registry accept a TCP
    connection (a URL without a host, a Unix socket, counts as answering: it cannot be probed
    this way)."""
    kafka_up = False
    for address in settings.kafka_bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        if port.isdigit() and process.port_in_use(int(port), host or "127.0.0.1"):
            kafka_up = True
            break
    return kafka_up and all(
        _url_answers(url, default_port)
        for url, default_port in ((settings.database_url, 5432), (settings.schema_registry_url, 80))
    )


def _url_answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError:
        return True
    return parts.hostname is None or process.port_in_use(port, parts.hostname)


def now_ms() -> int:
    return int(time.time() * 1000)


class Supervisor:
    def __init__(self, settings: Settings, commands_file: Path) -> None:
        self.settings = settings
        self.commands_file = commands_file
        self.commands_mtime_ns = commands_file.stat().st_mtime_ns
        self.watches = {
            name: Watch(command) for name, command in load_commands(commands_file).items()
        }
        self.status_file = supervisor_files(settings).status
        self.status_written = ""
        self.stopping = False

    def run(self) -> None:
        log.info("supervising %s", ", ".join(self.watches))
        try:
            while not self.stopping:
                self.tick(time.monotonic())
                time.sleep(tick_s)
        finally:
            self.status_file.unlink(missing_ok=True)
        log.info("stopped; the workers keep running")

    def stop(self) -> None:
        self.stopping = True

    def tick(self, now_s: float) -> None:
        self.reload_commands()
        for name, watch in self.watches.items():
            self.check(name, watch, now_s)
        self.write_status()

    def reload_commands(self) -> None:
        """Take up a command table ``ledger up`` rewrote (other settings, more workers)."""
        try:
            mtime_ns = self.commands_file.stat().st_mtime_ns
            if mtime_ns == self.commands_mtime_ns:
                return
            commands = load_commands(self.commands_file)
        except (OSError, ConfigError) as exc:
            log.error("keeping the command table as it was: %s", exc)
            return
        self.commands_mtime_ns = mtime_ns
        for name in set(self.watches) - set(commands):
            log.info("%s is no longer in the command table: no longer supervised", name)
            del self.watches[name]
        for name, command in commands.items():
            if name in self.watches:
                self.watches[name].command = command  # for its next start
            else:
                self.watches[name] = Watch(command)

    def check(self, name: str, watch: Watch, now_s: float) -> None:
        """Steps 1 to 3 of the module docstring for one worker."""
        requested = take_start_request(self.settings, name)
        self.observe(name, watch, now_s)
        if watch.state == RUNNING:
            return
        reason = stop_reason(self.settings, name)
        if reason is not None:
            watch.held, watch.state, watch.reason = True, STOPPED, f"on purpose: {reason}"
            return
        if watch.held or requested:  # handed back: a fresh start, whatever happened before
            log.info("%s handed back: starting it", name)
            watch.held, watch.history = False, ExitHistory()
            watch.state, watch.restart_at_s = RESTARTING, now_s
        if watch.state == RESTARTING and now_s >= watch.restart_at_s:
            self.start(name, watch, now_s)

    def observe(self, name: str, watch: Watch, now_s: float) -> None:
        if watch.child is not None:
            exit_code = watch.child.poll()
            if exit_code is None:
                return
            watch.child = None
            self.exited(name, watch, exit_code, now_s)
            return
        # Not a child of ours: read_pid may reap a zombie, which is only safe for non-children.
        pid = process.read_pid(worker_files(self.settings, name)[0])
        if pid is not None:
            if pid != watch.pid or watch.state != RUNNING:
                log.info(
                    "%s runs as pid %d, not started by this supervisor: watching it", name, pid
                )
                watch.pid, watch.state, watch.reason = pid, RUNNING, ""
                watch.started_at_s, watch.started_at_ms = None, now_ms()
                watch.history, watch.seen_running, watch.held = ExitHistory(), True, False
            return
        if watch.state == RUNNING:
            self.exited(name, watch, None, now_s)

    def exited(self, name: str, watch: Watch, exit_code: int | None, now_s: float) -> None:
        """Step 2: what to do about a worker that exited."""
        ran_s = None if watch.started_at_s is None else now_s - watch.started_at_s
        watch.pid, watch.last_exit_code, watch.last_exit = None, exit_code, describe_exit(exit_code)
        ran = "" if ran_s is None else f" after {ran_s:.1f} s"
        if stop_reason(self.settings, name) is not None:
            log.info("%s exited (%s)%s; stopped on purpose", name, watch.last_exit, ran)
            watch.state = STOPPED  # check() says why
            return
        decision, watch.history = after_exit(
            watch.history, exit_code, ran_s, now_s, services_answer(self.settings)
        )
        match decision:
            case Restart(delay_s):
                watch.state, watch.reason = RESTARTING, f"after {watch.last_exit}"
                watch.restart_at_s = now_s + delay_s
                watch.restart_at_ms = now_ms() + round(delay_s * 1000)
                log.warning(
                    "%s exited (%s)%s; restarting in %.0f s", name, watch.last_exit, ran, delay_s
                )
            case GiveUp(reason):
                log_file = worker_files(self.settings, name)[1]
                tail = process.log_tail(log_file, log_tail_line_count)
                watch.state, watch.reason = GAVE_UP, f"{reason}; log: {tail}" if tail else reason
                log.error("gave up on %s: %s", name, watch.reason)
            case Leave(reason):
                watch.state, watch.reason = STOPPED, reason
                log.warning("%s %s", name, reason)
            case _:
                assert_never(decision)

    def start(self, name: str, watch: Watch, now_s: float) -> None:
        """Step 3, under the start lock: someone else may have started it meanwhile (adopted at
        the next tick) or stopped it on purpose (held at the next tick)."""
        try:
            child = start_worker(self.settings, name, watch.command)
        except (OSError, InfraError) as exc:  # a command that cannot run, a lock stuck for long
            watch.state, watch.reason = GAVE_UP, f"cannot start it: {exc}"
            log.error("gave up on %s: %s", name, watch.reason)
            return
        if child is None:
            return
        if watch.seen_running:
            watch.restart_count += 1
        watch.child, watch.pid, watch.state, watch.reason = child, child.pid, RUNNING, ""
        watch.started_at_s, watch.started_at_ms, watch.seen_running = now_s, now_ms(), True
        log.info("started %s (pid %d)", name, child.pid)

    def write_status(self) -> None:
        """Step 4: replaced in one step, and only when it changed."""
        document = json.dumps(
            {
                "pid": os.getpid(),
                "workers": {name: watch.document() for name, watch in self.watches.items()},
            },
            indent=1,
        )
        if document != self.status_written:
            process.write_atomically(self.status_file, document + "\n")
            self.status_written = document


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ledger.local.supervisor", description=__doc__)
    parser.add_argument(
        "--commands",
        type=Path,
        required=True,
        help="JSON object of worker name -> command line (`ledger up` writes it)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    try:
        supervisor = Supervisor(Settings.from_env(), args.commands)
    except (ConfigError, OSError) as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: supervisor.stop())
    supervisor.run()


if __name__ == "__main__":
    main()
