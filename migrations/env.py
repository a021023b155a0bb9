"""Alembic's entry: always given a connection by `app.adapters.migrate`, never a URL of its own."""

from alembic import context

from app.adapters.schema import metadata

# Any constant works, as long as every process of this service uses the same one.
MIGRATION_LOCK = 7_461_220_310


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
        # Processes that start together wait here; the later ones then find nothing to do.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    context.run_migrations()
