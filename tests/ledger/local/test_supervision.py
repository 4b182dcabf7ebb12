"""The supervisor's restart policy, pure: backoff, giving up, and the exits it leaves alone."""

from __future__ import annotations

import signal

from hypothesis import given
from hypothesis import strategies as st

from ledger.local import supervision
from ledger.local.supervision import (
    ExitHistory,
    GiveUp,
    Leave,
    Restart,
    after_exit,
    backoff_s,
    describe_exit,
)

crashed = 70
"""streams.lifecycle.EXIT_FATAL: the usual exit of a worker that failed."""

long_run_s = 30.0
"""Longer than an early exit, shorter than a stable run."""


def run_exits(
    count: int, ran_s: float | None, gap_s: float, services_up: bool = True
) -> list[supervision.Decision]:
    """``count`` exits ``gap_s`` apart, each after running ``ran_s``, from a fresh history."""
    history, decisions = ExitHistory(), []
    for index in range(count):
        decision, history = after_exit(history, crashed, ran_s, index * gap_s, services_up)
        decisions.append(decision)
    return decisions


def test_exit_codes_are_those_the_workers_use() -> None:
    """The policy's codes are the sequencer's fenced exit and the CLI's and workers' own."""
    import streams.dashboard.__main__ as dashboard
    import streams.stats.__main__ as stats
    from ledger import cli
    from streams.lifecycle import EXIT_FATAL
    from streams.shard import EXIT_FENCED

    assert supervision.EXIT_FENCED == EXIT_FENCED
    assert supervision.EXIT_USAGE == cli.EXIT_USAGE
    assert supervision.EXIT_BAD_INPUT == cli.EXIT_BAD_INPUT == stats.EXIT_BAD_INPUT
    assert supervision.EXIT_BAD_INPUT == dashboard.EXIT_BAD_INPUT
    assert crashed == EXIT_FATAL
    assert EXIT_FATAL not in supervision.configuration_exit_codes | supervision.clean_exit_codes


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    """Exits in a row wait 1, 2, 4, 8, 16, 30, 30 s."""
    assert [backoff_s(count) for count in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_worker_that_ran_a_while_is_restarted_after_a_second_again() -> None:
    """After a stable run the backoff starts over, and the exits before do not add up to a
    crash loop."""
    decisions = run_exits(4, long_run_s, 40.0)
    assert decisions == [Restart(1), Restart(2), Restart(4), Restart(8)]
    history = ExitHistory((0.0,), 4, 0)
    decision, history = after_exit(history, crashed, supervision.stable_run_s, 200.0, True)
    assert decision == Restart(1) and history.exits_in_row_count == 1


def test_three_early_exits_in_a_row_give_up() -> None:
    """A worker that exits within 5 s of its start three times running is given up on."""
    decisions = run_exits(3, 0.5, 2.0)
    assert decisions[:2] == [Restart(1), Restart(2)]
    assert isinstance(decisions[2], GiveUp)
    assert "3 exits in a row within 5 s of start (exit code 70)" in decisions[2].reason


def test_five_exits_within_two_minutes_give_up() -> None:
    """Crashes after 30 s runs: the fifth within 120 s gives up; spread out, they never do."""
    decisions = run_exits(5, long_run_s, 25.0)
    assert all(isinstance(decision, Restart) for decision in decisions[:4])
    assert decisions[4] == GiveUp("5 exits within 120 s (exit code 70)")
    assert all(isinstance(decision, Restart) for decision in run_exits(20, long_run_s, 31.0))


def test_exits_while_the_services_are_down_never_give_up() -> None:
    """With Kafka or PostgreSQL down, exits at start are restarted forever, every 30 s at most."""
    decisions = run_exits(50, 0.5, 1.0, services_up=False)
    assert all(isinstance(decision, Restart) for decision in decisions)
    assert decisions[-1] == Restart(30)


def test_fenced_clean_and_configuration_exits() -> None:
    """Exit 75 and a clean stop are left alone; a configuration error gives up at once."""
    fresh = ExitHistory()
    assert isinstance(after_exit(fresh, 75, 100.0, 0.0, True)[0], Leave)
    for clean in (0, -signal.SIGTERM, -signal.SIGINT):
        assert isinstance(after_exit(fresh, clean, 100.0, 0.0, True)[0], Leave)
    for configuration in (2, 4):
        decision = after_exit(fresh, configuration, 100.0, 0.0, True)[0]
        assert isinstance(decision, GiveUp) and "configuration" in decision.reason
    assert isinstance(after_exit(fresh, -signal.SIGKILL, 100.0, 0.0, True)[0], Restart)
    assert isinstance(after_exit(fresh, None, None, 0.0, True)[0], Restart)


def test_exits_are_described_for_people() -> None:
    """A code, a signal by name, or an unknown status."""
    assert describe_exit(70) == "exit code 70"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert "unknown" in describe_exit(None)


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(-15, 130)),
            st.one_of(st.none(), st.floats(0, 500)),
            st.floats(0, 100),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_any_exit_series_keeps_the_bounds(
    exits: list[tuple[int | None, float | None, float, bool]],
) -> None:
    """Whatever the exits, a restart waits 1 to 30 s and the remembered crashes stay within the
    window and below the give-up count (a worker given up on or left stopped runs again only
    with a fresh history: handed back, or started by someone else)."""
    history, now_s = ExitHistory(), 0.0
    for exit_code, ran_s, gap_s, services_up in exits:
        now_s += gap_s
        decision, history = after_exit(history, exit_code, ran_s, now_s, services_up)
        if not isinstance(decision, Restart):
            history = ExitHistory()
            continue
        assert supervision.backoff_first_s <= decision.delay_s <= supervision.backoff_max_s
        assert len(history.crash_times_s) < supervision.crash_count_max
        assert all(now_s - time_s < supervision.crash_window_s for time_s in history.crash_times_s)
