"""Where the Kafka cluster is and who a client is to it: the one value every client factory takes.

Part of the core (no Kafka library): ``Settings`` builds it, ``ledger.kafka.clients`` turns it
into a client's options.

A ``KafkaAccess`` without a username connects anonymously (PLAINTEXT, or SSL with ``tls``); with
one it authenticates with SASL (SCRAM-SHA-512 unless told otherwise). The password never appears
in a repr or in ``str()``, so error messages may name the access freely.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError

MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
"""SASL mechanisms a client may use; the local stack's broker accepts SCRAM-SHA-512 only."""


@dataclass(frozen=True)
class KafkaAccess:
    bootstrap_servers: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    mechanism: str = "SCRAM-SHA-512"
    tls: bool = False
    """SASL_SSL / SSL instead of SASL_PLAINTEXT / PLAINTEXT."""
    ca_file: Path | None = None
    """The CA bundle that signed the brokers' certificates; None trusts the system's."""

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ConfigError(
                f"SASL mechanism {self.mechanism!r} is not one of {', '.join(MECHANISMS)}"
            )
        if (self.username is None) != (self.password is None):
            raise ConfigError("a Kafka username needs a password, and a password a username")

    @classmethod
    def of(cls, kafka: KafkaAccess | str) -> KafkaAccess:
        """``kafka`` itself, or anonymous access to the bootstrap servers a string names."""
        return kafka if isinstance(kafka, KafkaAccess) else cls(kafka)

    def as_user(self, username: str, password: str) -> KafkaAccess:
        return replace(self, username=username, password=password)

    def __str__(self) -> str:
        return self.bootstrap_servers + (f" as {self.username}" if self.username else "")

    @property
    def security_protocol(self) -> str:
        if self.username is None:
            return "SSL" if self.tls else "PLAINTEXT"
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        # What aiokafka's create_ssl_context makes: verify the broker's certificate and name.
        return ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file) if self.ca_file else None
        )

    def client_options(self) -> dict[str, Any]:
        """The aiokafka keyword arguments that say where and who."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "ssl_context": self.ssl_context(),
        }
        if self.username is not None:
            options.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return options
