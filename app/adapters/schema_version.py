"""Which schema revision a store is at, read with the drivers alone, and whether this code fits it.

`serve` migrates in a child process so that the server itself never loads SQLAlchemy and Alembic
(they would hold some 25 MB of its memory). With --no-migrate it must still refuse a store whose
schema it does not fit, or every request would answer 503 while nothing is logged; so it reads
Alembic's `alembic_version` table itself, with sqlite3 or asyncpg, and compares.
"""

from __future__ import annotations

import asyncio
import shlex
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import asyncpg

from app.adapters.connect_errors import connect_problem, one_line, unusable_path
from app.adapters.sqlite_link import SQLITE_READONLY_ROLLBACK, is_busy, read_only, refused_as_read_only
from app.domain.errors import StorageReadOnlyError, StorageUnavailableError
from app.settings import redacted, sqlite_path

# Every revision in migrations/versions, oldest first; the last is the head this code expects.
# Add each new migration here: tests/e2e/test_schema_version.py holds this to Alembic's history.
REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005")
HEAD_REVISION = REVISIONS[-1]
_GRACE = 0.5  # seconds the client waits for PostgreSQL beyond the check's own timeout


class SchemaMismatchError(StorageUnavailableError):
    """The store's schema is missing, behind this code's, or (`newer`) newer than this code knows."""

    def __init__(self, problem: str, *, newer: bool) -> None:
        super().__init__(problem)
        self.newer = newer


class StoreUnreachableError(StorageUnavailableError):
    """The store cannot be reached or read now: no such directory, nothing listening, a refused
    login, another process's lock, no answer at all. Migrating would fail the same way."""


def check_schema(database_url: str, backend: str, timeout: float) -> None:
    """Return if the store is at HEAD_REVISION; raise with the one line to show otherwise."""
    if backend == "sqlite":
        applied = _sqlite_revisions(database_url, timeout)
    elif backend == "postgresql":
        applied = asyncio.run(_postgres_revisions(database_url, timeout))
    else:  # memory: no schema to check
        return
    if (problem := schema_problem(applied, database_url)) is not None:
        raise SchemaMismatchError(problem, newer=applied is not None and not applied <= set(REVISIONS))


def schema_problem(
    applied: frozenset[str] | None, database_url: str, known: Sequence[str] = REVISIONS
) -> str | None:
    """Why this code cannot serve a store at the `applied` revisions (None: no schema at all)."""
    if applied == {known[-1]}:
        return None
    url = redacted(database_url)
    fix = f"migrate it with {_migrate_command(url)}, or start the server without --no-migrate"
    if not applied:
        return f"{url} has no schema yet: {fix}"
    found = ", ".join(sorted(applied))
    if applied <= set(known):
        return (f"the schema of {url} is at revision {found},"
                f" behind this server's {known[-1]}: {fix}")
    return (f"the schema of {url} is at revision {found}, newer than this server knows (its newest"
            f" is {known[-1]}): serve it with the notes-api that migrated it, or a later one")


def _migrate_command(url: str) -> str:
    return f"'notes-api migrate --database-url {url}'"


def _sqlite_revisions(database_url: str, timeout: float) -> frozenset[str] | None:
    path = sqlite_path(database_url)
    if (problem := unusable_path(path)) is not None:
        raise StoreUnreachableError(problem)
    if not Path(path).exists():  # and read-only below: checking must not create the file
        return None
    try:
        connection = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=timeout)
        try:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            connection.close()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return None
        if error.sqlite_errorcode == SQLITE_READONLY_ROLLBACK:  # which only a read-write opening does
            url = redacted(database_url)
            raise StorageUnavailableError(
                f"{url} holds a write that a process left half done when it stopped (a hot"
                f" journal): {_migrate_command(url)} rolls it back"
            ) from error
        if is_busy(error):  # another process's lock outlasted the timeout
            who = shlex.join(["fuser", path])
            raise StoreUnreachableError(
                f"{database_url} did not give its schema version within {timeout:g} s: does another"
                f" process hold a lock on it? '{who}' names the processes that have it open"
            ) from error
        if refused_as_read_only(error, path):  # even a look makes the -shm file if there is none
            raise StorageReadOnlyError(read_only(path)) from error
        raise StorageUnavailableError(f"cannot read {database_url}: {error}") from error
    except sqlite3.Error as error:  # not a database, for one
        raise StorageUnavailableError(f"cannot read {database_url}: {error}") from error
    return frozenset(row[0] for row in rows)


async def _postgres_revisions(database_url: str, timeout: float) -> frozenset[str] | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout  # for the whole check, as --db-timeout says
    try:
        connection = await asyncpg.connect(database_url, timeout=timeout)
    except Exception as error:  # the driver's: one line naming the fix, never the password
        line = connect_problem(error, database_url)
        raise StoreUnreachableError(
            line or f"cannot connect to {redacted(database_url)}: {one_line(error)}"
        ) from error
    remaining = max(deadline - loop.time(), 0.001)
    try:
        async with asyncio.timeout(remaining + _GRACE):
            # The server ends a wait for a lock by itself: a wait cut off by the client would
            # leave its session waiting there until the lock is released.
            await connection.execute(f"SET lock_timeout = {max(round(remaining * 1000), 1)}")
            rows = await connection.fetch("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        rows = None
    except Exception as error:
        connection.terminate()
        raise _unread(error, database_url, timeout) from error
    try:
        await connection.close(timeout=_GRACE)
    except Exception:  # the version is read: a close that fails or lingers changes nothing
        connection.terminate()
    return None if rows is None else frozenset(row["version_num"] for row in rows)


def _unread(error: Exception, database_url: str, timeout: float) -> StorageUnavailableError:
    """Why the schema version could not be read once connected."""
    url = redacted(database_url)
    if isinstance(error, asyncpg.LockNotAvailableError):  # lock_timeout
        return StoreUnreachableError(
            f"{url} did not give its schema version within {timeout:g} s: does another session hold"
            " a lock on the table alembic_version? pg_locks shows it"
        )
    if isinstance(error, TimeoutError):  # not even an error came back
        return StoreUnreachableError(
            f"{url} did not give its schema version within {timeout:g} s: is PostgreSQL overloaded,"
            " or does a firewall drop the connection?"
        )
    return StorageUnavailableError(f"cannot read the schema version of {url}: {one_line(error)}")
