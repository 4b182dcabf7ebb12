"""Windowed statistics over the block stream and the rejections, for the dashboard and /metrics.

Its own faust app (``ledger-stats``, ``python -m streams.stats``, worker ``stats`` of ``ledger
up``): the one place where faust's model fits (DESIGN.md section 11), because blocks are few and
a faust agent's ~75 µs per message does not matter there.

- ``figures``: pure. What a block (sealed transactions, Transfer volume per asset) or a
  rejection (one per code) adds to a window, and the guards that make a redelivery count once.
- ``summary``: pure. The JSON document published to ``ledger.stats`` every second (the recent
  windows, heights, read positions), and the recent figures readers compute from it.
- ``app``: faust. Agents over ``ledger.blocks`` and ``ledger.rejections``, tumbling windows of
  1 s (kept 10 min) and 1 min (kept 1 h) in faust tables, a timer that publishes the summary.
- ``transport``: the faust consumer this needs: read_committed, commits that keep up on a
  transactional topic, a short re-read on every start.

Event time, not arrival time: a block counts in the window of its ``header.sealed_at_ms``, a
rejection in that of its ``rejected_at_ms``, so any replay puts every event in the same window,
and a window's figures equal PostgreSQL's rows with ``sealed_at`` / ``rejected_at`` inside it.

Where the agents start, and how figures survive a restart (chosen: changelogs, with guards):

1. A new consumer group (first start, or after its offsets and changelog topics were deleted)
   starts at the earliest offset of both topics. Events older than the longest kept window are
   skipped (blocks undecoded, by their Kafka timestamp), so the tables end up holding exactly
   the kept windows, rebuilt from the events themselves.
2. A restart first rebuilds the tables from their changelog topics
   (``ledger-stats-<table>-changelog``: compacted, deleted once older than the window's keep
   time). That restores minutes of windows in a second, where replaying an hour of blocks
   would decode every transaction again.
3. It then reads on from a little below the group's committed offsets
   (``transport.restart_rewind_count``), because faust can err both ways here: messages after
   the last commit come again, and a commit can run ahead of the changelog writes of its last
   events (faust's flush before a commit gives up on a slow buffer). Each window
   value carries its own guard, written in the same changelog message as its counts: the
   highest block height counted (blocks of a ledger arrive in height order), or the highest
   ``ledger.rejections`` offset counted (the key holds one partition). An event at or below the
   guard is not counted again; one whose write was lost is above it and is counted.
4. Repeats inside the topic itself: the verify stage is at-least-once, so one submission can
   be refused twice under the same source position. PostgreSQL keeps one row per source; here
   the sources of recent rejections are remembered (``figures.RecentSources``) and a repeat is
   dropped while the original is remembered.

Aborted transactions (a fenced sequencer's block and its rejections) are never read: faust
would read them (it asks for read_committed only in its exactly_once mode, which DESIGN.md
section 6 rules out), so ``transport.ReadCommittedTransport`` sets the isolation level itself.

Run one stats worker: faust splits partitions between the workers of a group, and each would
publish a summary of its own partitions only (the summary says which it holds, and the
dashboard shows the figures as unavailable unless one summary covers every partition).
"""
