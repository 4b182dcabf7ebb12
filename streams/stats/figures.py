"""What one block or one rejection adds to a window: pure, so it is tested without faust or Kafka.

The stats agents call these in order, for each message:

1. ``block_increment`` / ``rejection_increment`` turn a decoded event into an increment that
   carries its own event time (``sealed_at_ms``, ``rejected_at_ms``) and its replay guard (the
   block height, the ``ledger.rejections`` offset);
2. ``is_kept`` says which window tables still keep the event's window (older events are skipped,
   so a replay from the earliest offset writes nothing that expiry would delete at once);
3. ``add_block`` / ``add_rejection`` merge the increment into the window's current value, or
   return None when the window already counted it (a message redelivered after a restart).

Because a window's value and its guard travel in one changelog message, a restart that replays
messages after the last committed offset never counts one twice (see ``streams.stats``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from ledger import codec
from ledger.errors import DecodeError
from ledger.model import Block, RejectionRecord, Transfer

OTHER_LEDGER = "(other)"
"""Rejections of no configured ledger (no body, or an unknown ledger name) share one label, so a
client inventing ledger names cannot grow the tables or the summary."""

HEIGHT_NONE = -1
OFFSET_NONE = -1


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """One tumbling window size and how long its windows are kept (faust ``expires``)."""

    name: str
    size_ms: int
    kept_ms: int


SECONDS = WindowSpec("second", size_ms=1_000, kept_ms=10 * 60 * 1_000)
"""The page and /metrics read the last 60 s; 10 minutes leave room for a dashboard or a test
that reads late, and bound the table to 600 windows per ledger."""

MINUTES = WindowSpec("minute", size_ms=60_000, kept_ms=60 * 60 * 1_000)
"""Per-minute history for the last hour; Prometheus keeps anything longer."""

WINDOW_SPECS = (SECONDS, MINUTES)

assert MINUTES.size_ms % SECONDS.size_ms == 0, "a minute is a whole number of second windows"
assert all(
    spec.kept_ms % spec.size_ms == 0 and spec.kept_ms > spec.size_ms for spec in WINDOW_SPECS
)


def window_start_ms(event_ms: int, size_ms: int) -> int:
    """Start of the tumbling window holding ``event_ms`` (faust's windows start at multiples of
    the size since the epoch, as here)."""
    return event_ms - event_ms % size_ms


def is_kept(spec: WindowSpec, event_ms: int, now_ms: int) -> bool:
    """True while the window of ``event_ms`` is younger than the spec keeps windows."""
    return window_start_ms(event_ms, spec.size_ms) + spec.size_ms > now_ms - spec.kept_ms


@dataclass(frozen=True, slots=True)
class BlockIncrement:
    ledger: str
    height: int
    event_ms: int
    sealed_count: int
    volume: Mapping[str, int]
    """Asset -> sum of the positive posting amounts of the block's Transfers (minor units)."""
    undecodable_count: int
    """Sealed envelopes that did not decode: counted as sealed, left out of the volume."""


@dataclass(frozen=True, slots=True)
class RejectionIncrement:
    ledger: str
    code: str
    event_ms: int
    source: tuple[str, int, int]
    """(source_topic, source_partition, source_offset): the rejection's identity, as in
    PostgreSQL's unique key; a redelivered verify batch produces the same source twice."""


def block_increment(block: Block) -> BlockIncrement:
    """Sealed transactions and Transfer volume of one block.

    Volume counts Transfers only: a Capture's asset and (when it captures the whole hold) its
    amount live in the hold, which only a replay of the state machine knows.
    """
    raw_volume: dict[bytes, int] = {}
    volume: dict[str, int] = {}
    undecodable = 0
    for sealed in block.transactions:
        if codec.add_transfer_volume(sealed.envelope, raw_volume):
            continue
        try:
            _, body = codec.decode_submission(sealed.envelope, checked=True)
        except DecodeError:
            undecodable += 1
            continue
        if isinstance(body.op, Transfer):
            for posting in body.op.postings:
                if posting.amount > 0:
                    volume[posting.asset] = volume.get(posting.asset, 0) + posting.amount
    for asset, amount in raw_volume.items():
        name = asset.decode("utf-8", "replace")
        volume[name] = volume.get(name, 0) + amount
    header = block.header
    return BlockIncrement(
        ledger=header.ledger,
        height=header.height,
        event_ms=header.sealed_at_ms,
        sealed_count=len(block.transactions),
        volume=volume,
        undecodable_count=undecodable,
    )


def rejection_increment(rejection: RejectionRecord, ledgers: Sequence[str]) -> RejectionIncrement:
    """One refused transaction, labelled with its ledger when that is a configured one."""
    ledger = rejection.ledger
    return RejectionIncrement(
        ledger=ledger if ledger is not None and ledger in ledgers else OTHER_LEDGER,
        code=rejection.code,
        event_ms=rejection.rejected_at_ms,
        source=(rejection.source_topic, rejection.source_partition, rejection.source_offset),
    )


class BlockWindow(TypedDict):
    """A faust table value (JSON in the changelog): one ledger's blocks in one window."""

    sealed: int
    blocks: int
    volume: dict[str, int]
    height: int
    """Highest block height counted here: blocks arrive in height order, so a block at or
    below it is a redelivery."""


class RejectionWindow(TypedDict):
    """A faust table value: one (partition, ledger)'s rejections in one window, by code."""

    codes: dict[str, int]
    offset: int
    """Highest ``ledger.rejections`` offset counted here (the key holds one partition)."""


def empty_block_window() -> BlockWindow:
    return {"sealed": 0, "blocks": 0, "volume": {}, "height": HEIGHT_NONE}


def empty_rejection_window() -> RejectionWindow:
    return {"codes": {}, "offset": OFFSET_NONE}


def add_block(window: BlockWindow, increment: BlockIncrement) -> BlockWindow | None:
    """The window with the block counted; None when it was counted already."""
    if increment.height <= window["height"]:
        return None
    volume = dict(window["volume"])
    for asset, amount in increment.volume.items():
        volume[asset] = volume.get(asset, 0) + amount
    return {
        "sealed": window["sealed"] + increment.sealed_count,
        "blocks": window["blocks"] + 1,
        "volume": volume,
        "height": increment.height,
    }


def add_rejection(
    window: RejectionWindow, increment: RejectionIncrement, offset: int
) -> RejectionWindow | None:
    """The window with the rejection at ``offset`` counted; None when it was counted already."""
    if offset <= window["offset"]:
        return None
    codes = dict(window["codes"])
    codes[increment.code] = codes.get(increment.code, 0) + 1
    return {"codes": codes, "offset": offset}


class RecentSources:
    """The sources of the last ``capacity`` rejections: a repeated one is a redelivery.

    The verify stage is at-least-once: a batch it verifies again after a crash refuses the same
    submissions again, under the same source position. PostgreSQL keeps one row per source
    (``ON CONFLICT DO NOTHING``); this drops the repeat as long as the original is remembered.
    Memory only: it is refilled by the replay after a restart, but a repeat of a rejection read
    before the restart's committed offset would be counted again (a verify crash and a stats
    restart within the same few seconds).
    """

    def __init__(self, capacity: int) -> None:
        assert capacity > 0
        self.capacity = capacity
        self.order: deque[tuple[str, int, int]] = deque()
        self.members: set[tuple[str, int, int]] = set()

    def seen_before(self, source: tuple[str, int, int]) -> bool:
        """True when ``source`` was offered before; remembers it otherwise."""
        if source in self.members:
            return True
        self.order.append(source)
        self.members.add(source)
        if len(self.order) > self.capacity:
            self.members.discard(self.order.popleft())
        return False
