"""Who may do what on the ledger's topics: one Kafka principal per role, and its ACLs.

The table is the contract (README, "Authenticated Kafka"): the local stack creates these users
and grants these ACLs at every ``ledger up``; an operator of an existing secured cluster prints
the same grants as ``kafka-acls.sh`` commands with ``ledger kafka-acls``. Everything not granted
is denied: the broker runs ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``.
``admin`` is a super user (topics, partitions, consumer-group offsets for ``ledger status``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from enum import IntEnum

from ledger.kafka.clients import VERIFY_GROUP
from ledger.settings import (
    TOPIC_BLOCKS,
    TOPIC_COSIGNATURES,
    TOPIC_EVIDENCE,
    TOPIC_REJECTIONS,
    TOPIC_SNAPSHOTS,
    TOPIC_STATS,
    TOPIC_SUBMISSIONS,
    TOPIC_VERIFIED,
)

ADMIN = "admin"
PUBLISHER = "publisher"
VERIFY = "verify"
SEQUENCER = "sequencer"
PROJECTOR = "projector"
FINALITY = "finality"
WITNESS = "witness"
CROSSSHARD = "crossshard"
STATS = "stats"
READER = "reader"

STATS_APP = "ledger-stats"
"""faust's application id: its consumer group, and the prefix of the topics it declares."""


class Resource(IntEnum):
    """Kafka's ResourceType codes (the CreateAcls request)."""

    TOPIC = 2
    GROUP = 3
    TRANSACTIONAL_ID = 5


class Operation(IntEnum):
    """Kafka's AclOperation codes."""

    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


@dataclass(frozen=True)
class Grant:
    principal: str
    operation: Operation
    resource: Resource
    name: str
    prefixed: bool = False

    def acl_command(self) -> str:
        """The ``kafka-acls.sh`` line that grants the same on an existing cluster."""
        option = {
            Resource.TOPIC: "--topic",
            Resource.GROUP: "--group",
            Resource.TRANSACTIONAL_ID: "--transactional-id",
        }[self.resource]
        pattern = " --resource-pattern-type prefixed" if self.prefixed else ""
        return (
            f"kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties "
            f"--add --allow-principal User:{self.principal} --operation {self.operation.name} "
            f"{option} {shlex.quote(self.name)}{pattern}"
        )


def _reads(principal: str, *topics: str) -> list[Grant]:
    return [Grant(principal, Operation.READ, Resource.TOPIC, topic) for topic in topics] + [
        Grant(principal, Operation.DESCRIBE, Resource.TOPIC, topic) for topic in topics
    ]


def _writes(principal: str, *topics: str) -> list[Grant]:
    # WRITE alone lets a producer be idempotent (KIP-679); DESCRIBE lets it fetch metadata.
    return [Grant(principal, Operation.WRITE, Resource.TOPIC, topic) for topic in topics] + [
        Grant(principal, Operation.DESCRIBE, Resource.TOPIC, topic) for topic in topics
    ]


def _transactions(principal: str, prefix: str) -> list[Grant]:
    return [
        Grant(principal, operation, Resource.TRANSACTIONAL_ID, prefix, prefixed=True)
        for operation in (Operation.WRITE, Operation.DESCRIBE)
    ]


def _lag(principal: str) -> list[Grant]:
    """Enough to measure consumer lag: end offsets of every ledger topic, groups' offsets."""
    return [
        Grant(principal, Operation.DESCRIBE, Resource.TOPIC, "ledger.", prefixed=True),
        Grant(principal, Operation.DESCRIBE, Resource.GROUP, "ledger", prefixed=True),
    ]


GRANTS: tuple[Grant, ...] = (
    # Payment systems: submit, then follow their outcomes and the verify backlog.
    *_writes(PUBLISHER, TOPIC_SUBMISSIONS),
    *_reads(PUBLISHER, TOPIC_BLOCKS, TOPIC_REJECTIONS, TOPIC_COSIGNATURES),
    Grant(PUBLISHER, Operation.DESCRIBE, Resource.GROUP, VERIFY_GROUP),
    # Verify workers: one consumer group on submissions.
    *_reads(VERIFY, TOPIC_SUBMISSIONS),
    Grant(VERIFY, Operation.READ, Resource.GROUP, VERIFY_GROUP),
    *_writes(VERIFY, TOPIC_VERIFIED, TOPIC_REJECTIONS),
    # The sequencer alone writes blocks and snapshots, in transactions (and `ledger init` the
    # genesis block, with the sequencer's credentials).
    *_reads(SEQUENCER, TOPIC_VERIFIED, TOPIC_BLOCKS, TOPIC_SNAPSHOTS),
    *_writes(SEQUENCER, TOPIC_BLOCKS, TOPIC_SNAPSHOTS, TOPIC_REJECTIONS),
    *_transactions(SEQUENCER, "ledger-sequencer-"),
    *_transactions(SEQUENCER, "ledger-init-"),
    # PostgreSQL's writers read the chain and what the witnesses say of it.
    *_reads(PROJECTOR, TOPIC_BLOCKS, TOPIC_REJECTIONS, TOPIC_SNAPSHOTS),
    *_reads(FINALITY, TOPIC_BLOCKS, TOPIC_COSIGNATURES, TOPIC_EVIDENCE),
    # Witnesses check blocks and publish their cosignatures, or evidence against the sealer.
    *_reads(WITNESS, TOPIC_BLOCKS),
    *_writes(WITNESS, TOPIC_COSIGNATURES, TOPIC_EVIDENCE),
    # Cross-shard transfers: read both chains, submit the second leg.
    *_reads(CROSSSHARD, TOPIC_BLOCKS, TOPIC_REJECTIONS),
    *_writes(CROSSSHARD, TOPIC_SUBMISSIONS),
    # faust's windowed statistics: its group, its own changelog topics, the stats topic.
    *_reads(STATS, TOPIC_BLOCKS, TOPIC_REJECTIONS),
    *_writes(STATS, TOPIC_STATS),
    Grant(STATS, Operation.CREATE, Resource.TOPIC, TOPIC_STATS),  # on a stack older than it
    Grant(STATS, Operation.READ, Resource.GROUP, STATS_APP),
    Grant(STATS, Operation.ALL, Resource.TOPIC, f"{STATS_APP}-", prefixed=True),
    # Auditors, reconciliation, the dashboard and `ledger verify-chain`: read the public record.
    *_reads(
        READER, TOPIC_BLOCKS, TOPIC_REJECTIONS, TOPIC_COSIGNATURES, TOPIC_EVIDENCE, TOPIC_STATS
    ),
    *_lag(READER),
)

PRINCIPALS: tuple[str, ...] = (ADMIN, *dict.fromkeys(grant.principal for grant in GRANTS))
"""Every principal of the local stack; ``admin`` has no grants because it is a super user."""
