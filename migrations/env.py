"""Alembic's entry: always given a connection by `app.adapters.migrate`, never a URL of its own."""

import math

from alembic import context

from app.adapters.migrate import MIGRATION_LOCK
from app.adapters.schema import metadata


def _include(obj, name, type_, reflected, compare_to) -> bool:
    # SQLite's tag table and full-text index are built by hand in the migration, not from metadata.
    return not (type_ == "table" and reflected and compare_to is None)


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    include_object=_include,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # No lock is waited for longer than this: a migration's ALTER waiting behind a long
        # transaction would make every query on the table queue behind it.
        seconds = context.config.attributes["lock_timeout"]
        timeout_ms = min(max(1, round(seconds * 1000)), 2**31 - 1) if math.isfinite(seconds) else 0  # 0: none
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {timeout_ms}")
        # Processes that start together wait here; the later ones then find nothing to do.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    context.run_migrations()
