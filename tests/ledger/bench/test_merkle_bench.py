"""The Merkle benchmark runs and reports every figure; no timing is asserted."""

from __future__ import annotations

from ledger.tools.bench import merkle as merkle_bench


def test_run_reports_positive_figures() -> None:
    """run() returns the five named figures, each a positive finite number."""
    figures = merkle_bench.run()
    assert set(figures) == {
        "root_1000_leaves_ms",
        "compact_tree_1000_appends_ms",
        "inclusion_build_and_check_per_second",
        "inclusion_check_per_second",
        "consistency_build_and_check_per_second",
    }
    assert all(0 < value < float("inf") for value in figures.values())
