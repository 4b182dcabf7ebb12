"""The operator dashboard: a live page and a Prometheus endpoint (DESIGN.md section 8).

- ``snapshot``: the facts each source delivers and the pure function that combines them;
- ``metrics``: gathering, one bounded loop per source (Kafka, PostgreSQL);
- ``chain``: the chain watcher, verifying ``ledger.blocks`` from genesis;
- ``queries``: the PostgreSQL queries, each bounded to a few index reads;
- ``prometheus``: the text exposition format; ``page``: the HTML page;
- ``explorer`` (+ ``explorer_*``): the block explorer, ``/explorer`` and ``/api/explorer/``;
- ``server``: the aiohttp application. Run it with ``python -m streams.dashboard``.
"""
