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
from datetime import datetime

import asyncpg

from app.adapters import postgres_history
from app.adapters.postgres_link import BULK_TIMEOUT, transaction
from app.domain.errors import ImportConflictError, OwnerRemovedError, StorageUnavailableError
from app.domain.model import search_text, stored_note, title_sort_key
from app.domain.owners import Scope
from app.domain.timestamps import aware
from app.domain.transfer import (
    Imported,
    NoteRecord,
    OnConflict,
    OwnerRecord,
    Record,
    Replacement,
    RevisionRecord,
    Selection,
    TokenRecord,
)

log = logging.getLogger("app.adapters.postgres")
PREFETCH = 2000
INDEX_MEMORY = "256MB"  # for building the indexes of an import into an empty table
SEARCH_INDEX = "ix_notes_search_text_trgm"  # (schema.py's; the server's adapters load no SQLAlchemy)
PENDING_LIST = "32MB"  # of the search index filled during such an import: merged into it when full
_NOTE_COLUMNS = ("owner", "id", "title", "description", "priority", "tags", "created_by", "created_at",
                 "updated_at", "version", "title_key", "search_text", "change_key")
_TRASH_COLUMNS = (*_NOTE_COLUMNS, "deleted_at")
_REVISION_COLUMNS = ("key", "owner", "note_id", "title", "description", "priority", "tags", "created_by", "created_at",
                     "updated_at", "version", "op", "at")
_EXPORTED = ", ".join(_NOTE_COLUMNS[:10])
_SELECT_NOTES = (
    f"SELECT * FROM (SELECT {_EXPORTED}, NULL::timestamptz AS deleted_at FROM notes"
    f" UNION ALL SELECT {_EXPORTED}, deleted_at FROM trash) AS n"
)
_CONTENT = "title, description, priority, tags, created_by, created_at, updated_at"
# The target's notes (or notes in the trash) that imported ones meet, locked until the import
# commits (a write of one meanwhile waits, and then finds it replaced), each with whether it holds
# the imported note already (`transfer.replacement`: every exported value alike but the version,
# which is the imported one's or above it).
_COMPARED = (*_NOTE_COLUMNS[:9], "deleted_at")  # (not the version)
_MEETING = f"""
WITH n AS (SELECT {_EXPORTED}, NULL::timestamptz AS deleted_at FROM notes
           WHERE id IN (SELECT id FROM imported_notes) FOR UPDATE),
     t AS (SELECT {_EXPORTED}, deleted_at FROM trash WHERE id IN (SELECT id FROM imported_notes) FOR UPDATE)
SELECT i.id, n.owner, n.version, n.deleted_at IS NULL, i.owner, i.version,
       n.version >= i.version AND ({', '.join(f'n.{c}' for c in _COMPARED)})
                                   IS NOT DISTINCT FROM ({', '.join(f'i.{c}' for c in _COMPARED)})
FROM imported_notes i JOIN (SELECT * FROM n UNION ALL SELECT * FROM t) AS n USING (id)"""
# What the `Replacement`s (in the table `replacements`) say, done to the imported notes and to the
# target's, before the imported ones go in.
_REPLACE = """
UPDATE imported_notes i SET version = r.version FROM replacements r WHERE r.id = i.id;
DELETE FROM notes WHERE id IN (SELECT id FROM replacements);
DELETE FROM trash WHERE id IN (SELECT id FROM replacements);
DELETE FROM changes c USING replacements r WHERE c.note_id = r.id AND c.op = 'put' AND c.version > r.kept_up_to;
"""
# A note that leaves another owner, logged as deleted for them ($1: the import's transaction id, $2: when).
_LEFT = """
INSERT INTO changes (key, owner, note_id, version, op, at)
SELECT $1::xid8, leaves, id, old_version, 'delete', $2 FROM replacements WHERE leaves IS NOT NULL ORDER BY id"""
# After the file's revisions are in: those at or below what the target keeps of its own go.
_KEEP_TARGETS = ("DELETE FROM changes c USING replacements r"
                 " WHERE c.key = $1::xid8 AND c.note_id = r.id AND c.op = 'put' AND c.version <= r.kept_up_to")
# The older revisions of the notes there are (the current one is the note's own line), as far
# back as the selection asks (`{back}`: Selection.revisions_back, an integer).
_SELECT_REVISIONS = f"""
SELECT owner, note_id, {_CONTENT}, version FROM changes c
WHERE op = 'put' AND coalesce(
    (SELECT version FROM notes WHERE id = c.note_id), (SELECT version FROM trash WHERE id = c.note_id)
) - version BETWEEN 1 AND {{back}}"""
# After an import (its transaction's id in $1): each imported note's current revision, after
# the older ones, then a delete for each imported note in the trash.
_LOG_IMPORTED = f"""
INSERT INTO changes (key, owner, note_id, version, op, at, {_CONTENT})
SELECT $1::xid8, owner, id, version, 'put', updated_at, {_CONTENT} FROM (
    SELECT owner, id, version, {_CONTENT} FROM notes WHERE change_key = $1::xid8
    UNION ALL SELECT owner, id, version, {_CONTENT} FROM trash WHERE change_key = $1::xid8
) AS imported ORDER BY id"""
_LOG_TRASHED = """
INSERT INTO changes (key, owner, note_id, version, op, at)
SELECT $1::xid8, owner, id, version, 'delete', deleted_at FROM trash WHERE change_key = $1::xid8 ORDER BY id"""
_TOKEN_COLUMNS = "id, owner, label, scope, secret_hash, created_at, expires_at, last_used_at"
# An import's statements run for minutes. If the command is interrupted, its connection goes
# without a word: PostgreSQL 14 and later then notice within a second and roll back, where they
# would otherwise run the statement to its end, holding its locks (and the owners' rows).
_WATCH_CLIENT = ("SELECT set_config('client_connection_check_interval', '1000', true)"
                 " WHERE current_setting('server_version_num')::int >= 140000")
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
        async for rows in _batches(db, f"{_SELECT_NOTES}{where} ORDER BY id", args):
            for row in rows:
                yield NoteRecord(row[0], stored_note(
                    id=row[1], title=row[2], description=row[3], priority=row[4], tags=tuple(row[5]),
                    created_by=row[6], created_at=aware(row[7]), updated_at=aware(row[8]), version=row[9],
                ), row[10] and aware(row[10]))
        selected = _SELECT_REVISIONS.format(back=selection.revisions_back)
        revisions = f"{selected}{where.replace('WHERE', 'AND')} ORDER BY note_id, version"
        async for rows in _batches(db, revisions, args):
            for row in rows:
                yield RevisionRecord(row[0], postgres_history.content_note(row[1:]))


async def _batches(db: asyncpg.Connection, sql: str, args: tuple) -> AsyncIterator[list[asyncpg.Record]]:
    """The rows of a server-side cursor, PREFETCH at a time: a quarter faster than its rows one
    by one (`async for` over the cursor checks the connection and awaits once per row)."""
    cursor = await db.cursor(sql, *args)
    while rows := await cursor.fetch(PREFETCH):
        yield rows


async def count_notes(pool: asyncpg.Pool, selection: Selection) -> int:
    where, args = _owned(selection, "owner")
    async with transaction(pool, None) as db:
        return int(await db.fetchval(
            f"SELECT (SELECT count(*) FROM notes{where}) + (SELECT count(*) FROM trash{where})", *args,
            timeout=BULK_TIMEOUT,
        ))


async def import_records(
    pool: asyncpg.Pool, records: AsyncIterable[Record], on_conflict: OnConflict, at: datetime
) -> Imported:
    imported = Imported()
    stream = aiter(records)
    async with transaction(pool, None) as db:
        await _watch_the_client(db)
        xid = await db.fetchval("SELECT pg_current_xact_id()")  # the key of every row of the log it writes
        first_note = None
        async for record in stream:
            if isinstance(record, NoteRecord):
                first_note = record
                break
            if isinstance(record, TokenRecord):
                await _write_token(db, record, on_conflict, imported)
            elif isinstance(record, OwnerRecord):
                status = await db.execute(
                    "INSERT INTO owners (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    record.name, record.created_at,
                )
                imported.owners += int(status.split()[-1])
                # An owner that was there is held until the import commits, as a note's INSERT
                # holds it: a removal meanwhile waits, then counts the imported notes.
                if not await db.fetchval(postgres_history.HOLD_OWNER, record.name):
                    raise OwnerRemovedError(record.name)
        if first_note is not None:
            notes = _Notes(first_note, stream, xid)
            if on_conflict is OnConflict.FAIL:
                imported.notes = await _copy_into_notes(db, notes.rows())
                imported.notes += await _copy_trash(db, notes.trashed)
                imported.revisions = await _copy_revisions(db, notes, xid, set())
                left: list[str] = []
            else:
                left = await _merge_notes(db, notes, on_conflict, imported, xid, at)
                imported.revisions = await _copy_revisions(db, notes, xid, set(imported.skipped))
                if imported.replaced:
                    status = await db.execute(_KEEP_TARGETS, xid, timeout=BULK_TIMEOUT)
                    imported.revisions -= int(status.split()[-1])
            await db.execute(_LOG_IMPORTED, xid, timeout=BULK_TIMEOUT)
            await db.execute(_LOG_TRASHED, xid, timeout=BULK_TIMEOUT)
            # heard by their followers in every server process once this commits (as a move is)
            await db.execute(postgres_history.NOTIFY, sorted(notes.owners.union(left)))
        # New ids continue past the largest one there (a note's: in the notes or the trash).
        for table, largest in (("notes", "(SELECT max(id) FROM notes), (SELECT max(id) FROM trash)"),
                               ("tokens", "(SELECT max(id) FROM tokens)")):
            sequence = f"pg_get_serial_sequence('{table}', 'id')"
            await db.execute(
                f"SELECT setval({sequence}, GREATEST({largest}, nextval({sequence})))", timeout=BULK_TIMEOUT
            )
    return imported


class _Notes:
    """The note records of an import's stream, as rows: those in the trash kept apart (few), and
    the first revision, which ends them, kept for `revisions`."""

    def __init__(self, first: NoteRecord, rest: AsyncIterator[Record], xid: int) -> None:
        self._first, self._rest, self._xid = first, rest, xid
        self.trashed: list[tuple] = []
        self.first_revision: RevisionRecord | None = None
        self.owners: set[str] = set()  # of the notes read so far

    async def rows(self) -> AsyncIterator[tuple]:
        record: Record = self._first
        while True:
            if isinstance(record, RevisionRecord):
                self.first_revision = record
                return
            if not isinstance(record, NoteRecord):
                raise ValueError(f"a {type(record).__name__} after the notes")  # the format forbids it
            row = _row(record, self._xid)
            self.owners.add(record.owner)
            if record.deleted_at is None:
                yield row
            else:
                self.trashed.append((*row, record.deleted_at))
            try:
                record = await anext(self._rest)
            except StopAsyncIteration:
                return

    async def revisions(self, skipped: set[int]) -> AsyncIterator[tuple]:
        record: Record | None = self.first_revision
        while record is not None:
            if not isinstance(record, RevisionRecord):
                raise ValueError(f"a {type(record).__name__} after the revisions")
            note = record.note
            if note.id not in skipped:
                yield (self._xid, record.owner, note.id, note.title, note.description, note.priority, list(note.tags),
                       note.created_by, note.created_at, note.updated_at, note.version, "put", note.updated_at)
            record = await anext(self._rest, None)


def _row(record: NoteRecord, xid: int) -> tuple:
    note = record.note
    return (
        record.owner, note.id, note.title, note.description, note.priority, list(note.tags), note.created_by,
        note.created_at, note.updated_at, note.version, title_sort_key(note.title),
        search_text(note.title, note.description), xid,
    )


async def _copy_trash(db: asyncpg.Connection, rows: list[tuple]) -> int:
    """The notes in the trash, after the others: an id in both tables is a conflict too."""
    if not rows:
        return 0
    try:
        await db.copy_records_to_table("trash", records=rows, columns=_TRASH_COLUMNS, timeout=BULK_TIMEOUT)
    except asyncpg.UniqueViolationError as error:
        found = _DUPLICATE_ID.search(error.detail or "")
        if found is None:
            raise
        raise ImportConflictError("note", int(found[1])) from None
    both = await db.fetchval(
        "SELECT min(id) FROM trash JOIN notes USING (id) WHERE id = ANY($1::bigint[])", [row[1] for row in rows]
    )
    if both is not None:
        raise ImportConflictError("note", both)
    return len(rows)


async def _copy_revisions(db: asyncpg.Connection, notes: _Notes, xid: int, skipped: set[int]) -> int:
    if notes.first_revision is None:
        return 0
    status = await db.copy_records_to_table(
        "changes", records=notes.revisions(skipped), columns=_REVISION_COLUMNS, timeout=BULK_TIMEOUT
    )
    return int(status.split()[-1])


async def _copy_into_notes(db: asyncpg.Connection, rows: AsyncIterator[tuple]) -> int:
    deferred = await _defer_indexes(db)
    if deferred:
        await db.execute(f"SET LOCAL gin_pending_list_limit = '{PENDING_LIST}'")
        await db.execute(f"SET LOCAL work_mem = '{PENDING_LIST}'")  # what a merge of the pending list takes
    try:
        status = await db.copy_records_to_table("notes", records=rows, columns=_NOTE_COLUMNS, timeout=BULK_TIMEOUT)
    except asyncpg.UniqueViolationError as error:
        found = _DUPLICATE_ID.search(error.detail or "")
        if found is None:
            raise
        raise ImportConflictError("note", int(found[1])) from None
    if deferred:
        began = time.monotonic()
        await db.execute("SELECT gin_clean_pending_list($1::regclass)", SEARCH_INDEX, timeout=BULK_TIMEOUT)
        log.debug("merged the pending list of %s in %.1f s", SEARCH_INDEX, time.monotonic() - began)
        await db.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_MEMORY}'")
        for definition in deferred:
            began = time.monotonic()
            await db.execute(definition, timeout=BULK_TIMEOUT)
            log.debug("built %s in %.1f s", definition.split(" ON ")[0].removeprefix("CREATE INDEX "),
                     time.monotonic() - began)
    return int(status.split()[-1])


async def _defer_indexes(db: asyncpg.Connection) -> list[str]:
    """Into an empty table, as pg_restore does: drop the secondary indexes (in the transaction, so
    a rollback brings them back) and return their definitions, to build each once at the end,
    several times faster than row by row. That locks the table until the commit: when anyone is
    using it (a server already running on this database), the rows go in with their indexes
    instead, and no one waits.

    All but the search index (pg_trgm's GIN), which fills as the rows arrive: the server cuts each
    row into trigrams (most of its work) and adds them to the index's pending list, merged when
    full, on its own core, while this process reads and converts the next rows. Built after the
    rows, it took longer than the whole `COPY` (PostgreSQL 15 builds a GIN index on one core: 31 to
    36 s for a million notes); filled during it, a copy of a million notes took 64.7 s instead of
    88.5."""
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
        " AND indexrelid <> $1::regclass", SEARCH_INDEX
    )
    for name, _ in indexes:
        await db.execute(f"DROP INDEX {name}")
    return [definition for _, definition in indexes]


async def _watch_the_client(db: asyncpg.Connection) -> None:
    """_WATCH_CLIENT, where the server allows it (not every platform does): a refusal changes nothing."""
    await db.execute("SAVEPOINT watch_client")
    try:
        await db.execute(_WATCH_CLIENT)
    except asyncpg.PostgresError:
        await db.execute("ROLLBACK TO SAVEPOINT watch_client")
    await db.execute("RELEASE SAVEPOINT watch_client")


async def _merge_notes(
    db: asyncpg.Connection, notes: _Notes, on_conflict: OnConflict, imported: Imported, xid: int, at: datetime
) -> list[str]:
    """Through a temporary table: ids the target has (in its notes or its trash) are kept (skip,
    or replace when the target holds the imported note already) or written over as their
    `Replacement` says. Returns the owners that notes left."""
    await db.execute(
        "CREATE TEMPORARY TABLE imported_notes ON COMMIT DROP AS"
        f" SELECT {', '.join(_TRASH_COLUMNS)} FROM trash WITH NO DATA"
    )
    await db.copy_records_to_table(
        "imported_notes", records=notes.rows(), columns=_NOTE_COLUMNS, timeout=BULK_TIMEOUT
    )
    await db.copy_records_to_table("imported_notes", records=notes.trashed, columns=_TRASH_COLUMNS)
    await db.execute("ANALYZE imported_notes", timeout=BULK_TIMEOUT)
    await db.execute(
        "CREATE TEMPORARY TABLE replacements (id bigint PRIMARY KEY, version integer, kept_up_to integer,"
        " leaves text, old_version integer) ON COMMIT DROP"
    )
    left: set[str] = set()
    batch: list[tuple] = []
    # a batch at a time (memory stays flat), into the table the statements below read
    async for note_id, owner, version, live, imported_owner, imported_version, held in db.cursor(
        _MEETING, prefetch=PREFETCH, timeout=BULK_TIMEOUT
    ):
        if on_conflict is OnConflict.SKIP or held:
            imported.skipped.append(note_id)
            continue
        change = Replacement.over(owner, version, live, imported_owner, imported_version)
        batch.append((note_id, change.version, change.kept_up_to, change.leaves, version))
        imported.count_replaced(note_id, imported_version, change)
        if change.leaves is not None:
            left.add(change.leaves)
        if len(batch) == PREFETCH:
            await db.copy_records_to_table("replacements", records=batch, timeout=BULK_TIMEOUT)
            batch = []
    await db.copy_records_to_table("replacements", records=batch, timeout=BULK_TIMEOUT)
    await db.execute("DELETE FROM imported_notes WHERE id = ANY($1::bigint[])", imported.skipped)
    if imported.replaced:
        await db.execute(_REPLACE, timeout=BULK_TIMEOUT)
        await db.execute(_LEFT, xid, at, timeout=BULK_TIMEOUT)
    columns = ", ".join(_NOTE_COLUMNS)
    try:
        status = await db.execute(
            f"INSERT INTO notes ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM imported_notes"
            " WHERE deleted_at IS NULL", timeout=BULK_TIMEOUT,
        )
        imported.notes += int(status.split()[-1])
        status = await db.execute(
            f"INSERT INTO trash ({', '.join(_TRASH_COLUMNS)}) SELECT {', '.join(_TRASH_COLUMNS)} FROM imported_notes"
            " WHERE deleted_at IS NOT NULL", timeout=BULK_TIMEOUT,
        )
        imported.notes += int(status.split()[-1])
    except asyncpg.UniqueViolationError as error:  # restored from the trash meanwhile
        found = _DUPLICATE_ID.search(error.detail or "")
        raise _moved_meanwhile(int(found[1]) if found else None) from None
    # deleted meanwhile: gone to the trash after the lock above found it gone from the notes
    both = await db.fetchval(
        "SELECT min(id) FROM trash JOIN notes USING (id) WHERE id IN (SELECT id FROM imported_notes)"
    )
    if both is not None:
        raise _moved_meanwhile(both)
    return sorted(left)


def _moved_meanwhile(note_id: int | None) -> StorageUnavailableError:
    which = "a note" if note_id is None else f"note {note_id}"
    return StorageUnavailableError(
        f"{which} moved between the notes and the trash while it was being imported: nothing was imported;"
        " run the import again"
    )


async def _write_token(db: asyncpg.Connection, token: TokenRecord, on_conflict: OnConflict, imported: Imported) -> None:
    clashes = [row[0] for row in await db.fetch(
        "SELECT id FROM tokens WHERE id = $1 OR secret_hash = $2", token.id, token.secret_hash
    )]
    if clashes:
        if on_conflict is OnConflict.FAIL:
            raise ImportConflictError("token", token.id)
        if on_conflict is OnConflict.SKIP:
            imported.skipped_tokens.append(token.id)
            return
        await db.execute("DELETE FROM tokens WHERE id = ANY($1::bigint[])", clashes)
    await db.execute(
        f"INSERT INTO tokens ({_TOKEN_COLUMNS}) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        token.id, token.owner, token.label, str(token.scope), token.secret_hash, token.created_at,
        token.expires_at, token.last_used_at,
    )
    imported.tokens += 1
