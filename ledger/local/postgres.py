"""A private PostgreSQL cluster under the data directory, run with the system's server binaries.

PostgreSQL refuses to run as root; when we are root, its commands run as the ``postgres`` system
user (created by Debian's package) and the cluster directory belongs to that user.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

from ledger.errors import InfraError
from ledger.local import process

start_wait_s = 60
command_wait_s = 120.0
SUPERUSER = "ledger"
PASSWORD = "ledger"
DATABASE = "ledger"

SERVER_SETTINGS = """
# ledger: a private cluster for the local stack
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 100
# The projector inserts millions of rows into a few random-keyed B-trees (tx_id, external_ref,
# the statement index): with 256MB their pages were evicted and written back by the backends
# themselves, and 1GB of WAL forced a checkpoint (with full-page images) every few seconds.
shared_buffers = 2GB
wal_buffers = 64MB
max_wal_size = 8GB
checkpoint_timeout = 15min
# Full-page images are most of the WAL after each checkpoint (one per B-tree leaf first touched
# since, and the random-keyed indexes touch a new leaf nearly every insert): compressing them with
# pglz ("on") cost about 90 µs of CPU each, more than half of the server's CPU per transaction
# in a measurement of the projector's writes (BENCHMARKS.md, issue 8); lz4 costs a fraction.
wal_compression = lz4
# A ledger keeps what it acknowledged: none of the above trades durability.
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
"""


def server_bin_dir() -> Path:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        found = shutil.which("initdb")
        if found is None:
            raise InfraError(
                "the PostgreSQL server is not installed: run infra/install.sh (make run does) "
                "or apt-get install postgresql"
            )
        return Path(found).parent
    return candidates[-1].parent


def reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner may traverse every directory down to ``path``."""
    for directory in [path, *path.parents]:
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def cluster_directory(directory: Path) -> Path:
    """Where the cluster lives: ``directory``, unless we are root and the ``postgres`` user could
    not reach it (a checkout under /root, say); then a directory of its own under /var/tmp,
    named after ``directory`` so that ``up``, ``status`` and ``down`` agree on it."""
    if os.geteuid() != 0 or reachable_by_others(directory.parent):
        return directory
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path("/var/tmp/ledger-postgres") / digest


class PostgresCluster:
    def __init__(self, directory: Path, port: int) -> None:
        directory = cluster_directory(directory)
        self.directory = directory
        self.port = port
        self.data_dir = directory / "data"
        self.log_file = directory / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            first_line = pid_file.read_text().splitlines()[0]
            pid = int(first_line)
        except (OSError, ValueError, IndexError):
            return None
        return pid if process.pid_alive(pid) else None

    def up(self) -> bool:
        """Create the cluster if needed, start it, wait until it accepts connections.

        Returns False when it was already running.
        """
        if self.pid() is not None:
            return False
        process.require_free_port(self.port, "PostgreSQL", "LEDGER_POSTGRES_PORT")
        bin_dir = server_bin_dir()
        self._init(bin_dir)
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(start_wait_s),
            ],
            "starting PostgreSQL",
        )
        return True

    def down(self) -> bool:
        if self.pid() is None:
            return False
        self._run(
            [
                str(server_bin_dir() / "pg_ctl"),
                "stop",
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(start_wait_s),
            ],
            "stopping PostgreSQL",
        )
        return True

    def _init(self, bin_dir: Path) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise InfraError(
                f"{self.data_dir} exists but is not a PostgreSQL cluster (half-initialised?); "
                f"remove it and run again"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._hand_over(self.directory)
        password_file = self.directory / ".initdb-password"
        password_file.write_text(PASSWORD + "\n")
        self._hand_over(password_file)
        try:
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={password_file}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                "initialising the PostgreSQL cluster",
            )
        finally:
            password_file.unlink(missing_ok=True)
        settings = SERVER_SETTINGS.format(port=self.port, socket_dir=self.directory)
        with open(self.data_dir / "postgresql.conf", "a") as config:
            config.write(settings)
        self._run(
            [str(bin_dir / "postgres"), "--single", "-D", str(self.data_dir), "postgres"],
            "creating the ledger database",
            stdin=f"CREATE DATABASE {DATABASE};\n",
        )

    def _hand_over(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def _run(self, command: list[str], what: str, stdin: str | None = None) -> None:
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        try:
            result = subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=command_wait_s,
                cwd="/",
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraError(
                f"{what} took over {command_wait_s:.0f} s (log: {self.log_file})"
            ) from exc
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            tail = process.log_tail(self.log_file, 2)
            raise InfraError(f"{what} failed: {lines[-1]}" + (f" (log: {tail})" if tail else ""))
