"""The state machine benchmark's workload is valid (the figure itself is not asserted)."""

from __future__ import annotations

from ledger.state import Accepted, apply, decide
from ledger.tools.bench import state as bench


def test_bench_workload_is_all_accepted() -> None:
    """Every transfer the benchmark times is accepted, so it measures the accepting path."""
    state, spenders, serial = bench.funded_state()
    for tx in bench.transfers(spenders, serial, 2 * bench.account_count):
        decision = decide(state, tx, bench.start_ms)
        assert isinstance(decision, Accepted), decision
        apply(state, decision)
    assert state.accounts["a0"].balance == 1_000_000_00
