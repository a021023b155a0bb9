"""The SQLite adapter: `sqlite:///relative.db` or `sqlite:////absolute.db`.

Where the work runs, and why: SQLite is an in-process library, so every call blocks the thread
that makes it. A primary-key read or a one-row write in WAL mode takes microseconds, less than
handing it to a thread and back, so they run on the event loop: reads on a connection of their
own, which never waits for a lock (WAL readers do not wait for writers; in the rare case SQLite
still says busy, the read moves to a thread), and writes on the write connection, whose lock is
never waited for on the loop (sqlite_link.py). A listing may scan many index entries (a rare tag,
a search term) and take milliseconds, so `list` runs in a small thread pool, each thread with its
own read connection. `synchronous=NORMAL` in WAL mode keeps every committed write across a crash
of the process (a `kill -9`); only a power loss may lose the last commits.
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

from app.adapters import PoolUsage, sqlite_history, sqlite_transfer
from app.adapters.signals import ChangeSignals, Watch
from app.adapters.sql import SELECT_NOTES, Arg, Statement, recorded_outcome, split_list_statements
from app.adapters.sqlite_link import (
    Writer,
    connect,
    insert_rows,
    is_busy,
    to_the_end_in_a_thread,
    unavailable_on_error,
)
from app.domain.errors import (
    IssuerRevokedError,
    NoteNotFoundError,
    NotInTrashError,
    OwnerExistsError,
    OwnerHasNotesError,
    OwnerNotFoundError,
    OwnerRemovedError,
    StorageUnavailableError,
    TokenNotFoundError,
    VersionConflictError,
)
from app.domain.history import ChangesPage, ChangeToken, Pruned, Retention, Trashed
from app.domain.model import Note, NoteDraft, search_text, stored_note, title_sort_key
from app.domain.owners import NewToken, OwnerSummary, Scope, Token
from app.domain.ports import IDEMPOTENCY_RETENTION
from app.domain.query import ListQuery
from app.domain.timestamps import from_microseconds, to_microseconds
from app.domain.transfer import Imported, OnConflict, Record, Selection
from app.settings import sqlite_path

__all__ = ["open_storage", "sqlite_path"]
READ_THREADS = 4
FTS_MIN_TERM = 3  # the trigram index serves terms of 3 characters or more
Execute = Callable[[str, tuple], Awaitable[sqlite3.Cursor]]  # one statement, a write
Bulk = Callable[[], AbstractAsyncContextManager[sqlite3.Connection]]  # a write transaction's connection


def _note(row: tuple) -> Note:
    id_, title, description, priority, tags, created_by, created_at, updated_at, version = row
    return stored_note(
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

    def all_tags(self, owner: str, tags: Sequence[str], arg: Arg) -> str:
        # `?` is positional: the owner's parameter first, as it comes first in the text
        owned = arg(owner)
        marks = ", ".join(arg(tag) for tag in tags)
        return (
            f"id IN (SELECT note_id FROM note_tags WHERE owner = {owned} AND tag IN ({marks})"
            f" GROUP BY note_id HAVING count(*) = {len(tags)})"
        )

    def all_terms(self, terms: Sequence[str], arg: Arg) -> list[str]:
        # `?` placeholders are positional: the conditions are written in the order their
        # parameters are added.
        conditions = []
        indexed = [t for t in terms if len(t) >= FTS_MIN_TERM]
        if indexed:
            phrases = " ".join('"' + t.replace('"', '""') + '"' for t in indexed)
            conditions.append(f"id IN (SELECT rowid FROM notes_fts WHERE notes_fts MATCH {arg(phrases)})")
        conditions += [f"instr(search_text, {arg(t)}) > 0" for t in terms if len(t) < FTS_MIN_TERM]
        return conditions


_DIALECT = SqliteDialect()
# Every statement on notes names the owner: to it, another owner's note does not exist.
_GET = f"{SELECT_NOTES} WHERE id = ? AND owner = ?"
_EXISTS = "SELECT 1 FROM notes WHERE id = ? AND owner = ?"
# Makes the note only while its owner exists (a process may still trust a removed owner's token).
_INSERT = (
    "INSERT INTO notes (title, description, priority, tags, created_by, created_at, updated_at,"
    " title_key, search_text, owner, version) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, name, 1"
    " FROM owners WHERE name = ?"
)
_UPDATE = (
    "UPDATE notes SET title = ?, description = ?, priority = ?, tags = ?, created_by = ?,"
    " created_at = ?, updated_at = ?, title_key = ?, search_text = ?, version = ?"
    " WHERE id = ? AND owner = ? AND version = ?"
)
_OWNER_EXISTS = "SELECT 1 FROM owners WHERE name = ?"
_RESTORE = (
    "INSERT INTO notes (id, title, description, priority, tags, created_by, created_at, updated_at,"
    " title_key, search_text, owner, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INTO_WITH_ID = (
    "notes (id, title, description, priority, tags, created_by, created_at, updated_at, title_key, search_text,"
    " owner, version)"
)
# The next id of an AUTOINCREMENT table: past the largest ever given, even if since deleted.
_NEXT_ID = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'notes'), 0),"
    " coalesce((SELECT max(id) FROM notes), 0)) + 1"
)


def _row_values(note: Note | NoteDraft) -> tuple:
    return (
        note.title, note.description, note.priority, orjson.dumps(note.tags).decode(),
        note.created_by, to_microseconds(note.created_at), to_microseconds(note.updated_at),
        title_sort_key(note.title), search_text(note.title, note.description),
    )


class Readers:
    """Reads: on the loop on a connection that never waits for a lock, or in a thread pool."""

    def __init__(self, path: str, timeout: float) -> None:
        self._path, self._timeout = path, timeout
        self.db = connect(path, 0)
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []

    async def one(self, sql: str, args: tuple) -> tuple | None:
        try:
            with unavailable_on_error():
                return self.db.execute(sql, args).fetchone()
        except StorageUnavailableError as error:
            if not isinstance(error.__cause__, sqlite3.Error) or not is_busy(error.__cause__):
                raise
        rows = await self.in_snapshot([(sql, [*args, 1])])  # the rare busy read waits off the loop
        return rows[0] if rows else None

    async def in_snapshot(self, statements: Sequence[Statement]) -> Sequence[tuple]:
        """Statements run in order in one read snapshot, in a reader thread; each has its LIMIT
        as its last parameter and is asked only for the rows still missing."""
        deadline = time.monotonic() + self._timeout
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._read, statements, deadline)

    def _read(self, statements: Sequence[Statement], deadline: float) -> Sequence[tuple]:
        local = self._local
        if getattr(local, "connection", None) is None:
            local.connection = connect(self._path, self._timeout)
            # SQLite itself interrupts a statement once `deadline` passes (an OperationalError)
            local.connection.set_progress_handler(lambda: time.monotonic() > local.deadline, 10_000)
            self._connections.append(local.connection)
        local.deadline = deadline
        connection: sqlite3.Connection = local.connection
        rows: builtins.list[tuple] = []
        with unavailable_on_error():
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

    async def all(self, sql: str, args: tuple) -> builtins.list[tuple]:
        """Every row of a small read (owners, tokens), on the loop."""
        with unavailable_on_error():
            return self.db.execute(sql, args).fetchall()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for connection in self._connections:
            connection.close()
        self.db.close()


class SqliteNoteRepository:
    """The notes of one owner; each write one statement through `execute`: in a transaction of
    its own, or in the unit of work's. A note's write is a single statement, so it needs no more."""

    def __init__(
        self, readers: Readers, execute: Execute, bulk: Bulk, owner: str, changed: Callable[[str], None]
    ) -> None:
        self._readers, self._execute, self._bulk, self._owner = readers, execute, bulk, owner
        self._changed = changed  # called with the owner once a write has committed: wakes its followers

    async def add_many(self, drafts: Sequence[NoteDraft]) -> Sequence[Note]:
        """The rows under the write lock, with the ids that the lock makes this one's, written in
        a thread in statements of many rows (`insert_rows`): the rows of a large import (POST
        /import of 60,000 notes) take seconds with their search index and change log, which the
        loop would otherwise spend answering no one. The connection is this transaction's alone
        while it holds the lock."""
        async with self._bulk() as db:
            with unavailable_on_error():
                notes = await to_the_end_in_a_thread(self._insert_many, db, drafts)
        self._changed(self._owner)
        return notes

    def _insert_many(self, db: sqlite3.Connection, drafts: Sequence[NoteDraft]) -> Sequence[Note]:
        if db.execute(_OWNER_EXISTS, (self._owner,)).fetchone() is None:  # under the write lock
            raise OwnerRemovedError(self._owner)
        first = db.execute(_NEXT_ID).fetchone()[0]
        ids = range(first, first + len(drafts))
        owner = self._owner
        rows = [(note_id, *_row_values(draft), owner, 1) for note_id, draft in zip(ids, drafts, strict=True)]
        insert_rows(db, _INTO_WITH_ID, rows)  # few statements of many rows: few waits for the GIL
        return [draft.stored_as(note_id) for note_id, draft in zip(ids, drafts, strict=True)]

    async def add(self, draft: NoteDraft) -> Note:
        cursor = await self._execute(_INSERT, (*_row_values(draft), self._owner))
        if not cursor.rowcount:
            raise OwnerRemovedError(self._owner)
        note_id = cursor.lastrowid
        assert note_id is not None  # an INSERT into a rowid table always sets it
        self._changed(self._owner)
        return draft.stored_as(note_id)

    async def get(self, note_id: int) -> Note:
        row = await self._readers.one(_GET, (note_id, self._owner))
        if row is None:
            raise NoteNotFoundError(note_id)
        return _note(row)

    async def update(self, note: Note) -> Note:
        values = (*_row_values(note), note.version, note.id, self._owner, note.version - 1)
        await self._write_one(_UPDATE, note.id, values)
        self._changed(self._owner)
        return note

    async def delete(self, note_id: int, *, at: datetime, version: int | None = None, purge: bool = False) -> None:
        async with self._bulk() as db:
            deleted = sqlite_history.delete(db, self._owner, note_id, at, version, purge)
        if not deleted:
            await self._raise_missing_or_moved(note_id)
        self._changed(self._owner)

    async def revisions(self, note_id: int, *, newest: int, oldest: int, limit: int) -> Sequence[Note]:
        rows = await self._readers.all(sqlite_history.REVISIONS, (note_id, self._owner, oldest, newest, limit))
        if not rows and await self._readers.one(_EXISTS, (note_id, self._owner)) is None:
            raise NoteNotFoundError(note_id)
        return [sqlite_history.content_note(row[0], row[1:8], row[8]) for row in rows]

    async def trash(self, *, limit: int, after: tuple[datetime, int] | None = None) -> Sequence[Trashed]:
        if after is None:
            rows = await self._readers.all(sqlite_history.TRASH, (self._owner, limit))
        else:
            rows = await self._readers.all(
                sqlite_history.TRASH_AFTER, (self._owner, to_microseconds(after[0]), after[1], limit)
            )
        return [sqlite_history.trashed(row) for row in rows]

    async def in_trash(self, note_id: int) -> Trashed:
        row = await self._readers.one(sqlite_history.TRASHED, (note_id, self._owner))
        if row is None:
            raise NotInTrashError(note_id)
        return sqlite_history.trashed(row)

    async def restore(self, note_id: int, at: datetime, version: int | None = None) -> Note:
        async with self._bulk() as db:
            trashed = sqlite_history.take_from_trash(db, self._owner, note_id, version)
            note = replace(trashed.note, version=trashed.note.version + 1, updated_at=at)
            with unavailable_on_error():
                db.execute(_RESTORE, (note.id, *_row_values(note), self._owner, note.version))
        self._changed(self._owner)
        return note

    async def purge(self, note_id: int, version: int | None = None) -> None:
        async with self._bulk() as db:
            sqlite_history.purge(db, self._owner, note_id, version)

    async def changes(self, since: ChangeToken | None, limit: int) -> ChangesPage:
        position = 0 if since is None else since.position
        rows = await self._readers.all(sqlite_history.CHANGES, (self._owner, position, limit))
        return sqlite_history.changes_page(rows, since, limit)

    async def list(self, query: ListQuery) -> Sequence[Note]:
        rows = await self._readers.in_snapshot(split_list_statements(self._owner, query, _DIALECT))
        return [_note(row) for row in rows]

    async def _write_one(self, sql: str, note_id: int, args: tuple) -> None:
        """A write of one note that must find it, at the version the statement names."""
        if not (await self._execute(sql, args)).rowcount:
            await self._raise_missing_or_moved(note_id)

    async def _raise_missing_or_moved(self, note_id: int) -> None:
        exists = await self._readers.one(_EXISTS, (note_id, self._owner))
        raise VersionConflictError(note_id) if exists else NoteNotFoundError(note_id)


def _nothing(owner: str) -> None:
    """Inside a unit of work: its followers are woken once it commits (`SqliteStore.transaction`)."""


class SqliteIdempotencyStore:
    """Keys in the unit of work's transaction, which holds the database's write lock: a claim
    can never meet another one in flight, so it never says "in use"; a second request with the
    key waits for the first to commit, then gets its outcome."""

    def __init__(self, db: sqlite3.Connection, owner: str) -> None:
        self._db, self._owner = db, owner

    async def claim(self, key: str, fingerprint: str, now: datetime) -> bytes | None:
        with unavailable_on_error():
            row = self._db.execute(
                "SELECT fingerprint, outcome FROM idempotency_records"
                " WHERE owner = ? AND key = ? AND recorded_at >= ?",
                (self._owner, key, to_microseconds(now - IDEMPOTENCY_RETENTION)),
            ).fetchone()
        return recorded_outcome(key, fingerprint, row)

    async def record(self, key: str, fingerprint: str, outcome: bytes, now: datetime) -> None:
        with unavailable_on_error():
            self._db.execute(
                "DELETE FROM idempotency_records WHERE recorded_at < ?",
                (to_microseconds(now - IDEMPOTENCY_RETENTION),),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO idempotency_records (owner, key, fingerprint, recorded_at, outcome)"
                " VALUES (?, ?, ?, ?, ?)",
                (self._owner, key, fingerprint, to_microseconds(now), outcome),
            )


@dataclass(frozen=True, slots=True)
class _Transaction:
    notes: SqliteNoteRepository
    idempotency: SqliteIdempotencyStore


class SqliteStore:
    """One database file: reads on their connections, writes on the one write connection."""

    def __init__(self, path: str, timeout: float) -> None:
        self._path, self._timeout = path, timeout
        self._readers = Readers(path, timeout)
        try:
            self._writer = Writer(path, timeout)
        except BaseException:
            self._readers.close()
            raise
        self.accounts = SqliteAccounts(self._readers, self._writer)
        # Followers are woken by this process's writes, and by others' while any are waiting.
        self._signals = ChangeSignals(first=lambda: self._others.start(), last=lambda: self._others.stop())
        self._others = sqlite_history.OtherProcesses(self._readers.db, self._signals)
        self.pool_usage: PoolUsage | None = None
        self.followers = self._signals.followers
        self.cursor_secret = ""

    async def open(self) -> None:
        row = await self._readers.one("SELECT value FROM store_settings WHERE name = ?", ("cursor_secret",))
        if row is None:
            raise StorageUnavailableError("the database has no cursor secret: run `notes-api migrate`")
        self.cursor_secret = row[0]

    def notes_of(self, owner: str) -> SqliteNoteRepository:
        return SqliteNoteRepository(
            self._readers, self._writer.execute, self._writer.transaction, owner, self._signals.changed
        )

    @asynccontextmanager
    async def transaction(self, owner: str, *, rows: int = 0) -> AsyncIterator[_Transaction]:
        # (its timeout bounds the wait for the write lock, not the writing: `rows` changes nothing)
        async with self._writer.transaction() as db:

            async def in_transaction(sql: str, args: tuple) -> sqlite3.Cursor:
                with unavailable_on_error():
                    return db.execute(sql, args)

            @asynccontextmanager
            async def this_transaction() -> AsyncIterator[sqlite3.Connection]:
                yield db

            yield _Transaction(
                SqliteNoteRepository(self._readers, in_transaction, this_transaction, owner, _nothing),
                SqliteIdempotencyStore(db, owner),
            )
        self._signals.changed(owner)  # committed

    async def check_not_read_only(self) -> None:
        self._writer.check_not_read_only()

    async def check(self) -> None:
        """A real write, so that a full disk or a read-only file system shows here."""
        async with self._writer.transaction() as db:
            with unavailable_on_error():
                db.execute(
                    "INSERT OR REPLACE INTO store_settings (name, value) VALUES ('ready_probe', ?)",
                    (str(time.time()),),
                )

    def watch(self, owner: str) -> AbstractAsyncContextManager[Watch]:
        return self._signals.watch(owner)

    def close_watches(self) -> None:
        self._signals.close()

    async def prune(self, now: datetime, retention: Retention) -> Pruned:
        return await sqlite_history.prune(self._writer, now, retention)

    def export(self, selection: Selection) -> AsyncIterator[Record]:
        return sqlite_transfer.export(self._path, self._timeout, selection)

    async def count_notes(self, selection: Selection) -> int:
        return await sqlite_transfer.count_notes(self._path, self._timeout, selection)

    async def import_records(
        self, records: AsyncIterable[Record], on_conflict: OnConflict, *, at: datetime
    ) -> Imported:
        return await sqlite_transfer.import_records(self._writer, records, on_conflict, at)

    def close(self) -> None:
        self._signals.close()
        self._others.stop()
        self._writer.close()
        self._readers.close()


_TOKEN_COLUMNS = "id, owner, label, scope, created_at, expires_at, last_used_at"


def _token(row: tuple) -> Token:
    id_, owner, label, scope, created_at, expires_at, last_used_at = row
    return Token(
        id=id_, owner=owner, label=label, scope=Scope(scope), created_at=from_microseconds(created_at),
        expires_at=None if expires_at is None else from_microseconds(expires_at),
        last_used_at=None if last_used_at is None else from_microseconds(last_used_at),
    )


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_microseconds(moment)


class SqliteAccounts:
    """Owners and tokens: reads on the loop (few rows), writes in the write transaction."""

    def __init__(self, readers: Readers, writer: Writer) -> None:
        self._readers, self._writer = readers, writer

    async def add_owner(self, name: str, now: datetime) -> None:
        async with self._writer.transaction() as db:
            with unavailable_on_error():
                if db.execute("SELECT 1 FROM owners WHERE name = ?", (name,)).fetchone():
                    raise OwnerExistsError(name)
                db.execute("INSERT INTO owners (name, created_at) VALUES (?, ?)", (name, to_microseconds(now)))

    async def owners(self) -> Sequence[OwnerSummary]:
        rows = await self._readers.all(
            "SELECT name, (SELECT count(*) FROM notes WHERE owner = owners.name),"
            " (SELECT count(*) FROM tokens WHERE owner = owners.name) FROM owners ORDER BY name", ()
        )
        return [OwnerSummary(*row) for row in rows]

    async def remove_owner(self, name: str, *, delete_notes: bool) -> int:
        async with self._writer.transaction() as db:
            with unavailable_on_error():
                _existing(db, name)
                count = db.execute("SELECT count(*) FROM notes WHERE owner = ?", (name,)).fetchone()[0]
                if count and not delete_notes:
                    raise OwnerHasNotesError(name, count)
                with sqlite_history.keeping_last_position(db):
                    for table in ("notes", "trash", "changes", "tokens", "idempotency_records"):
                        db.execute(f"DELETE FROM {table} WHERE owner = ?", (name,))
                db.execute("DELETE FROM owners WHERE name = ?", (name,))
        return count

    async def add_token(self, token: NewToken) -> Token:
        async with self._writer.transaction() as db:
            with unavailable_on_error():
                _existing(db, token.owner)
                if token.issuer_id is not None and db.execute(
                    "SELECT 1 FROM tokens WHERE id = ? AND owner = ?", (token.issuer_id, token.owner)
                ).fetchone() is None:
                    raise IssuerRevokedError()
                cursor = db.execute(
                    "INSERT INTO tokens (owner, label, scope, secret_hash, created_at, expires_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (token.owner, token.label, str(token.scope), token.secret_hash,
                     to_microseconds(token.created_at), _micros(token.expires_at)),
                )
        assert cursor.lastrowid is not None
        return Token(id=cursor.lastrowid, owner=token.owner, label=token.label, scope=token.scope,
                     created_at=token.created_at, expires_at=token.expires_at)

    async def token_by_hash(self, secret_hash: str) -> Token | None:
        row = await self._readers.one(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?", (secret_hash,))
        return None if row is None else _token(row)

    async def tokens(self, owner: str | None = None) -> Sequence[Token]:
        if owner is None:
            rows = await self._readers.all(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY id", ())
        else:
            rows = await self._readers.all(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE owner = ? ORDER BY id", (owner,)
            )
        return [_token(row) for row in rows]

    async def revoke_token(self, token_id: int, owner: str | None = None) -> None:
        if owner is None:
            cursor = await self._writer.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
        else:
            cursor = await self._writer.execute("DELETE FROM tokens WHERE id = ? AND owner = ?", (token_id, owner))
        if not cursor.rowcount:
            raise TokenNotFoundError(token_id)

    async def touch_token(self, token_id: int, used_at: datetime) -> None:
        await self._writer.execute(
            "UPDATE tokens SET last_used_at = ? WHERE id = ?", (to_microseconds(used_at), token_id)
        )

    async def move_notes(self, source: str, target: str, *, at: datetime) -> int:
        async with self._writer.transaction() as db:
            with unavailable_on_error():
                _existing(db, source)
                _existing(db, target)
                if source == target:
                    return 0
                names = {"source": source, "target": target, "at": to_microseconds(at)}
                db.execute(sqlite_history.MOVE_HISTORY, names)
                with sqlite_history.keeping_last_position(db):
                    db.execute(sqlite_history.MOVE_FROM, (source,))
                db.execute(sqlite_history.MOVE, names)
                db.execute("UPDATE trash SET owner = ? WHERE owner = ?", (target, source))
                return db.execute("UPDATE notes SET owner = ? WHERE owner = ?", (target, source)).rowcount


def _existing(db: sqlite3.Connection, name: str) -> None:
    if db.execute("SELECT 1 FROM owners WHERE name = ?", (name,)).fetchone() is None:
        raise OwnerNotFoundError(name)


async def open_storage(database_url: str, *, timeout: float) -> AsyncIterator[SqliteStore]:
    """The container's resource for `sqlite://` URLs; the schema must be migrated already."""
    try:
        store = SqliteStore(sqlite_path(database_url), timeout)
    except sqlite3.Error as error:
        raise StorageUnavailableError(f"cannot open {database_url}: {error}") from error
    try:
        await store.open()
        yield store
    finally:
        store.close()
