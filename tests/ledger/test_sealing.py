"""ledger.sealing: the block-cutting rule, and the sealing of one block against a real replica."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import codec, limits
from ledger.blocks import build_block
from ledger.confidential import make_confidential
from ledger.model import (
    Block,
    DefineAsset,
    OpenAccount,
    Operation,
    Posting,
    RegisterKey,
    Role,
    Transfer,
    VerifiedEntry,
)
from ledger.replica import Replica, tx_from_envelope
from ledger.sealing import BlockCutter, OpenBlock, SealedBlock, VerifiedMessage, seal_block
from ledger.settings import TOPIC_SUBMISSIONS
from ledger.signing import Signer, build_tx_body

LEDGER = "main"
GENESIS_MS = 1_800_000_000_000
OPENING_BALANCE = 1_000
SOURCE_PARTITION = 0

# ---- the cutting rule --------------------------------------------------------------------------


def message(offset: int, count: int = 1, entry_bytes: int = 1) -> VerifiedMessage:
    """A verified message of ``count`` entries of ``entry_bytes`` each (contents do not matter
    to the cut; the entries share one bytes object, so even full-size messages are cheap)."""
    envelope = bytes(entry_bytes)
    entries = tuple(VerifiedEntry(1, offset * 1_000 + index, envelope) for index in range(count))
    return VerifiedMessage.of(offset, entries, TOPIC_SUBMISSIONS)


def offsets(block: OpenBlock) -> list[int]:
    return [item.offset for item in block.messages]


def test_a_block_seals_when_it_reaches_the_transaction_count() -> None:
    """Full batches: the message that brings the block to block_tx_max_count seals it at once."""
    batch = limits.verified_batch_tx_max_count
    per_block = limits.block_tx_max_count // batch
    assert per_block * batch == limits.block_tx_max_count  # the test relies on an exact fill
    cutter = BlockCutter(source_offset_end=0)
    for offset in range(per_block - 1):
        assert cutter.offer(message(offset, batch), now_s=0.0) == []
    [block] = cutter.offer(message(per_block - 1, batch), now_s=0.0)
    assert block.tx_count == limits.block_tx_max_count
    assert offsets(block) == list(range(per_block))
    assert cutter.open is None and cutter.take_open() is None
    assert cutter.source_offset_end == per_block


def test_a_message_that_would_pass_the_count_closes_the_open_block_first() -> None:
    """The open block is sealed without the message that does not fit; that message opens the
    next block, which is not sealed yet."""
    cutter = BlockCutter(source_offset_end=0)
    almost = limits.block_tx_max_count - 1
    assert cutter.offer(message(0, almost // 2), 0.0) == []
    assert cutter.offer(message(1, almost - almost // 2), 0.0) == []
    [block] = cutter.offer(message(2, 2), 0.0)
    assert offsets(block) == [0, 1] and block.tx_count == almost
    assert cutter.open is not None and offsets(cutter.open) == [2]


def test_a_block_seals_at_block_bytes_max() -> None:
    """By size: a message that would pass block_bytes_max closes the open block first and opens
    the next; one that fills the block to exactly block_bytes_max seals it at once."""
    full_batch = (limits.verified_batch_tx_max_count, limits.envelope_bytes_max)
    batch_bytes = full_batch[0] * full_batch[1]
    assert batch_bytes == limits.verified_batch_bytes_max
    fitting = limits.block_bytes_max // batch_bytes
    assert fitting * batch_bytes < limits.block_bytes_max  # one more batch would not fit
    cutter = BlockCutter(source_offset_end=0)
    for offset in range(fitting):
        assert cutter.offer(message(offset, *full_batch), 0.0) == []
    [block] = cutter.offer(message(fitting, *full_batch), 0.0)
    assert offsets(block) == list(range(fitting))
    assert block.size_bytes == fitting * batch_bytes
    assert cutter.open is not None and offsets(cutter.open) == [fitting]

    exact = BlockCutter(source_offset_end=0)
    remainder = limits.block_bytes_max - batch_bytes
    assert exact.offer(message(0, *full_batch), 0.0) == []
    [block] = exact.offer(message(1, 1, remainder), 0.0)
    assert block.size_bytes == limits.block_bytes_max and offsets(block) == [0, 1]
    assert exact.open is None


def test_the_second_cut_of_one_offer() -> None:
    """One offer can seal two blocks: the open one (no room) and then the new one, already full."""
    cutter = BlockCutter(source_offset_end=0)
    assert cutter.offer(message(0, 1), 0.0) == []
    first, second = cutter.offer(message(1, limits.block_tx_max_count), 0.0)
    assert offsets(first) == [0] and offsets(second) == [1]
    assert cutter.open is None and cutter.source_offset_end == 2


def test_a_block_is_due_block_wait_ms_after_its_first_message() -> None:
    """due_in_s counts from the first message (later ones do not extend it); take_due hands the
    block over at that moment and not before."""
    cutter = BlockCutter(source_offset_end=0)
    assert cutter.due_in_s(100.0) is None and cutter.take_due(100.0) is None
    wait_s = limits.block_wait_ms / 1000
    cutter.offer(message(0), now_s=100.0)
    cutter.offer(message(1), now_s=100.0 + wait_s / 2)
    assert cutter.due_in_s(100.0) == pytest.approx(wait_s)
    assert cutter.due_in_s(100.0 + wait_s / 2) == pytest.approx(wait_s / 2)
    assert cutter.take_due(100.0 + wait_s * 0.99) is None
    block = cutter.take_due(100.0 + wait_s)
    assert block is not None and offsets(block) == [0, 1]
    assert cutter.open is None and cutter.due_in_s(200.0) is None
    assert cutter.take_due(1_000.0) is None
    cutter.offer(message(2), now_s=150.0)  # the next block's wait starts with its own first one
    assert cutter.due_in_s(150.0) == pytest.approx(wait_s)
    assert cutter.due_in_s(150.0 + 2 * wait_s) == pytest.approx(-wait_s)  # overdue: negative


def test_messages_below_source_offset_end_are_skipped() -> None:
    """A replay after a restart: messages already in a sealed block open nothing."""
    cutter = BlockCutter(source_offset_end=5)
    for offset in range(5):
        assert cutter.offer(message(offset, limits.block_tx_max_count), 0.0) == []
    assert cutter.open is None
    cutter.offer(message(5), 0.0)
    assert cutter.open is not None and offsets(cutter.open) == [5]


def test_source_offset_end_is_the_offset_after_the_last_message() -> None:
    """With gaps in the offsets (transaction markers), a block ends after its last message; the
    cutter then skips a replay of anything up to it."""
    cutter = BlockCutter(source_offset_end=0)
    for offset in (3, 5, 9):
        cutter.offer(message(offset), 0.0)
    block = cutter.take_open()
    assert block is not None and block.source_offset_end == 10 and offsets(block) == [3, 5, 9]
    assert cutter.source_offset_end == 10
    assert cutter.offer(message(9), 0.0) == [] and cutter.open is None
    cutter.offer(message(10), 0.0)
    assert cutter.open is not None and cutter.open.source_offset_end == 11


def test_take_open_returns_the_open_block_whatever_its_age() -> None:
    """A clean stop seals what the cutter holds, due or not; with nothing open it returns None."""
    cutter = BlockCutter(source_offset_end=0)
    assert cutter.take_open() is None
    cutter.offer(message(0, 3, 10), now_s=0.0)
    block = cutter.take_open()
    assert block is not None and block.tx_count == 3 and block.size_bytes == 30
    assert cutter.take_open() is None and cutter.take_due(10**6) is None


message_shapes = st.lists(
    st.tuples(
        st.integers(1, limits.verified_batch_tx_max_count),
        st.sampled_from([1, 100, 1_000, limits.envelope_bytes_max]),
    ),
    max_size=40,
)


@given(message_shapes, st.integers(0, 3))
@settings(max_examples=300, deadline=None)
def test_every_message_lands_in_exactly_one_block_in_order(
    shapes: list[tuple[int, int]], gap: int
) -> None:
    """For any message counts and sizes within the batch limits: every message is in exactly one
    block, in order; no block passes a limit; a block is cut only when it is full or the next
    message would not fit."""
    cutter = BlockCutter(source_offset_end=0)
    offered: list[VerifiedMessage] = []
    blocks: list[OpenBlock] = []
    for index, (count, entry_bytes) in enumerate(shapes):
        item = message(index * (gap + 1), count, entry_bytes)
        offered.append(item)
        ready = cutter.offer(item, now_s=0.0)
        assert len(ready) <= 2
        blocks.extend(ready)
        assert cutter.take_due(0.0) is None  # time never passes here: only size cuts
    last = cutter.take_open()
    if last is not None:
        blocks.append(last)
    assert [item for block in blocks for item in block.messages] == offered
    for index, block in enumerate(blocks):
        assert block.messages
        assert block.tx_count == sum(len(item.entries) for item in block.messages)
        assert block.size_bytes == sum(item.size_bytes for item in block.messages)
        assert block.tx_count <= limits.block_tx_max_count
        assert block.size_bytes <= limits.block_bytes_max
        assert block.source_offset_end == block.messages[-1].offset + 1
        if index + 1 < len(blocks):
            following = blocks[index + 1].messages[0]
            assert block.full() or not block.fits(following), "cut with room to spare"
    if blocks:
        assert cutter.source_offset_end == blocks[-1].source_offset_end


# ---- sealing one block -------------------------------------------------------------------------


def named_signer(name: str) -> Signer:
    return Signer.from_private_bytes(hashlib.sha256(b"sealing test " + name.encode()).digest())


SEALER = named_signer("sealer")
ADMIN = named_signer("admin")
ISSUER = named_signer("issuer")
ALICE = named_signer("alice")
BOB = named_signer("bob")


def signed(signer: Signer, op: Operation, now_ms: int, external_ref: str | None = None) -> bytes:
    return signer.sign(build_tx_body(LEDGER, op, now_ms=now_ms, external_ref=external_ref))


def pay(payer: str, payee: str, amount: int) -> Transfer:
    return Transfer((Posting(payer, "USD", -amount), Posting(payee, "USD", amount)))


@functools.cache
def genesis() -> Block:
    """Block 0 as ``ledger.genesis`` lays it out: admin, sealer, USD, accounts, keys, issuance."""
    operations: list[tuple[Signer, Operation]] = [
        (ADMIN, RegisterKey(ADMIN.public_key, (Role.ADMIN.value,), ())),
        (ADMIN, RegisterKey(SEALER.public_key, (Role.SEALER.value,), ())),
        (ADMIN, DefineAsset("USD", 2, "usd.issuer")),
        (ADMIN, OpenAccount("alice", "USD")),
        (ADMIN, OpenAccount("bob", "USD")),
        (ADMIN, RegisterKey(ISSUER.public_key, (), ("usd.issuer",))),
        (ADMIN, RegisterKey(ALICE.public_key, (), ("alice",))),
        (ADMIN, RegisterKey(BOB.public_key, (), ("bob",))),
        (ISSUER, pay("usd.issuer", "alice", OPENING_BALANCE)),
        (ISSUER, pay("usd.issuer", "bob", OPENING_BALANCE)),
    ]
    block, _ = build_block(
        None,
        ledger=LEDGER,
        envelopes=[signed(signer, op, GENESIS_MS) for signer, op in operations],
        sealed_at_ms=GENESIS_MS,
        source_partition=SOURCE_PARTITION,
        source_offset_end=0,
        signing_key=SEALER,
    )
    return block


def genesis_replica() -> Replica:
    replica = Replica(LEDGER, trusted_sealer_key=SEALER.public_key)
    replica.apply_block(genesis())
    return replica


def open_block(*messages: Sequence[tuple[int, int, bytes]], first_offset: int = 0) -> OpenBlock:
    """An open block of ledger.verified messages, each a list of (partition, offset, envelope)
    submission positions, at consecutive offsets from ``first_offset``."""
    block = OpenBlock(opened_s=0.0)
    for index, entries in enumerate(messages):
        block.add(
            VerifiedMessage.of(
                first_offset + index,
                tuple(VerifiedEntry(*entry) for entry in entries),
                TOPIC_SUBMISSIONS,
            )
        )
    return block


def replayed(*sealed: SealedBlock) -> Replica:
    """A fresh replica fed genesis and the sealed blocks: each must verify and replay."""
    replica = genesis_replica()
    for item in sealed:
        replica.apply_block(item.block)
    return replica


def tx_id_of(envelope: bytes) -> bytes:
    return tx_from_envelope(envelope, checked=False).body.tx_id


def test_seal_block_orders_accepted_envelopes_and_names_each_refusal() -> None:
    """Accepted transfers are sealed in message order; an overdraft, a repeated tx_id, a body
    that is not a TxBody and a transfer of another ledger are refused with their codes, the
    submission position, the height and what could be read of them."""
    now_ms = GENESIS_MS + 1_000
    first = signed(ALICE, pay("alice", "bob", 300), now_ms, external_ref="first")
    overdraft = signed(ALICE, pay("alice", "bob", 800), now_ms, external_ref="too much")
    second = signed(BOB, pay("bob", "alice", 50), now_ms)
    garbage = codec.encode_envelope(ALICE.sign_body(b"\x00not a TxBody"))
    other_ledger = ALICE.sign(
        build_tx_body("elsewhere", pay("alice", "bob", 1), now_ms=now_ms, external_ref="misrouted")
    )
    third = signed(ALICE, pay("alice", "bob", 700), now_ms)  # all alice has, bob paid her 50
    replica = genesis_replica()
    source = open_block(
        [(2, 40, first), (2, 41, overdraft)],
        [(0, 7, second), (2, 42, first), (1, 3, garbage)],
        [(1, 4, other_ledger), (2, 43, third)],
        first_offset=10,
    )

    sealed = seal_block(replica, source, now_ms, SOURCE_PARTITION, SEALER)

    header = sealed.block.header
    assert [tx.envelope for tx in sealed.block.transactions] == [first, second, third]
    assert (header.height, header.tx_count, header.sealed_at_ms) == (1, 3, now_ms)
    assert [tx.seq for tx in sealed.block.transactions] == [
        header.first_seq + index for index in range(3)
    ]
    assert (header.source_partition, header.source_offset_end) == (SOURCE_PARTITION, 13)
    assert header.sealer_key == SEALER.public_key
    refused = [
        (item.code, item.source_partition, item.source_offset, item.tx_id, item.key_id)
        for item in sealed.rejections
    ]
    assert refused == [
        ("INSUFFICIENT_FUNDS", 2, 41, tx_id_of(overdraft), ALICE.key_id),
        ("DUPLICATE", 2, 42, tx_id_of(first), ALICE.key_id),
        ("MALFORMED", 1, 3, None, None),
        ("UNKNOWN_LEDGER", 1, 4, tx_id_of(other_ledger), ALICE.key_id),
    ]
    for item in sealed.rejections:
        assert (item.stage, item.source_topic, item.ledger) == (
            "sequence",
            TOPIC_SUBMISSIONS,
            LEDGER,
        )
        assert (item.height, item.rejected_at_ms) == (1, now_ms)
        assert item.detail
    assert [item.external_ref for item in sealed.rejections] == [
        "too much",
        "first",
        None,
        "misrouted",
    ]

    balances = {name: replica.state.accounts[name].balance for name in ("alice", "bob")}
    assert balances == {"alice": 50, "bob": 2 * OPENING_BALANCE - 50}
    again = replayed(sealed)
    assert again.state == replica.state and again.checkpoint == replica.checkpoint
    assert again.last_sealed_at_ms == replica.last_sealed_at_ms == now_ms


def test_an_interval_with_every_message_refused_seals_an_empty_block() -> None:
    """A block of refusals only is still sealed (0 transactions), so its rejections commit with
    the checkpoint; it verifies, replays, and moves source_offset_end on."""
    now_ms = GENESIS_MS + 1_000
    replica = genesis_replica()
    garbage = codec.encode_envelope(BOB.sign_body(b"garbage"))
    overdraft = signed(BOB, pay("bob", "alice", OPENING_BALANCE + 1), now_ms)
    sealed = seal_block(
        replica, open_block([(0, 1, garbage), (0, 2, overdraft)], first_offset=4), now_ms, 0, SEALER
    )
    assert sealed.block.transactions == () and sealed.block.header.tx_count == 0
    assert sealed.block.header.source_offset_end == 5
    assert [item.code for item in sealed.rejections] == ["MALFORMED", "INSUFFICIENT_FUNDS"]
    assert replayed(sealed).checkpoint == replica.checkpoint


def test_a_confidential_transfer_is_sealed_and_a_malformed_one_refused_with_its_code() -> None:
    """A transfer with confidential fields is decided like any other, nothing decrypted; one
    whose confidential part names a recipient twice is refused MALFORMED_CONFIDENTIAL at stage
    sequence, named by its tx_id and key (its head was readable)."""
    now_ms = GENESIS_MS + 1_000
    body = build_tx_body(
        LEDGER, pay("alice", "bob", 10), now_ms=now_ms, memo="rent", external_ref="r"
    )
    confidential = make_confidential(body, [ALICE.public_key, BOB.public_key])
    assert confidential.confidential is not None
    entry = confidential.confidential.recipients[0]
    twice = dataclasses.replace(
        confidential,
        tx_id=bytes(16),
        confidential=dataclasses.replace(confidential.confidential, recipients=(entry, entry)),
    )
    unchecked = ALICE.sign_body(codec.write(codec.TX_BODY_SCHEMA, codec.tx_body_record(twice)), 3)
    replica = genesis_replica()
    sealed = seal_block(
        replica,
        open_block([(0, 1, ALICE.sign(confidential)), (0, 2, codec.encode_envelope(unchecked))]),
        now_ms,
        SOURCE_PARTITION,
        SEALER,
    )
    assert [tx_id_of(tx.envelope) for tx in sealed.block.transactions] == [confidential.tx_id]
    [refused] = sealed.rejections
    assert (refused.code, refused.stage, refused.tx_id, refused.key_id) == (
        "MALFORMED_CONFIDENTIAL",
        "sequence",
        bytes(16),
        ALICE.key_id,
    )
    assert "named twice" in refused.detail
    assert replica.state.accounts["bob"].balance == OPENING_BALANCE + 10
    assert replayed(sealed).state == replica.state


def test_block_time_never_goes_backwards() -> None:
    """A wall clock that stepped back seals at the previous block's time instead."""
    now_ms = GENESIS_MS + 5_000
    replica = genesis_replica()
    first = seal_block(
        replica,
        open_block([(0, 0, signed(ALICE, pay("alice", "bob", 1), now_ms))]),
        now_ms,
        0,
        SEALER,
    )
    late = signed(ALICE, pay("alice", "bob", 2), now_ms)
    second = seal_block(
        replica, open_block([(0, 1, late)], first_offset=1), now_ms - 3_000, 0, SEALER
    )
    assert second.block.header.sealed_at_ms == first.block.header.sealed_at_ms == now_ms
    assert second.rejections == ()
    assert replayed(first, second).state == replica.state


# ---- replay equals live state ------------------------------------------------------------------


@dataclass(frozen=True)
class Pay:
    payer: int  # 0: alice, 1: bob
    amount: int


@dataclass(frozen=True)
class Repeat:
    """The envelope of an earlier step again (an at-least-once copy)."""

    step: int


@dataclass(frozen=True)
class Garbage:
    pass


@dataclass(frozen=True)
class Misrouted:
    pass


Step = Pay | Repeat | Garbage | Misrouted
steps: st.SearchStrategy[Step] = st.one_of(
    st.builds(Pay, st.integers(0, 1), st.integers(1, OPENING_BALANCE)),
    st.builds(Repeat, st.integers(0, 1_000)),
    st.just(Garbage()),
    st.just(Misrouted()),
)
PAYERS = ((ALICE, "alice", "bob"), (BOB, "bob", "alice"))


def envelope_of(step: Step, earlier: list[bytes], now_ms: int, number: int) -> bytes:
    if isinstance(step, Pay):
        signer, payer, payee = PAYERS[step.payer]
        return signed(signer, pay(payer, payee, step.amount), now_ms, external_ref=str(number))
    if isinstance(step, Repeat) and earlier:
        return earlier[step.step % len(earlier)]
    if isinstance(step, Misrouted):
        return ALICE.sign(build_tx_body("elsewhere", pay("alice", "bob", 1), now_ms=now_ms))
    return codec.encode_envelope(ALICE.sign_body(number.to_bytes(4, "big")))


@given(
    st.lists(
        st.lists(st.lists(steps, min_size=1, max_size=4), max_size=3),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.integers(0, 20_000), min_size=4, max_size=4),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_replay_equals_live_state(blocks: list[list[list[Step]]], gaps_ms: list[int]) -> None:
    """Any sequence of blocks of payments, overdrafts, repeats, garbage and misrouted envelopes:
    each envelope is sealed or refused exactly once, the chain verifies, and a fresh replica fed
    the sealed blocks holds the live replica's state and checkpoint."""
    live = genesis_replica()
    sealed: list[SealedBlock] = []
    earlier: list[bytes] = []
    now_ms, offset, position = GENESIS_MS, 0, 0
    for block_steps, gap_ms in zip(blocks, gaps_ms, strict=False):
        now_ms += gap_ms
        source = OpenBlock(opened_s=0.0)
        for message_steps in block_steps:
            entries = []
            for step in message_steps:
                envelope = envelope_of(step, earlier, now_ms, position)
                earlier.append(envelope)
                entries.append(VerifiedEntry(0, position, envelope))
                position += 1
            source.add(VerifiedMessage.of(offset, tuple(entries), TOPIC_SUBMISSIONS))
            offset += 1
        if not source.messages:  # a block always holds at least one message
            continue
        result = seal_block(live, source, now_ms, SOURCE_PARTITION, SEALER)
        positions = [entry.source_offset for item in source.messages for entry in item.entries]
        assert result.block.header.tx_count + len(result.rejections) == len(positions)
        assert {item.source_offset for item in result.rejections} <= set(positions)
        assert result.block.header.source_offset_end == offset
        sealed.append(result)
    again = replayed(*sealed)
    assert again.state == live.state
    assert again.checkpoint == live.checkpoint
    sealed_ids = [tx_id_of(tx.envelope) for item in sealed for tx in item.block.transactions]
    assert len(sealed_ids) == len(set(sealed_ids)), "a tx_id sealed twice"
    total = sum(account.balance for account in live.state.accounts.values())
    assert total == 0, "money created or destroyed"
