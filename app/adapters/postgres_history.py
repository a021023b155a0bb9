"""The history of a PostgreSQL store: the log's statements, pruning, and LISTEN/NOTIFY.

Why a follower never skips a row
--------------------------------
A position from a sequence is not enough here: a transaction that took position 10 can commit
after one that took 11, and a follower that already read 11 would never read 10. So each row
also has a `key`, and the feed is read in (key, position) order, only below the oldest
transaction still in flight:

1. A row's key is the id of the transaction that wrote it (`pg_current_xact_id()`, an xid8,
   which never wraps), or the key of the note's previous change when that is larger (the
   note's `change_key`, read under the row lock the write holds, so it is the key of the change
   committed just before this one).
2. A read takes, in the same statement as the page, the snapshot's transactions in flight
   (`pg_snapshot_xip`) and its xmax (every later transaction gets an id of at least that). The
   bound is the smallest id in flight, or xmax if none, leaving out the transactions that
   `pg_stat_activity` shows in flight in another database: those cannot write here (one that
   has ended meanwhile is no longer shown, and counts). Every transaction with an id below the
   bound that could have written here has ended, so every row it wrote is visible now, or never
   will be. The read returns only rows with key < bound.
   When the bound is a transaction that has ended since the snapshot (most often one of another
   database that ended between the snapshot and the look at `pg_stat_activity`), the page is
   read again: it would hold back rows already committed, and a follower woken by their commit
   would find nothing and wait for a wake-up that does not come. And a page says when the bound
   keeps it from rows already committed (`held_back`): the transaction in flight may wake none of
   the owner's followers when it ends (another owner's, or one that logs nothing), so a follower
   looks again while it is so (NoteService.changes).
3. A transaction of this database still in flight, or one to come, has an id of at least the
   bound, and each of its rows a key of at least its id (1.). So no row the reader cannot see
   yet has a key below the bound, and none will ever appear below a token the reader was
   given: a page ends at its last row, or, when it holds every readable row, at (bound, 0).

So a follower sees each committed change once, and never skips one; a transaction held open
only delays the rows after it (the follower waits for it, by design). Changes of one note come
in the order they were made (1.), and so do changes made one after the other (a later
transaction gets a larger id). Only transactions that overlapped in time, on different notes,
may come in another order than they committed: no reader could tell which was first anyway.

A transaction of this database that has an xid holds the feed back while it is open: keep
transactions short (the service's are). Transactions of other databases on the same server do
not (a role that cannot see other sessions' `backend_xid` only makes the bound lower: safe).

Waking followers: after a write commits, the process wakes its own followers and sends one
NOTIFY per owner (coalesced, off the request's path); every process LISTENs on one connection
of its own and wakes its followers of that owner. A NOTIFY inside the write's transaction would
serialise every commit on PostgreSQL's notify lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from app.adapters.postgres_link import UNAVAILABLE, transaction
from app.adapters.signals import ChangeSignals
from app.domain.errors import ChangeTokenAheadError, ChangeTokenExpiredError
from app.domain.history import Change, ChangeOp, ChangesPage, ChangeToken, Pruned, Retention, Trashed
from app.domain.model import Note, stored_note
from app.domain.timestamps import aware

log = logging.getLogger("app.postgres")
CHANNEL = "notes_changes"
CONTENT = "title, description, priority, tags, created_by, created_at, updated_at"
OPS = {op.value: op for op in ChangeOp}  # a dict lookup: calling the enum costs more, a row at a time
BATCH = 500
TRASH_BATCH = 100
NOTIFY_EVERY = 0.02  # seconds between two NOTIFYs of a process, at most
PRUNE_LOCK = 0x6E6F746573  # the advisory lock of pruning: one process prunes at a time

# A statement that makes a note holds its owner's row (FOR KEY SHARE, as a foreign key's check
# would) until it commits, and finds none once the owner is removed: `remove_owner` locks the row
# FOR UPDATE before it counts the owner's notes, so no note is made that it does not see.
INSERT = f"""
WITH n AS (
    INSERT INTO notes ({CONTENT}, version, title_key, search_text, owner, change_key)
    SELECT $1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, pg_current_xact_id()
    FROM owners WHERE name = $10 FOR KEY SHARE
    RETURNING id, change_key
)
INSERT INTO changes (key, owner, note_id, version, op, at, {CONTENT})
SELECT change_key, $10, id, 1, 'put', $7, $1, $2, $3, $4, $5, $6, $7 FROM n
RETURNING note_id"""
UPDATE = f"""
WITH n AS (
    UPDATE notes SET title = $1, description = $2, priority = $3, tags = $4, created_by = $5,
        created_at = $6, updated_at = $7, version = $8, title_key = $9, search_text = $10,
        change_key = greatest(pg_current_xact_id(), change_key)
    WHERE id = $11 AND owner = $12 AND version = $13
    RETURNING change_key
)
INSERT INTO changes (key, owner, note_id, version, op, at, {CONTENT})
SELECT change_key, $12, $11, $8, 'put', $7, $1, $2, $3, $4, $5, $6, $7 FROM n"""
# $1 id, $2 owner, $3 deleted_at, $4 purge, $5 the version it must be at (NULL: any)
DELETE = f"""
WITH n AS (
    DELETE FROM notes WHERE id = $1 AND owner = $2 AND ($5::integer IS NULL OR version = $5)
    RETURNING id, owner, {CONTENT}, version, title_key, search_text,
        greatest(pg_current_xact_id(), change_key) AS key
), trashed AS (
    INSERT INTO trash (id, owner, {CONTENT}, version, title_key, search_text, change_key, deleted_at)
    SELECT id, owner, {CONTENT}, version, title_key, search_text, key, $3 FROM n WHERE NOT $4
), purged AS (
    DELETE FROM changes WHERE $4 AND note_id = $1 AND owner = $2 AND op = 'put' AND EXISTS (SELECT FROM n)
)
INSERT INTO changes (key, owner, note_id, version, op, at)
SELECT key, owner, id, version, 'delete', $3 FROM n"""
# A move of the notes of $1 to $2: the ids of its notes and of its trash, locked; their rows of
# the log become $2's (a purged note's stay $1's, whose followers may not have read its delete).
MOVING_NOTES = "SELECT id FROM notes WHERE owner = $1 ORDER BY id FOR UPDATE"
MOVING_TRASH = "SELECT id FROM trash WHERE owner = $1 ORDER BY id FOR UPDATE"
MOVE_HISTORY = "UPDATE changes SET owner = $2 WHERE owner = $1 AND note_id = ANY($3::bigint[])"
# Then, at $3, for the notes $4 and the trash $5: a delete of each for the followers of $1 (it has
# them no more), a put of each note for those of $2 (the row of its current version goes to the
# end of the log, so each version is in it once); the notes' new keys are these rows'.
MOVE = f"""
WITH moving AS (
    SELECT true AS live, id, version, greatest(pg_current_xact_id(), change_key) AS key, {CONTENT}
    FROM notes WHERE id = ANY($4::bigint[])
    UNION ALL
    SELECT false, id, version, greatest(pg_current_xact_id(), change_key), NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM trash WHERE id = ANY($5::bigint[])
), newest AS (
    DELETE FROM changes c USING moving m
    WHERE m.live AND c.note_id = m.id AND c.version = m.version AND c.op = 'put'
)
INSERT INTO changes (key, owner, note_id, version, op, at, {CONTENT})
SELECT key, owner, id, version, op, $3, {CONTENT} FROM (
    SELECT key, $2::text AS owner, id, version, 'put' AS op, {CONTENT} FROM moving WHERE live
    UNION ALL
    SELECT key, $1::text, id, version, 'delete', NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM moving
) AS logged ORDER BY id, op DESC"""
MOVE_NOTES = (
    "UPDATE notes SET owner = $1, change_key = greatest(pg_current_xact_id(), change_key) WHERE id = ANY($2::bigint[])"
)
MOVE_TRASH = (
    "UPDATE trash SET owner = $1, change_key = greatest(pg_current_xact_id(), change_key) WHERE id = ANY($2::bigint[])"
)
NOTIFY = f"SELECT pg_notify('{CHANNEL}', o) FROM unnest($1::text[]) AS o"  # $1: the owners
# $1 id, $2 owner, $3 the time of the restore, $4 the version the trash must hold it at (null: any)
RESTORE = f"""
WITH t AS (
    DELETE FROM trash WHERE id = $1 AND owner = $2 AND ($4::bigint IS NULL OR version = $4)
        AND EXISTS (SELECT FROM owners WHERE name = $2 FOR KEY SHARE)  -- as INSERT does
    RETURNING id, owner, {CONTENT}, version, title_key, search_text, change_key
), n AS (
    INSERT INTO notes (id, owner, title, description, priority, tags, created_by, created_at, updated_at,
                       version, title_key, search_text, change_key)
    OVERRIDING SYSTEM VALUE
    SELECT id, owner, title, description, priority, tags, created_by, created_at, $3,
           version + 1, title_key, search_text, greatest(pg_current_xact_id(), change_key) FROM t
    RETURNING id, {CONTENT}, version, change_key
), logged AS (
    INSERT INTO changes (key, owner, note_id, version, op, at, {CONTENT})
    SELECT change_key, $2, id, version, 'put', $3, {CONTENT} FROM n
)
SELECT id, {CONTENT}, version FROM n"""
PURGE = """
WITH t AS (DELETE FROM trash WHERE id = $1 AND owner = $2 AND ($3::bigint IS NULL OR version = $3) RETURNING id),
purged AS (DELETE FROM changes WHERE note_id IN (SELECT id FROM t) AND owner = $2 AND op = 'put')
SELECT count(*) FROM t"""
REVISIONS = f"""
SELECT note_id, {CONTENT}, version FROM changes
WHERE note_id = $1 AND owner = $2 AND op = 'put' AND version BETWEEN $3 AND $4
  AND EXISTS (SELECT FROM notes WHERE id = $1 AND owner = $2)
ORDER BY version DESC LIMIT $5"""
TRASH_COLUMNS = f"id, {CONTENT}, version, deleted_at"
TRASH = f"SELECT {TRASH_COLUMNS} FROM trash WHERE owner = $1 ORDER BY deleted_at DESC, id DESC LIMIT $2"
TRASHED = f"SELECT {TRASH_COLUMNS} FROM trash WHERE id = $1 AND owner = $2"
IN_TRASH = "SELECT true FROM trash WHERE id = $1 AND owner = $2"
HOLD_OWNER = "SELECT true FROM owners WHERE name = $1 FOR KEY SHARE"  # as INSERT does, for a COPY
TRASH_AFTER = f"""
SELECT {TRASH_COLUMNS} FROM trash WHERE owner = $1 AND (deleted_at, id) < ($2, $3)
ORDER BY deleted_at DESC, id DESC LIMIT $4"""
# One statement: the bound of what is readable comes from the snapshot the page is read in (see the module's
# notes): the oldest transaction in flight then, leaving out those known to be of another database
# (they cannot write here), or the snapshot's xmax when there is none.
# Its last columns say whether that bound is a transaction that has ended since (read again, then),
# and whether the bound holds back rows of the owner after the token (the page's `held_back`).
CHANGES = f"""
WITH s AS (SELECT pg_current_snapshot() AS snap),
h AS MATERIALIZED (  -- the bound once, not once for each use below
    SELECT s.snap, (
        SELECT min(xid) FROM pg_snapshot_xip(s.snap) AS xid
        WHERE NOT EXISTS (
            SELECT FROM pg_stat_activity a
            WHERE a.datname <> current_database()
              AND a.backend_xid::text::bigint = xid::text::bigint % 4294967296)) AS held
    FROM s
),
x AS (
    SELECT coalesce(h.held, pg_snapshot_xmax(h.snap)) AS readable,
        h.held IS NOT NULL AND pg_xact_status(h.held) <> 'in progress' AS ended,
        h.held IS NOT NULL AND EXISTS (
            SELECT FROM changes WHERE owner = $1 AND (key, position) > ($2::text::xid8, $3) AND key >= h.held
        ) AS held_back,
        horizon_key, horizon_position, pg_snapshot_xmax(h.snap) AS xmax
    FROM h, change_log
)
SELECT x.readable::text, x.horizon_key::text, x.horizon_position,
       c.key::text, c.position, c.note_id, c.version, c.op, c.at, {', '.join('c.' + c for c in CONTENT.split(', '))},
       x.held_back, x.ended, x.xmax::text
FROM x LEFT JOIN LATERAL (
    SELECT * FROM changes
    WHERE owner = $1 AND (key, position) > ($2::text::xid8, $3)
      AND (key, position) > (x.horizon_key, x.horizon_position) AND key < x.readable
    ORDER BY key, position LIMIT $4
) c ON true
ORDER BY c.key, c.position"""
# After a COPY into notes (POST /import): key the new notes and log them.
LOG_COPIED = f"""
WITH n AS (
    UPDATE notes SET change_key = pg_current_xact_id() WHERE id = ANY($1::bigint[]) RETURNING *
)
INSERT INTO changes (key, owner, note_id, version, op, at, {CONTENT})
SELECT change_key, owner, id, version, 'put', updated_at, {CONTENT} FROM n ORDER BY id"""


def content_note(row: Sequence) -> Note:
    """A note from (id, title ... updated_at, version)."""
    note_id, title, description, priority, tags, created_by, created_at, updated_at, version = row
    return stored_note(
        id=note_id, title=title, description=description, priority=priority, tags=tuple(tags),
        created_by=created_by, created_at=aware(created_at), updated_at=aware(updated_at), version=version,
    )


def trashed(row: asyncpg.Record) -> Trashed:
    return Trashed(content_note(row[:9]), aware(row[9]))


def read_again(rows: Sequence[asyncpg.Record], limit: int) -> bool:
    """Whether a read of CHANGES was bounded by a transaction that has ended since, and the bound
    made a difference (the page is not full): read it again."""
    return bool(rows[0][-2]) and not (len(rows) == limit and rows[-1][3] is not None)


def changes_page(rows: Sequence[asyncpg.Record], since: ChangeToken | None, limit: int) -> ChangesPage:
    readable, horizon_key, horizon_position = int(rows[0][0]), int(rows[0][1]), rows[0][2]
    horizon = ChangeToken(horizon_key, horizon_position)
    if since is not None and since < horizon:
        raise ChangeTokenExpiredError(since)
    if since is not None and since.key > int(rows[0][-1]):  # tokens handed out are below the next xid
        raise ChangeTokenAheadError(since)
    changes = tuple(
        Change(
            ChangeToken(int(row[3]), row[4]), OPS[row[7]], row[5], row[6], aware(row[8]),
            None if row[7] == "delete" else content_note((row[5], *row[9:16], row[6])),
        )
        for row in rows if row[3] is not None
    )
    if len(changes) == limit:
        return ChangesPage(changes, changes[-1].token)
    return ChangesPage(changes, max(since or horizon, horizon, ChangeToken(readable, 0)), held_back=rows[0][-3])


async def prune(pool: asyncpg.Pool, timeout: float, now: datetime, retention: Retention) -> Pruned:
    """One round, one short transaction, by one process at a time (another waits its turn)."""
    async with transaction(pool, timeout) as db:
        await db.execute("SELECT pg_advisory_xact_lock($1)", PRUNE_LOCK)
        trashed_count = await _expire_trash(db, retention.trash_cutoff(now))
        changes, changes_more = await _expire_changes(db, retention.changes_cutoff(now), retention)
        revisions, revisions_more = await _prune_revisions(db, retention)
    return Pruned(
        revisions=revisions, trashed=trashed_count, changes=changes,
        more=trashed_count == TRASH_BATCH or changes_more or revisions_more,
    )


async def _expire_trash(db: asyncpg.Connection, cutoff: datetime) -> int:
    ids = await db.fetchval(
        "WITH t AS (DELETE FROM trash WHERE id IN"
        " (SELECT id FROM trash WHERE deleted_at < $1 ORDER BY deleted_at LIMIT $2) RETURNING id)"
        " SELECT array_agg(id) FROM t",
        cutoff, TRASH_BATCH,
    )
    if not ids:
        return 0
    await db.execute("DELETE FROM changes WHERE note_id = ANY($1::bigint[]) AND op = 'put'", ids)
    return len(ids)


async def _current_versions(db: asyncpg.Connection, note_ids: set[int]) -> dict[int, int]:
    if not note_ids:
        return {}
    rows = await db.fetch(
        "SELECT id, version FROM notes WHERE id = ANY($1::bigint[])"
        " UNION ALL SELECT id, version FROM trash WHERE id = ANY($1::bigint[])",
        list(note_ids),
    )
    return {row[0]: row[1] for row in rows}


async def _expire_changes(db: asyncpg.Connection, cutoff: datetime, retention: Retention) -> tuple[int, bool]:
    """Rows older than the cutoff leave the feed, in position order; the horizon moves past the
    largest (key, position) among them. A `put` still among its note's kept revisions stays."""
    examined, horizon_key, horizon_position = await db.fetchrow(
        "SELECT examined, horizon_key::text, horizon_position FROM change_log"
    )
    rows = await db.fetch(
        "SELECT position, note_id, version, op, at, key::text FROM changes WHERE position > $1"
        " ORDER BY position LIMIT $2",
        examined, BATCH,
    )
    expired = list(itertools.takewhile(lambda row: row[4] < cutoff, rows))
    if not expired:
        return 0, False
    current = await _current_versions(db, {row[1] for row in expired if row[3] == "put"})
    drop = [
        position for position, note_id, version, op, *_ in expired
        if retention.gone_with_feed(op, version, current.get(note_id))
    ]
    await db.execute("DELETE FROM changes WHERE position = ANY($1::bigint[])", drop)
    horizon = max(ChangeToken(int(horizon_key), horizon_position), *(ChangeToken(int(r[5]), r[0]) for r in expired))
    await db.execute(
        "UPDATE change_log SET examined = $1, horizon_key = $2::text::xid8, horizon_position = $3",
        expired[-1][0], str(horizon.key), horizon.position,
    )
    return len(expired), len(expired) == BATCH


async def _prune_revisions(db: asyncpg.Connection, retention: Retention) -> tuple[int, bool]:
    """Revisions beyond the kept number, of the notes written since the last round, once their
    rows have left the feed (until then the feed still needs them)."""
    revisions_examined, examined = await db.fetchrow("SELECT revisions_examined, examined FROM change_log")
    rows = await db.fetch(
        "SELECT position, note_id FROM changes WHERE position > $1 AND op = 'put' ORDER BY position LIMIT $2",
        revisions_examined, BATCH,
    )
    if not rows:
        return 0, False
    current = await _current_versions(db, {row[1] for row in rows})
    status = await db.execute(
        "DELETE FROM changes c USING unnest($1::bigint[], $2::integer[]) AS kept(note_id, oldest)"
        " WHERE c.note_id = kept.note_id AND c.op = 'put' AND c.version < kept.oldest AND c.position <= $3",
        list(current), [retention.oldest_kept(v) for v in current.values()], examined,
    )
    await db.execute("UPDATE change_log SET revisions_examined = $1", rows[-1][0])
    return int(status.split()[-1]), len(rows) == BATCH


class Notifications:
    """NOTIFY after this process's writes and LISTEN for every process's, on one connection of
    this process's own (not the pool's): opened at the first write or the first follower, and
    again after it is lost. The notifications are sent by one task, one statement for every
    owner that changed meanwhile."""

    def __init__(self, database_url: str, timeout: float) -> None:
        self._url, self._timeout = database_url, timeout
        self.signals = ChangeSignals(first=self._listen)
        self._pending: set[str] = set()
        self._connection: asyncpg.Connection | None = None
        self._opening = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._sender: asyncio.Task[None] | None = None  # the one task that sends, while there is work

    def changed(self, owner: str) -> None:
        """A write of `owner`'s has committed in this process."""
        self.signals.changed(owner)
        self._pending.add(owner)
        if self._sender is None or self._sender.done():
            self._sender = self._start(self._send(), "notes-notify")

    def _start(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        if self._closed:
            work.close()
            return None
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self) -> None:
        """At most one NOTIFY every `NOTIFY_EVERY` seconds: each is a transaction of its own (with
        a commit to flush), so under a load of writes one carries every owner that changed
        meanwhile, and a follower elsewhere still hears of a change within that time."""
        await asyncio.sleep(0)  # the writes of this turn of the loop go out together
        while self._pending:
            owners, self._pending = sorted(self._pending), set()
            try:
                connection = await self._open()
                await connection.execute(NOTIFY, owners)
            except (*UNAVAILABLE, OSError) as error:
                # the followers of other processes still look when their wait ends
                log.warning("could not notify other processes of a change: %s", error)
                self._pending.clear()
                return
            await asyncio.sleep(NOTIFY_EVERY)

    def _listen(self) -> None:
        if not self.signals.closing:
            self._start(self._listen_now(), "notes-listen")

    async def _listen_now(self) -> None:
        delay = 0.1
        while self.signals.watched and not self.signals.closing:
            try:
                await self._open()
                return
            except (*UNAVAILABLE, OSError) as error:
                log.warning("cannot LISTEN for changes (%s); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _open(self) -> asyncpg.Connection:
        async with self._opening:
            if self._connection is None or self._connection.is_closed():
                connection = await asyncpg.connect(self._url, timeout=self._timeout)
                try:
                    connection.add_termination_listener(self._lost)
                    await connection.add_listener(CHANNEL, self._heard)
                except BaseException:
                    connection.terminate()
                    raise
                self._connection = connection
                self.signals.changed_all()  # anything written while no one listened
            return self._connection

    def _lost(self, _connection: object) -> None:
        self._connection = None
        self.signals.changed_all()
        self._listen()

    def _heard(self, _connection: object, _pid: int, _channel: str, owner: str) -> None:
        self.signals.changed(owner)

    async def close(self) -> None:
        self._closed = True
        self.signals.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.remove_termination_listener(self._lost)
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)
