"""The local cluster's authentication: one SCRAM user per principal, passwords under the data
directory.

Every password is generated once, kept in ``<credentials>/<principal>.password`` (mode 0600, the
directory 0700), and given to Kafka when a node is formatted (``--add-scram``, through a 0600
argument file so that it never shows in a process list). ``kafka`` is the nodes' own user: SCRAM
between brokers, PLAIN towards the controllers, whose listener cannot use SCRAM in KRaft (its
users live in the very metadata the controllers serve). Both listeners are bound to 127.0.0.1
and carry no TLS: on the loopback nothing sits between client and broker to read or change the
traffic, and SCRAM never sends the password itself (README, "Authenticated Kafka").
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ledger.errors import InfraError
from ledger.kafka.principals import PRINCIPALS
from ledger.local import process

NODES = "kafka"
"""The brokers' and controllers' own principal: a super user, like ``admin``."""

MECHANISM = "SCRAM-SHA-512"


def ensure_passwords(directory: Path) -> None:
    """Create a password for every principal that has none yet; existing ones are kept."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    for principal in (NODES, *PRINCIPALS):
        path = directory / f"{principal}.password"
        if not path.exists():
            process.write_private(path, secrets.token_urlsafe(32) + "\n")


def password(directory: Path, principal: str) -> str:
    path = directory / f"{principal}.password"
    try:
        return path.read_text().strip()
    except FileNotFoundError as exc:
        raise InfraError(f"no Kafka password for {principal} at {path}") from exc


def server_properties(directory: Path) -> str:
    """The authentication and authorisation lines of every node's server.properties."""
    secret = password(directory, NODES)
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    return "\n".join(
        [
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            "sasl.mechanism.controller.protocol=PLAIN",
            f"listener.name.broker.sasl.enabled.mechanisms={MECHANISM}",
            f"listener.name.broker.{MECHANISM.lower()}.sasl.jaas.config={scram} required "
            f'username="{NODES}" password="{secret}";',
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain} required "
            f'username="{NODES}" password="{secret}" user_{NODES}="{secret}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{NODES};User:admin",
        ]
    )


def format_arguments(directory: Path) -> list[str]:
    """``kafka-storage format`` arguments that create every user in the new cluster."""
    arguments = []
    for principal in (NODES, *PRINCIPALS):
        secret = password(directory, principal)
        arguments += ["--add-scram", f"{MECHANISM}=[name={principal},password={secret}]"]
    return arguments
