"""PostgreSQL adapter: the schema (ordered SQL migrations) and the analyst views.

``migrate(database_url)`` brings a database up to date; the tables live in schema ``ledger``
(written by the projector), the analysts' views and ``balance_at`` in schema ``analytics``.
"""

from streams.postgres.migrate import MIGRATIONS_DIR, load_migrations, migrate, redact_url

__all__ = ["MIGRATIONS_DIR", "load_migrations", "migrate", "redact_url"]
