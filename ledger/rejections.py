"""Why a transaction is refused: one enum, ordered by precedence (the first failing check wins).

Rejections are data. The verify stage can reach the codes up to UNKNOWN_LEDGER; the sequencer
reaches the rest. The numeric value is the precedence; the name is the contract (it is what
``ledger.rejections`` messages and the ``ledger.rejections`` table carry).

Two deliberate exceptions to "the first failing check wins", both about cost:
- the verify stage refuses VALIDITY_TOO_LONG and EXPIRED (on its own clock) before it checks
  the signature, so that under overload a backlog sheds transactions that will be refused anyway
  instead of spending signature checks on them: an expired transaction with a bad signature is
  refused EXPIRED;
- the verify stage reads only the head of the body (tx_id, ledger, validity window); the rest is
  decoded by the sequencer, so a body that is malformed beyond its head is refused MALFORMED (or
  MALFORMED_CONFIDENTIAL) at stage sequence, after BAD_SIGNATURE and UNKNOWN_LEDGER had their
  turn.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RejectionCode(enum.IntEnum):
    # verify stage: the bytes themselves
    MALFORMED = 1  # not an Envelope, or its body is not a TxBody, or a field is out of shape
    TOO_LARGE = 2  # bigger than limits.envelope_bytes_max
    # framed with a Schema Registry id that names none of the ledger's submission schemas
    UNKNOWN_SCHEMA = 3
    UNSUPPORTED_VERSION = 4  # body_version this build does not know
    # a body's confidential part out of shape: recipients (count, key ids), ciphertext size,
    # or a memo, reference or metadata in the clear beside it; nothing is decrypted to tell
    MALFORMED_CONFIDENTIAL = 5
    BAD_SIGNATURE = 6  # the signature does not verify over the exact body bytes
    UNKNOWN_LEDGER = 7  # no such shard
    # sequence stage: time and identity
    VALIDITY_TOO_LONG = 8  # expires_at_ms - created_at_ms above limits.validity_window_ms_max
    EXPIRED = 9  # the block's time is past expires_at_ms
    NOT_YET_VALID = 10  # created_at_ms is in the block's future (beyond the clock skew)
    DUPLICATE = 11  # this tx_id was accepted before, within the window
    UNKNOWN_KEY = 12  # the signing key was never registered
    KEY_REVOKED = 13  # the signing key was revoked in an earlier block
    UNAUTHORIZED = 14  # no signing key may do this operation on these accounts
    TOO_FEW_SIGNATURES = 15  # a debited account's policy needs more of its keys to sign
    OVER_POLICY_LIMIT = 16  # a debit above the account policy's per-transaction maximum
    COUNTERPARTY_NOT_ALLOWED = 17  # money to an account the debited account's policy excludes
    # sequence stage: the operation
    INVALID_OPERATION = 18  # well-formed but meaningless: bad role, scale, posting count, ...
    ALREADY_EXISTS = 19  # account, asset or key already defined
    UNKNOWN_ACCOUNT = 20
    UNKNOWN_ASSET = 21
    ACCOUNT_CLOSED = 22
    ACCOUNT_FROZEN = 23
    ASSET_MISMATCH = 24  # posting's asset differs from the account's
    INVALID_AMOUNT = 25  # zero or wrongly signed amount
    UNBALANCED = 26  # postings of an asset do not sum to zero
    ACCOUNT_NOT_EMPTY = 27  # closing an account that has a balance or open holds
    INSUFFICIENT_FUNDS = 28  # available balance would go below zero
    ISSUANCE_CAP_EXCEEDED = 29  # an asset's outstanding issuance would exceed its cap
    LIMIT_EXCEEDED = 30  # balance would exceed the account's max_balance
    OVERFLOW = 31  # a balance or sum would leave int64
    HOLD_NOT_FOUND = 32
    HOLD_EXPIRED = 33
    HOLD_ALREADY_RESOLVED = 34
    CAPTURE_EXCEEDS_HOLD = 35
    ORIGINAL_NOT_PROVEN = 36  # a Reverse's proof that its original was sealed here fails
    REVERSAL_EXCEEDS_ORIGINAL = 37  # reversing more of a transfer than remains of it


class Stage(enum.Enum):
    VERIFY = "verify"
    SEQUENCE = "sequence"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused transaction: the code that decided it and a human sentence."""

    code: RejectionCode
    detail: str
