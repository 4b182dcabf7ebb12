"""One root error type for the whole project; adapters translate library errors into these.

Rejections of transactions are not errors: they are values (``ledger.rejections.RejectionCode``).
"""


class LedgerError(Exception):
    """Root of every error this project raises on purpose."""


class DecodeError(LedgerError):
    """Bytes that are not a valid Avro message of the expected schema."""


class SignatureError(LedgerError):
    """A signature or seal that does not verify."""


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


class ConfigError(LedgerError):
    """A setting that is missing or out of range."""


class InfraError(LedgerError):
    """A local service (Kafka, PostgreSQL) that cannot be set up, started or reached."""
