"""Background processes tracked by pid files, free-port checks and bounded waits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ledger.errors import InfraError

stop_wait_s = 30.0
"""A broker flushes and closes its logs on SIGTERM; past this it gets SIGKILL."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def require_free_port(port: int, what: str, setting: str) -> None:
    if port_in_use(port):
        raise InfraError(
            f"port {port} for {what} is already in use by another program; "
            f"stop it or choose another port with {setting}"
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _not_zombie(pid)
    return finished == 0


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(pid_file: Path) -> int | None:
    """The live process named by a pid file; a stale file (dead pid, garbage) is removed."""
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        pid_file.unlink(missing_ok=True)
        return None
    if pid_alive(pid):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def start(
    command: Sequence[str],
    pid_file: Path,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a detached process (own session, so a terminal's Ctrl-C does not reach it)."""
    return spawn(command, pid_file, log_file, env, cwd).pid


def spawn(
    command: Sequence[str],
    pid_file: Path,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``start``, returning the child: a parent that keeps it learns its exit status from
    ``poll()``. Such a parent must not call ``pid_alive`` on the child's pid, which would reap
    it and lose the status."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    write_atomically(pid_file, f"{process.pid}\n")
    return process


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a reader sees the old content or the new, never a torn
    or empty file (``read_pid`` removes a pid file it cannot parse)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def write_private(path: Path, text: str) -> None:
    """``write_atomically`` for a file that holds a secret: mode 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(partial, path)


def stop(pid_file: Path, timeout_s: float = stop_wait_s) -> bool:
    """Stop the process of a pid file: SIGTERM, then SIGKILL after timeout_s. True if it ran."""
    return bool(stop_all([pid_file], timeout_s))


def stop_all(pid_files: Sequence[Path], timeout_s: float = stop_wait_s) -> list[Path]:
    """Stop several processes together (a cluster whose members wait for each other to leave
    would otherwise stall one by one); returns the pid files whose process ran."""
    running = {pid_file: pid for pid_file in pid_files if (pid := read_pid(pid_file)) is not None}
    for pid in running.values():
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not any(map(pid_alive, running.values())), timeout_s):
        for pid in running.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not any(map(pid_alive, running.values())), 10.0)
    for pid_file in running:
        pid_file.unlink(missing_ok=True)
    return list(running)


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def log_tail(log_file: Path, line_count: int = 5) -> str:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in lines[-line_count:])
