"""The local stack: Kafka and PostgreSQL processes that ``ledger up`` runs on this machine.

Every process is started with a pid file and stopped by that pid file, never by name, so
``ledger down`` stops exactly what ``ledger up`` started and nothing else.
"""
