"""The pure ledger core: schemas, signing, the state machine, Merkle proofs and blocks.

Nothing in this package (outside ``ledger.client`` and ``ledger.cli``) does I/O or imports
faust, aiokafka or asyncpg, so that processors, clients and auditors all run the same rules.
"""

from ledger import native

# Before any module of the package is imported: the compiled copies of ``native.MODULES``.
__path__ = native.package_path(__name__, __path__)
