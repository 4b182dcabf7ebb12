"""What the supervisor does when a worker exits: restart it after a backoff, give up, or leave it.

Pure: the supervisor (``ledger.local.supervisor``) gathers the exit status, how long the worker
ran and whether Kafka and PostgreSQL answer, then calls ``after_exit``. The rules, in order of
precedence (the first that applies decides):

  1. exit 75, fenced: another sequencer took the shard over. Never restarted: a restarted one
     would fence the new one in turn, and the two would take turns forever.
  2. a clean stop (exit 0, or SIGTERM, SIGINT): someone stopped it on purpose. Left stopped, as
     systemd's ``Restart=on-failure`` does (``infra/systemd``).
  3. a configuration error (exit 2, usage; exit 4, a bad setting or key file): a restart cannot
     mend it. Given up at once.
  4. Kafka or PostgreSQL does not answer: the worker is not to blame. Restarted after the
     backoff, and the exit does not count towards giving up, so the workers come back by
     themselves when the services do (a restart every ``backoff_max_s`` at most meanwhile).
  5. ``early_exit_count_max`` exits in a row, each within ``early_exit_s`` of its start: it
     cannot start (a bad command line, a missing file). Given up.
  6. ``crash_count_max`` exits within ``crash_window_s``: a crash loop. Given up.
  7. otherwise restarted after the backoff: ``backoff_first_s``, doubling with each exit in a
     row up to ``backoff_max_s``, back to ``backoff_first_s`` once a worker ran
     ``stable_run_s``.

Exit 3 (infrastructure, e.g. the dashboard's port is taken) and 70 (``streams.lifecycle``: any
failure ends a worker, which a restart recovers from) fall under rules 4 to 7. An exit status
the supervisor cannot know (a worker someone else started is not its child) counts as a crash.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace

EXIT_USAGE = 2
"""A bad command line (argparse, and ``ledger.cli.EXIT_USAGE``)."""

EXIT_BAD_INPUT = 4
"""A bad setting or key file (``streams.stats``, ``streams.dashboard``, ``ledger.cli``)."""

EXIT_FENCED = 75
"""``streams.shard.EXIT_FENCED``: a newer sequencer of the shard fenced this one."""

configuration_exit_codes = frozenset({EXIT_USAGE, EXIT_BAD_INPUT})
clean_exit_codes = frozenset({0, -signal.SIGTERM, -signal.SIGINT})
"""As ``subprocess.Popen.returncode`` reports them: minus the signal number for a signal."""

backoff_first_s = 1.0
"""A worker killed once is back within about its start time plus this."""

backoff_max_s = 30.0
"""While Kafka or PostgreSQL is down a worker may exit every time it starts; one start every
30 s costs little (a Python start is about 1 s of CPU) and brings it back soon after they do."""

stable_run_s = 60.0
"""A worker that ran this long recovered: its next exit is restarted after ``backoff_first_s``."""

early_exit_s = 5.0
"""A worker that exits this soon after its start did not get going (``ledger up`` waits this
long for each new worker and reports one that exited)."""

early_exit_count_max = 3
"""Early exits in a row before giving up: two may be bad luck (a port still held by the worker
it replaces), three are a worker that cannot start."""

crash_count_max = 5
crash_window_s = 120.0
"""Exits within this window that make a crash loop. With the backoff (1, 2, 4, 8 s) five exits
take at least 15 s plus the runs; a worker that crashes less often than once in 24 s on average
is restarted forever, each time after ``backoff_first_s`` once it ran ``stable_run_s``."""

doublings_max = 16
"""Enough doublings for any backoff_max_s; bounds the power a long crash series would raise."""

assert backoff_first_s * (1 << doublings_max) >= backoff_max_s
assert backoff_first_s <= backoff_max_s
assert early_exit_s < stable_run_s < crash_window_s
assert early_exit_count_max <= crash_count_max


@dataclass(frozen=True)
class ExitHistory:
    """What the policy remembers of a worker's exits (reset when it is handed back by hand)."""

    crash_times_s: tuple[float, ...] = ()
    """Monotonic times of the counted exits within ``crash_window_s``."""
    exits_in_row_count: int = 0
    """Exits since the worker last ran ``stable_run_s``: the backoff's exponent."""
    early_exits_in_row_count: int = 0


@dataclass(frozen=True)
class Restart:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


@dataclass(frozen=True)
class Leave:
    """Not restarted, and not a failure of the worker: someone or something stopped it."""

    reason: str


Decision = Restart | GiveUp | Leave


def describe_exit(exit_code: int | None) -> str:
    """``exit code 70``, ``killed by SIGKILL`` or that the status is unknown."""
    if exit_code is None:
        return "exit status unknown (not started by the supervisor)"
    if exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"


def backoff_s(exits_in_row_count: int) -> float:
    """The wait before restarting after the n-th exit in a row (n >= 1)."""
    doublings = min(max(exits_in_row_count - 1, 0), doublings_max)
    return min(backoff_max_s, backoff_first_s * float(1 << doublings))


def after_exit(
    history: ExitHistory,
    exit_code: int | None,
    ran_s: float | None,
    now_s: float,
    services_up: bool,
) -> tuple[Decision, ExitHistory]:
    """The decision on one exit (rules 1 to 7 of the module docstring) and the history after it.

    ``ran_s`` is how long the worker ran (None when the supervisor did not see it start);
    ``services_up`` whether Kafka and PostgreSQL answered just now.
    """
    described = describe_exit(exit_code)
    if exit_code == EXIT_FENCED:
        return Leave(f"fenced by a newer sequencer ({described}); not restarted"), history
    if exit_code in clean_exit_codes:
        return Leave(f"stopped ({described})"), history
    if exit_code in configuration_exit_codes:
        return GiveUp(f"a configuration error ({described})"), history
    if ran_s is not None and ran_s >= stable_run_s:
        history = replace(history, exits_in_row_count=0, early_exits_in_row_count=0)
    exits_in_row_count = history.exits_in_row_count + 1
    recent_s = tuple(time_s for time_s in history.crash_times_s if now_s - time_s < crash_window_s)
    if not services_up:
        history = replace(history, crash_times_s=recent_s, exits_in_row_count=exits_in_row_count)
        return Restart(backoff_s(exits_in_row_count)), history
    early = ran_s is not None and ran_s < early_exit_s
    early_count = history.early_exits_in_row_count + 1 if early else 0
    crash_times_s = (*recent_s, now_s)
    history = ExitHistory(crash_times_s, exits_in_row_count, early_count)
    if early_count >= early_exit_count_max:
        return GiveUp(
            f"{early_count} exits in a row within {early_exit_s:.0f} s of start ({described})"
        ), history
    if len(crash_times_s) >= crash_count_max:
        return GiveUp(
            f"{len(crash_times_s)} exits within {crash_window_s:.0f} s ({described})"
        ), history
    return Restart(backoff_s(exits_in_row_count)), history
