"""Micro-benchmarks of the pure core; `ledger bench` prints them."""
