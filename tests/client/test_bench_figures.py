"""The bench's CPU accounting: per role across restarts, and per sealed transaction."""

from __future__ import annotations

from ledger.tools.bench.load import cpu_per_tx, cpu_used


def test_a_restarted_worker_counts_its_new_process_whole() -> None:
    """A worker killed and started again between two readings adds the new process's CPU,
    instead of going negative against the old process's total."""
    before = {("sequence", 10): 50.0, ("verify", 11): 5.0, ("postgres", 12): 1.0}
    after = {
        ("sequence", 20): 2.5,
        ("verify", 11): 9.0,
        ("postgres", 12): 1.5,
        ("postgres", 13): 0.5,
    }
    assert cpu_used(before, after) == {"sequence": 2.5, "verify": 4.0, "postgres": 1.0}


def test_cpu_per_transaction_has_a_total() -> None:
    """Microseconds per sealed transaction for each role, and their sum as total."""
    per_tx = cpu_per_tx({"verify": 1.0, "sequence": 0.5}, 10_000)
    assert per_tx == {"verify": 100.0, "sequence": 50.0, "total": 150.0}
