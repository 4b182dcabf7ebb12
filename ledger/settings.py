"""Where things are and how big they are: every setting comes from the environment.

Defaults describe the local stack that ``ledger up`` starts; production points the same names
at an existing Kafka cluster and PostgreSQL (see README, "Configuration").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ledger.errors import ConfigError
from ledger.kafka_access import KafkaAccess

REPO_ROOT = Path(__file__).resolve().parents[1]

TOPIC_SUBMISSIONS = "ledger.submissions"
TOPIC_VERIFIED = "ledger.verified"
TOPIC_BLOCKS = "ledger.blocks"
TOPIC_REJECTIONS = "ledger.rejections"
TOPIC_SNAPSHOTS = "ledger.snapshots"
TOPIC_COSIGNATURES = "ledger.cosignatures"
TOPIC_EVIDENCE = "ledger.evidence"

VERIFIED_BATCH_HEADER = ("ledger.schema", b"ledger.v1.VerifiedBatch")
"""Kafka header that marks a ledger.verified message as a VerifiedBatch. A message without it
is a single Envelope, the format before batches, still read so that an upgrade loses nothing."""
TOPIC_STATS = "ledger.stats"


def _int(name: str, default: int, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} is outside {minimum}..{maximum}")
    return value


metrics_ports_count_max = 256
"""Ports a metrics port base leaves room for above it: far more workers than one machine runs."""


def _port_base(name: str, default: int) -> int:
    """A first port of a block of ``metrics_ports_count_max``, or 0 for none."""
    base = _int(name, default, 0, 65535 - metrics_ports_count_max)
    if 0 < base < 1024:
        raise ConfigError(f"{name}={base} is a privileged port; use 1024 or above, or 0 for none")
    return base


def _names(variable: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(variable)
    if not raw:
        return default
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"{variable}={raw!r} must be distinct comma-separated ledger names")
    return names


@dataclass(frozen=True)
class Settings:
    """One process's view of the deployment. Build with ``Settings.from_env()``."""

    data_dir: Path
    kafka_port: int
    postgres_port: int
    kafka_access: KafkaAccess
    """The configured identity (LEDGER_KAFKA_USERNAME ...); processes ask ``kafka(principal)``."""
    kafka_local_auth: bool
    """The local cluster authenticates its clients (SCRAM) and authorises them (ACLs):
    LEDGER_KAFKA_AUTH=scram, the default, or none."""
    kafka_credentials_dir: Path
    """One password file per principal, ``<principal>.password``: LEDGER_KAFKA_CREDENTIALS_DIR,
    or the local cluster's, which ``ledger up`` writes (mode 0600)."""
    kafka_per_role: bool
    """Each process authenticates as its role's principal with the password from
    ``kafka_credentials_dir``: on the local stack with authentication, or when
    LEDGER_KAFKA_CREDENTIALS_DIR is set (and LEDGER_KAFKA_USERNAME is not)."""
    registry_port: int
    schema_registry_url: str
    """The Confluent-compatible API of the Schema Registry (LEDGER_SCHEMA_REGISTRY_URL; the local
    one ``ledger up`` runs by default, on LEDGER_REGISTRY_PORT)."""
    database_url: str = field(repr=False)
    """May carry a password: never in a repr (nor a log line made of one)."""
    shards: tuple[str, ...]
    submission_partitions: int
    dashboard_port: int
    kafka_heap_mb: int
    kafka_libs_dir: Path
    sealer_key_file: Path
    sealer_passphrase: bytes = field(repr=False)
    verify_workers: int
    sequencer_shards: tuple[str, ...]
    kafka_brokers: int
    """Brokers of the local Kafka cluster (``ledger up``): 1, or 3 for replication factor 3 with
    min.insync.replicas=2. Broker i listens on LEDGER_KAFKA_PORT + 2i."""
    witness_count: int
    """Witnesses ``ledger up`` runs (each with its own key): the local stack's stand-ins for
    independent organisations."""
    witness_passphrase: bytes = field(repr=False)
    metrics_port_base: int
    """First port of the workers' own Prometheus endpoints (``ledger up``): the i-th worker of
    ``ledger.local.stack.worker_commands`` serves ``127.0.0.1:base+i/metrics``
    (``ledger.local.metrics_ports``), but the dashboard, whose /metrics is on its own port; 0
    serves none."""

    @classmethod
    def from_env(cls) -> Settings:
        shards = _names("LEDGER_SHARDS", ("main",))
        data_dir = Path(os.environ.get("LEDGER_DATA_DIR", str(REPO_ROOT / ".data"))).resolve()
        kafka_port = _int("LEDGER_KAFKA_PORT", 19092, 1024, 65534)
        postgres_port = _int("LEDGER_POSTGRES_PORT", 15432, 1024, 65535)
        kafka_brokers = _int("LEDGER_KAFKA_BROKERS", 1, 1, 9)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or ",".join(
            f"127.0.0.1:{kafka_port + 2 * index}" for index in range(kafka_brokers)
        )
        kafka_access = _kafka_access(bootstrap)
        credentials_dir = os.environ.get("LEDGER_KAFKA_CREDENTIALS_DIR")
        kafka_auth = os.environ.get("LEDGER_KAFKA_AUTH") or "scram"
        if kafka_auth not in ("scram", "none"):
            raise ConfigError(f"LEDGER_KAFKA_AUTH={kafka_auth!r} must be scram or none")
        registry_port = _int("LEDGER_REGISTRY_PORT", 18081, 1024, 65535)
        database_url = (
            os.environ.get("LEDGER_DATABASE_URL")
            or f"postgresql://ledger:ledger@127.0.0.1:{postgres_port}/ledger"
        )
        return cls(
            data_dir=data_dir,
            kafka_port=kafka_port,
            postgres_port=postgres_port,
            kafka_access=kafka_access,
            kafka_local_auth=kafka_auth == "scram",
            kafka_credentials_dir=Path(credentials_dir or data_dir / "kafka" / "credentials"),
            kafka_per_role=kafka_access.username is None
            and (
                bool(credentials_dir)
                or ("KAFKA_BOOTSTRAP_SERVERS" not in os.environ and kafka_auth == "scram")
            ),
            registry_port=registry_port,
            schema_registry_url=os.environ.get("LEDGER_SCHEMA_REGISTRY_URL")
            or f"http://127.0.0.1:{registry_port}/apis/ccompat/v7",
            database_url=database_url,
            shards=shards,
            submission_partitions=_int("LEDGER_SUBMISSION_PARTITIONS", 4, 1, 1024),
            dashboard_port=_int("LEDGER_DASHBOARD_PORT", 8088, 1024, 65535),
            kafka_heap_mb=_int("LEDGER_KAFKA_HEAP_MB", 768, 256, 65536),
            kafka_libs_dir=Path(
                os.environ.get("LEDGER_KAFKA_LIBS_DIR", str(REPO_ROOT / ".data" / "kafka" / "libs"))
            ).resolve(),
            sealer_key_file=Path(
                os.environ.get("LEDGER_SEALER_KEY_FILE", str(data_dir / "keys" / "sealer.key"))
            ),
            # The local stack's default only; production sets its own (README, "Keys").
            verify_workers=_int("LEDGER_VERIFY_WORKERS", 2, 1, 64),
            sequencer_shards=_names("LEDGER_SEQUENCER_SHARDS", shards),
            sealer_passphrase=os.environ.get(
                "LEDGER_SEALER_PASSPHRASE", "local-dev-sealer"
            ).encode(),
            kafka_brokers=kafka_brokers,
            witness_count=_int("LEDGER_WITNESSES", 3, 0, 16),
            witness_passphrase=os.environ.get(
                "LEDGER_WITNESS_PASSPHRASE", "local-dev-witness"
            ).encode(),
            metrics_port_base=_port_base("LEDGER_METRICS_PORT_BASE", 19400),
        )

    def kafka(self, principal: str) -> KafkaAccess:
        """How this process reaches Kafka acting as ``principal`` (``ledger.kafka.principals``).

        Configured credentials (LEDGER_KAFKA_USERNAME) are this process's, whatever its role.
        Otherwise, with LEDGER_KAFKA_CREDENTIALS_DIR or on the local stack, each role is its own
        user, its password in that directory.
        """
        if not self.kafka_per_role:
            return self.kafka_access
        password_file = self.kafka_credentials_dir / f"{principal}.password"
        try:
            password = password_file.read_text().strip()
        except OSError as exc:
            hint = "" if "LEDGER_KAFKA_CREDENTIALS_DIR" in os.environ else ": `ledger up` writes it"
            raise ConfigError(
                f"no Kafka password for {principal} at {password_file}{hint}"
            ) from exc
        return self.kafka_access.as_user(principal, password)

    def witness_key_file(self, index: int) -> Path:
        """The key file of the local stack's witness ``index`` (1-based); its public key is in
        the same place with the suffix ``.pub`` (hex)."""
        return self.data_dir / "keys" / f"witness-{index}.key"

    @property
    def local_kafka(self) -> bool:
        """True when Kafka is the one ``ledger up`` manages, not a cluster given by the user."""
        return "KAFKA_BOOTSTRAP_SERVERS" not in os.environ

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.kafka_access.bootstrap_servers

    @property
    def local_registry(self) -> bool:
        """True when the Schema Registry is the one ``ledger up`` runs."""
        return "LEDGER_SCHEMA_REGISTRY_URL" not in os.environ

    @property
    def local_postgres(self) -> bool:
        return "LEDGER_DATABASE_URL" not in os.environ

    def shard_partition(self, ledger: str) -> int | None:
        """Partition of ledger.verified and ledger.blocks that carries this ledger, if any."""
        try:
            return self.shards.index(ledger)
        except ValueError:
            return None

    def topic_partitions(self) -> dict[str, int]:
        shard_count = len(self.shards)
        return {
            TOPIC_SUBMISSIONS: self.submission_partitions,
            TOPIC_VERIFIED: shard_count,
            TOPIC_BLOCKS: shard_count,
            TOPIC_REJECTIONS: shard_count,
            TOPIC_SNAPSHOTS: shard_count,
            TOPIC_COSIGNATURES: shard_count,
            TOPIC_EVIDENCE: shard_count,
            # One summary document for all shards (streams.stats): its newest message is all.
            TOPIC_STATS: 1,
        }


def _kafka_access(bootstrap_servers: str) -> KafkaAccess:
    """Who this process is to an existing cluster: LEDGER_KAFKA_USERNAME with its password from
    LEDGER_KAFKA_PASSWORD_FILE (or LEDGER_KAFKA_PASSWORD), LEDGER_KAFKA_SASL_MECHANISM, and
    LEDGER_KAFKA_TLS=1 with LEDGER_KAFKA_CA_FILE for SASL_SSL."""
    username = os.environ.get("LEDGER_KAFKA_USERNAME") or None
    password_file = os.environ.get("LEDGER_KAFKA_PASSWORD_FILE")
    password = os.environ.get("LEDGER_KAFKA_PASSWORD") or None
    if password_file:
        if password is not None:
            raise ConfigError("set LEDGER_KAFKA_PASSWORD_FILE or LEDGER_KAFKA_PASSWORD, not both")
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"LEDGER_KAFKA_PASSWORD_FILE={password_file}: {exc.strerror or exc}"
            ) from exc
    if (username is None) != (password is None):
        raise ConfigError(
            "LEDGER_KAFKA_USERNAME and a password (LEDGER_KAFKA_PASSWORD_FILE) go together"
        )
    tls = os.environ.get("LEDGER_KAFKA_TLS", "0")
    if tls not in ("0", "1"):
        raise ConfigError(f"LEDGER_KAFKA_TLS={tls!r} must be 0 or 1")
    ca_file = os.environ.get("LEDGER_KAFKA_CA_FILE")
    return KafkaAccess(
        bootstrap_servers,
        username,
        password,
        mechanism=os.environ.get("LEDGER_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512",
        tls=tls == "1",
        ca_file=Path(ca_file) if ca_file else None,
    )
