"""Tooling around the ledger: the demo ledger and its load, workloads and benchmarks."""
