"""Apply the Alembic migrations to a SQL store, safely from several processes at once.

PostgreSQL serialises concurrent runs with an advisory lock (see migrations/env.py); SQLite with
an exclusive `flock` on the database file. Upgrading to the head that is already applied is a
no-op, and no migration ever drops data on the way up.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

import migrations
from app.adapters.connect_errors import connect_problem, missing_directory, one_line
from app.adapters.sqlite import sqlite_path
from app.domain.errors import StorageUnavailableError
from app.settings import redacted

SCRIPTS = Path(migrations.__file__).parent


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: sa.Connection) -> None:
    command.upgrade(_config(connection), "head")


def migrate_sqlite(database_url: str) -> None:
    path = sqlite_path(database_url)
    if (problem := missing_directory(path)) is not None:  # never made here: a typo would be too
        raise StorageUnavailableError(problem)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")  # (not inside a transaction)
                # Every migration in one transaction that holds the write lock from the start:
                # sqlite3 would otherwise commit each DDL statement by itself, and a failure half
                # way (or another process writing between two statements) would leave a schema
                # that is neither the old one nor the new one.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                _upgrade(connection)
                connection.commit()
        finally:
            engine.dispose()
    finally:
        os.close(fd)  # closing the descriptor releases the lock


async def migrate_postgres(database_url: str) -> None:
    url = sa.make_url(database_url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, poolclass=sa.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_upgrade)
            await connection.commit()
    finally:
        await engine.dispose()


def migrate(database_url: str, backend: str) -> None:
    """Bring the store at `database_url` to the newest schema; nothing to do for memory.

    Failures raise StorageUnavailableError with one line naming the fix where there is a known
    one, and never the URL's password: the driver's or Alembic's text and traceback are no
    news an operator can act on.
    """
    try:
        if backend == "sqlite":
            migrate_sqlite(database_url)
        elif backend == "postgresql":
            asyncio.run(migrate_postgres(database_url))
    except StorageUnavailableError:
        raise
    except Exception as error:
        line = connect_problem(error, database_url)
        raise StorageUnavailableError(
            line or f"cannot migrate {redacted(database_url)}: {one_line(error)}"
        ) from error
