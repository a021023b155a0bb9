"""The PostgreSQL adapter: `postgresql://` or `postgres://` URLs, on an asyncpg pool.

The hot path calls asyncpg directly with fixed SQL; asyncpg prepares each statement once per
connection and keeps it in its statement cache. Every wait is bounded by `timeout`: taking a
connection from the pool, connecting, and each statement. A database that cannot be reached (down,
restarting, its backends terminated) becomes `StorageUnavailableError`, a 503; the pool replaces
broken connections by itself, so the service recovers when the database does, without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from typing import Any

import asyncpg
import orjson

from app.adapters import Storage
from app.adapters.sql import SELECT_NOTES, Arg, list_statement, replay
from app.domain.errors import (
    IdempotencyKeyInUseError,
    NoteNotFoundError,
    StorageUnavailableError,
    VersionConflictError,
)
from app.domain.model import Note, NoteDraft, search_text, title_sort_key
from app.domain.ports import IDEMPOTENCY_LEASE, IDEMPOTENCY_RETENTION, RecordedResponse
from app.domain.query import ListQuery

UNAVAILABLE = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # a pool, connect or statement timeout
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.exceptions.OperatorInterventionError,  # class 57: terminated, shutting down
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.InternalClientError,  # a connection left mid-protocol by one of the above
)


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
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _values(note: Note | NoteDraft) -> tuple:
    return (
        note.title, note.description, note.priority, list(note.tags), note.created_by,
        note.created_at, note.updated_at,
    )


def _keys(note: Note | NoteDraft) -> tuple[str, str]:
    return title_sort_key(note.title), search_text(note.title, note.description)


class PostgresNoteRepository:
    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool, self._timeout = pool, timeout

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

    async def check(self) -> None:
        await self._run("fetchval", "SELECT 1")

    async def _raise_missing_or_moved(self, note_id: int) -> None:
        exists = await self._run("fetchval", "SELECT 1 FROM notes WHERE id = $1", note_id)
        raise VersionConflictError(note_id) if exists else NoteNotFoundError(note_id)

    async def _run(self, method: str, sql: str, *args: Any) -> Any:
        return await run(self._pool, self._timeout, method, sql, *args)


async def run(pool: asyncpg.Pool, timeout: float, method: str, sql: str, *args: Any) -> Any:
    """One statement on a pooled connection, every wait bounded; outages become a 503."""
    try:
        # One deadline for waiting on the pool, connecting and the statement. (asyncio.timeout is
        # a timer handle; the drivers' own timeout= arguments each wrap a new task on 3.11.)
        async with asyncio.timeout(timeout), pool.acquire() as connection:
            try:
                return await getattr(connection, method)(sql, *args)
            except UNAVAILABLE:
                connection.terminate()  # the pool opens a fresh one; never reuse a broken link
                raise
    except UNAVAILABLE as error:
        raise StorageUnavailableError(f"{type(error).__name__}: {error}") from error


_CLAIM = """
INSERT INTO idempotency_keys AS k (key, fingerprint, claimed_at) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE
    SET fingerprint = excluded.fingerprint, claimed_at = excluded.claimed_at,
        status = NULL, headers = NULL, body = NULL
    WHERE k.claimed_at < $4 OR (k.status IS NULL AND k.claimed_at < $5)
RETURNING true
"""


class PostgresIdempotencyStore:
    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool, self._timeout = pool, timeout
        self._last_purge: datetime | None = None

    async def claim(self, key: str, fingerprint: str, now: datetime) -> RecordedResponse | None:
        await self._purge(now)
        # The unique key serialises concurrent claims: exactly one INSERT (or takeover) wins.
        for _ in range(3):
            claimed = await run(
                self._pool, self._timeout, "fetchval", _CLAIM, key, fingerprint, now,
                now - IDEMPOTENCY_RETENTION, now - IDEMPOTENCY_LEASE,
            )
            if claimed:
                return None
            row = await run(
                self._pool, self._timeout, "fetchrow",
                "SELECT fingerprint, status, headers, body FROM idempotency_keys WHERE key = $1", key,
            )
            if row is not None:
                return replay(key, fingerprint, *row)
        raise IdempotencyKeyInUseError(key)  # released and claimed again under us: still busy

    async def finish(self, key: str, response: RecordedResponse, now: datetime) -> None:
        await run(
            self._pool, self._timeout, "execute",
            "UPDATE idempotency_keys SET status = $2, headers = $3, body = $4 WHERE key = $1",
            key, response.status, orjson.dumps(response.headers).decode(), response.body,
        )

    async def release(self, key: str) -> None:
        await run(
            self._pool, self._timeout, "execute",
            "DELETE FROM idempotency_keys WHERE key = $1 AND status IS NULL", key,
        )

    async def _purge(self, now: datetime) -> None:
        """Drop expired keys, at most once a minute per process."""
        if self._last_purge is None or now - self._last_purge > IDEMPOTENCY_LEASE:
            self._last_purge = now
            await run(
                self._pool, self._timeout, "execute",
                "DELETE FROM idempotency_keys WHERE claimed_at < $1", now - IDEMPOTENCY_RETENTION,
            )


async def open_storage(
    database_url: str, *, pool_size: int, timeout: float
) -> AsyncIterator[Storage]:
    """The container's resource for `postgresql://` URLs; the schema must be migrated already."""
    try:
        pool = await asyncpg.create_pool(
            database_url, min_size=1, max_size=pool_size, timeout=timeout, command_timeout=timeout
        )
    except (*UNAVAILABLE, asyncpg.PostgresError) as error:
        raise StorageUnavailableError(f"cannot connect to PostgreSQL: {error}") from error
    try:
        yield Storage(
            notes=PostgresNoteRepository(pool, timeout),
            idempotency=PostgresIdempotencyStore(pool, timeout),
            pool_usage=lambda: (pool.get_size(), pool.get_idle_size()),
        )
    finally:
        await pool.close()
