"""The state machine of one ledger shard: pure, deterministic, fast.

Per block, with ``now_ms`` = the block's ``sealed_at_ms``::

    effects = begin_block(state, now_ms)          # expire holds, forget old tx_ids
    for tx in transactions:
        decision = decide(state, tx, now_ms)      # pure: Accepted(effects) | Rejected(code)
        if isinstance(decision, Accepted):
            apply(state, decision)                # writes the decision's after-values

No I/O, no clock, no randomness: any replica that feeds the same blocks gets the same
decisions, effects and state. ``snapshot_bytes``/``restore`` save and load a state exactly.
"""

from ledger.state.apply import apply, begin_block
from ledger.state.decide import Decision, decide
from ledger.state.effects import (
    Accepted,
    AccountMetadataSet,
    AccountOpened,
    AccountStatusChanged,
    AssetDefined,
    Attested,
    BalanceChanged,
    Effect,
    FinalitySet,
    HoldOpened,
    HoldResolved,
    IssuanceCapSet,
    KeyAccountsChanged,
    KeyRegistered,
    KeyRevoked,
    PolicySet,
    Posted,
    Reversed,
    SealerRotated,
)
from ledger.state.snapshot import restore, snapshot_bytes
from ledger.state.state import (
    Account,
    AccountPolicy,
    Asset,
    HoldRecord,
    HoldStatus,
    Key,
    State,
    StateError,
    key_id_of,
)

__all__ = [
    "Accepted",
    "Account",
    "AccountMetadataSet",
    "IssuanceCapSet",
    "Reversed",
    "SealerRotated",
    "AccountOpened",
    "AccountPolicy",
    "AccountStatusChanged",
    "Asset",
    "AssetDefined",
    "Attested",
    "BalanceChanged",
    "Decision",
    "Effect",
    "HoldOpened",
    "HoldRecord",
    "HoldResolved",
    "HoldStatus",
    "Key",
    "KeyRegistered",
    "FinalitySet",
    "PolicySet",
    "KeyAccountsChanged",
    "KeyRevoked",
    "Posted",
    "State",
    "StateError",
    "apply",
    "begin_block",
    "decide",
    "key_id_of",
    "restore",
    "snapshot_bytes",
]
