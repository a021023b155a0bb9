"""The history of a SQLite store: the log's statements, pruning, and hearing other processes.

Why a follower never skips a row here: SQLite lets one connection write at a time, across
processes, and a row's position (the rowid: the largest there is, plus one) is taken while that
lock is held. So positions are handed out in commit order: when a reader sees position n, every
position below n was committed before it, or rolled back and never will be. A page is read in
one statement, one snapshot, with the largest position committed, and the next read starts past
it. Positions are never given twice because the row of the largest one is never deleted: every
delete of log rows runs inside `keeping_last_position`, which puts a marker in its place.

`put` rows are written by triggers on `notes` (migration 0004), so every way a note is written
logs it; deletes, the trash and purges are written here, in one transaction each.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import orjson

from app.adapters.signals import ChangeSignals
from app.adapters.sqlite_link import Writer, unavailable_on_error
from app.domain.errors import ChangeTokenAheadError, ChangeTokenExpiredError, NotInTrashError, VersionConflictError
from app.domain.history import Change, ChangeOp, ChangesPage, ChangeToken, Pruned, Retention, Trashed
from app.domain.model import Note, stored_note
from app.domain.timestamps import from_microseconds, to_microseconds

CONTENT = "title, description, priority, tags, created_by, created_at, updated_at"
OPS = {op.value: op for op in ChangeOp}  # a dict lookup: calling the enum costs more, a row at a time
BATCH = 500
TRASH_BATCH = 100
POLL_SECONDS = 0.05  # how often a process with followers looks whether another one wrote

# One statement, so one snapshot: the meta row (horizon, last position) and then the page.
CHANGES = f"""
SELECT 0, horizon_position, coalesce((SELECT max(position) FROM changes), 0),
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM change_log
UNION ALL
SELECT * FROM (
    SELECT 1, position, note_id, version, op, at, {CONTENT} FROM changes
    WHERE owner = ? AND position > max(?, (SELECT horizon_position FROM change_log))
    ORDER BY position LIMIT ?
)"""
REVISIONS = (  # of a note of the owner's notes (not of one in the trash)
    f"SELECT note_id, {CONTENT}, version FROM changes WHERE note_id = ? AND owner = ? AND op = 'put'"
    " AND version BETWEEN ? AND ? AND EXISTS (SELECT 1 FROM notes WHERE id = note_id AND notes.owner = changes.owner)"
    " ORDER BY version DESC LIMIT ?"
)
# A move of the notes of :source to :target at :at. Their rows of the log become the target's
# (a purged note's stay the source's, whose followers may not have read its delete); the row of
# each note's current version leaves its place (MOVE_FROM, the source as ?) for the end of the
# log, as a put for the followers of the target; and the followers of the source get a delete of
# each note and of each note in its trash. Then the notes and the trash change owner.
MOVE_HISTORY = """
UPDATE changes SET owner = :target WHERE owner = :source
AND note_id IN (SELECT id FROM notes WHERE owner = :source UNION ALL SELECT id FROM trash WHERE owner = :source)"""
MOVE_FROM = (
    "DELETE FROM changes WHERE op = 'put' AND (note_id, version) IN (SELECT id, version FROM notes WHERE owner = ?)"
)
MOVE = f"""
INSERT INTO changes (owner, note_id, version, op, at, {CONTENT})
SELECT owner, id, version, op, :at, {CONTENT} FROM (
    SELECT :target AS owner, id, version, 'put' AS op, {CONTENT} FROM notes WHERE owner = :source
    UNION ALL
    SELECT :source, id, version, 'delete', NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM notes WHERE owner = :source
    UNION ALL
    SELECT :source, id, version, 'delete', NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM trash WHERE owner = :source
) ORDER BY id, op DESC"""
TRASH_COLUMNS = f"id, {CONTENT}, version, deleted_at"
TRASH = f"SELECT {TRASH_COLUMNS} FROM trash WHERE owner = ? ORDER BY deleted_at DESC, id DESC LIMIT ?"
TRASHED = f"SELECT {TRASH_COLUMNS} FROM trash WHERE id = ? AND owner = ?"
TRASH_AFTER = (
    f"SELECT {TRASH_COLUMNS} FROM trash WHERE owner = ? AND (deleted_at, id) < (?, ?)"
    " ORDER BY deleted_at DESC, id DESC LIMIT ?"
)


# A marker holds the largest position in place of a deleted row: no owner has the empty name, and
# it carries no note (only `put` rows are revisions), so no feed, revision or export shows it. It
# keeps the deleted row's time, so that it leaves the feed (moving the horizon) when that row
# would have. Only the newest marker is of use: older ones go when a new one comes.
_MARKER = "INSERT INTO changes (position, owner, note_id, version, op, at) VALUES (?, '', 0, 0, 'delete', ?)"


@contextmanager
def keeping_last_position(db: sqlite3.Connection) -> Iterator[None]:
    """Around every delete of log rows (and no insert into the log inside it): if the row of the
    largest position went, a marker takes its place, so that the next row's position (the
    largest plus one) is one never given before. In the caller's transaction."""
    last = db.execute("SELECT position, at FROM changes ORDER BY position DESC LIMIT 1").fetchone()
    yield
    if last is not None and db.execute("SELECT 1 FROM changes WHERE position = ?", last[:1]).fetchone() is None:
        db.execute("DELETE FROM changes WHERE owner = '' AND position < ?", last[:1])
        db.execute(_MARKER, last)


def content_note(note_id: int, row: Sequence, version: int) -> Note:
    """A note from the content columns (title ... updated_at) of a log or trash row."""
    title, description, priority, tags, created_by, created_at, updated_at = row
    return stored_note(
        id=note_id, title=title, description=description, priority=priority,
        tags=tuple(orjson.loads(tags)), created_by=created_by,
        created_at=from_microseconds(created_at), updated_at=from_microseconds(updated_at),
        version=version,
    )


def changes_page(rows: Sequence[tuple], since: ChangeToken | None, limit: int) -> ChangesPage:
    """The page from the rows of `CHANGES`."""
    _, horizon, last, *_ = rows[0]
    if since is not None and since.position < horizon:
        raise ChangeTokenExpiredError(since)
    if since is not None and (since.key or since.position > max(last, horizon)):  # the last never goes down
        raise ChangeTokenAheadError(since)
    changes = tuple(
        Change(
            ChangeToken(0, position), OPS[op], note_id, version, from_microseconds(at),
            None if op == "delete" else content_note(note_id, content, version),
        )
        for _, position, note_id, version, op, at, *content in rows[1:]
    )
    if len(changes) == limit:
        return ChangesPage(changes, changes[-1].token)
    start = max(since.position if since else 0, horizon)
    return ChangesPage(changes, ChangeToken(0, max(start, last)))


def trashed(row: tuple) -> Trashed:
    note_id, *content, version, deleted_at = row
    return Trashed(content_note(note_id, content, version), from_microseconds(deleted_at))


def delete(db: sqlite3.Connection, owner: str, note_id: int, at: datetime, version: int | None, purge: bool) -> bool:
    """Move the note to the trash (or delete it for good) and log it, in the caller's
    transaction. False if no note of the owner's at that version was there."""
    where, args = "id = ? AND owner = ?", [note_id, owner]
    if version is not None:
        where, args = f"{where} AND version = ?", [*args, version]
    with unavailable_on_error():
        row = db.execute(f"DELETE FROM notes WHERE {where} RETURNING version, {CONTENT}", args).fetchone()
        if row is None:
            return False
        deleted_version, *content = row
        micros = to_microseconds(at)
        if purge:
            with keeping_last_position(db):
                db.execute("DELETE FROM changes WHERE note_id = ? AND owner = ? AND op = 'put'", (note_id, owner))
        else:
            db.execute(
                f"INSERT INTO trash (id, owner, {CONTENT}, version, deleted_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (note_id, owner, *content, deleted_version, micros),
            )
        db.execute(
            "INSERT INTO changes (owner, note_id, version, op, at) VALUES (?, ?, ?, 'delete', ?)",
            (owner, note_id, deleted_version, micros),
        )
    return True


def take_from_trash(db: sqlite3.Connection, owner: str, note_id: int, version: int | None = None) -> Trashed:
    """The note, out of the trash; with `version`, only if the trash holds it at that version."""
    if version is not None:
        with unavailable_on_error():
            found = db.execute("SELECT version FROM trash WHERE id = ? AND owner = ?", (note_id, owner)).fetchone()
        if found is not None and found[0] != version:  # (in the write's transaction: it stays so)
            raise VersionConflictError(note_id)
    with unavailable_on_error():
        row = db.execute(
            f"DELETE FROM trash WHERE id = ? AND owner = ? RETURNING {TRASH_COLUMNS}", (note_id, owner)
        ).fetchone()
    if row is None:
        raise NotInTrashError(note_id)
    return trashed(row)


def purge(db: sqlite3.Connection, owner: str, note_id: int, version: int | None = None) -> None:
    take_from_trash(db, owner, note_id, version)
    with unavailable_on_error(), keeping_last_position(db):
        db.execute("DELETE FROM changes WHERE note_id = ? AND owner = ? AND op = 'put'", (note_id, owner))


async def prune(writer: Writer, now: datetime, retention: Retention) -> Pruned:
    """One round, one short transaction: the trash, then the feed, then revisions."""
    async with writer.transaction() as db:
        with unavailable_on_error(), keeping_last_position(db):
            trashed_count = _expire_trash(db, to_microseconds(retention.trash_cutoff(now)))
            changes, changes_more = _expire_changes(db, to_microseconds(retention.changes_cutoff(now)), retention)
            revisions, revisions_more = _prune_revisions(db, retention)
    return Pruned(
        revisions=revisions, trashed=trashed_count, changes=changes,
        more=trashed_count == TRASH_BATCH or changes_more or revisions_more,
    )


def _expire_trash(db: sqlite3.Connection, cutoff: int) -> int:
    ids = [row[0] for row in db.execute(
        "SELECT id FROM trash WHERE deleted_at < ? ORDER BY deleted_at LIMIT ?", (cutoff, TRASH_BATCH)
    )]
    for note_id in ids:
        db.execute("DELETE FROM trash WHERE id = ?", (note_id,))
        db.execute("DELETE FROM changes WHERE note_id = ? AND op = 'put'", (note_id,))
    return len(ids)


def _current_versions(db: sqlite3.Connection, note_ids: Iterable[int]) -> dict[int, int]:
    ids = list(set(note_ids))
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    rows = db.execute(
        f"SELECT id, version FROM notes WHERE id IN ({marks})"
        f" UNION ALL SELECT id, version FROM trash WHERE id IN ({marks})",
        (*ids, *ids),
    )
    return dict(rows.fetchall())


def _expire_changes(db: sqlite3.Connection, cutoff: int, retention: Retention) -> tuple[int, bool]:
    """Rows older than the cutoff leave the feed, in position order; the horizon moves past
    them. A `put` that is still one of its note's kept revisions stays in the table."""
    (examined,) = db.execute("SELECT examined FROM change_log").fetchone()
    rows = db.execute(
        "SELECT position, note_id, version, op, at FROM changes WHERE position > ? ORDER BY position LIMIT ?",
        (examined, BATCH),
    ).fetchall()
    expired = list(itertools.takewhile(lambda row: row[4] < cutoff, rows))
    if not expired:
        return 0, False
    current = _current_versions(db, (row[1] for row in expired if row[3] == "put"))
    drop = [
        (position,) for position, note_id, version, op, _ in expired
        if retention.gone_with_feed(op, version, current.get(note_id))
    ]
    db.executemany("DELETE FROM changes WHERE position = ?", drop)
    last = expired[-1][0]
    db.execute(
        "UPDATE change_log SET examined = ?, horizon_position = max(horizon_position, ?)", (last, last)
    )
    return len(expired), len(expired) == BATCH


def _prune_revisions(db: sqlite3.Connection, retention: Retention) -> tuple[int, bool]:
    """Revisions beyond the kept number, of the notes written since the last round, once their
    rows have left the feed (until then the feed still needs them)."""
    revisions_examined, examined = db.execute("SELECT revisions_examined, examined FROM change_log").fetchone()
    rows = db.execute(
        "SELECT position, note_id FROM changes WHERE position > ? AND op = 'put' ORDER BY position LIMIT ?",
        (revisions_examined, BATCH),
    ).fetchall()
    if not rows:
        return 0, False
    removed = 0
    for note_id, version in _current_versions(db, (row[1] for row in rows)).items():
        removed += db.execute(
            "DELETE FROM changes WHERE note_id = ? AND op = 'put' AND version < ? AND position <= ?",
            (note_id, retention.oldest_kept(version), examined),
        ).rowcount
    db.execute("UPDATE change_log SET revisions_examined = ?", (rows[-1][0],))
    return removed, len(rows) == BATCH


class OtherProcesses:
    """While this process has followers, looks every `POLL_SECONDS` whether another connection
    committed (`PRAGMA data_version`, a read of shared memory, no query of a table), and only
    then which followed owners have new rows: one query for every follower of the process."""

    def __init__(self, db: sqlite3.Connection, signals: ChangeSignals) -> None:
        self._db, self._signals = db, signals
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """For the first follower, as it begins and before it reads the log: where the log stands
        is read now, not when the task first runs, or a commit elsewhere in between would be
        neither in what the follower read nor news to the task."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._watch(self._where_now()), name="sqlite-changes")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _where_now(self) -> tuple[int, int] | None:
        """The connection's `data_version`, then the log's last position (in that order: a commit
        between the two is in the position, or shows in the next `data_version`); None when the
        database cannot be read now."""
        try:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            return version, self._wake_after(None)
        except sqlite3.Error:
            return None

    async def _watch(self, start: tuple[int, int] | None) -> None:
        version, seen = start if start is not None else (None, None)
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                now = self._db.execute("PRAGMA data_version").fetchone()[0]
                if seen is None:  # where it stood is unknown: every follower looks again, once
                    seen = self._wake_after(None)
                    self._signals.changed_all()
                elif now != version:
                    seen = self._wake_after(seen)
                version = now
            except sqlite3.Error:
                pass  # busy or briefly unreadable: look again next time

    def _wake_after(self, seen: int | None) -> int:
        """Wake the followed owners with rows past `seen` (none when None); the last position.
        One statement: the last position and the owners come from one snapshot."""
        owners = sorted(self._signals.owners) if seen is not None else []
        marks = ", ".join("?" * len(owners))
        rows = self._db.execute(
            "SELECT NULL, coalesce(max(position), 0) FROM changes UNION ALL"
            f" SELECT DISTINCT owner, 0 FROM changes WHERE position > ? AND owner IN ({marks})",
            (seen or 0, *owners),
        ).fetchall()
        for owner, _ in rows[1:]:
            self._signals.changed(owner)
        return int(rows[0][1])
