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
  decoded by the sequencer, so a body that is malformed beyond its head is refused MALFORMED at
  stage sequence, after BAD_SIGNATURE and UNKNOWN_LEDGER had their turn.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RejectionCode(enum.IntEnum):
    # verify stage: the bytes themselves
    MALFORMED = 1  # not an Envelope, or its body is not a TxBody, or a field is out of shape
    TOO_LARGE = 2  # bigger than limits.envelope_bytes_max
    UNSUPPORTED_VERSION = 3  # body_version this build does not know
    BAD_SIGNATURE = 4  # the signature does not verify over the exact body bytes
    UNKNOWN_LEDGER = 5  # no such shard
    # sequence stage: time and identity
    VALIDITY_TOO_LONG = 6  # expires_at_ms - created_at_ms above limits.validity_window_ms_max
    EXPIRED = 7  # the block's time is past expires_at_ms
    NOT_YET_VALID = 8  # created_at_ms is in the block's future (beyond the clock skew)
    DUPLICATE = 9  # this tx_id was accepted before, within the window
    UNKNOWN_KEY = 10  # the signing key was never registered
    KEY_REVOKED = 11  # the signing key was revoked in an earlier block
    UNAUTHORIZED = 12  # no signing key may do this operation on these accounts
    TOO_FEW_SIGNATURES = 13  # a debited account's policy needs more of its keys to sign
    OVER_POLICY_LIMIT = 14  # a debit above the account policy's per-transaction maximum
    COUNTERPARTY_NOT_ALLOWED = 15  # money to an account the debited account's policy excludes
    # sequence stage: the operation
    INVALID_OPERATION = 16  # well-formed but meaningless: bad role, scale, posting count, ...
    ALREADY_EXISTS = 17  # account, asset or key already defined
    UNKNOWN_ACCOUNT = 18
    UNKNOWN_ASSET = 19
    ACCOUNT_CLOSED = 20
    ACCOUNT_FROZEN = 21
    ASSET_MISMATCH = 22  # posting's asset differs from the account's
    INVALID_AMOUNT = 23  # zero or wrongly signed amount
    UNBALANCED = 24  # postings of an asset do not sum to zero
    ACCOUNT_NOT_EMPTY = 25  # closing an account that has a balance or open holds
    INSUFFICIENT_FUNDS = 26  # available balance would go below zero
    ISSUANCE_CAP_EXCEEDED = 27  # an asset's outstanding issuance would exceed its cap
    LIMIT_EXCEEDED = 28  # balance would exceed the account's max_balance
    OVERFLOW = 29  # a balance or sum would leave int64
    HOLD_NOT_FOUND = 30
    HOLD_EXPIRED = 31
    HOLD_ALREADY_RESOLVED = 32
    CAPTURE_EXCEEDS_HOLD = 33
    ORIGINAL_NOT_PROVEN = 34  # a Reverse's proof that its original was sealed here fails
    REVERSAL_EXCEEDS_ORIGINAL = 35  # reversing more of a transfer than remains of it


class Stage(enum.Enum):
    VERIFY = "verify"
    SEQUENCE = "sequence"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused transaction: the code that decided it and a human sentence."""

    code: RejectionCode
    detail: str
