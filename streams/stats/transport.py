"""The faust consumer the stats app needs and faust does not offer: read_committed, committing
what it read on a transactional topic, and re-reading a little on every start.

Each override replaces one faust (0.15) method because faust exposes no setting for it; the
unit tests in ``tests/streams/test_stats.py`` check each against the installed faust, so an
upgrade that moves the hook fails there rather than silently in production.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from ledger.errors import ConfigError
from ledger.settings import TOPIC_BLOCKS, TOPIC_REJECTIONS

log = logging.getLogger("ledger.stats")

restart_rewind_count = {TOPIC_BLOCKS: 2_000, TOPIC_REJECTIONS: 50_000}
"""Offsets re-read below the committed offset on every start (see ``_ReadCommittedConsumer``):
a commit can run ahead of the changelog writes of the last second or so of events, so this
covers a second of a rejection flood (verify refuses some 20k/s) and minutes of blocks, while
re-reading costs at most a few seconds: the guards skip everything already counted, and a
block is checked against them before its envelopes are decoded."""


class _ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust asks aiokafka for read_committed only in its ``exactly_once`` mode, which this
    project does not use (DESIGN.md section 6). ``ledger.blocks`` and ``ledger.rejections`` are
    written in Kafka transactions, and an aborted block (a fenced sequencer's) must never be
    counted, so the level is set here, before the consumer starts and builds its fetcher."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if getattr(consumer, "_isolation_level", None) not in (
            "read_uncommitted",
            "read_committed",
        ):
            raise ConfigError(
                "this aiokafka keeps the isolation level elsewhere: the stats consumer cannot "
                "be made read_committed (streams/stats/transport.py)"
            )
        consumer._isolation_level = "read_committed"
        return consumer


class _ReadCommittedConsumer(faust_aiokafka.Consumer):
    """Read committed transactions only, commit what was read, and on every start re-read a
    little below the committed offsets.

    faust commits a message's offset after flushing its producer, but its flush gives up when
    a buffered message takes over 0.1 s to be handed to the client, and a table write waits in
    that buffer: after ``kill -9`` a committed event can miss its window write. Re-reading
    ``restart_rewind_count`` offsets below the committed ones counts such events again; the
    windows' guards keep everything else from being counted twice.
    """

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: Any) -> int | None:
        """The offset to commit: one past the highest message acknowledged.

        faust's own version walks its acknowledged offsets and the gaps between them; on a
        transactional topic every block is followed by a commit marker the consumer never sees,
        and its gap bookkeeping leaves a duplicate behind on each commit, so each commit
        advances by one block only: the committed offset falls ever further behind and its
        lists grow (faust-streaming issue 606, robinhood/faust 625). Here every partition is
        read by one agent at concurrency 1, which acknowledges messages in offset order, so
        every message below the highest acknowledged one has been acknowledged too; the
        offsets in between that never arrived are commit markers and aborted records.
        """
        acked = self._acked[tp]
        if not acked:
            return None
        highest = max(acked)
        acked.clear()
        self._acked_index[tp].clear()
        self._gap[tp].chop(0, highest + 1)
        committed = self._committed_offset[tp]
        if committed is not None and highest + 1 <= committed:
            return None
        return int(highest) + 1

    async def seek_to_committed(self) -> Mapping[Any, int]:
        """Seek every stream partition ``restart_rewind_count`` below its committed offset
        (faust then reads on from there, and takes that offset as the committed one)."""
        committed = await super().seek_to_committed()
        rewound = dict(committed)
        for tp, offset in committed.items():
            rewind = restart_rewind_count.get(tp.topic)
            if rewind is None or offset is None or offset <= 0:
                continue
            rewound[tp] = max(0, offset - rewind)
            await self.seek(TP(tp.topic, tp.partition), rewound[tp])
            log.info(
                "re-reading %s[%d] from offset %d (committed %d): the guards skip what was counted",
                tp.topic,
                tp.partition,
                rewound[tp],
                offset,
            )
        return rewound


class ReadCommittedTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with ``_ReadCommittedConsumer`` as its consumer; install it
    with ``app.transport = ReadCommittedTransport(app.conf.broker_consumer, app)``."""

    Consumer = _ReadCommittedConsumer
