"""A KRaft Kafka cluster of one or more nodes on this machine, run from Maven Central jars.

Each node is broker and controller at once. Layout under ``root``::

    cluster.id            the cluster's id, written once, before any node is formatted
    auth                  "scram" or "none": how the nodes were formatted (no file: none)
    node-N/server.properties, node-N/data/ (log.dirs), node-N/server.log, node-N/kafka.pid
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

from ledger import limits
from ledger.errors import InfraError
from ledger.kafka.principals import ADMIN
from ledger.kafka_access import KafkaAccess
from ledger.local import kafka_auth, process
from ledger.settings import REPO_ROOT

start_wait_s = 120.0
"""A cold JVM on a busy 2-core machine takes 10-20 s; past two minutes something is wrong."""

format_wait_s = 60.0

TEMPLATE = REPO_ROOT / "infra" / "kafka" / "server.properties.template"
LOG4J_CONFIG = REPO_ROOT / "infra" / "kafka" / "log4j2.properties"
POM = REPO_ROOT / "infra" / "pom.xml"


def kafka_version() -> str:
    text = POM.read_text()
    return text.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0].strip()


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    broker_port: int
    controller_port: int
    directory: Path

    @property
    def pid_file(self) -> Path:
        return self.directory / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    @property
    def config_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"


class KafkaCluster:
    """Nodes use ports base_port + 2*i (broker) and base_port + 2*i + 1 (controller).

    With ``credentials`` (a directory, ``ledger.local.kafka_auth``) clients authenticate with
    SCRAM and are authorised by ACLs; without, the cluster is open to anyone on the loopback.
    """

    def __init__(
        self,
        root: Path,
        libs_dir: Path,
        base_port: int,
        node_count: int = 1,
        heap_mb: int = 768,
        credentials: Path | None = None,
    ) -> None:
        self.root = root
        self.credentials = credentials
        self.libs_dir = libs_dir
        self.heap_mb = heap_mb
        self.nodes = [
            KafkaNode(i + 1, base_port + 2 * i, base_port + 2 * i + 1, root / f"node-{i + 1}")
            for i in range(node_count)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.broker_port}" for node in self.nodes)

    def access(self, principal: str = ADMIN) -> KafkaAccess:
        if self.credentials is None:
            return KafkaAccess(self.bootstrap_servers)
        return KafkaAccess(
            self.bootstrap_servers, principal, kafka_auth.password(self.credentials, principal)
        )

    @property
    def replication(self) -> int:
        return min(3, len(self.nodes))

    def running(self) -> dict[int, int | None]:
        """Node id -> pid of its live process, or None."""
        return {node.node_id: process.read_pid(node.pid_file) for node in self.nodes}

    def up(self) -> bool:
        """Start every node that is not running and wait until the cluster answers metadata.

        Returns False when everything already ran (a second ``up`` is a no-op).
        """
        java = self._java()
        self._check_libs()
        to_start = [node for node in self.nodes if process.read_pid(node.pid_file) is None]
        if not to_start:
            return False
        for node in to_start:
            process.require_free_port(
                node.broker_port, f"Kafka node {node.node_id}", "LEDGER_KAFKA_PORT"
            )
            process.require_free_port(
                node.controller_port, f"Kafka controller {node.node_id}", "LEDGER_KAFKA_PORT"
            )
        cluster_id = self._cluster_id()
        self._check_auth_mode()
        for node in to_start:
            self._write_config(node)
            self._format(java, node, cluster_id)
            self._start(java, node)
        self.wait_ready(start_wait_s)
        return True

    def start_node(self, node_id: int) -> None:
        node = self.nodes[node_id - 1]
        if process.read_pid(node.pid_file) is None:
            self._start(self._java(), node)

    def stop_node(self, node_id: int) -> bool:
        return process.stop(self.nodes[node_id - 1].pid_file)

    def down(self) -> list[int]:
        """Stop the running nodes; returns the ids stopped."""
        stopped = set(process.stop_all([node.pid_file for node in self.nodes]))
        return [node.node_id for node in self.nodes if node.pid_file in stopped]

    def wait_ready(self, timeout_s: float) -> None:
        """Block until every running node answers and the metadata lists all of them."""
        from ledger.kafka.admin import wait_for_brokers

        def check_alive() -> None:
            for node in self.nodes:
                if process.read_pid(node.pid_file) is None and node.config_file.exists():
                    raise InfraError(
                        f"Kafka node {node.node_id} exited during start-up: "
                        f"{process.log_tail(node.log_file)} (full log: {node.log_file})"
                    )

        live = sum(1 for pid in self.running().values() if pid is not None)
        asyncio.run(wait_for_brokers(self.access(), live, timeout_s, on_each_try=check_alive))

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise InfraError(
                "java was not found: run infra/install.sh (make run does) or install Java 17+"
            )
        return java

    def _check_libs(self) -> None:
        if not any(self.libs_dir.glob("kafka_2.13-*.jar")):
            raise InfraError(
                f"the Kafka jars are missing from {self.libs_dir}: run infra/install.sh (make run does)"
            )

    def _cluster_id(self) -> str:
        id_file = self.root / "cluster.id"
        if id_file.exists():
            return id_file.read_text().strip()
        self.root.mkdir(parents=True, exist_ok=True)
        cluster_id = "-"
        while cluster_id.startswith(
            "-"
        ):  # as Kafka's own Uuid.randomUuid: a leading '-' reads as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        id_file.write_text(cluster_id + "\n")
        return cluster_id

    @property
    def _auth_file(self) -> Path:
        return self.root / "auth"

    def _check_auth_mode(self) -> None:
        """A cluster keeps the authentication it was formatted with: its users live in its
        metadata, which only a format writes."""
        wanted = "none" if self.credentials is None else "scram"
        formatted = any((node.data_dir / "meta.properties").exists() for node in self.nodes)
        if not formatted:
            if self.credentials is not None:
                kafka_auth.ensure_passwords(self.credentials)
            self._auth_file.write_text(wanted + "\n")
            return
        have = self._auth_file.read_text().strip() if self._auth_file.exists() else "none"
        if have != wanted:
            raise InfraError(
                f"the local Kafka cluster in {self.root} was formatted with authentication "
                f"{have}, not {wanted}: set LEDGER_KAFKA_AUTH={have} to run it as it is, or "
                f"remove {self.root} to start afresh (this deletes the local ledger)"
            )

    def _write_config(self, node: KafkaNode) -> None:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        text = Template(TEMPLATE.read_text()).substitute(
            NODE_ID=node.node_id,
            QUORUM_VOTERS=voters,
            BROKER_PORT=node.broker_port,
            CONTROLLER_PORT=node.controller_port,
            LOG_DIR=node.data_dir,
            REPLICATION=self.replication,
            MIN_ISR=min(2, self.replication),
            MESSAGE_BYTES_MAX=limits.message_bytes_max,
            PROTOCOL="PLAINTEXT" if self.credentials is None else "SASL_PLAINTEXT",
            SECURITY=""
            if self.credentials is None
            else kafka_auth.server_properties(self.credentials),
        )
        node.directory.mkdir(parents=True, exist_ok=True)
        process.write_private(node.config_file, text)  # it holds the nodes' own password

    def _format(self, java: str, node: KafkaNode, cluster_id: str) -> None:
        meta = node.data_dir / "meta.properties"
        if meta.exists():
            if f"cluster.id={cluster_id}" not in meta.read_text():
                raise InfraError(
                    f"{node.data_dir} belongs to another Kafka cluster than {self.root / 'cluster.id'}; "
                    f"remove {self.root} to start afresh (this deletes the local ledger)"
                )
            return
        arguments = [
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(node.config_file),
            "--ignore-formatted",
        ]
        if self.credentials is not None:
            arguments += kafka_auth.format_arguments(self.credentials)
        # The java launcher reads its arguments from a file (JDK 9+ "@argfiles"): the users'
        # passwords stay out of the process list.
        argument_file = node.directory / "format.args"
        process.write_private(argument_file, "\n".join(arguments) + "\n")
        try:
            result = subprocess.run(
                [java, f"@{argument_file}"], capture_output=True, text=True, timeout=format_wait_s
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraError(f"formatting {node.data_dir} took over {format_wait_s:.0f} s") from exc
        finally:
            argument_file.unlink()
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InfraError(f"formatting {node.data_dir} failed: {last[0]}")

    def _start(self, java: str, node: KafkaNode) -> None:
        command = [
            java,
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={node.directory}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(node.config_file),
        ]
        process.start(command, node.pid_file, node.directory / "stdout.log")

    def _classpath(self) -> str:
        return str(self.libs_dir / "*")
