"""One root error type for the whole project; adapters translate library errors into these.

Rejections of transactions are not errors: they are values (``ledger.rejections.RejectionCode``).
"""


class LedgerError(Exception):
    """Root of every error this project raises on purpose."""


class DecodeError(LedgerError):
    """Bytes that are not a valid Avro message of the expected schema."""


class SignatureError(LedgerError):
    """A signature or seal that does not verify."""


class SigningError(LedgerError):
    """A signature that may not be added to an envelope: its key signed it already, or the
    envelope carries as many signatures as it may."""


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof that does not hold."""


class ChainError(LedgerError):
    """A block stream that does not verify; ``height`` names the first failing block."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"block {height}: {reason}")
        self.height = height
        self.reason = reason


class KeyFileError(LedgerError):
    """A key file that cannot be read, decrypted or parsed."""


class ConfidentialError(LedgerError):
    """Confidential fields that cannot be made or opened (``ledger.confidential``): their
    ciphertext or commitment was tampered with, or a reveal does not match its commitment."""


class NotARecipient(ConfidentialError):
    """A key that a transaction's confidential fields are not encrypted to."""


class RecipientKeyError(ConfidentialError):
    """A public key that cannot receive confidential fields: not a canonical Ed25519 point of
    large order, or not known to the ledger."""


class ConfigError(LedgerError):
    """A setting that is missing or out of range."""


class InfraError(LedgerError):
    """A local service (Kafka, PostgreSQL) that cannot be set up, started or reached."""


class Backpressure(InfraError):
    """The ledger lags: more submissions wait to be verified than a publisher's ``backlog_max``.

    Raised at once (``on_backlog="fail"``) or after ``waited_s`` seconds of waiting for the
    backlog to shrink (``on_backlog="wait"``). Nothing of the refused chunk was published; the
    first ``published_count`` envelopes of the call were (publishing them again is harmless: the
    sequencer refuses a repeated tx_id as DUPLICATE).
    """

    def __init__(
        self, backlog: int, backlog_max: int, topic: str, group_id: str, waited_s: float | None
    ) -> None:
        waited = "" if waited_s is None else f" after waiting {waited_s:.1f} s"
        super().__init__(
            f"backlog of {backlog:,} messages on {topic} not yet committed by consumer group "
            f"{group_id} is over backlog_max {backlog_max:,}{waited}"
        )
        self.backlog = backlog
        self.backlog_max = backlog_max
        self.topic = topic
        self.group_id = group_id
        self.waited_s = waited_s
        self.published_count = 0
