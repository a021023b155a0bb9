"""The SQLite adapter: `sqlite:///relative.db` or `sqlite:////absolute.db`.

Where the work runs, and why: SQLite is an in-process library, so every call blocks the thread
that makes it. A primary-key read or a one-row write in WAL mode takes microseconds, less than
handing it to a thread and back, so `get`, `add`, `update`, `delete` and the idempotency keys run
on the event loop, on one connection. A listing may scan many index entries (a rare tag, a search
term) and take milliseconds, so `list` runs in a small thread pool, each thread with its own
read connection; WAL lets those readers work beside the writer. Writes wait for other processes'
locks at most `timeout` seconds (the busy timeout), then answer 503. `synchronous=NORMAL` in WAL
mode keeps every committed write across a crash of the process (a `kill -9`); only a power loss
may lose the last commits.
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import orjson

from app.adapters import Storage
from app.adapters.sql import SELECT_NOTES, Arg, Statement, replay, split_list_statements
from app.domain.errors import (
    NoteNotFoundError,
    StorageUnavailableError,
    VersionConflictError,
)
from app.domain.model import Note, NoteDraft, search_text, title_sort_key
from app.domain.ports import IDEMPOTENCY_LEASE, IDEMPOTENCY_RETENTION, RecordedResponse
from app.domain.query import ListQuery
from app.domain.timestamps import from_microseconds, to_microseconds

READ_THREADS = 4
FTS_MIN_TERM = 3  # the trigram index serves terms of 3 characters or more


def sqlite_path(database_url: str) -> str:
    """`sqlite:///notes.db` -> notes.db, `sqlite:////var/lib/notes.db` -> /var/lib/notes.db."""
    scheme, _, rest = database_url.partition(":///")
    path = unquote(rest.split("?", 1)[0])
    if scheme.lower() != "sqlite" or not path or path == ":memory:":
        raise ValueError(f"{database_url!r} names no database file: use sqlite:///path/to/notes.db")
    return path


def connect(path: str, timeout: float) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, timeout=timeout, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _note(row: tuple) -> Note:
    id_, title, description, priority, tags, created_by, created_at, updated_at, version = row
    return Note(
        id=id_, title=title, description=description, priority=priority,
        tags=tuple(orjson.loads(tags)), created_by=created_by,
        created_at=from_microseconds(created_at), updated_at=from_microseconds(updated_at),
        version=version,
    )


class SqliteDialect:
    def placeholder(self, position: int) -> str:
        return "?"

    def timestamp(self, moment: datetime) -> int:
        return to_microseconds(moment)

    def all_tags(self, tags: Sequence[str], arg: Arg) -> str:
        marks = ", ".join(arg(tag) for tag in tags)
        return (
            f"id IN (SELECT note_id FROM note_tags WHERE tag IN ({marks})"
            f" GROUP BY note_id HAVING count(*) = {len(tags)})"
        )

    def all_terms(self, terms: Sequence[str], arg: Arg) -> list[str]:
        indexed = [t for t in terms if len(t) >= FTS_MIN_TERM]
        conditions = [f"instr(search_text, {arg(t)}) > 0" for t in terms if len(t) < FTS_MIN_TERM]
        if indexed:
            phrases = " ".join('"' + t.replace('"', '""') + '"' for t in indexed)
            conditions.insert(
                0, f"id IN (SELECT rowid FROM notes_fts WHERE notes_fts MATCH {arg(phrases)})"
            )
        return conditions


_DIALECT = SqliteDialect()
_INSERT = (
    "INSERT INTO notes (title, description, priority, tags, created_by, created_at, updated_at,"
    " version, title_key, search_text) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
)
_UPDATE = (
    "UPDATE notes SET title = ?, description = ?, priority = ?, tags = ?, created_by = ?,"
    " created_at = ?, updated_at = ?, version = ?, title_key = ?, search_text = ?"
    " WHERE id = ? AND version = ?"
)


def _row_values(note: Note | NoteDraft) -> tuple:
    return (
        note.title, note.description, note.priority, orjson.dumps(note.tags).decode(),
        note.created_by, to_microseconds(note.created_at), to_microseconds(note.updated_at),
    )


def _keys(note: Note | NoteDraft) -> tuple[str, str]:
    return title_sort_key(note.title), search_text(note.title, note.description)


class SqliteNoteRepository:
    def __init__(self, path: str, timeout: float) -> None:
        self._path, self._timeout = path, timeout
        self._db = connect(path, timeout)
        self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []

    async def add(self, draft: NoteDraft) -> Note:
        with _unavailable_on_error():
            cursor = self._db.execute(_INSERT, (*_row_values(draft), *_keys(draft)))
        note_id = cursor.lastrowid
        assert note_id is not None  # an INSERT into a rowid table always sets it
        return draft.stored_as(note_id)

    async def get(self, note_id: int) -> Note:
        with _unavailable_on_error():
            row = self._db.execute(f"{SELECT_NOTES} WHERE id = ?", (note_id,)).fetchone()
        if row is None:
            raise NoteNotFoundError(note_id)
        return _note(row)

    async def update(self, note: Note) -> Note:
        values = (*_row_values(note), note.version, *_keys(note), note.id, note.version - 1)
        with _unavailable_on_error():
            changed = self._db.execute(_UPDATE, values).rowcount
        if not changed:
            self._raise_missing_or_moved(note.id)
        return note

    async def delete(self, note_id: int, *, version: int | None = None) -> None:
        with _unavailable_on_error():
            if version is None:
                changed = self._db.execute("DELETE FROM notes WHERE id = ?", (note_id,)).rowcount
            else:
                changed = self._db.execute(
                    "DELETE FROM notes WHERE id = ? AND version = ?", (note_id, version)
                ).rowcount
        if not changed:
            self._raise_missing_or_moved(note_id)

    async def list(self, query: ListQuery) -> Sequence[Note]:
        statements = split_list_statements(query, _DIALECT)
        deadline = time.monotonic() + self._timeout
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._readers, self._read, statements, deadline)
        return [_note(row) for row in rows]

    async def check(self) -> None:
        with _unavailable_on_error():
            self._db.execute("SELECT 1 FROM notes LIMIT 1").fetchall()

    def close(self) -> None:
        self._readers.shutdown(wait=True)
        for connection in self._reader_connections:
            connection.close()
        self._db.close()

    def _read(self, statements: Sequence[Statement], deadline: float) -> Sequence[tuple]:
        """In a reader thread: the page's statements in one snapshot, each asked for what is still
        missing; SQLite itself interrupts them once `deadline` passes (an OperationalError: 503)."""
        local = self._local
        if getattr(local, "connection", None) is None:
            local.connection = connect(self._path, self._timeout)
            local.connection.set_progress_handler(lambda: time.monotonic() > local.deadline, 10_000)
            self._reader_connections.append(local.connection)
        local.deadline = deadline
        connection: sqlite3.Connection = local.connection
        rows: builtins.list[tuple] = []
        with _unavailable_on_error():
            connection.execute("BEGIN")
            try:
                for sql, args in statements:
                    wanted = args[-1] - len(rows)
                    if wanted <= 0:
                        break
                    rows += connection.execute(sql, [*args[:-1], wanted]).fetchall()
            finally:
                if connection.in_transaction:
                    connection.execute("COMMIT")
        return rows

    def _raise_missing_or_moved(self, note_id: int) -> None:
        with _unavailable_on_error():
            exists = self._db.execute("SELECT 1 FROM notes WHERE id = ?", (note_id,)).fetchone()
        raise VersionConflictError(note_id) if exists else NoteNotFoundError(note_id)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db


class _unavailable_on_error:
    """Turn the driver's operational errors (locked, I/O, unreadable file) into a 503."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, tb: Any) -> None:
        # Exactly these two: their other subclasses (IntegrityError, ProgrammingError) are bugs.
        if type(error) in (sqlite3.OperationalError, sqlite3.DatabaseError):
            raise StorageUnavailableError(str(error)) from error


class SqliteIdempotencyStore:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    async def claim(self, key: str, fingerprint: str, now: datetime) -> RecordedResponse | None:
        micros = to_microseconds(now)
        with _unavailable_on_error():
            self._db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes too
            try:
                self._db.execute(
                    "DELETE FROM idempotency_keys WHERE claimed_at < ?",
                    (micros - _micros(IDEMPOTENCY_RETENTION),),
                )
                row = self._db.execute(
                    "SELECT fingerprint, claimed_at, status, headers, body FROM idempotency_keys"
                    " WHERE key = ?",
                    (key,),
                ).fetchone()
                stale = row is not None and row[2] is None and micros - row[1] > _micros(IDEMPOTENCY_LEASE)
                if row is None or stale:
                    self._db.execute(
                        "INSERT OR REPLACE INTO idempotency_keys (key, fingerprint, claimed_at)"
                        " VALUES (?, ?, ?)",
                        (key, fingerprint, micros),
                    )
                    row = None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return replay(key, fingerprint, row[0], row[2], row[3], row[4]) if row else None

    async def finish(self, key: str, response: RecordedResponse, now: datetime) -> None:
        with _unavailable_on_error():
            self._db.execute(
                "UPDATE idempotency_keys SET status = ?, headers = ?, body = ? WHERE key = ?",
                (response.status, orjson.dumps(response.headers).decode(), response.body, key),
            )

    async def release(self, key: str) -> None:
        with _unavailable_on_error():
            self._db.execute("DELETE FROM idempotency_keys WHERE key = ? AND status IS NULL", (key,))


def _micros(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1_000_000)


async def open_storage(database_url: str, *, timeout: float) -> AsyncIterator[Storage]:
    """The container's resource for `sqlite://` URLs; the schema must be migrated already."""
    try:
        notes = SqliteNoteRepository(sqlite_path(database_url), timeout)
    except sqlite3.Error as error:
        raise StorageUnavailableError(f"cannot open {database_url}: {error}") from error
    try:
        yield Storage(notes=notes, idempotency=SqliteIdempotencyStore(notes.connection))
    finally:
        notes.close()
