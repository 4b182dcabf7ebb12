"""Signed transactions for demos, tests and the benchmark: account set-up and transfer load.

Pure: keys and parameters in, envelope bytes out. Set-up happens in phases that must be sealed
one after another (accounts before the keys that own them, keys before money moves):
``setup_phases`` returns them in that order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ledger import limits
from ledger.model import OpenAccount, Posting, RegisterKey, Transfer
from ledger.signing import Signer, build_tx_body

accounts_per_key_count = 200
"""A load key owns at most this many accounts (below limits.owned_accounts_max_count)."""

credits_per_funding_transfer_count = limits.postings_max_count - 1

assert accounts_per_key_count <= limits.owned_accounts_max_count


@dataclass(frozen=True)
class LoadAccounts:
    """``count`` accounts named ``{prefix}-{index:05d}`` of one asset, owned by ``owners``."""

    ledger: str
    asset: str
    prefix: str
    count: int
    owners: tuple[Signer, ...]

    def name(self, index: int) -> str:
        return f"{self.prefix}-{index:05d}"

    def owner(self, index: int) -> Signer:
        return self.owners[index // accounts_per_key_count]

    @classmethod
    def with_new_keys(cls, ledger: str, asset: str, prefix: str, count: int) -> LoadAccounts:
        key_count = -(-count // accounts_per_key_count)
        return cls(ledger, asset, prefix, count, tuple(Signer.generate() for _ in range(key_count)))


def setup_phases(
    accounts: LoadAccounts,
    admin: Signer,
    issuer: Signer,
    issuer_account: str,
    funding_amount: int,
    validity_ms: int = limits.validity_window_ms_max,
) -> list[list[bytes]]:
    """Open the accounts, register their owner keys, then fund each from the issuer."""
    ledger = accounts.ledger
    opens = [
        admin.sign(
            build_tx_body(
                ledger, OpenAccount(accounts.name(i), accounts.asset), validity_ms=validity_ms
            )
        )
        for i in range(accounts.count)
    ]
    keys = []
    for key_index, owner in enumerate(accounts.owners):
        owned = tuple(
            accounts.name(i)
            for i in range(
                key_index * accounts_per_key_count,
                min(accounts.count, (key_index + 1) * accounts_per_key_count),
            )
        )
        keys.append(
            admin.sign(
                build_tx_body(
                    ledger, RegisterKey(owner.public_key, (), owned), validity_ms=validity_ms
                )
            )
        )
    fundings = []
    for start in range(0, accounts.count, credits_per_funding_transfer_count):
        indexes = range(start, min(accounts.count, start + credits_per_funding_transfer_count))
        postings = (
            Posting(issuer_account, accounts.asset, -funding_amount * len(indexes)),
        ) + tuple(Posting(accounts.name(i), accounts.asset, funding_amount) for i in indexes)
        fundings.append(
            issuer.sign(build_tx_body(ledger, Transfer(postings), validity_ms=validity_ms))
        )
    return [opens, keys, fundings]


def transfer_pairs(
    account_count: int, hot_account_count: int, hot_share: float, seed: int
) -> Iterator[tuple[int, int]]:
    """Endless (payer, payee) index pairs; a ``hot_share`` of transfers touch a hot account."""
    chooser = random.Random(seed)
    hot = max(1, min(hot_account_count, account_count))
    while True:
        if chooser.random() < hot_share:
            payer = chooser.randrange(hot)
        else:
            payer = chooser.randrange(account_count)
        payee = chooser.randrange(account_count - 1)
        yield payer, payee if payee < payer else payee + 1


def transfers(
    accounts: LoadAccounts,
    count: int,
    amount: int,
    created_at_ms: Sequence[int],
    *,
    hot_account_count: int = 10,
    hot_share: float = 0.2,
    seed: int = 1,
    validity_ms: int = limits.validity_window_ms_max,
) -> list[bytes]:
    """``count`` signed two-posting transfers; transfer i is created at ``created_at_ms[i]``."""
    pairs = transfer_pairs(accounts.count, hot_account_count, hot_share, seed)
    envelopes = []
    for index in range(count):
        payer, payee = next(pairs)
        postings = (
            Posting(accounts.name(payer), accounts.asset, -amount),
            Posting(accounts.name(payee), accounts.asset, amount),
        )
        body = build_tx_body(
            accounts.ledger,
            Transfer(postings),
            validity_ms=validity_ms,
            now_ms=created_at_ms[index],
            external_ref=f"load-{seed}-{index}",
        )
        envelopes.append(accounts.owner(payer).sign(body))
    return envelopes
