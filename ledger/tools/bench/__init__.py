"""Benchmarks: of the pure core (`ledger bench-core`), of the running stack (`ledger bench`,
``load``) and of a restart (`ledger bench-restart`, ``restart``)."""
