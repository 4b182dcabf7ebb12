"""The local Schema Registry process (``ledger.local.registry``): ``ledger up`` runs it on
PostgreSQL, ``ledger status`` lists it, its database password stays in a 0600 file, and a
restart keeps the ids it gave."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import stat
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from support.cli import assert_one_line_error, run_ledger
from support.ports import free_port_block

from ledger.errors import InfraError
from ledger.local.postgres import PostgresCluster, cluster_directory
from ledger.local.registry import APPS_DIR, LocalRegistry, registry_version
from ledger.local.stack import local_registry
from ledger.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.services

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
request_timeout_s = 10.0

PROBE_SCHEMA = {
    "type": "record",
    "name": "Probe",
    "namespace": "test.registry",
    "fields": [{"name": "count", "type": "long"}],
}


def call(url: str, body: dict[str, Any] | None = None) -> Any:
    """GET ``url``, or POST ``body`` to it, as a Confluent registry client does."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
    )
    with urllib.request.urlopen(request, timeout=request_timeout_s) as response:
        return json.loads(response.read())


def register(api_url: str, subject: str) -> int:
    payload = {"schemaType": "AVRO", "schema": json.dumps(PROBE_SCHEMA)}
    return int(call(f"{api_url}/subjects/{subject}/versions", payload)["id"])


@pytest.fixture(scope="module")
def private_registry(settings: Settings) -> Iterator[tuple[LocalRegistry, str, PostgresCluster]]:
    """A registry of its own, started, on a PostgreSQL cluster of its own whose superuser's
    password is random and holds what a properties file and Quarkus treat specially (a leading
    blank, ``${...}``, a backslash, ``=``, ``#``, ``:``); with that password. Stopped and removed
    afterwards, so the shared stack's registry is never restarted under the other tests."""
    directory = REPO_ROOT / ".data" / "test-registry-process"
    postgres_directory = cluster_directory(directory / "postgres")
    for path in (directory, postgres_directory):
        shutil.rmtree(path, ignore_errors=True)
    port = free_port_block(2, settings)
    cluster = PostgresCluster(directory / "postgres", port)
    password = f" {secrets.token_hex(12)}${{user.home}}\\=#:"
    registry = LocalRegistry(
        directory / "registry",
        APPS_DIR / registry_version(),
        port + 1,
        f"postgresql://ledger:{quote(password, safe='')}@127.0.0.1:{port}/ledger",
    )
    try:
        cluster.up()
        asyncio.run(set_password(cluster.url, password))
        assert registry.up()
        yield registry, password, cluster
    finally:
        registry.down()
        cluster.down()
        for path in (directory, postgres_directory):
            shutil.rmtree(path, ignore_errors=True)


async def set_password(database_url: str, password: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        quoted = await connection.fetchval("SELECT quote_literal($1::text)", password)
        await connection.execute(f"ALTER ROLE ledger PASSWORD {quoted}")
    finally:
        await connection.close()


def test_ledger_up_runs_the_registry_and_status_lists_it(settings: Settings) -> None:
    """The stack's registry runs, answers /health/ready, and `ledger status` names its pid and
    the Confluent-compatible URL."""
    if not settings.local_registry:
        pytest.skip("the stack uses the registry of LEDGER_SCHEMA_REGISTRY_URL")
    registry = local_registry(settings)
    pid = registry.pid()
    assert pid is not None
    with urllib.request.urlopen(f"{registry.address}/health/ready", timeout=5) as response:
        assert response.status == 200
    [line] = [
        line for line in run_ledger("status").stdout.splitlines() if line.startswith("registry ")
    ]
    assert line.split()[1:5] == ["running", "pid", str(pid), settings.schema_registry_url], line
    assert stat.S_IMODE(registry.config_file.stat().st_mode) == 0o600


def test_password_stays_in_a_private_file(
    private_registry: tuple[LocalRegistry, str, PostgresCluster],
) -> None:
    """The registry reached PostgreSQL with a password full of special characters, which is in
    its 0600 config file and in no command line of the machine nor in its log."""
    registry, password, _ = private_registry
    assert stat.S_IMODE(registry.config_file.stat().st_mode) == 0o600
    assert "apicurio.datasource.password=" in registry.config_file.read_text()
    token = password.split("$", 1)[0].strip()  # the random part, a word nothing else contains
    listing = subprocess.run(
        ["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    assert str(registry.pid()) in {line.split()[0] for line in listing.splitlines()}
    assert token not in listing
    assert token not in registry.log_file.read_text(errors="replace")


def test_a_restart_keeps_the_schema_ids(
    private_registry: tuple[LocalRegistry, str, PostgresCluster],
) -> None:
    """An id given before a stop names the same schema after a start, and registering the
    schema again gives that id back."""
    registry, _, _ = private_registry
    api_url = f"{registry.address}/apis/ccompat/v7"
    subject = f"test.registry.{secrets.token_hex(4)}"
    schema_id = register(api_url, subject)
    assert registry.down()
    assert registry.pid() is None
    assert registry.up()
    stored = call(f"{api_url}/schemas/ids/{schema_id}")
    assert json.loads(stored["schema"]) == PROBE_SCHEMA
    assert register(api_url, subject) == schema_id
    assert call(f"{api_url}/subjects/{subject}/versions/1")["id"] == schema_id


def test_a_busy_port_is_one_clear_error(settings: Settings) -> None:
    """Another program on the registry's port stops the start with the port and the setting
    that moves it."""
    port = free_port_block(1, settings)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        registry = LocalRegistry(
            REPO_ROOT / ".data" / "test-registry-busy-port",
            APPS_DIR / registry_version(),
            port,
            settings.database_url,
        )
        with pytest.raises(InfraError) as raised:
            registry.up()
    assert str(port) in str(raised.value) and "LEDGER_REGISTRY_PORT" in str(raised.value)


def test_an_unreachable_registry_url_is_one_clear_line(settings: Settings) -> None:
    """With LEDGER_SCHEMA_REGISTRY_URL, `ledger up` registers the schemas there and starts no
    registry of its own: one that does not answer fails it in one line naming the address."""
    result = run_ledger(
        "up", env={"LEDGER_SCHEMA_REGISTRY_URL": "http://127.0.0.1:1/apis/ccompat/v7"}
    )
    line = assert_one_line_error(result, 3)
    assert "127.0.0.1:1" in line, line


def test_the_registry_outlives_a_postgresql_restart(
    private_registry: tuple[LocalRegistry, str, PostgresCluster],
) -> None:
    """The pool's connections die with the server; each is tested when borrowed, so the first
    request after the restart is answered, not a 500 until the registry restarts too."""
    registry, _, cluster = private_registry
    api_url = f"{registry.address}/apis/ccompat/v7"
    register(api_url, f"test.registry.{secrets.token_hex(4)}")
    cluster.down()
    cluster.up()
    subject = f"test.registry.{secrets.token_hex(4)}"
    schema_id = register(api_url, subject)
    assert call(f"{api_url}/subjects/{subject}/versions/1")["id"] == schema_id
