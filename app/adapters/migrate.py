"""Apply the Alembic migrations to a SQL store, safely from several processes at once.

PostgreSQL serialises concurrent runs with an advisory lock (see migrations/env.py); SQLite with
an exclusive `flock` on the database file. Upgrading to the head that is already applied is a
no-op, and no migration ever drops data on the way up.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

import migrations
from app.adapters.connect_errors import connect_problem, one_line, unusable_path
from app.adapters.sqlite_link import is_busy, read_only, refused_as_read_only
from app.domain.errors import StorageReadOnlyError, StorageUnavailableError
from app.settings import MIGRATION_LOCK_TIMEOUT, redacted, sqlite_path

SCRIPTS = Path(migrations.__file__).parent


POLL = 0.05  # seconds between two tries of a SQLite file's migration lock
SQLITE_LONGEST_WAIT = (2**31 - 1) / 1000  # seconds: SQLite's busy timeout is an int of milliseconds
# PostgreSQL's advisory lock of a migration (migrations/env.py): any constant works, as long as
# every process of this service uses the same one.
MIGRATION_LOCK = 7_461_220_310


class LockTimeoutError(Exception):
    """A lock another process holds was not granted within the migration's lock timeout."""


def _config(connection: sa.Connection, lock_timeout: float) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    config.attributes["lock_timeout"] = lock_timeout  # migrations/env.py sets it on PostgreSQL
    return config


def migrate_sqlite(database_url: str, lock_timeout: float) -> None:
    path = sqlite_path(database_url)
    if (problem := unusable_path(path)) is not None:  # never made here: a typo would be too
        raise StorageUnavailableError(problem)
    try:
        _migrate_sqlite(path, lock_timeout)
    except (OSError, sa.exc.OperationalError) as error:
        if refused_as_read_only(getattr(error, "orig", None) or error, path):
            raise StorageReadOnlyError(read_only(path)) from error
        raise


def _migrate_sqlite(path: str, lock_timeout: float) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock_file(fd, lock_timeout)
        busy = min(lock_timeout, SQLITE_LONGEST_WAIT)  # (SQLite takes milliseconds in an int)
        engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.NullPool, connect_args={"timeout": busy})
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")  # (not inside a transaction)
                # Every migration in one transaction that holds the write lock from the start:
                # sqlite3 would otherwise commit each DDL statement by itself, and a failure half
                # way (or another process writing between two statements) would leave a schema
                # that is neither the old one nor the new one.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                command.upgrade(_config(connection, lock_timeout), "head")
                connection.commit()
        except sa.exc.OperationalError as error:
            if isinstance(error.orig, sqlite3.Error) and is_busy(error.orig):
                raise LockTimeoutError from error
            raise
        finally:
            engine.dispose()
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _lock_file(fd: int, timeout: float) -> None:
    """The file's migration lock (an exclusive flock), tried every POLL seconds until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeoutError from None
            time.sleep(POLL)


async def migrate_postgres(database_url: str, lock_timeout: float) -> None:
    # asyncpg reads the URL itself, as the server's pool does: its parameters (sslmode,
    # application_name, server settings) are asyncpg's, which SQLAlchemy passed on as keywords.
    engine = create_async_engine(
        "postgresql+asyncpg://", poolclass=sa.NullPool, async_creator=lambda: asyncpg.connect(database_url)
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_config(sync, lock_timeout), "head"))
            await connection.commit()
    except sa.exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise LockTimeoutError from error
        raise
    finally:
        await engine.dispose()


LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_not_available: lock_timeout ran out


def migrate(database_url: str, backend: str, lock_timeout: float = MIGRATION_LOCK_TIMEOUT) -> None:
    """Bring the store at `database_url` to the newest schema; nothing to do for memory.

    Failures raise StorageUnavailableError with one line naming the fix where there is a known
    one, and never the URL's password: the driver's or Alembic's text and traceback are no
    news an operator can act on.
    """
    try:
        if backend == "sqlite":
            migrate_sqlite(database_url, lock_timeout)
        elif backend == "postgresql":
            asyncio.run(migrate_postgres(database_url, lock_timeout))
    except StorageUnavailableError:
        raise
    except LockTimeoutError:
        raise StorageUnavailableError(
            f"another process held a lock on {redacted(database_url)} for {lock_timeout:g} s (another migration,"
            " or a long transaction such as an import or an export): nothing was migrated; run it again once that"
            " ends, or wait longer with --lock-timeout"
        ) from None
    except Exception as error:
        line = connect_problem(error, database_url)
        raise StorageUnavailableError(
            line or f"cannot migrate {redacted(database_url)}: {one_line(error)}"
        ) from error
