"""The pure ledger core: schemas, signing, the state machine, Merkle proofs and blocks.

Nothing in this package (outside ``ledger.client`` and ``ledger.cli``) does I/O or imports
faust, aiokafka or asyncpg, so that processors, clients and auditors all run the same rules.
"""
