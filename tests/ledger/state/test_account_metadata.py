"""SetAccountMetadata: an admin replaces an account's metadata; the state decides nothing on it."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from support_state import ADMIN, ALICE, replay_decisions, standard_ledger

from ledger.model import OpenAccount, SetAccountMetadata
from ledger.rejections import RejectionCode
from ledger.state import Accepted, AccountMetadataSet, AccountOpened


def test_only_an_admin_sets_metadata() -> None:
    """The account's own owner cannot (UNAUTHORIZED)."""
    ledger = standard_ledger()
    assert ledger.reject(ALICE, SetAccountMetadata("alice-usd", {"tier": "gold"})) is (
        RejectionCode.UNAUTHORIZED
    )


def test_an_unknown_account_has_no_metadata() -> None:
    """Metadata of an account that was never opened is UNKNOWN_ACCOUNT."""
    ledger = standard_ledger()
    assert ledger.reject(ADMIN, SetAccountMetadata("dave-usd", {"tier": "gold"})) is (
        RejectionCode.UNKNOWN_ACCOUNT
    )


def test_the_effect_carries_the_metadata_and_the_state_keeps_none() -> None:
    """AccountMetadataSet names the account and its new metadata (as given, empty to clear);
    nothing the state decides on changes."""
    ledger = standard_ledger()
    accounts_before = {
        name: dataclasses.replace(account) for name, account in ledger.state.accounts.items()
    }
    metadata = {"tier": "gold", "kyc": "2026-11-30"}
    accepted = ledger.accept(ADMIN, SetAccountMetadata("alice-usd", metadata))
    assert accepted.effects == (
        AccountMetadataSet("alice-usd", (("tier", "gold"), ("kyc", "2026-11-30"))),
    )
    assert ledger.state.accounts == accounts_before
    cleared = ledger.accept(ADMIN, SetAccountMetadata("alice-usd", {}))
    assert cleared.effects == (AccountMetadataSet("alice-usd", ()),)
    assert ledger.state.accounts == accounts_before
    assert replay_decisions(ledger) == ledger.state


def test_an_account_opens_with_the_metadata_of_its_transaction() -> None:
    """OpenAccount with body metadata also emits AccountMetadataSet for the new account;
    without metadata it emits none."""
    ledger = standard_ledger()
    tx = ledger.tx(ADMIN, OpenAccount("dave-usd", "USD"))
    tx = dataclasses.replace(
        tx, body=dataclasses.replace(tx.body, metadata=MappingProxyType({"owner": "dave"}))
    )
    decision = ledger.submit_tx(tx)
    assert isinstance(decision, Accepted)
    assert decision.effects == (
        AccountOpened("dave-usd", "USD", None, False),
        AccountMetadataSet("dave-usd", (("owner", "dave"),)),
    )
    plain = ledger.accept(ADMIN, OpenAccount("erin-usd", "USD"))
    assert plain.effects == (AccountOpened("erin-usd", "USD", None, False),)
