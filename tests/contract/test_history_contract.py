"""One contract for the history of every store: revisions, the trash and the changes feed, read
through the port (and the use cases where retention decides), alike on memory, SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from app.adapters import Storage
from app.container import build_container
from app.domain.errors import (
    ChangeTokenAheadError,
    ChangeTokenExpiredError,
    NoteNotFoundError,
    NotInTrashError,
    RevisionNotFoundError,
    VersionConflictError,
)
from app.domain.history import ChangeOp, ChangeToken, Retention
from app.domain.model import Note, stored_note
from app.domain.owners import LOCAL
from app.domain.query import ListQuery, NoteFilter
from app.domain.services import NoteService
from app.domain.transfer import NoteRecord, OnConflict, OwnerRecord, Record
from tests.conftest import settings_for
from tests.factories import T0, draft

OTHER = "bob"


@pytest.fixture
async def other(storage: Storage) -> str:
    await storage.accounts.add_owner(OTHER, T0)
    return OTHER


def service(storage: Storage, now=T0, **retention: int) -> NoteService:
    return NoteService(storage, lambda: now, Retention(**retention))


async def test_every_write_is_a_revision_newest_first_each_the_note_as_it_was(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    first = await notes.add(draft(title="one"))
    second = await notes.update(first.revised(replace(first.content(), title="two"), T0 + timedelta(1)))
    third = await notes.update(second.revised(replace(second.content(), tags=("x",)), T0 + timedelta(2)))
    assert await notes.revisions(first.id, newest=3, oldest=1, limit=10) == [third, second, first]
    assert await notes.revisions(first.id, newest=2, oldest=1, limit=1) == [second]
    page = await service(storage).revisions(LOCAL, first.id, limit=2)
    assert page.revisions == (third, second) and page.next_before == 2
    rest = await service(storage).revisions(LOCAL, first.id, limit=2, before=page.next_before)
    assert rest.revisions == (first,) and rest.next_before is None


async def test_a_restored_revision_is_a_new_version_with_that_content(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    first = await notes.add(draft(title="right"))
    await notes.update(first.revised(replace(first.content(), title="wrong"), T0))
    restored = await service(storage, T0 + timedelta(hours=1)).restore_revision(LOCAL, first.id, 1)
    assert (restored.version, restored.title, restored.updated_at) == (3, "right", T0 + timedelta(hours=1))
    assert await notes.get(first.id) == restored
    assert [n.version for n in await notes.revisions(first.id, newest=3, oldest=1, limit=9)] == [3, 2, 1]
    with pytest.raises(RevisionNotFoundError):
        await service(storage).revision(LOCAL, first.id, 4)


async def test_delete_moves_a_note_to_the_trash_out_of_every_read(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    kept = await notes.add(draft(title="kept searchword"))
    gone = await notes.add(draft(title="gone searchword"))
    await notes.delete(gone.id, at=T0 + timedelta(hours=1))
    with pytest.raises(NoteNotFoundError):
        await notes.get(gone.id)
    assert await notes.list(ListQuery(limit=10)) == [kept]
    assert await notes.list(ListQuery(limit=10, filter=NoteFilter(terms=("searchword",)))) == [kept]
    assert [o.notes for o in await storage.accounts.owners()] == [1]
    with pytest.raises(NoteNotFoundError):
        await notes.revisions(gone.id, newest=1, oldest=1, limit=1)
    [trashed] = await notes.trash(limit=10)
    assert trashed.note == gone and trashed.deleted_at == T0 + timedelta(hours=1)


async def test_a_note_comes_back_from_the_trash_under_its_id_one_version_on(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    note = await notes.add(draft())
    note = await notes.update(note.revised(note.content(), T0))
    await notes.delete(note.id, at=T0 + timedelta(1))
    back = await notes.restore(note.id, T0 + timedelta(2))
    assert back == replace(note, version=3, updated_at=T0 + timedelta(2))
    assert await notes.get(note.id) == back and await notes.trash(limit=10) == []
    with pytest.raises(NotInTrashError):
        await notes.restore(note.id, T0)
    assert [n.version for n in await notes.revisions(note.id, newest=3, oldest=1, limit=9)] == [3, 2, 1]


@pytest.mark.parametrize("act", ["purge", "restore"])
async def test_a_purge_or_a_restore_at_a_version_acts_only_if_the_trash_holds_the_note_at_that_version(
    storage: Storage, act: str
) -> None:
    notes = storage.notes_of(LOCAL)
    note = await notes.add(draft())
    await notes.delete(note.id, at=T0)

    async def at(version: int) -> Note | None:
        if act == "purge":
            await notes.purge(note.id, version)
            return None
        return await notes.restore(note.id, T0, version)

    with pytest.raises(VersionConflictError):
        await at(note.version + 1)
    assert (await notes.in_trash(note.id)).note.version == note.version  # still there
    with pytest.raises(NoteNotFoundError):
        await notes.get(note.id)  # and not back
    done = await at(note.version)
    if act == "restore":
        assert done is not None and (done.id, done.version) == (note.id, note.version + 1)
    with pytest.raises(NotInTrashError):
        await at(note.version)


async def test_a_token_beyond_the_log_is_refused_as_an_expired_one_is(storage: Storage) -> None:
    """No follower of this store was given it (another store's, or a memory store's before it
    restarted): following from it would skip every change up to it without a word."""
    notes = storage.notes_of(LOCAL)
    await notes.add(draft())
    last = (await notes.changes(None, 10)).next
    assert (await notes.changes(last, 10)).changes == ()
    beyond = [ChangeToken(2**62, last.position)]  # PostgreSQL's next transaction id is far below
    if last.key == 0:  # a store that numbers its commits: any position past its last one
        beyond.append(ChangeToken(0, last.position + 1))
    for token in beyond:
        with pytest.raises(ChangeTokenAheadError):
            await notes.changes(token, 10)
    await notes.add(draft())
    assert len((await notes.changes(last, 10)).changes) == 1


async def test_purge_deletes_for_good_with_the_revisions_and_never_reuses_the_id(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    trashed = await notes.add(draft())
    at_once = await notes.add(draft())
    await notes.delete(trashed.id, at=T0)
    await notes.purge(trashed.id)
    await notes.delete(at_once.id, at=T0, purge=True)
    assert await notes.trash(limit=10) == []
    for note_id in (trashed.id, at_once.id):
        with pytest.raises(NotInTrashError):
            await notes.restore(note_id, T0)
        with pytest.raises(NotInTrashError):
            await notes.purge(note_id)
    assert (await notes.add(draft())).id > at_once.id
    changes = (await notes.changes(None, 100)).changes
    # the content is gone from the feed too; each note's delete stays, so a follower learns it
    assert [(c.op, c.note_id) for c in changes] == [
        (ChangeOp.DELETE, trashed.id), (ChangeOp.DELETE, at_once.id), (ChangeOp.PUT, at_once.id + 1)
    ]


async def test_the_trash_pages_most_recently_deleted_first(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    added = [await notes.add(draft(title=str(i))) for i in range(5)]
    for i, note in enumerate(added):
        await notes.delete(note.id, at=T0 + timedelta(minutes=i % 3))  # ties: by id, highest first
    expected = sorted(added, key=lambda n: (added.index(n) % 3, n.id), reverse=True)
    use = service(storage)
    first = await use.trash(LOCAL, limit=2)
    second = await use.trash(LOCAL, limit=2, after=first.next_after)
    third = await use.trash(LOCAL, limit=2, after=second.next_after)
    assert [t.note for t in first.notes + second.notes + third.notes] == expected
    assert third.next_after is None


async def test_the_feed_holds_every_change_in_order_and_a_follower_can_start_anywhere(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    a = await notes.add(draft(title="a"))
    b = await notes.add(draft(title="b"))
    a2 = await notes.update(a.revised(replace(a.content(), title="a2"), T0 + timedelta(1)))
    await notes.delete(b.id, at=T0 + timedelta(2))
    b2 = await notes.restore(b.id, T0 + timedelta(3))
    whole = (await notes.changes(None, 100)).changes
    assert [(c.op, c.note_id, c.version, c.note) for c in whole] == [
        (ChangeOp.PUT, a.id, 1, a), (ChangeOp.PUT, b.id, 1, b), (ChangeOp.PUT, a.id, 2, a2),
        (ChangeOp.DELETE, b.id, 1, None), (ChangeOp.PUT, b.id, 2, b2),
    ]
    later = [T0 + timedelta(days) for days in (1, 2, 3)]
    assert [c.at for c in whole] == [a.updated_at, b.updated_at, *later]
    assert [c.token for c in whole] == sorted(c.token for c in whole)
    for start in range(len(whole)):
        since = whole[start - 1].token if start else None
        followed, page = [], await notes.changes(since, 2)
        while page.changes:
            followed += page.changes
            page = await notes.changes(page.next, 2)
        assert followed == list(whole[start:])
        assert (await notes.changes(page.next, 2)).changes == ()


async def test_a_follower_at_the_end_sees_the_next_change_whatever_left_the_log_before_it(
    storage: Storage, other: str
) -> None:
    """The rows of the newest changes can leave the log (purged with their note, removed with
    their owner, expired): a change made after them still comes after every token given out."""
    mine, theirs = storage.notes_of(LOCAL), storage.notes_of(other)

    async def next_change_is_seen(newest, leave, logged=()) -> None:
        await newest()
        end = (await mine.changes(None, 100)).next  # a follower that has read everything
        await leave()
        note = await mine.add(draft())
        after = (await mine.changes(end, 100)).changes
        assert [(c.op, c.note_id) for c in after] == [*logged, (ChangeOp.PUT, note.id)]

    async def prune() -> None:
        while await service(storage, T0 + timedelta(days=45), keep_changes_days=30, trash_days=365).prune():
            pass

    note = await mine.add(draft())
    await next_change_is_seen(lambda: mine.update(note.revised(note.content(), T0)),
                              lambda: mine.delete(note.id, at=T0, purge=True), [(ChangeOp.DELETE, note.id)])
    await next_change_is_seen(lambda: theirs.add(draft()),
                              lambda: storage.accounts.remove_owner(other, delete_notes=True))
    doomed = await mine.add(draft())
    await next_change_is_seen(lambda: mine.delete(doomed.id, at=T0), prune)


async def test_a_follower_is_not_expired_by_a_removed_change_still_within_retention(
    storage: Storage, other: str
) -> None:
    """A change that left the log (its owner removed) does not age: a follower that read
    everything before it keeps its token while the retention would have kept that change."""
    mine = storage.notes_of(LOCAL)
    await mine.add(draft(updated_at=T0))
    token = (await mine.changes(None, 100)).next
    await storage.notes_of(other).add(draft(updated_at=T0 + timedelta(days=40)))
    await storage.accounts.remove_owner(other, delete_notes=True)
    while await service(storage, T0 + timedelta(days=45), keep_changes_days=30).prune():
        pass
    assert (await mine.changes(token, 100)).changes == ()


async def test_another_owner_sees_nothing_of_this_owners_history(storage: Storage, other: str) -> None:
    mine = storage.notes_of(LOCAL)
    theirs = storage.notes_of(other)
    note = await mine.add(draft())
    await mine.update(note.revised(note.content(), T0))
    trashed = await mine.add(draft())
    await mine.delete(trashed.id, at=T0)
    my_token = (await mine.changes(None, 100)).next
    assert (await theirs.changes(None, 100)).changes == ()
    assert (await theirs.changes(ChangeToken(), 100)).changes == ()
    assert await theirs.trash(limit=10) == []
    for call in (
        lambda: theirs.revisions(note.id, newest=2, oldest=1, limit=5),
        lambda: theirs.delete(note.id, at=T0),
    ):
        with pytest.raises(NoteNotFoundError):
            await call()
    for call in (lambda: theirs.restore(trashed.id, T0), lambda: theirs.purge(trashed.id)):
        with pytest.raises(NotInTrashError):
            await call()
    theirs_added = await theirs.add(draft())
    [change] = (await theirs.changes(my_token, 100)).changes  # my token, their feed: only theirs
    assert change.note == theirs_added
    assert [c.note_id for c in (await mine.changes(None, 100)).changes] == [note.id, note.id, trashed.id, trashed.id]


async def test_a_unit_of_work_that_fails_leaves_nothing_in_the_log(storage: Storage) -> None:
    with pytest.raises(RuntimeError):
        async with storage.transaction(LOCAL) as tx:
            await tx.notes.add(draft())
            raise RuntimeError("rolled back")
    assert (await storage.notes_of(LOCAL).changes(None, 100)).changes == ()


async def test_retention_keeps_exactly_the_last_revisions(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    note = await notes.add(draft())
    for _ in range(5):
        note = await notes.update(note.revised(note.content(), T0))
    use = service(storage, keep_revisions=2)
    page = await use.revisions(LOCAL, note.id, limit=10)
    assert [n.version for n in page.revisions] == [6, 5]
    with pytest.raises(RevisionNotFoundError):
        await use.revision(LOCAL, note.id, 4)
    while await service(storage, T0 + timedelta(days=40), keep_revisions=2).prune():
        pass
    assert [n.version for n in await notes.revisions(note.id, newest=6, oldest=1, limit=10)] == [6, 5]


async def test_the_trash_empties_itself_after_its_days(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    old, recent = await notes.add(draft()), await notes.add(draft())
    await notes.delete(old.id, at=T0)
    await notes.delete(recent.id, at=T0 + timedelta(days=20))
    while await service(storage, T0 + timedelta(days=31), trash_days=30, keep_changes_days=365).prune():
        pass
    assert [t.note.id for t in await notes.trash(limit=10)] == [recent.id]
    with pytest.raises(NotInTrashError):
        await notes.restore(old.id, T0)


async def test_a_token_older_than_the_kept_log_is_expired(storage: Storage) -> None:
    notes = storage.notes_of(LOCAL)
    old = await notes.add(draft(updated_at=T0))
    page = await notes.changes(None, 100)
    # On PostgreSQL a transaction of another database on the same server (another test's) may
    # hold the readable bound below the change for a moment: read on until it has come.
    while not page.changes:
        page = await notes.changes(page.next, 100)
    early = page.next
    new = await notes.add(draft(updated_at=T0 + timedelta(days=40)))
    before_any = ChangeToken()
    assert len((await notes.changes(before_any, 100)).changes) == 2
    while await service(storage, T0 + timedelta(days=45), keep_changes_days=30).prune():
        pass
    with pytest.raises(ChangeTokenExpiredError):
        await notes.changes(before_any, 100)
    [change] = (await notes.changes(None, 100)).changes  # from the start of the kept log
    assert change.note == new
    assert [c.note for c in (await notes.changes(early, 100)).changes] == [new]
    assert await notes.get(old.id) == old  # the note itself stays, and its last revision
    assert await notes.revisions(old.id, newest=1, oldest=1, limit=1) == [old]


async def test_a_watch_wakes_on_a_change_of_its_owner(storage: Storage, other: str) -> None:
    async with storage.watch(LOCAL) as mine:
        waiting = asyncio.ensure_future(mine.wait(30))
        await storage.notes_of(LOCAL).add(draft())
        assert await waiting
        assert not mine.closing


async def test_a_watch_hears_of_a_commit_of_another_process_made_as_it_begins(
    storage: Storage, database_url: str
) -> None:
    """The first follower of a process starts its way of hearing other processes (SQLite's look
    at `data_version`, PostgreSQL's LISTEN). A commit elsewhere between the follower's read of
    the log and that way's first look must still wake it: it has not read that change."""
    if database_url == "memory://":
        pytest.skip("a memory store lives in one process")
    elsewhere = build_container(settings_for(database_url))
    try:
        theirs = await elsewhere.storage()
        async with storage.watch(LOCAL) as mine:
            # SQLite writes one statement at once, on the loop: committed before this process's
            # watcher first runs
            await theirs.notes_of(LOCAL).add(draft())
            assert await mine.wait(5)  # one look: some 50 ms
    finally:
        await elsewhere.shutdown_resources()


async def test_a_watch_hears_of_an_import_by_another_process(storage: Storage, database_url: str) -> None:
    """`notes-api import` and `copy` write into the store of running servers, from a process of
    their own: their followers hear of it as of any other process's write."""
    if database_url == "memory://":
        pytest.skip("a memory store lives in one process")
    elsewhere = build_container(settings_for(database_url))
    try:
        theirs = await elsewhere.storage()
        note = stored_note(id=1000, title="imported", description="", priority=1, tags=(), created_by=None,
                           created_at=T0, updated_at=T0, version=1)

        async def records() -> AsyncIterator[Record]:
            yield OwnerRecord(LOCAL, None)
            yield NoteRecord(LOCAL, note)

        async with storage.watch(LOCAL) as mine:
            if database_url.startswith("postgresql"):
                assert await mine.wait(5)  # its LISTEN is open: that wakes every follower once
            since = (await storage.notes_of(LOCAL).changes(None, 10)).next
            assert (await theirs.import_records(records(), OnConflict.FAIL, at=T0)).notes == 1
            assert await mine.wait(5)
        assert [c.note for c in (await storage.notes_of(LOCAL).changes(since, 10)).changes] == [note]
    finally:
        await elsewhere.shutdown_resources()


async def test_moving_notes_to_another_owner_moves_their_history(storage: Storage, other: str) -> None:
    mine, theirs = storage.notes_of(LOCAL), storage.notes_of(other)
    note = await mine.add(draft())
    note = await mine.update(note.revised(note.content(), T0))
    trashed = await mine.add(draft())
    purged = await mine.add(draft())
    their_own = await theirs.add(draft(title="theirs"))
    # A follower of each owner, at the end: mine has read the puts of all three.
    my_end, their_end = (await mine.changes(None, 100)).next, (await theirs.changes(None, 100)).next
    await mine.delete(trashed.id, at=T0)
    await mine.delete(purged.id, at=T0, purge=True)
    moved_at = T0 + timedelta(1)
    assert await storage.accounts.move_notes(LOCAL, other, at=moved_at) == 1
    assert [n.version for n in await theirs.revisions(note.id, newest=2, oldest=1, limit=5)] == [2, 1]
    assert [t.note.id for t in await theirs.trash(limit=5)] == [trashed.id]
    assert await mine.trash(limit=5) == []
    # Mine learns that each of the three left (the purge's delete stays its own); theirs gets the
    # note, at its version, logged at the move, and the trashed note's history (its delete).
    left = (await mine.changes(my_end, 100)).changes
    assert [(c.op, c.note_id) for c in left] == [
        (ChangeOp.DELETE, purged.id), (ChangeOp.DELETE, note.id), (ChangeOp.DELETE, trashed.id),
    ]
    assert left[1].version == 2 and left[1].at == moved_at
    came = (await theirs.changes(their_end, 100)).changes
    assert [(c.op, c.note_id, c.version) for c in came] == [
        (ChangeOp.DELETE, trashed.id, 1), (ChangeOp.PUT, note.id, 2),
    ]
    assert came[-1].note == note and came[-1].at == moved_at
    # From the start, each version once: the one current at the move comes last.
    assert [(c.op, c.note_id, c.version) for c in (await theirs.changes(None, 100)).changes] == [
        (ChangeOp.PUT, note.id, 1), (ChangeOp.PUT, trashed.id, 1), (ChangeOp.PUT, their_own.id, 1),
        (ChangeOp.DELETE, trashed.id, 1), (ChangeOp.PUT, note.id, 2),
    ]
    assert [c.note_id for c in (await mine.changes(None, 100)).changes] == [purged.id, note.id, trashed.id]


async def test_a_transaction_open_in_another_database_does_not_hold_the_feed_back(
    storage: Storage, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL server's databases share their transaction ids; other stores do not")
    import asyncpg

    elsewhere = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        async with elsewhere.transaction():
            await elsewhere.fetchval("SELECT pg_current_xact_id()")  # an id, held open
            note = await storage.notes_of(LOCAL).add(draft())
            [change] = (await storage.notes_of(LOCAL).changes(None, 10)).changes
            assert change.note == note
    finally:
        await elsewhere.close()


async def test_a_change_is_read_at_once_while_transactions_of_another_database_end(
    storage: Storage, database_url: str
) -> None:
    """A transaction of another database may end between the snapshot of a read and its look at
    which transactions are in flight: it must not hold back a change committed before the read,
    or a follower woken by that commit finds nothing and waits for a wake-up that never comes.
    Each round ends four such transactions as the read runs: about half the rounds hit that
    instant without the re-read (`postgres_history`, note 2)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL server's databases share their transaction ids; other stores do not")
    import asyncpg

    server = database_url.rsplit("/", 1)[0]
    elsewhere = [await asyncpg.connect(f"{server}/postgres") for _ in range(4)]
    mine = storage.notes_of(LOCAL)
    try:
        since = (await mine.changes(None, 10)).next
        for _ in range(100):
            for other in elsewhere:
                await other.execute("BEGIN; SELECT pg_current_xact_id()")  # an id older than the note's
            note = await mine.add(draft())
            page, *_ = await asyncio.gather(mine.changes(since, 10), *(o.execute("COMMIT") for o in elsewhere))
            assert [c.note_id for c in page.changes] == [note.id]
            since = page.next
    finally:
        await asyncio.gather(*(other.close() for other in elsewhere))


async def test_a_page_says_when_a_transaction_in_flight_holds_changes_back(storage: Storage, database_url: str) -> None:
    """A transaction of this database that logs nothing for the owner (another owner's, a token's)
    holds back the owner's later changes until it ends, and its end wakes none of the owner's
    followers: the page says so, so that a follower looks again (NoteService.changes)."""
    mine = storage.notes_of(LOCAL)
    since = (await mine.changes(None, 10)).next
    if not database_url.startswith("postgresql"):
        await mine.add(draft())
        assert not (await mine.changes(since, 10)).held_back  # their writes never overlap a read
        return
    import asyncpg

    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("BEGIN; SELECT pg_current_xact_id()")  # an id older than the note's
        note = await mine.add(draft())
        held = await mine.changes(since, 10)
        assert held.changes == () and held.held_back
        await holder.execute("COMMIT")
        page = await mine.changes(held.next, 10)
        assert [c.note_id for c in page.changes] == [note.id] and not page.held_back
    finally:
        await holder.close()


async def test_a_note_written_while_it_moves_moves_with_its_new_version(
    storage: Storage, database_url: str, other: str
) -> None:
    """Only PostgreSQL lets a write of the note run while a move is in flight (SQLite's writes and
    memory's are one at a time): the move waits for it, and moves the note as it left it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("on SQLite and in memory, a move and a write of a note never overlap")
    import asyncpg

    mine, theirs = storage.notes_of(LOCAL), storage.notes_of(other)
    note = await mine.add(draft())
    my_end, their_end = (await mine.changes(None, 100)).next, (await theirs.changes(None, 100)).next
    watcher = await asyncpg.connect(database_url)
    try:
        async with storage.transaction(LOCAL) as tx:  # the write holds the note's row
            edited = await tx.notes.update(note.revised(replace(note.content(), title="edited"), T0))
            moving = asyncio.ensure_future(storage.accounts.move_notes(LOCAL, other, at=T0 + timedelta(1)))
            while not await watcher.fetchval(  # until the move waits for that row: the event, not a time
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ):
                await asyncio.sleep(0.01)
    finally:
        await watcher.close()
    assert await moving == 1
    assert await theirs.get(note.id) == edited
    assert [n.version for n in await theirs.revisions(note.id, newest=2, oldest=1, limit=5)] == [2, 1]
    # mine learns the note left at the version the write made; theirs gets that version, once
    assert [(c.op, c.version) for c in (await mine.changes(my_end, 100)).changes] == [(ChangeOp.DELETE, 2)]
    assert [(c.op, c.version, c.note) for c in (await theirs.changes(their_end, 100)).changes] == [
        (ChangeOp.PUT, 2, edited)
    ]
