"""Export and import for PostgreSQL: a server-side cursor read in one snapshot, and `COPY`
(asyncpg's `copy_records_to_table`) written in one transaction.

Notes are copied straight into `notes` when an id that exists already fails the import (the
default); to skip or replace such ids they go through a temporary table first, which one
statement then merges. `notes.id` is an identity column, which `COPY` writes as given; the
sequence behind it is then moved past the largest id, so new notes never take an imported id.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterable, AsyncIterator

import asyncpg

from app.adapters.postgres_link import transaction
from app.domain.errors import ImportConflictError
from app.domain.model import Note, search_text, title_sort_key
from app.domain.owners import Scope
from app.domain.timestamps import aware
from app.domain.transfer import Imported, NoteRecord, OnConflict, OwnerRecord, Record, Selection, TokenRecord

log = logging.getLogger("app.adapters.postgres")
PREFETCH = 2000
# A bulk statement may run for minutes; the pool's command timeout (--db-timeout) is for requests.
BULK_TIMEOUT = 24 * 3600.0
INDEX_MEMORY = "256MB"  # for building the indexes of an import into an empty table
_NOTE_COLUMNS = ("owner", "id", "title", "description", "priority", "tags", "created_by", "created_at",
                 "updated_at", "version", "title_key", "search_text")
_SELECT_NOTES = f"SELECT {', '.join(_NOTE_COLUMNS[:10])} FROM notes"
_TOKEN_COLUMNS = "id, owner, label, scope, secret_hash, created_at, expires_at, last_used_at"
_DUPLICATE_ID = re.compile(r"\(id\)=\((\d+)\)")
_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


def _owned(selection: Selection, column: str) -> tuple[str, tuple]:
    if selection.owners is None:
        return "", ()
    return f" WHERE {column} = ANY($1::text[])", (list(selection.owners),)


async def export(pool: asyncpg.Pool, selection: Selection) -> AsyncIterator[Record]:
    async with transaction(pool, None, _SNAPSHOT) as db:
        where, args = _owned(selection, "name")
        for name, created_at in await db.fetch(f"SELECT name, created_at FROM owners{where} ORDER BY name", *args):
            yield OwnerRecord(name, None if created_at is None else aware(created_at))
        if selection.whole_store:
            for row in await db.fetch(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY id"):
                yield TokenRecord(
                    id=row[0], owner=row[1], label=row[2], scope=Scope(row[3]), secret_hash=row[4],
                    created_at=aware(row[5]), expires_at=row[6] and aware(row[6]),
                    last_used_at=row[7] and aware(row[7]),
                )
        where, args = _owned(selection, "owner")
        async for row in db.cursor(f"{_SELECT_NOTES}{where} ORDER BY id", *args, prefetch=PREFETCH):
            yield NoteRecord(row[0], Note(
                id=row[1], title=row[2], description=row[3], priority=row[4], tags=tuple(row[5]),
                created_by=row[6], created_at=aware(row[7]), updated_at=aware(row[8]), version=row[9],
            ))


async def count_notes(pool: asyncpg.Pool, selection: Selection) -> int:
    where, args = _owned(selection, "owner")
    async with transaction(pool, None) as db:
        return int(await db.fetchval(f"SELECT count(*) FROM notes{where}", *args, timeout=BULK_TIMEOUT))


async def import_records(pool: asyncpg.Pool, records: AsyncIterable[Record], on_conflict: OnConflict) -> Imported:
    imported = Imported()
    stream = aiter(records)
    async with transaction(pool, None) as db:
        first_note = None
        async for record in stream:
            if isinstance(record, NoteRecord):
                first_note = record
                break
            if isinstance(record, TokenRecord):
                await _write_token(db, record, on_conflict, imported)
            else:
                status = await db.execute(
                    "INSERT INTO owners (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    record.name, record.created_at,
                )
                imported.owners += int(status.split()[-1])
        if first_note is not None:
            rows = _rows(first_note, stream)
            if on_conflict is OnConflict.FAIL:
                imported.notes = await _copy_into_notes(db, rows)
            else:
                await _merge_notes(db, rows, on_conflict, imported)
        for table in ("notes", "tokens"):  # new ids continue past the largest one there
            sequence = f"pg_get_serial_sequence('{table}', 'id')"
            await db.execute(
                f"SELECT setval({sequence}, GREATEST(max(id), nextval({sequence}))) FROM {table}", timeout=BULK_TIMEOUT
            )
    return imported


async def _rows(first: NoteRecord, rest: AsyncIterator[Record]) -> AsyncIterator[tuple]:
    yield _row(first)
    async for record in rest:
        if not isinstance(record, NoteRecord):
            raise ValueError(f"a {type(record).__name__} after the notes")  # the format forbids it
        yield _row(record)


def _row(record: NoteRecord) -> tuple:
    note = record.note
    return (
        record.owner, note.id, note.title, note.description, note.priority, list(note.tags), note.created_by,
        note.created_at, note.updated_at, note.version, title_sort_key(note.title),
        search_text(note.title, note.description),
    )


async def _copy_into_notes(db: asyncpg.Connection, rows: AsyncIterator[tuple]) -> int:
    deferred = await _defer_indexes(db)
    try:
        status = await db.copy_records_to_table("notes", records=rows, columns=_NOTE_COLUMNS, timeout=BULK_TIMEOUT)
    except asyncpg.UniqueViolationError as error:
        found = _DUPLICATE_ID.search(error.detail or "")
        if found is None:
            raise
        raise ImportConflictError("note", int(found[1])) from None
    if deferred:
        await db.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_MEMORY}'")
        for definition in deferred:
            began = time.monotonic()
            await db.execute(definition, timeout=BULK_TIMEOUT)
            log.info("built %s in %.1f s", definition.split(" ON ")[0].removeprefix("CREATE INDEX "),
                     time.monotonic() - began)
    return int(status.split()[-1])


async def _defer_indexes(db: asyncpg.Connection) -> list[str]:
    """Into an empty table, as pg_restore does: drop the secondary indexes (in the transaction, so
    a rollback brings them back) and return their definitions, to build each once at the end,
    several times faster than row by row. That locks the table until the commit: when anyone is
    using it (a server already running on this database), the rows go in with their indexes
    instead, and no one waits."""
    if await db.fetchval("SELECT EXISTS (SELECT 1 FROM notes)"):
        return []
    await db.execute("SAVEPOINT lock_notes")  # a lock not granted leaves the import going
    try:
        await db.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE NOWAIT")
    except asyncpg.LockNotAvailableError:
        await db.execute("ROLLBACK TO SAVEPOINT lock_notes")
        return []
    await db.execute("RELEASE SAVEPOINT lock_notes")
    indexes = await db.fetch(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indrelid = 'notes'::regclass AND NOT indisprimary AND NOT indisunique"
    )
    for name, _ in indexes:
        await db.execute(f"DROP INDEX {name}")
    return [definition for _, definition in indexes]


async def _merge_notes(
    db: asyncpg.Connection, rows: AsyncIterator[tuple], on_conflict: OnConflict, imported: Imported
) -> None:
    await db.execute(
        "CREATE TEMPORARY TABLE imported_notes ON COMMIT DROP AS"
        f" SELECT {', '.join(_NOTE_COLUMNS)} FROM notes WITH NO DATA"
    )
    await db.copy_records_to_table("imported_notes", records=rows, columns=_NOTE_COLUMNS, timeout=BULK_TIMEOUT)
    existing = await db.fetchval(
        "SELECT array_agg(id ORDER BY id) FROM imported_notes JOIN notes USING (id)", timeout=BULK_TIMEOUT
    )
    columns = ", ".join(_NOTE_COLUMNS)
    if on_conflict is OnConflict.SKIP:
        imported.skipped += existing or []
        action = "DO NOTHING"
    else:
        imported.replaced += len(existing or [])
        action = "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _NOTE_COLUMNS if c != "id")
    status = await db.execute(
        f"INSERT INTO notes ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM imported_notes"
        f" ON CONFLICT (id) {action}",
        timeout=BULK_TIMEOUT,
    )
    imported.notes += int(status.split()[-1])


async def _write_token(db: asyncpg.Connection, token: TokenRecord, on_conflict: OnConflict, imported: Imported) -> None:
    clashes = [row[0] for row in await db.fetch(
        "SELECT id FROM tokens WHERE id = $1 OR secret_hash = $2", token.id, token.secret_hash
    )]
    if clashes:
        if on_conflict is OnConflict.FAIL:
            raise ImportConflictError("token", token.id)
        if on_conflict is OnConflict.SKIP:
            return
        await db.execute("DELETE FROM tokens WHERE id = ANY($1::bigint[])", clashes)
    await db.execute(
        f"INSERT INTO tokens ({_TOKEN_COLUMNS}) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        token.id, token.owner, token.label, str(token.scope), token.secret_hash, token.created_at,
        token.expires_at, token.last_used_at,
    )
    imported.tokens += 1
