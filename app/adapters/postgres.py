"""The PostgreSQL adapter: `postgresql://` or `postgres://` URLs, on an asyncpg pool.

The hot path calls asyncpg directly with fixed SQL; asyncpg prepares each statement once per
connection and keeps it in its statement cache. How waits are bounded and failures become 503s is
in postgres_link.py; the pool replaces broken connections by itself, so the service recovers when
the database does, without a restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from app.adapters.postgres_link import UNAVAILABLE, OnConnection, Pooled, transaction
from app.adapters.sql import SELECT_NOTES, Arg, list_statement, recorded_outcome
from app.domain.errors import (
    IdempotencyKeyInUseError,
    NoteNotFoundError,
    StorageUnavailableError,
    VersionConflictError,
)
from app.domain.model import Note, NoteDraft, search_text, title_sort_key
from app.domain.ports import IDEMPOTENCY_RETENTION
from app.domain.query import ListQuery


class Statements(Protocol):
    async def __call__(self, method: str, sql: str, *args: Any) -> Any: ...


class PostgresDialect:
    def placeholder(self, position: int) -> str:
        return f"${position}"

    def timestamp(self, moment: datetime) -> datetime:
        return moment

    def all_tags(self, tags: Sequence[str], arg: Arg) -> str:
        return f"tags @> {arg(list(tags))}::text[]"  # served by the GIN index on tags

    def all_terms(self, terms: Sequence[str], arg: Arg) -> list[str]:
        # LIKE '%term%' is served by the trigram GIN index; the text is case-folded already.
        return [f"search_text LIKE {arg('%' + _escape_like(t) + '%')}" for t in terms]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_DIALECT = PostgresDialect()
_GET = f"{SELECT_NOTES} WHERE id = $1"
_INSERT = (
    "INSERT INTO notes (title, description, priority, tags, created_by, created_at, updated_at,"
    " version, title_key, search_text) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9) RETURNING id"
)
_UPDATE = (
    "UPDATE notes SET title = $1, description = $2, priority = $3, tags = $4, created_by = $5,"
    " created_at = $6, updated_at = $7, version = $8, title_key = $9, search_text = $10"
    " WHERE id = $11 AND version = $12"
)


def _note(row: asyncpg.Record) -> Note:
    return Note(
        id=row[0], title=row[1], description=row[2], priority=row[3], tags=tuple(row[4]),
        created_by=row[5], created_at=_aware(row[6]), updated_at=_aware(row[7]), version=row[8],
    )


def _aware(moment: datetime) -> datetime:
    # asyncpg gives datetime.min back without its zone (it reads it as -infinity's stand-in).
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _values(note: Note | NoteDraft) -> tuple:
    return (
        note.title, note.description, note.priority, list(note.tags), note.created_by,
        note.created_at, note.updated_at,
    )


def _keys(note: Note | NoteDraft) -> tuple[str, str]:
    return title_sort_key(note.title), search_text(note.title, note.description)


class PostgresNoteRepository:
    def __init__(self, run: Statements) -> None:
        self._run = run

    async def add(self, draft: NoteDraft) -> Note:
        note_id = await self._run("fetchval", _INSERT, *_values(draft), *_keys(draft))
        return draft.stored_as(note_id)

    async def get(self, note_id: int) -> Note:
        row = await self._run("fetchrow", _GET, note_id)
        if row is None:
            raise NoteNotFoundError(note_id)
        return _note(row)

    async def update(self, note: Note) -> Note:
        status = await self._run(
            "execute", _UPDATE, *_values(note), note.version, *_keys(note), note.id, note.version - 1
        )
        if status == "UPDATE 0":
            await self._raise_missing_or_moved(note.id)
        return note

    async def delete(self, note_id: int, *, version: int | None = None) -> None:
        if version is None:
            status = await self._run("execute", "DELETE FROM notes WHERE id = $1", note_id)
        else:
            status = await self._run(
                "execute", "DELETE FROM notes WHERE id = $1 AND version = $2", note_id, version
            )
        if status == "DELETE 0":
            await self._raise_missing_or_moved(note_id)

    async def list(self, query: ListQuery) -> Sequence[Note]:
        sql, args = list_statement(query, _DIALECT)
        return [_note(row) for row in await self._run("fetch", sql, *args)]

    async def _raise_missing_or_moved(self, note_id: int) -> None:
        exists = await self._run("fetchval", "SELECT 1 FROM notes WHERE id = $1", note_id)
        raise VersionConflictError(note_id) if exists else NoteNotFoundError(note_id)


_RECORD = """
INSERT INTO idempotency_records (key, fingerprint, recorded_at, outcome) VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO UPDATE
    SET fingerprint = excluded.fingerprint, recorded_at = excluded.recorded_at,
        outcome = excluded.outcome
"""


def _key_lock(key: str) -> int:
    """The advisory lock of an idempotency key: a signed 64-bit hash of it."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


class PostgresIdempotencyStore:
    """Keys on the unit of work's connection. A claim takes the key's transaction-scoped
    advisory lock without waiting: another transaction holding it is a request with the key
    still in flight (409). The lock is released only after that transaction's commit is visible,
    so the next claim finds its record."""

    def __init__(self, connection: asyncpg.Connection, purge_due: Callable[[datetime], bool]) -> None:
        self._db, self._purge_due = connection, purge_due

    async def claim(self, key: str, fingerprint: str, now: datetime) -> bytes | None:
        if not await self._db.fetchval("SELECT pg_try_advisory_xact_lock($1)", _key_lock(key)):
            raise IdempotencyKeyInUseError(key)
        row = await self._db.fetchrow(
            "SELECT fingerprint, outcome FROM idempotency_records"
            " WHERE key = $1 AND recorded_at >= $2",
            key, now - IDEMPOTENCY_RETENTION,
        )
        return recorded_outcome(key, fingerprint, row)

    async def record(self, key: str, fingerprint: str, outcome: bytes, now: datetime) -> None:
        await self._db.execute(_RECORD, key, fingerprint, now, outcome)
        if self._purge_due(now):
            await self._db.execute(
                "DELETE FROM idempotency_records WHERE recorded_at < $1", now - IDEMPOTENCY_RETENTION
            )


@dataclass(frozen=True, slots=True)
class _Transaction:
    notes: PostgresNoteRepository
    idempotency: PostgresIdempotencyStore


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool, timeout: float, cursor_secret: str) -> None:
        self._pool, self._timeout = pool, timeout
        self._run = Pooled(pool, timeout)
        self.notes = PostgresNoteRepository(self._run)
        self.cursor_secret = cursor_secret
        self._last_purge: datetime | None = None

    def pool_usage(self) -> tuple[int, int]:
        return self._pool.get_size(), self._pool.get_idle_size()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        async with transaction(self._pool, self._timeout) as connection:
            yield _Transaction(
                PostgresNoteRepository(OnConnection(connection)),
                PostgresIdempotencyStore(connection, self._purge_due),
            )

    async def check(self) -> None:
        writable = await self._run(
            "fetchval",
            "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
        )
        if not writable:
            raise StorageUnavailableError("PostgreSQL is read-only (a standby, or in recovery)")

    def _purge_due(self, now: datetime) -> bool:
        """Expired idempotency records are dropped at most once a minute per process."""
        if self._last_purge is not None and abs((now - self._last_purge).total_seconds()) < 60:
            return False
        self._last_purge = now
        return True


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
        yield PostgresStore(pool, timeout, secret)
    finally:
        await pool.close()
