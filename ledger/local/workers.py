"""The local workers' files, and the rules every starter of a worker follows.

Each worker NAME has, under ``<data dir>/workers/``:

- ``NAME.pid``: the running process (``process.read_pid``), and ``NAME.log``: its output;
- ``NAME.lock``: the start lock. "Is it running? If not, start it" happens under an exclusive
  ``flock`` of this file, so ``ledger up``, the supervisor and the tests that restart workers
  never start two of one worker at once (two sequencers of a shard would fence each other);
- ``NAME.stopped``: the stop marker. The worker is down on purpose (``ledger stop``, a test that
  killed it to see what happens without it): nobody starts it while the marker exists, and the
  supervisor does not restart it. Its text says why; removing it hands the worker back;
- ``NAME.start``: a start request to the supervisor (``ledger up``, ``ledger start``): start it
  now, whatever the backoff, and forget its past exits. Starting through the supervisor, rather
  than directly, keeps the worker its child, so it learns the exit code (a fenced sequencer's
  75) when the worker exits.

The supervisor's own files live beside them (``supervisor_files``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import InfraError
from ledger.local import process
from ledger.settings import REPO_ROOT, Settings

SUPERVISOR = "supervisor"
"""The supervisor's file names; never a worker's."""

start_lock_wait_s = 10.0
"""A start holds the lock for a fork and a pid file write, milliseconds; a holder that keeps it
this long is stuck, and waiting on would hang ``ledger up``."""

start_lock_poll_s = 0.01


@dataclass(frozen=True)
class SupervisorFiles:
    pid: Path
    log: Path
    status: Path
    """JSON, replaced atomically: each worker's state, restarts, last exit (``supervisor``)."""
    commands: Path
    """JSON, worker name -> command line: what to keep running, as ``ledger up`` wrote it."""


def workers_directory(settings: Settings) -> Path:
    return settings.data_dir / "workers"


def worker_files(settings: Settings, name: str) -> tuple[Path, Path]:
    """A worker's pid file and log file."""
    directory = workers_directory(settings)
    return directory / f"{name}.pid", directory / f"{name}.log"


def stop_marker(settings: Settings, name: str) -> Path:
    return workers_directory(settings) / f"{name}.stopped"


def start_request(settings: Settings, name: str) -> Path:
    return workers_directory(settings) / f"{name}.start"


def supervisor_files(settings: Settings) -> SupervisorFiles:
    directory = workers_directory(settings)
    return SupervisorFiles(
        directory / f"{SUPERVISOR}.pid",
        directory / f"{SUPERVISOR}.log",
        directory / f"{SUPERVISOR}-status.json",
        directory / f"{SUPERVISOR}-commands.json",
    )


def running_workers(settings: Settings) -> dict[str, int]:
    """Every worker whose pid file names a live process, whatever the settings say now."""
    found = {}
    for pid_file in sorted(workers_directory(settings).glob("*.pid")):
        if pid_file.stem == SUPERVISOR:
            continue
        pid = process.read_pid(pid_file)
        if pid is not None:
            found[pid_file.stem] = pid
    return found


@contextlib.contextmanager
def start_lock(settings: Settings, name: str) -> Iterator[None]:
    """Hold the worker's start lock (an exclusive ``flock``, released when the holder exits,
    however it exits); InfraError after ``start_lock_wait_s``."""
    lock_file = workers_directory(settings) / f"{name}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as lock:
        deadline = time.monotonic() + start_lock_wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InfraError(
                        f"the {name} worker's start lock {lock_file} is held by another process "
                        f"for over {start_lock_wait_s:.0f} s"
                    ) from None
                time.sleep(start_lock_poll_s)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start_worker(
    settings: Settings, name: str, command: Sequence[str]
) -> subprocess.Popen[bytes] | None:
    """Start one worker unless it runs or is stopped on purpose (its stop marker), under its
    start lock; None when it was not started. Does not wait for it. The child is returned for a
    parent that wants its exit status (the supervisor); others may drop it."""
    pid_file, log_file = worker_files(settings, name)
    with start_lock(settings, name):
        if stop_marker(settings, name).exists() or process.read_pid(pid_file) is not None:
            return None
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # close_fds (Popen's default) keeps the lock's descriptor out of the worker: a worker
        # that inherited it would hold the lock for its whole life.
        return process.spawn(command, pid_file, log_file, env=env, cwd=REPO_ROOT)


def stop_worker(settings: Settings, name: str) -> bool:
    """SIGTERM (SIGKILL after ``process.stop_wait_s``); True if it ran. To keep it down, ``hold``
    it first: the supervisor restarts a worker whose exit status it could not learn."""
    return process.stop(worker_files(settings, name)[0])


def hold(settings: Settings, name: str, reason: str) -> None:
    """Set the stop marker: from now on nobody starts the worker and the supervisor leaves it
    down. Under the start lock, so a start under way finishes first (stop it afterwards)."""
    with start_lock(settings, name):
        process.write_atomically(stop_marker(settings, name), reason.strip() + "\n")


def release(settings: Settings, name: str) -> bool:
    """Clear the stop marker (True if there was one): the supervisor may start the worker again."""
    marker = stop_marker(settings, name)
    existed = marker.exists()
    marker.unlink(missing_ok=True)
    return existed


def stop_reason(settings: Settings, name: str) -> str | None:
    """The stop marker's text, or None when the worker is not stopped on purpose."""
    try:
        return stop_marker(settings, name).read_text().strip() or "stopped on purpose"
    except FileNotFoundError:
        return None


def request_start(settings: Settings, name: str) -> None:
    path = start_request(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def take_start_request(settings: Settings, name: str) -> bool:
    """Consume a start request; True if there was one."""
    try:
        start_request(settings, name).unlink()
    except FileNotFoundError:
        return False
    return True
