"""Talking to PostgreSQL through asyncpg: every wait bounded, every failure a 503.

One deadline (`timeout`) bounds all the waiting of one call: for a pool connection, for
connecting, and for the statements. A connection that did not finish its statement cleanly (a
timeout, a cancelled request, a broken link) is terminated, never reused nor "reset": resetting a
connection to a black-holed server would wait a second timeout, and asyncpg's cancel request to
it would fail later in a task no one awaits. Any error of the driver or the server becomes
`StorageUnavailableError`, a 503: the database could not do what was asked now. Errors that point
at a bug or a damaged schema rather than an outage (SQLSTATE classes 22, 23, 42) are logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from app.adapters.connect_errors import one_line
from app.domain.errors import NoteError, StorageUnavailableError

# A bulk statement may run for hours (the command line's transfers); the pool's command timeout
# (--db-timeout) is for requests. Within an import's deadline, its statements answer to that alone.
BULK_TIMEOUT = 24 * 3600.0

log = logging.getLogger("app.adapters.postgres")
UNAVAILABLE = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # the deadline passed
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.InternalClientError,  # a connection left mid-protocol by one of the above
    asyncpg.PostgresError,  # anything the server says: shutting down, too many clients, ...
)
_SUSPECT_CLASSES = ("22", "23", "42")  # data, integrity, syntax or access: a bug or a bad schema


def unavailable(error: BaseException) -> StorageUnavailableError:
    """The 503 for an error of the driver or the server, logged when it smells of a bug."""
    if isinstance(error, TimeoutError):
        return StorageUnavailableError("PostgreSQL did not answer in time: it is overloaded or unreachable, or a"
                                       " lock held by another session made the statement wait")
    state = getattr(error, "sqlstate", None) or ""
    if state[:2] in _SUSPECT_CLASSES:
        log.error("PostgreSQL refused a statement: %s %s", state, error)
    return StorageUnavailableError(f"{type(error).__name__}: {one_line(error)}")  # no DETAIL, no HINT: a log line


class Pooled:
    """Statements each on a connection of the pool, each within `timeout` in all."""

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool, self._timeout = pool, timeout

    async def __call__(self, method: str, sql: str, *args: Any, **options: Any) -> Any:
        try:
            # asyncio.timeout is a timer handle; the drivers' own timeout= arguments each wrap a
            # new task on 3.11.
            async with asyncio.timeout(self._timeout):
                connection = await self._pool.acquire()
                try:
                    result = await getattr(connection, method)(sql, *args, **options)
                except BaseException as error:
                    _discard_unless_clean(connection, error)
                    raise
                finally:
                    await self._pool.release(connection)
                return result
        except UNAVAILABLE as error:
            raise unavailable(error) from error


class OnConnection:
    """Statements on the one connection of a transaction; its boundary handles every failure."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def __call__(self, method: str, sql: str, *args: Any, **options: Any) -> Any:
        return await getattr(self._connection, method)(sql, *args, **options)


@asynccontextmanager
async def transaction(
    pool: asyncpg.Pool, timeout: float | None, begin: str = "BEGIN"
) -> AsyncIterator[asyncpg.Connection]:
    """BEGIN ... COMMIT on one connection, all of it within `timeout` (None: a bulk transfer of the
    command line, with no deadline; its statements each say their own); ROLLBACK when the block
    raises an error of the domain or the server, and the connection terminated (which rolls back
    on the server) when it was cancelled, timed out or lost."""
    # BEGIN and COMMIT answer to the transaction's deadline alone, which may be longer than the
    # pool's command timeout: an import's COMMIT flushes the log of all its rows.
    bound = {"timeout": BULK_TIMEOUT if timeout is None else timeout}
    try:
        async with asyncio.timeout(timeout):
            connection = await pool.acquire()
            try:
                await connection.execute(begin, **bound)
                try:
                    yield connection
                except (NoteError, asyncpg.PostgresError):
                    await connection.execute("ROLLBACK")
                    raise
                await connection.execute("COMMIT", **bound)
            except BaseException as error:
                _discard_unless_clean(connection, error)
                raise
            finally:
                await pool.release(connection)
    except UNAVAILABLE as error:
        raise unavailable(error) from error


def _discard_unless_clean(connection: asyncpg.Connection, error: BaseException) -> None:
    """Terminate a connection whose statement did not end with an answer from the server."""
    if not isinstance(error, NoteError | asyncpg.PostgresError):
        connection.terminate()  # the pool opens a fresh one; a half-used link is never reused
