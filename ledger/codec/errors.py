"""The codec's errors, and the rejection code each decode failure becomes."""

from __future__ import annotations

from ledger.errors import DecodeError, LedgerError
from ledger.rejections import RejectionCode


class TooLarge(DecodeError):
    """Input above its size bound, refused before decoding: ``TOO_LARGE``."""


class UnsupportedVersion(DecodeError):
    """A body_version this build does not know, or a type it cannot resolve."""


class MalformedConfidential(DecodeError):
    """A body whose confidential part is out of shape: ``MALFORMED_CONFIDENTIAL``."""


class UnknownSchemaId(DecodeError):
    """A value framed (Confluent wire format) with a registry id that names none of the schemas
    its topic carries: ``UNKNOWN_SCHEMA``."""

    def __init__(self, schema_id: int, expected: str) -> None:
        super().__init__(f"schema id {schema_id} names no {expected} schema in the registry")
        self.schema_id = schema_id


class EncodeError(LedgerError, ValueError):
    """A value that does not fit its schema or the limits: it would be rejected if sent."""


def rejection_code_for(error: DecodeError) -> RejectionCode:
    """The rejection code the verify stage reports for a decode failure."""
    if isinstance(error, TooLarge):
        return RejectionCode.TOO_LARGE
    if isinstance(error, UnsupportedVersion):
        return RejectionCode.UNSUPPORTED_VERSION
    if isinstance(error, MalformedConfidential):
        return RejectionCode.MALFORMED_CONFIDENTIAL
    if isinstance(error, UnknownSchemaId):
        return RejectionCode.UNKNOWN_SCHEMA
    return RejectionCode.MALFORMED
