"""Alembic migrations for the SQL adapters (run them with `python -m app migrate`)."""
