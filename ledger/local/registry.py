"""The local Schema Registry: Apicurio Registry, run from the Maven Central zip that
``infra/install.sh`` unpacks, with its schemas in the PostgreSQL database ``registry``.

Its Confluent-compatible API is at ``/apis/ccompat/v7`` (``Settings.schema_registry_url``).
Schema ids live in that database, beside the ledger's, so they survive a restart and go into
the same backups; why this registry and this version: infra/README.md.

Layout under ``directory`` (``<data>/registry``)::

    config/application.properties   Quarkus reads it from the working directory; mode 0600, it
                                    holds the database password (never on a command line)
    registry.pid, registry.log
"""

from __future__ import annotations

import asyncio
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from ledger.errors import InfraError
from ledger.local import process
from ledger.settings import REPO_ROOT
from streams.postgres import redact_url

POM = REPO_ROOT / "infra" / "registry" / "pom.xml"
APPS_DIR = REPO_ROOT / ".data" / "registry" / "app"
"""Where install.sh unpacks each version (``<version>/``), whatever the data directory."""

DATABASE = "registry"

start_wait_s = 120.0
"""Ready in 3-4 s here (``JVM_OPTIONS``), 6-14 s with the JVM's defaults; a machine loaded by a
test suite takes several times that. Past two minutes something is wrong."""

heap_mb = 256
"""The registry holds a few dozen schemas: 256 MB of heap keeps it near 220 MB resident."""

JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
"""A registry answers a few requests when processes start: one GC thread and the quick (C1)
compiler only, which leave the cores to the pipeline and start it twice as fast. Measured on a
loaded 2-core machine (2026-11-30): ready 3.3-3.7 s after a first start (database and tables
created) and 3.2 s after a restart, against 7.9 s and 6.0 s with the JVM's defaults; 215 MB
resident against 228 MB."""

ready_probe_timeout_s = 2.0
connect_timeout_s = 10.0


def registry_version() -> str:
    text = POM.read_text()
    return text.split("<apicurio.version>", 1)[1].split("</apicurio.version>", 1)[0].strip()


class LocalRegistry:
    """One registry process on 127.0.0.1:``port``, storing into database ``registry`` on the
    PostgreSQL server of ``database_url`` as that URL's user."""

    def __init__(self, directory: Path, app_dir: Path, port: int, database_url: str) -> None:
        self.directory = directory
        self.app_dir = app_dir
        self.port = port
        self.database_url = database_url
        self.pid_file = directory / "registry.pid"
        self.log_file = directory / "registry.log"
        self.config_file = directory / "config" / "application.properties"

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        return process.read_pid(self.pid_file)

    def up(self) -> bool:
        """Create the database if missing, start the registry and wait until it is ready.

        Returns False when it was already running.
        """
        if self.pid() is not None:
            return False
        java = _java()
        runner = self._runner_jar()
        process.require_free_port(self.port, "the Schema Registry", "LEDGER_REGISTRY_PORT")
        asyncio.run(ensure_database(self.database_url))
        process.write_private(self.config_file, self._config())
        command = [java, f"-Xmx{heap_mb}m", *JVM_OPTIONS, "-jar", str(runner)]
        process.start(command, self.pid_file, self.log_file, cwd=self.directory)
        self.wait_ready(start_wait_s)
        return True

    def down(self) -> bool:
        return process.stop(self.pid_file)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.address}/health/ready", timeout=ready_probe_timeout_s
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float) -> None:
        """Until /health/ready answers 200 (storage reachable, tables in place); InfraError with
        the log's root cause when the process exits or the time runs out."""
        exited = False

        def ready_or_exited() -> bool:
            nonlocal exited
            exited = self.pid() is None
            return exited or self.ready()

        finished = process.wait_until(ready_or_exited, timeout_s, interval_s=0.25)
        if finished and not exited:
            return
        what = "exited during start-up" if exited else f"was not ready within {timeout_s:.0f} s"
        raise InfraError(
            f"the Schema Registry {what}: {failure_line(self.log_file)} (full log: {self.log_file})"
        )

    def _runner_jar(self) -> Path:
        found = sorted(self.app_dir.glob("apicurio-registry-app-*-runner.jar"))
        if not found or not (self.app_dir / ".complete").exists():
            raise InfraError(
                f"the Schema Registry is missing from {self.app_dir}: run infra/install.sh "
                f"(make run does)"
            )
        return found[0]

    def _config(self) -> str:
        parts = urlsplit(self.database_url)
        if not parts.hostname or not parts.username:
            raise InfraError(
                f"the Schema Registry needs a database URL with a host and a user, not "
                f"{redact_url(self.database_url)}"
            )
        jdbc_url = f"jdbc:postgresql://{parts.hostname}:{parts.port or 5432}/{DATABASE}"
        # libpq's and pgjdbc's sslmode take the same values: a server that requires TLS for the
        # ledger requires it for the registry too.
        ssl_modes = parse_qs(parts.query).get("sslmode")
        if ssl_modes:
            jdbc_url += f"?sslmode={ssl_modes[-1]}"
        settings = {
            "quarkus.http.host": "127.0.0.1",
            "quarkus.http.port": str(self.port),
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "postgresql",
            "apicurio.datasource.url": jdbc_url,
            "apicurio.datasource.username": unquote(parts.username),
            "apicurio.datasource.password": unquote(parts.password or ""),
            # A handful of clients ask at start-up and on an unknown id: a small pool.
            "apicurio.datasource.jdbc.initial-size": "2",
            "apicurio.datasource.jdbc.min-size": "2",
            "apicurio.datasource.jdbc.max-size": "20",
            # A PostgreSQL restart leaves the pool's connections dead, and without a check the
            # registry answers 500 until it is restarted itself: test each one when borrowed.
            "quarkus.datasource.postgresql.jdbc.validation-query-sql": "SELECT 1",
            "quarkus.datasource.postgresql.jdbc.validate-on-borrow": "true",
            # Ids by the schema's canonical form, as Confluent's registry: the same schema
            # written with other whitespace or field order is the same schema.
            "apicurio.ccompat.use-canonical-hash": "true",
        }
        header = (
            "# Written by ledger up (ledger/local/registry.py) at every start: edits are lost.\n"
        )
        return header + "".join(
            f"{key}={property_value(value)}\n" for key, value in settings.items()
        )


def failure_line(log_file: Path) -> str:
    """What went wrong, from the registry's log: a failed start ends in a long Java stack trace
    whose last ``Caused by:`` is the root cause (``FATAL: password authentication failed``);
    else the last ERROR line, else the last lines."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    for marker in ("Caused by:", " ERROR "):
        found = [line.strip() for line in lines if marker in line]
        if found:
            return found[-1]
    return process.log_tail(log_file, 3)


def property_value(text: str) -> str:
    """``text`` as a Java properties value that Quarkus reads back unchanged: backslashes,
    line breaks and leading blanks escaped, and ``${`` kept from expanding as an expression."""
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    escaped = escaped.replace("\t", "\\t").replace("\f", "\\f")
    # SmallRye Config expands ${...} after the properties are read; \$ (written \\$) escapes it.
    escaped = escaped.replace("${", "\\\\${")
    if escaped.startswith(" "):
        escaped = "\\" + escaped
    return escaped


async def ensure_database(database_url: str) -> None:
    """Create database ``registry`` on the server of ``database_url`` unless it exists. The
    registry creates its own tables in it."""
    try:
        connection = await asyncpg.connect(database_url, timeout=connect_timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise InfraError(
            f"cannot connect to PostgreSQL at {redact_url(database_url)} to create the "
            f"Schema Registry's database: {exc}"
        ) from exc
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            return
        try:
            await connection.execute(f"CREATE DATABASE {DATABASE}")
        except asyncpg.DuplicateDatabaseError:
            return  # another `ledger up` made it meanwhile
        except asyncpg.PostgresError as exc:
            raise InfraError(
                f"cannot create the Schema Registry's database {DATABASE} at "
                f"{redact_url(database_url)}: {exc} (create it, owned by that user, and run "
                f"again)"
            ) from exc
    finally:
        await connection.close()


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError(
            "java was not found: run infra/install.sh (make run does) or install Java 17+"
        )
    return java
