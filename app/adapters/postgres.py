"""The PostgreSQL adapter: `postgresql://` or `postgres://` URLs, on an asyncpg pool.

The hot path calls asyncpg directly with fixed SQL; asyncpg prepares each statement once per
connection and keeps it in its statement cache. How waits are bounded and failures become 503s is
in postgres_link.py; the pool replaces broken connections by itself, so the service recovers when
the database does, without a restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from app.adapters import postgres_history, postgres_transfer
from app.adapters.postgres_link import BULK_TIMEOUT, UNAVAILABLE, OnConnection, Pooled, transaction
from app.adapters.signals import Watch
from app.adapters.sql import SELECT_NOTES, Arg, list_statement, recorded_outcome
from app.domain.errors import (
    IdempotencyKeyInUseError,
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
from app.domain.timestamps import aware
from app.domain.transfer import Imported, OnConflict, Record, Selection


class Statements(Protocol):
    async def __call__(self, method: str, sql: str, *args: Any, **options: Any) -> Any: ...


class PostgresDialect:
    def placeholder(self, position: int) -> str:
        return f"${position}"

    def timestamp(self, moment: datetime) -> datetime:
        return moment

    def all_tags(self, owner: str, tags: Sequence[str], arg: Arg) -> str:
        return f"tags @> {arg(list(tags))}::text[]"  # served by the GIN index on tags

    def all_terms(self, terms: Sequence[str], arg: Arg) -> list[str]:
        # LIKE '%term%' is served by the trigram GIN index; the text is case-folded already.
        return [f"search_text LIKE {arg('%' + _escape_like(t) + '%')}" for t in terms]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_DIALECT = PostgresDialect()
# Every statement on notes names the owner: to it, another owner's note does not exist.
_GET = f"{SELECT_NOTES} WHERE id = $1 AND owner = $2"
_EXISTS = "SELECT 1 FROM notes WHERE id = $1 AND owner = $2"
# An import's transaction gets --db-timeout plus a second for each BULK_ROWS_PER_SECOND notes
# (POST /import wrote 60,000 notes, 21 MB, in 7.5 to 8 s on this 2-core machine: they get 60 s
# more, so that a machine busy with other work still gets through; at 5,000 a second, 30,000
# notes were a 503 there). Its bulk statements answer to that deadline alone.
BULK_ROWS_PER_SECOND = 1_000
# the rows a move or removal of an owner's notes writes, about: their notes, the trash, the log
_ROWS_OF_OWNER = """SELECT (SELECT count(*) FROM notes WHERE owner = $1) + (SELECT count(*) FROM trash WHERE owner = $1)
    + (SELECT count(*) FROM changes WHERE owner = $1)"""
# A page of the log is read again while its bound is a transaction that ended since its snapshot
# (`postgres_history`, note 2): each time needs another transaction to end in that instant.
READS_OF_A_PAGE = 5
_NEXT_IDS = "SELECT nextval(pg_get_serial_sequence('notes', 'id')) FROM generate_series(1, $1)"
_COPY_COLUMNS = ("id", "owner", "title", "description", "priority", "tags", "created_by", "created_at",
                 "updated_at", "version", "title_key", "search_text")


def _note(row: asyncpg.Record) -> Note:
    return stored_note(
        id=row[0], title=row[1], description=row[2], priority=row[3], tags=tuple(row[4]),
        created_by=row[5], created_at=aware(row[6]), updated_at=aware(row[7]), version=row[8],
    )


def _values(note: Note | NoteDraft) -> tuple:
    return (
        note.title, note.description, note.priority, list(note.tags), note.created_by,
        note.created_at, note.updated_at,
    )


def _keys(note: Note | NoteDraft) -> tuple[str, str]:
    return title_sort_key(note.title), search_text(note.title, note.description)


class PostgresNoteRepository:
    """The notes of one owner. Each write is one statement that also writes its row of the log
    (postgres_history.py)."""

    def __init__(self, run: Statements, owner: str, changed: Callable[[str], None]) -> None:
        self._run, self._owner = run, owner
        self._changed = changed  # called with the owner once a write has committed: wakes its followers

    async def add_many(self, drafts: Sequence[NoteDraft]) -> Sequence[Note]:
        """Ids taken from the sequence first, then the rows in one `COPY`. Its statements are
        bounded by their transaction's time (`transaction(rows=...)`), not each by the pool's
        command timeout, which is a request's; and the owner's row is held to that transaction's
        end (outside one, only while its first statement runs)."""
        if not drafts:
            return []
        bound = {"timeout": BULK_TIMEOUT}
        if not await self._run("fetchval", postgres_history.HOLD_OWNER, self._owner):
            raise OwnerRemovedError(self._owner)
        ids = [row[0] for row in await self._run("fetch", _NEXT_IDS, len(drafts), **bound)]
        rows = [(note_id, self._owner, *_values(d), 1, *_keys(d)) for note_id, d in zip(ids, drafts, strict=True)]
        await self._run("copy_records_to_table", "notes", records=rows, columns=_COPY_COLUMNS, **bound)
        await self._run("execute", postgres_history.LOG_COPIED, ids, **bound)
        self._changed(self._owner)
        return [draft.stored_as(note_id) for note_id, draft in zip(ids, drafts, strict=True)]

    async def add(self, draft: NoteDraft) -> Note:
        note_id = await self._run("fetchval", postgres_history.INSERT, *_values(draft), *_keys(draft), self._owner)
        if note_id is None:
            raise OwnerRemovedError(self._owner)
        self._changed(self._owner)
        return draft.stored_as(note_id)

    async def get(self, note_id: int) -> Note:
        row = await self._run("fetchrow", _GET, note_id, self._owner)
        if row is None:
            raise NoteNotFoundError(note_id)
        return _note(row)

    async def update(self, note: Note) -> Note:
        status = await self._run(
            "execute", postgres_history.UPDATE, *_values(note), note.version, *_keys(note), note.id, self._owner,
            note.version - 1,
        )
        if status == "INSERT 0 0":
            await self._raise_missing_or_moved(note.id)
        self._changed(self._owner)
        return note

    async def delete(self, note_id: int, *, at: datetime, version: int | None = None, purge: bool = False) -> None:
        status = await self._run("execute", postgres_history.DELETE, note_id, self._owner, at, purge, version)
        if status == "INSERT 0 0":
            await self._raise_missing_or_moved(note_id)
        self._changed(self._owner)

    async def revisions(self, note_id: int, *, newest: int, oldest: int, limit: int) -> Sequence[Note]:
        rows = await self._run("fetch", postgres_history.REVISIONS, note_id, self._owner, oldest, newest, limit)
        if not rows and await self._run("fetchval", _EXISTS, note_id, self._owner) is None:
            raise NoteNotFoundError(note_id)
        return [postgres_history.content_note(row) for row in rows]

    async def trash(self, *, limit: int, after: tuple[datetime, int] | None = None) -> Sequence[Trashed]:
        if after is None:
            rows = await self._run("fetch", postgres_history.TRASH, self._owner, limit)
        else:
            rows = await self._run("fetch", postgres_history.TRASH_AFTER, self._owner, *after, limit)
        return [postgres_history.trashed(row) for row in rows]

    async def in_trash(self, note_id: int) -> Trashed:
        row = await self._run("fetchrow", postgres_history.TRASHED, note_id, self._owner)
        if row is None:
            raise NotInTrashError(note_id)
        return postgres_history.trashed(row)

    async def restore(self, note_id: int, at: datetime, version: int | None = None) -> Note:
        row = await self._run("fetchrow", postgres_history.RESTORE, note_id, self._owner, at, version)
        if row is None:
            if version is not None and await self._run("fetchval", postgres_history.IN_TRASH, note_id, self._owner):
                raise VersionConflictError(note_id)
            raise NotInTrashError(note_id)
        self._changed(self._owner)
        return postgres_history.content_note(row)

    async def purge(self, note_id: int, version: int | None = None) -> None:
        if await self._run("fetchval", postgres_history.PURGE, note_id, self._owner, version):
            return
        if version is not None and await self._run("fetchval", postgres_history.IN_TRASH, note_id, self._owner):
            raise VersionConflictError(note_id)
        raise NotInTrashError(note_id)

    async def changes(self, since: ChangeToken | None, limit: int) -> ChangesPage:
        start = since or ChangeToken()
        for _ in range(READS_OF_A_PAGE):
            rows = await self._run(
                "fetch", postgres_history.CHANGES, self._owner, str(start.key), start.position, limit
            )
            if not postgres_history.read_again(rows, limit):
                break
        return postgres_history.changes_page(rows, since, limit)

    async def list(self, query: ListQuery) -> Sequence[Note]:
        sql, args = list_statement(self._owner, query, _DIALECT)
        return [_note(row) for row in await self._run("fetch", sql, *args)]

    async def _raise_missing_or_moved(self, note_id: int) -> None:
        exists = await self._run("fetchval", _EXISTS, note_id, self._owner)
        raise VersionConflictError(note_id) if exists else NoteNotFoundError(note_id)


def _nothing(owner: str) -> None:
    """Inside a unit of work: its followers are woken once it commits (`PostgresStore.transaction`)."""


_RECORD = """
INSERT INTO idempotency_records (owner, key, fingerprint, recorded_at, outcome)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (owner, key) DO UPDATE
    SET fingerprint = excluded.fingerprint, recorded_at = excluded.recorded_at,
        outcome = excluded.outcome
"""


def _key_lock(owner: str, key: str) -> int:
    """The advisory lock of an owner's idempotency key: a signed 64-bit hash of both."""
    digest = hashlib.blake2b(f"{owner}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresIdempotencyStore:
    """Keys on the unit of work's connection. A claim takes the key's transaction-scoped
    advisory lock without waiting: another transaction holding it is a request with the key
    still in flight (409). The lock is released only after that transaction's commit is visible,
    so the next claim finds its record."""

    def __init__(
        self, connection: asyncpg.Connection, purge_due: Callable[[datetime], bool], owner: str
    ) -> None:
        self._db, self._purge_due, self._owner = connection, purge_due, owner

    async def claim(self, key: str, fingerprint: str, now: datetime) -> bytes | None:
        if not await self._db.fetchval("SELECT pg_try_advisory_xact_lock($1)", _key_lock(self._owner, key)):
            raise IdempotencyKeyInUseError(key)
        row = await self._db.fetchrow(
            "SELECT fingerprint, outcome FROM idempotency_records"
            " WHERE owner = $1 AND key = $2 AND recorded_at >= $3",
            self._owner, key, now - IDEMPOTENCY_RETENTION,
        )
        return recorded_outcome(key, fingerprint, row)

    async def record(self, key: str, fingerprint: str, outcome: bytes, now: datetime) -> None:
        await self._db.execute(_RECORD, self._owner, key, fingerprint, now, outcome)
        if self._purge_due(now):
            await self._db.execute(
                "DELETE FROM idempotency_records WHERE recorded_at < $1", now - IDEMPOTENCY_RETENTION
            )


@dataclass(frozen=True, slots=True)
class _Transaction:
    notes: PostgresNoteRepository
    idempotency: PostgresIdempotencyStore


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool, timeout: float, cursor_secret: str, database_url: str) -> None:
        self._pool, self._timeout = pool, timeout
        self._run = Pooled(pool, timeout)
        self._notifications = postgres_history.Notifications(database_url, timeout)
        self.accounts = PostgresAccounts(self._run, pool, timeout)
        self.cursor_secret = cursor_secret
        self._last_purge: datetime | None = None

    def pool_usage(self) -> tuple[int, int]:
        return self._pool.get_size(), self._pool.get_idle_size()

    def followers(self) -> tuple[int, int]:
        return self._notifications.signals.followers()

    def notes_of(self, owner: str) -> PostgresNoteRepository:
        return PostgresNoteRepository(self._run, owner, self._notifications.changed)

    @asynccontextmanager
    async def transaction(self, owner: str, *, rows: int = 0) -> AsyncIterator[_Transaction]:
        # --db-timeout is for a request's few statements; an import's rows get their time on top
        async with transaction(self._pool, self._timeout + rows / BULK_ROWS_PER_SECOND) as connection:
            yield _Transaction(
                PostgresNoteRepository(OnConnection(connection), owner, _nothing),
                PostgresIdempotencyStore(connection, self._purge_due, owner),
            )
        self._notifications.changed(owner)  # committed

    def watch(self, owner: str) -> AbstractAsyncContextManager[Watch]:
        return self._notifications.signals.watch(owner)

    def close_watches(self) -> None:
        self._notifications.signals.close()

    async def prune(self, now: datetime, retention: Retention) -> Pruned:
        return await postgres_history.prune(self._pool, self._timeout, now, retention)

    async def close(self) -> None:
        await self._notifications.close()

    async def check_not_read_only(self) -> None:
        return None  # a standby or a read-only transaction default may change: `check` says so

    async def check(self) -> None:
        writable = await self._run(
            "fetchval",
            "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
        )
        if not writable:
            raise StorageUnavailableError("PostgreSQL is read-only (a standby, or in recovery)")

    def export(self, selection: Selection) -> AsyncIterator[Record]:
        return postgres_transfer.export(self._pool, selection)

    async def count_notes(self, selection: Selection) -> int:
        return await postgres_transfer.count_notes(self._pool, selection)

    async def import_records(
        self, records: AsyncIterable[Record], on_conflict: OnConflict, *, at: datetime
    ) -> Imported:
        return await postgres_transfer.import_records(self._pool, records, on_conflict, at)

    def _purge_due(self, now: datetime) -> bool:
        """Expired idempotency records are dropped at most once a minute per process."""
        if self._last_purge is not None and abs((now - self._last_purge).total_seconds()) < 60:
            return False
        self._last_purge = now
        return True


_TOKEN_COLUMNS = "id, owner, label, scope, created_at, expires_at, last_used_at"


def _token(row: asyncpg.Record) -> Token:
    return Token(id=row[0], owner=row[1], label=row[2], scope=Scope(row[3]), created_at=row[4],
                 expires_at=row[5], last_used_at=row[6])


class PostgresAccounts:
    """Owners and tokens; a change of several rows is one transaction."""

    def __init__(self, run: Pooled, pool: asyncpg.Pool, timeout: float) -> None:
        self._run, self._pool, self._timeout = run, pool, timeout

    async def add_owner(self, name: str, now: datetime) -> None:
        added = await self._run(
            "execute", "INSERT INTO owners (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", name, now
        )
        if added == "INSERT 0 0":
            raise OwnerExistsError(name)

    async def owners(self) -> Sequence[OwnerSummary]:
        rows = await self._run(
            "fetch",
            "SELECT name, (SELECT count(*) FROM notes WHERE owner = owners.name),"
            " (SELECT count(*) FROM tokens WHERE owner = owners.name) FROM owners ORDER BY name",
        )
        return [OwnerSummary(row[0], row[1], row[2]) for row in rows]

    async def _budget(self, owner: str) -> float:
        """A transaction's time for all of an owner's notes, as an import's rows get theirs: a
        move or removal of a hundred thousand notes outlasted --db-timeout alone."""
        rows = await self._run("fetchval", _ROWS_OF_OWNER, owner)
        return self._timeout + rows / BULK_ROWS_PER_SECOND

    async def remove_owner(self, name: str, *, delete_notes: bool) -> int:
        budget = await self._budget(name)  # (the pool gives each statement --db-timeout otherwise)
        async with transaction(self._pool, budget) as db:
            await _lock_owner(db, name)
            count = await db.fetchval("SELECT count(*) FROM notes WHERE owner = $1", name)
            if count and not delete_notes:
                raise OwnerHasNotesError(name, count)
            for table in ("notes", "trash", "changes", "tokens", "idempotency_records"):
                await db.execute(f"DELETE FROM {table} WHERE owner = $1", name, timeout=budget)
            await db.execute("DELETE FROM owners WHERE name = $1", name)
        return int(count)

    async def add_token(self, token: NewToken) -> Token:
        token_id = await self._run(
            "fetchval",
            "INSERT INTO tokens (owner, label, scope, secret_hash, created_at, expires_at)"
            " SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM owners WHERE name = $1)"
            " AND ($7::bigint IS NULL OR EXISTS (SELECT 1 FROM tokens WHERE id = $7 AND owner = $1))"
            " RETURNING id",
            token.owner, token.label, str(token.scope), token.secret_hash, token.created_at, token.expires_at,
            token.issuer_id,
        )
        if token_id is None:
            if token.issuer_id is not None and await self._run(
                "fetchval", "SELECT EXISTS (SELECT 1 FROM owners WHERE name = $1)", token.owner
            ):
                raise IssuerRevokedError()
            raise OwnerNotFoundError(token.owner)
        return Token(id=token_id, owner=token.owner, label=token.label, scope=token.scope,
                     created_at=token.created_at, expires_at=token.expires_at)

    async def token_by_hash(self, secret_hash: str) -> Token | None:
        row = await self._run("fetchrow", f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE secret_hash = $1", secret_hash)
        return None if row is None else _token(row)

    async def tokens(self, owner: str | None = None) -> Sequence[Token]:
        if owner is None:
            rows = await self._run("fetch", f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY id")
        else:
            rows = await self._run("fetch", f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE owner = $1 ORDER BY id", owner)
        return [_token(row) for row in rows]

    async def revoke_token(self, token_id: int, owner: str | None = None) -> None:
        if owner is None:
            status = await self._run("execute", "DELETE FROM tokens WHERE id = $1", token_id)
        else:
            status = await self._run("execute", "DELETE FROM tokens WHERE id = $1 AND owner = $2", token_id, owner)
        if status == "DELETE 0":
            raise TokenNotFoundError(token_id)

    async def touch_token(self, token_id: int, used_at: datetime) -> None:
        await self._run("execute", "UPDATE tokens SET last_used_at = $1 WHERE id = $2", used_at, token_id)

    async def move_notes(self, source: str, target: str, *, at: datetime) -> int:
        budget = await self._budget(source)  # (the pool gives each statement --db-timeout otherwise)
        async with transaction(self._pool, budget) as db:
            await _lock_owner(db, source)
            await _lock_owner(db, target)
            if source == target:
                return 0
            # The notes that move, locked until the commit: a write of one of them meanwhile
            # waits, then finds it gone; a note made meanwhile stays where it was made.
            live = [row[0] for row in await db.fetch(postgres_history.MOVING_NOTES, source, timeout=budget)]
            trashed = [row[0] for row in await db.fetch(postgres_history.MOVING_TRASH, source, timeout=budget)]
            await db.execute(postgres_history.MOVE_HISTORY, source, target, live + trashed, timeout=budget)
            await db.execute(postgres_history.MOVE, source, target, at, live, trashed, timeout=budget)
            await db.execute(postgres_history.MOVE_NOTES, target, live, timeout=budget)
            await db.execute(postgres_history.MOVE_TRASH, target, trashed, timeout=budget)
            # heard by the followers of both in every process, once this commits (a rare write:
            # the notify lock it takes at commit costs no one)
            await db.execute(postgres_history.NOTIFY, [source, target])
        return len(live)


async def _lock_owner(db: asyncpg.Connection, name: str) -> None:
    """The owner's row, locked until the transaction ends; OwnerNotFoundError if there is none."""
    if await db.fetchval("SELECT 1 FROM owners WHERE name = $1 FOR UPDATE", name) is None:
        raise OwnerNotFoundError(name)


async def open_storage(
    database_url: str, *, pool_size: int, timeout: float
) -> AsyncIterator[PostgresStore]:
    """The container's resource for `postgresql://` URLs; the schema must be migrated already."""
    try:
        pool = await asyncpg.create_pool(
            database_url, min_size=1, max_size=pool_size, timeout=timeout, command_timeout=timeout
        )
    except UNAVAILABLE as error:
        raise StorageUnavailableError(f"cannot connect to PostgreSQL: {error}") from error
    try:
        secret = await Pooled(pool, timeout)(
            "fetchval", "SELECT value FROM store_settings WHERE name = 'cursor_secret'"
        )
        store = PostgresStore(pool, timeout, secret, database_url)
        try:
            yield store
        finally:
            await store.close()
    finally:
        await pool.close()
