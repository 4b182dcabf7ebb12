"""The local stack: Kafka and PostgreSQL processes that ``ledger up`` runs on this machine, and the
workers, which a supervisor (``supervisor.py``, its rules in ``supervision.py``) keeps running.

Every process is started with a pid file and stopped by that pid file, never by name, so
``ledger down`` stops exactly what ``ledger up`` started and nothing else. Every worker start
holds the worker's start lock (``workers.py``), so that no two processes of one worker run.
"""
