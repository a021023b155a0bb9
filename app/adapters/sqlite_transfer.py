"""Export and import for SQLite: a stream read in one snapshot, a stream written in one
transaction, a thousand notes a statement (a multi-row INSERT).

The export reads on a connection of its own, in one read transaction (WAL: writers go on), and
fetches its rows in a thread, a batch at a time, so the event loop serves requests meanwhile. The
import holds the write lock from its first row to its commit; `notes.id` is an AUTOINCREMENT
rowid, so SQLite itself moves the id sequence past the largest id written.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, ClassVar

import orjson

from app.adapters import sqlite_history
from app.adapters.sqlite_link import Writer, connect, in_the_transaction, insert_rows, unavailable_on_error
from app.domain.errors import ImportConflictError
from app.domain.model import search_text, stored_note, title_sort_key
from app.domain.owners import Scope
from app.domain.timestamps import from_microseconds, to_microseconds
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
    replacement,
)

BATCH = 1000
KEPT_WHOLE = 2**62  # `_Batches.kept` of a note the target keeps as it is, revisions and all
AHEAD = 8  # batches the loop may hand the writer's thread before it waits for the oldest
_NOTE_COLUMNS = "owner, id, title, description, priority, tags, created_by, created_at, updated_at, version"
_INSERT_TRASH = f"INSERT INTO trash ({_NOTE_COLUMNS}, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_TOKEN_COLUMNS = "id, owner, label, scope, secret_hash, created_at, expires_at, last_used_at"
_CONTENT = "title, description, priority, tags, created_by, created_at, updated_at"
_SELECT_NOTES = (
    f"SELECT * FROM (SELECT {_NOTE_COLUMNS}, NULL AS deleted_at FROM notes"
    f" UNION ALL SELECT {_NOTE_COLUMNS}, deleted_at FROM trash)"
)
# The older revisions of the notes there are (the current one is the note's own line), as far
# back as the selection asks (`{back}`: Selection.revisions_back, an integer).
_SELECT_REVISIONS = f"""
SELECT owner, note_id, {_CONTENT}, version FROM changes AS c
WHERE op = 'put' AND coalesce(
    (SELECT version FROM notes WHERE id = c.note_id), (SELECT version FROM trash WHERE id = c.note_id)
) - version BETWEEN 1 AND {{back}}"""
_INSERT_REVISION = (
    f"INSERT INTO changes (owner, note_id, {_CONTENT}, version, op, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'put', ?)"
)
# After an import: each imported note's current revision, after the older ones, then a delete
# for each imported note in the trash.
_LOG_IMPORTED = f"""
INSERT INTO changes (owner, note_id, version, op, at, {_CONTENT})
SELECT owner, id, version, 'put', updated_at, {_CONTENT} FROM (
    SELECT owner, id, version, {_CONTENT} FROM notes WHERE id IN (SELECT id FROM temp.imported_ids)
    UNION ALL SELECT owner, id, version, {_CONTENT} FROM trash WHERE id IN (SELECT id FROM temp.imported_ids)
) ORDER BY id"""
_LOG_TRASHED = """
INSERT INTO changes (owner, note_id, version, op, at)
SELECT owner, id, version, 'delete', deleted_at FROM trash WHERE id IN (SELECT id FROM temp.imported_ids) ORDER BY id"""
_LOG_TRIGGERS = ("notes_log_ai", "notes_log_au")  # an import logs what it writes itself


def _micros(moment: object) -> int | None:
    return None if moment is None else to_microseconds(moment)  # type: ignore[arg-type]


def _moment(value: int | None) -> object:
    return None if value is None else from_microseconds(value)


def _owned(selection: Selection) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause on `owner`/`name` for the selection, and its parameters."""
    if selection.owners is None:
        return "", ()
    return f" IN ({', '.join('?' * len(selection.owners))})", selection.owners


async def export(path: str, timeout: float, selection: Selection) -> AsyncIterator[Record]:
    db = connect(path, timeout)
    try:
        with unavailable_on_error():
            db.execute("BEGIN")  # one snapshot, from the first read to the last
            within, names = _owned(selection)
            rows = db.execute(
                f"SELECT name, created_at FROM owners{' WHERE name' + within if within else ''} ORDER BY name", names
            ).fetchall()
        for name, created_at in rows:
            yield OwnerRecord(name, _moment(created_at))  # type: ignore[arg-type]
        if selection.whole_store:
            with unavailable_on_error():
                tokens = db.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY id").fetchall()
            for id_, owner, label, scope, hashed, created, expires, used in tokens:
                yield TokenRecord(
                    id=id_, owner=owner, label=label, scope=Scope(scope), secret_hash=hashed,
                    created_at=from_microseconds(created), expires_at=_moment(expires),  # type: ignore[arg-type]
                    last_used_at=_moment(used),  # type: ignore[arg-type]
                )
        with unavailable_on_error():
            cursor = db.execute(
                f"{_SELECT_NOTES}{' WHERE owner' + within if within else ''} ORDER BY id", names
            )
        async for row in _rows(cursor):
            yield _note_record(row)
        with unavailable_on_error():
            cursor = db.execute(
                f"{_SELECT_REVISIONS.format(back=selection.revisions_back)}{' AND owner' + within if within else ''}"
                " ORDER BY note_id, version", names
            )
        async for row in _rows(cursor):
            yield RevisionRecord(row[0], sqlite_history.content_note(row[1], row[2:9], row[9]))
    finally:
        db.close()


def _note_record(row: tuple) -> NoteRecord:
    """A row of _SELECT_NOTES."""
    owner, id_, title, description, priority, tags, created_by, created, updated, version, deleted = row
    return NoteRecord(owner, stored_note(
        id=id_, title=title, description=description, priority=priority, tags=tuple(orjson.loads(tags)),
        created_by=created_by, created_at=from_microseconds(created), updated_at=from_microseconds(updated),
        version=version,
    ), _moment(deleted))  # type: ignore[arg-type]


async def _rows(cursor: sqlite3.Cursor) -> AsyncIterator[tuple]:
    """A cursor's rows, fetched a batch at a time in a thread: the loop serves requests meanwhile."""
    while True:
        with unavailable_on_error():
            batch = await asyncio.to_thread(cursor.fetchmany, BATCH)
        if not batch:
            return
        for row in batch:
            yield row


async def count_notes(path: str, timeout: float, selection: Selection) -> int:
    db = connect(path, timeout)
    try:
        within, names = _owned(selection)
        with unavailable_on_error():
            where = f" WHERE owner{within}" if within else ""
            row = await asyncio.to_thread(
                db.execute(f"SELECT (SELECT count(*) FROM notes{where}) + (SELECT count(*) FROM trash{where})",
                           names * 2).fetchone
            )
        return int(row[0])
    finally:
        db.close()


async def import_records(
    writer: Writer, records: AsyncIterable[Record], on_conflict: OnConflict, at: datetime
) -> Imported:
    """Notes are written a batch at a time in a thread of their own, while the loop reads and
    converts the next batches. Into an empty table, the indexes are built after the rows (_Bulk)."""
    imported = Imported()
    rows: list[NoteRecord] = []
    revisions: list[RevisionRecord] = []
    async with writer.transaction() as db, _Batches(db, on_conflict, imported, at) as batches:
        with unavailable_on_error():
            batches.bulk = _Bulk.into(db)
            triggers = _set_aside(db, _LOG_TRIGGERS)
            db.execute("CREATE TEMP TABLE imported_ids (id INTEGER PRIMARY KEY)")
            async for record in records:
                if isinstance(record, NoteRecord):
                    rows.append(record)
                    if len(rows) == BATCH:
                        await batches.write(rows)
                        rows = []
                elif isinstance(record, RevisionRecord):
                    await batches.write(rows)
                    rows = []
                    revisions.append(record)
                    if len(revisions) == BATCH:
                        await batches.run(_write_revisions, db, revisions, imported, batches.kept)
                        revisions = []
                elif isinstance(record, TokenRecord):
                    _write_token(db, record, on_conflict, imported)
                elif isinstance(record, OwnerRecord):
                    added = db.execute(
                        "INSERT OR IGNORE INTO owners (name, created_at) VALUES (?, ?)",
                        (record.name, _micros(record.created_at)),
                    )
                    imported.owners += added.rowcount
            await batches.write(rows)
            await batches.run(_write_revisions, db, revisions, imported, batches.kept)
            await batches.run(_log_imported, db, triggers)
            if batches.bulk is not None:
                await batches.run(batches.bulk.finish, db)
            await batches.finish()
    return imported


def _set_aside(db: sqlite3.Connection, names: Sequence[str]) -> list[str]:
    """Drop these triggers (in the transaction: a rollback brings them back) and return their SQL."""
    found = []
    for name in names:
        row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone()
        if row is not None:
            db.execute(f"DROP TRIGGER {name}")
            found.append(str(row[0]))
    return found


def _write_revisions(
    db: sqlite3.Connection, records: Sequence[RevisionRecord], imported: Imported, kept: dict[int, int]
) -> None:
    """The revisions of the imported notes, but those the target keeps of its own (`kept`: up to
    which version, by note id)."""
    rows = [
        (r.owner, r.note.id, *_note_row(NoteRecord(r.owner, r.note))[2:9], r.note.version,
         to_microseconds(r.note.updated_at))
        for r in records if r.note.version > kept.get(r.note.id, 0)
    ]
    with unavailable_on_error():
        db.executemany(_INSERT_REVISION, rows)
    imported.revisions += len(rows)


def _log_imported(db: sqlite3.Connection, triggers: Sequence[str]) -> None:
    with unavailable_on_error():
        db.execute(_LOG_IMPORTED)
        db.execute(_LOG_TRASHED)
        db.execute("DROP TABLE temp.imported_ids")
        for trigger in triggers:
            db.execute(trigger)


class _Batches:
    """Work handed to the writer's thread, done in the order given, up to AHEAD batches ahead of
    the loop. Leaving waits for the work in flight, whatever happens (what has not started is
    cancelled), so that the transaction never ends while the thread writes in it."""

    def __init__(self, db: sqlite3.Connection, on_conflict: OnConflict, imported: Imported, at: datetime) -> None:
        self._db, self.on_conflict, self.imported, self.at = db, on_conflict, imported, at
        self.kept: dict[int, int] = {}  # note id -> the target's revisions kept up to this version
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-import")
        self._pending: deque[Future[None]] = deque()
        self.bulk: _Bulk | None = None

    async def __aenter__(self) -> _Batches:
        return self

    async def write(self, records: list[NoteRecord]) -> None:
        """Rows made here, on the loop, which would otherwise wait for the thread to write them."""
        notes = [_note_row(record) for record in records if record.deleted_at is None]
        trashed = [(*_note_row(record)[:10], to_microseconds(record.deleted_at))
                   for record in records if record.deleted_at is not None]
        await self.run(_write_notes, self._db, records, notes, trashed, self)

    async def run(self, work: Callable[..., None], *args: Any) -> None:
        """`work(*args)` in the thread, after the work handed to it before, while the
        transaction is open (after a failure SQLite may have ended it)."""
        while len(self._pending) >= AHEAD:
            await asyncio.wrap_future(self._pending.popleft())
        self._pending.append(self._thread.submit(self._in_the_transaction, work, *args))

    def _in_the_transaction(self, work: Callable[..., None], *args: Any) -> None:
        in_the_transaction(self._db)
        work(*args)

    async def finish(self) -> None:
        while self._pending:
            await asyncio.wrap_future(self._pending.popleft())

    async def __aexit__(self, *exc: object) -> None:
        for pending in self._pending:
            pending.cancel()  # no-op for the one running
        wait(self._pending)  # a moment at most: one batch
        self._thread.shutdown(wait=True)


class _Bulk:
    """An import into an empty table, indexed as pg_restore would: the secondary indexes of
    `notes` and the trigger that keeps its tag and search tables are dropped (in the transaction:
    a rollback brings them back) and built once at the end, each index in one sorted pass,
    several times faster than row by row. The tag and search tables are filled a CHUNK of notes
    at a time in the writer's thread, while the loop converts the next batches; the search index
    takes FTS_SETTINGS meanwhile (its own are then set back)."""

    TRIGGER = "notes_ai"  # the one trigger an insert fires
    CHUNK = 20_000
    # FTS5 configuration options: (during the import, FTS5's default). More memory for the
    # index as it fills (flushed less often) and fewer merges of its segments: the search index
    # of a million notes filled in 13 s instead of 31.
    FTS_SETTINGS: ClassVar = {"hashsize": (16 << 20, 1 << 20), "automerge": (8, 4)}
    SORTER_THREADS = 2  # PRAGMA threads while the indexes are built: 4.6 s for the six instead of 5.6

    def __init__(self, trigger: str, indexes: list[str], fts_settings: dict[str, int | None]) -> None:
        self._trigger, self._indexes, self._fts_settings = trigger, indexes, fts_settings
        self._unindexed = 0

    @classmethod
    def into(cls, db: sqlite3.Connection) -> _Bulk | None:
        if db.execute("SELECT 1 FROM notes LIMIT 1").fetchone() is not None:
            return None
        triggers = _set_aside(db, [cls.TRIGGER])
        if not triggers:
            return None
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'notes' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            db.execute(f"DROP INDEX {name}")
        settings: dict[str, int | None] = dict.fromkeys(cls.FTS_SETTINGS)  # None: not set, FTS5's default
        settings.update(db.execute(f"SELECT k, v FROM notes_fts_config WHERE k IN ({', '.join('?' * len(settings))})",
                                   tuple(settings)))
        for name, (value, _) in cls.FTS_SETTINGS.items():
            db.execute("INSERT INTO notes_fts (notes_fts, rank) VALUES (?, ?)", (name, value))
        db.execute("CREATE TEMP TABLE unindexed (id INTEGER PRIMARY KEY)")
        return cls(triggers[0], [str(sql) for _, sql in indexes], settings)

    def written(self, db: sqlite3.Connection, ids: list[int]) -> None:
        """These notes are in `notes`; their tags and search text go in with the chunk's."""
        insert_rows(db, "temp.unindexed (id)", [(note_id,) for note_id in ids])
        self._unindexed += len(ids)
        if self._unindexed >= self.CHUNK:
            self._index(db)

    def _index(self, db: sqlite3.Connection) -> None:
        """What the dropped trigger does, for the notes written since the last time."""
        chunk = "IN (SELECT id FROM temp.unindexed)"  # in id order, as FTS5 takes rows best
        db.execute(f"INSERT INTO notes_fts (rowid, search_text) SELECT id, search_text FROM notes WHERE id {chunk}")
        db.execute("INSERT INTO note_tags (owner, tag, note_id)"
                   f" SELECT notes.owner, value, notes.id FROM notes, json_each(notes.tags) WHERE notes.id {chunk}")
        db.execute("DELETE FROM temp.unindexed")
        self._unindexed = 0

    def finish(self, db: sqlite3.Connection) -> None:
        with unavailable_on_error():
            self._index(db)
            db.execute("DROP TABLE temp.unindexed")
            threads = db.execute("PRAGMA threads").fetchone()[0]
            db.execute(f"PRAGMA threads = {self.SORTER_THREADS}")
            try:
                for sql in self._indexes:
                    db.execute(sql)
            finally:
                db.execute(f"PRAGMA threads = {int(threads)}")
            db.execute(self._trigger)
            for name, value in self._fts_settings.items():
                back = self.FTS_SETTINGS[name][1] if value is None else value
                db.execute("INSERT INTO notes_fts (notes_fts, rank) VALUES (?, ?)", (name, back))
                if value is None:  # as it was: not set (FTS5 has just taken its default back)
                    db.execute("DELETE FROM notes_fts_config WHERE k = ?", (name,))


def _write_token(db: sqlite3.Connection, token: TokenRecord, on_conflict: OnConflict, imported: Imported) -> None:
    clashes = [row[0] for row in db.execute(
        "SELECT id FROM tokens WHERE id = ? OR secret_hash = ?", (token.id, token.secret_hash)
    )]
    if clashes:
        if on_conflict is OnConflict.FAIL:
            raise ImportConflictError("token", token.id)
        if on_conflict is OnConflict.SKIP:
            imported.skipped_tokens.append(token.id)
            return
        db.executemany("DELETE FROM tokens WHERE id = ?", [(clash,) for clash in clashes])
    db.execute(
        f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (token.id, token.owner, token.label, str(token.scope), token.secret_hash,
         to_microseconds(token.created_at), _micros(token.expires_at), _micros(token.last_used_at)),
    )
    imported.tokens += 1


def _write_notes(
    db: sqlite3.Connection, records: list[NoteRecord], notes: list[tuple], trashed: list[tuple], batches: _Batches
) -> None:
    """`records` as rows of `_note_row`: `notes`, and `trashed` (the first ten values, then
    `deleted_at`) for those in the trash."""
    if not records:
        return
    ids = [record.note.id for record in records]
    with unavailable_on_error():
        marks = ", ".join("?" * len(ids))
        existing = {row[1]: _note_record(row) for row in db.execute(f"{_SELECT_NOTES} WHERE id IN ({marks})", ids)}
    if existing:
        if batches.on_conflict is OnConflict.FAIL:
            raise ImportConflictError("note", min(existing))
        changes = {} if batches.on_conflict is OnConflict.SKIP else {
            record.note.id: replacement(existing[record.note.id], record)
            for record in records if record.note.id in existing
        }
        kept = {note_id for note_id in existing if changes.get(note_id) is None}  # skipped, or the same already
        replaced = {note_id: change for note_id, change in changes.items() if change is not None}
        batches.imported.skipped += sorted(kept)
        batches.kept.update(dict.fromkeys(kept, KEPT_WHOLE))
        notes = [_replaced(row, replaced) for row in notes if row[1] not in kept]
        trashed = [_replaced(row, replaced) for row in trashed if row[1] not in kept]
        ids = [note_id for note_id in ids if note_id not in kept]
        if replaced:
            _give_way(db, existing, replaced, batches.at)
            batches.kept.update((note_id, change.kept_up_to) for note_id, change in replaced.items())
            for record in records:
                if (change := replaced.get(record.note.id)) is not None:
                    batches.imported.count_replaced(record.note.id, record.note.version, change)
    with unavailable_on_error():
        insert_rows(db, f"notes ({_NOTE_COLUMNS}, title_key, search_text)", notes)
        db.executemany(_INSERT_TRASH, trashed)
        insert_rows(db, "temp.imported_ids (id)", [(note_id,) for note_id in ids])
        if batches.bulk is not None:
            batches.bulk.written(db, [row[1] for row in notes])
    batches.imported.notes += len(ids)


def _replaced(row: tuple, replaced: dict[int, Replacement]) -> tuple:
    """The row with the version its replacement gives it (its tenth value)."""
    change = replaced.get(row[1])
    return row if change is None else (*row[:9], change.version, *row[10:])


def _give_way(
    db: sqlite3.Connection, existing: dict[int, NoteRecord], replaced: dict[int, Replacement], at: datetime
) -> None:
    """The target's notes that imported ones replace go (a DELETE, so that the triggers keep the
    tag and search tables right), with their revisions past what each replacement keeps; one
    that leaves another owner is logged as deleted for them."""
    with unavailable_on_error():
        gone = [(note_id,) for note_id in replaced]
        db.executemany("DELETE FROM notes WHERE id = ?", gone)
        db.executemany("DELETE FROM trash WHERE id = ?", gone)
        with sqlite_history.keeping_last_position(db):
            db.executemany("DELETE FROM changes WHERE note_id = ? AND op = 'put' AND version > ?",
                           [(note_id, change.kept_up_to) for note_id, change in replaced.items()])
        db.executemany(
            "INSERT INTO changes (owner, note_id, version, op, at) VALUES (?, ?, ?, 'delete', ?)",
            [(change.leaves, note_id, existing[note_id].note.version, to_microseconds(at))
             for note_id, change in replaced.items() if change.leaves is not None],
        )


def _note_row(record: NoteRecord) -> tuple:
    note = record.note
    return (
        record.owner, note.id, note.title, note.description, note.priority, orjson.dumps(note.tags).decode(),
        note.created_by, to_microseconds(note.created_at), to_microseconds(note.updated_at), note.version,
        title_sort_key(note.title), search_text(note.title, note.description),
    )
