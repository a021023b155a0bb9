"""SQLite connections, and the one write connection of a process, whose lock is never waited
for on the event loop.

SQLite allows one writer at a time per database file, across processes: a backup, a second
worker or a `sqlite3` shell may hold the lock for seconds. A write first asks for the lock without
waiting (`busy_timeout` 0), on the loop, which costs microseconds when it is free. Only when
another process holds it does a thread wait for it, for what is left of `timeout`; the loop goes
on answering reads (WAL readers never wait for a writer) and `/healthz` meanwhile. Once the lock
is held, the transaction's statements run on the loop again: with the lock, nothing waits.

Nor does a write copy the WAL back into the database file on the loop: SQLite's automatic
checkpoint would, in the commit that crosses 1,000 pages, holding every request for the time it
takes to copy them and fsync. The write connection has it off, and `Checkpoints` runs it in a
thread instead (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from app.domain.errors import StorageReadOnlyError, StorageUnavailableError

T = TypeVar("T")

SQLITE_BUSY = 5  # the primary result code of "database is locked" and its extended forms
BUSY = "the database is busy: another process has been writing to it for longer than the wait allows; try again"
SQLITE_READONLY = 8  # the primary result code of "attempt to write a readonly database"
SQLITE_READONLY_ROLLBACK = 776  # a hot journal, which a read-only connection cannot roll back


def read_only(path: str | None = None) -> str:
    """What to do about a SQLite database this process may not write. Unlike most reasons for a
    503 it does not pass by itself: a connection that SQLite opened read-only stays so after the
    file becomes writable. The -wal and -shm files are named because a run refused for a
    read-only file leaves them behind with its mode, and they refuse the next run once the file
    is mended."""
    database = "the SQLite database" if path is None else f"the SQLite database {path}"
    return (
        f"{database} is read-only to this process: make the file, the -wal and -shm files beside it, and the"
        " directory that holds them writable by the user it runs as (on a file system mounted read-write),"
        " then run it again"
    )


# Rows written (by statements and their triggers) between two checkpoints: a row is a page or a
# few with its indexes, so about the 1,000 pages of SQLite's own automatic checkpoint.
CHECKPOINT_ROWS = 1000
# WAL pages past which the next checkpoint also restarts the WAL from its beginning: passive
# checkpoints alone never catch up with writes that never pause, and the WAL would only grow.
RESTART_PAGES = 10_000
RESTART_BACKLOG = 1_000  # pages a restart may have left to copy while this process's writes wait
WAL_KEEP_BYTES = 64 * 2**20  # a WAL file that grew past this (a long read held it) shrinks back
log = logging.getLogger("app.adapters.sqlite")


def connect(path: str, busy_seconds: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are begun explicitly), WAL, NORMAL sync."""
    if not Path(path).parent.is_dir():
        raise StorageUnavailableError(f"the directory of {path} does not exist; create it first")
    connection = sqlite3.connect(
        path, timeout=busy_seconds, isolation_level=None, check_same_thread=False,
        cached_statements=256,
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def is_busy(error: sqlite3.Error) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == SQLITE_BUSY


SQLITE_CANTOPEN = 14  # "unable to open database file": also what a directory SQLite may not write gives
REFUSED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})  # the errors of opening a file one may not write


def refused_as_read_only(error: BaseException, path: str) -> bool:
    """Whether `error`, met opening or writing the SQLite file at `path`, means this process may
    not write it. SQLite says so itself for the file, but for a directory it may not write (which
    must hold the -wal and -shm files) it may only say it cannot open the file, as may the system:
    then it is asked whether the file, those two or the directory are writable."""
    if isinstance(error, sqlite3.Error):
        if is_read_only(error):
            return True
        if (getattr(error, "sqlite_errorcode", 0) & 0xFF) != SQLITE_CANTOPEN:
            return False
    elif not (isinstance(error, OSError) and error.errno in REFUSED):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    present = [f for f in (path, f"{path}-wal", f"{path}-shm") if os.path.lexists(f)]
    if not _may(directory, os.X_OK) or not all(os.path.isfile(f) and _may(f, os.R_OK) for f in present):
        return False  # unreadable, or not a file: no mode of writing would mend it
    return not _may(directory, os.W_OK) or not all(_may(f, os.W_OK) for f in present)


def _may(path: str, mode: int) -> bool:
    """access(2) as this process's effective user (the one that opens files), where it is known."""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def is_read_only(error: sqlite3.Error) -> bool:
    """A write refused because the file, its directory or the file system is read-only (not a
    hot journal left to roll back, which schema_version names with its own fix)."""
    code = getattr(error, "sqlite_errorcode", 0)
    return (code & 0xFF) == SQLITE_READONLY and code != SQLITE_READONLY_ROLLBACK


# SQLite rolls a transaction back by itself on some errors (a full disk, out of memory): what the
# block writes after that would commit statement by statement, outside it.
ENDED = "SQLite rolled the transaction back (a full disk?): nothing was written"


def in_the_transaction(db: sqlite3.Connection) -> None:
    """Before each part of a long transaction's work: that it is still open."""
    if not db.in_transaction:
        raise StorageUnavailableError(ENDED)


class unavailable_on_error:
    """Turn the driver's operational errors (locked, I/O, full, read-only) into a 503."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, tb: Any) -> None:
        # Exactly these two: their other subclasses (IntegrityError, ProgrammingError) are bugs.
        if isinstance(error, sqlite3.Error) and type(error) in (sqlite3.OperationalError, sqlite3.DatabaseError):
            raise unavailable(error) from error


def unavailable(error: sqlite3.Error, path: str | None = None) -> StorageUnavailableError:
    """The 503 that one of the driver's operational errors is; `path`, the database's, where known."""
    if is_busy(error):  # ("database is locked")
        return StorageUnavailableError(BUSY)
    if is_read_only(error):
        return StorageReadOnlyError(read_only(path))
    return StorageUnavailableError(str(error))


class Checkpoints:
    """WAL checkpoints off the event loop, on a connection and in a thread of their own (sqlite3
    lets go of the GIL while SQLite works): after every CHECKPOINT_ROWS rows written, a passive
    one, which waits for no one and copies what it can. Past RESTART_PAGES of WAL, a restart: a
    passive one first, then, if it left little to copy (a reader can pin the WAL, an export for
    minutes), one that takes the writes' `turn` (this process's writes wait for it, off the loop,
    as for a transaction of its own), copies the rest and lets the next write start the WAL from
    its beginning. It waits for no one else (busy: tried again after the next passive one).

    Measured here on 6,000 updates of a 100,000-note store, on one core: a write's mean fell
    from 0.52-0.65 ms to 0.40-0.44 ms, its p99 from 12-16 ms to 2.8-3.4 ms. A failed checkpoint
    (a full disk) is logged and tried again later: the WAL keeps every committed write meanwhile."""

    def __init__(self, path: str, turn: asyncio.Lock) -> None:
        self._path, self._turn = path, turn
        self._db: sqlite3.Connection | None = None  # the thread's, opened at the first checkpoint
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._running: Future[int | None] | asyncio.Task[None] | None = None
        self._rows_at_last = 0  # the write connection's total_changes when the last one began
        self._restart_due = False  # set in the thread, read on the loop
        self._closed = False

    def wrote(self, total_changes: int) -> None:
        """On the loop, after a write committed; `total_changes`: the write connection's count
        of rows written."""
        if self._closed or (self._running is not None and not self._running.done()):
            return
        if self._restart_due:
            self._restart_due = False
            self._running = asyncio.get_running_loop().create_task(self._restart(), name="sqlite-restart")
        elif total_changes - self._rows_at_last >= CHECKPOINT_ROWS:
            self._rows_at_last = total_changes
            self._running = self._thread.submit(self._checkpoint, "PASSIVE", True)

    async def _restart(self) -> None:
        try:
            backlog = await asyncio.wrap_future(self._thread.submit(self._checkpoint, "PASSIVE", False))
            if backlog is not None and backlog <= RESTART_BACKLOG and not self._closed:
                async with self._turn:
                    if not self._closed:
                        await asyncio.wrap_future(self._thread.submit(self._checkpoint, "RESTART", False))
        except Exception:  # not one expected: logged, never lost in the task
            log.exception("could not restart the WAL of %s", self._path)

    def _checkpoint(self, mode: str, periodic: bool) -> int | None:
        """In the thread: the pages it left to copy, or None if it could not run."""
        try:
            if self._db is None:
                self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=0)
                self._db.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
            busy, pages, copied = self._db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except Exception as error:
            log.warning("could not checkpoint %s: %s (tried again after the next writes)", self._path, error)
            return None
        if periodic:  # (a restart's own passive one does not ask for another: no spin while pinned)
            self._restart_due = pages >= RESTART_PAGES
        return None if busy else pages - copied

    def close(self) -> None:
        """After a checkpoint in flight has ended; a restart not begun yet will not begin."""
        self._closed = True
        if isinstance(self._running, asyncio.Task):
            self._running.cancel()
        self._thread.shutdown(wait=True)
        if self._db is not None:
            self._db.close()


class Writer:
    """The write connection, taken in turns by this process's transactions."""

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self.db = connect(path, 0)
        self.db.execute("PRAGMA wal_autocheckpoint = 0")  # Checkpoints does it, off the loop
        self.db.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")  # applied when a write restarts it
        self._timeout = timeout
        self._turn = asyncio.Lock()
        self._checkpoints = Checkpoints(path, self._turn)
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix="sqlite-lock")

    def check_not_read_only(self) -> None:
        """Raise `StorageReadOnlyError` if SQLite opened the connection read-only (as it does,
        silently, for a file or a directory this process may not write): a row written and
        rolled back at once, on the loop, while no transaction of this process holds the
        connection. A lock another process holds makes it fail at once (busy), which is no
        answer: it passes."""
        if self._turn.locked():
            return  # a transaction of this process is writing
        try:
            self.db.execute("BEGIN IMMEDIATE")  # (in WAL mode it begins on a read-only file too)
            try:
                self.db.execute("INSERT OR REPLACE INTO store_settings (name, value) VALUES ('ready_probe', '')")
            finally:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
        except sqlite3.Error as error:
            if is_read_only(error):
                raise unavailable(error, self._path) from error

    async def execute(self, sql: str, args: tuple) -> sqlite3.Cursor:
        """One statement in a transaction of its own. While no transaction of this process holds
        the connection, it runs at once in autocommit mode, a single call on the loop; a
        statement that finds the lock held fails at once without having written anything, and
        is then run in a transaction that waits for the lock off the loop."""
        if not self._turn.locked():
            try:
                with unavailable_on_error():
                    done = self.db.execute(sql, args)
                self._checkpoints.wrote(self.db.total_changes)
                return done
            except StorageReadOnlyError as error:
                raise StorageReadOnlyError(read_only(self._path)) from error.__cause__
            except StorageUnavailableError as error:
                if not isinstance(error.__cause__, sqlite3.Error) or not is_busy(error.__cause__):
                    raise
        async with self.transaction() as db:
            with unavailable_on_error():
                return db.execute(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` when the block raises. The wait for this
        process's turn and for another process's lock share one deadline of `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        if self._turn.locked():
            try:
                async with asyncio.timeout_at(deadline):
                    await self._turn.acquire()
            except TimeoutError:
                raise StorageUnavailableError("the database is busy; try again") from None
        else:
            await self._turn.acquire()  # free: taken at once, without a timer
        try:
            await self._begin(loop, deadline)
        except asyncio.CancelledError:
            raise  # the turn went to the thread still waiting for the lock (`_abandon`)
        except BaseException:
            self._turn.release()
            raise
        try:
            yield self.db
        except BaseException as error:
            if self.db.in_transaction:  # (SQLite itself rolls back on some errors: a full disk)
                with unavailable_on_error():
                    self.db.execute("ROLLBACK")
            if isinstance(error, StorageReadOnlyError):
                raise StorageReadOnlyError(read_only(self._path)) from error.__cause__
            raise
        else:
            if not self.db.in_transaction:  # rolled back by SQLite, and the block went on
                raise StorageUnavailableError(ENDED)
            self._commit()
        finally:
            self._turn.release()

    async def _begin(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Begin, waiting for another process's lock in a thread when it is held. A caller
        cancelled mid-wait hands its turn to the waiting thread, which rolls back and gives the
        turn up once its wait is over."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if not is_busy(error):
                raise unavailable(error, self._path) from error
        except sqlite3.ProgrammingError as error:  # closed: the store is closing
            raise StorageUnavailableError("the store is closing") from error
        waiting = loop.run_in_executor(self._waiter, self._begin_waiting, deadline - loop.time())
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            waiting.add_done_callback(self._abandon)
            raise

    def _begin_waiting(self, seconds: float) -> None:
        """In the lock thread: BEGIN IMMEDIATE with a busy timeout of `seconds`."""
        self.db.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000))}")
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise unavailable(error, self._path) from error
        finally:
            self.db.execute("PRAGMA busy_timeout = 0")

    def _commit(self) -> None:
        try:
            with unavailable_on_error():
                self.db.execute("COMMIT")
        finally:
            if self.db.in_transaction:  # a commit that failed (a full disk) is not left open
                self.db.execute("ROLLBACK")
        self._checkpoints.wrote(self.db.total_changes)

    def _abandon(self, waiting: asyncio.Future[None]) -> None:
        if not waiting.cancelled() and waiting.exception() is None:
            self.db.execute("ROLLBACK")
        self._turn.release()

    def close(self) -> None:
        self._waiter.shutdown(wait=True)
        self._checkpoints.close()
        self.db.close()


async def to_the_end_in_a_thread(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on a thread, which a cancelled caller still waits for before it is
    cancelled: the thread works on the write connection inside the caller's transaction, and the
    ROLLBACK that the cancellation brings must come after its last statement, not beside it (or
    the statements after it would commit on their own)."""
    done = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        while not done.done():  # however often it is cancelled meanwhile: the thread cannot be stopped
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([done])
        raise


def insert_rows(db: sqlite3.Connection, into: str, rows: Sequence[tuple]) -> None:
    """`INSERT INTO {into} VALUES (?, ?), (?, ?), ...`: many rows in one statement, so one call
    into SQLite that lets go of the GIL for the whole batch, where `executemany` takes it back
    after each row, and waits for it whenever the loop's thread is busy (converting the next
    batch of an import, answering requests). As many rows a statement as SQLite takes
    parameters (32,766 by default)."""
    if not rows:
        return
    columns = len(rows[0])
    most = max(1, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // columns)
    for start in range(0, len(rows), most):
        part = rows[start:start + most]
        db.execute(f"INSERT INTO {into} VALUES {_values(len(part), columns)}", [value for row in part for value in row])


@functools.lru_cache(maxsize=8)  # the full batches' few sizes; a last, partial batch's is of one import
def _values(rows: int, columns: int) -> str:
    return ", ".join([f"({', '.join('?' * columns)})"] * rows)
