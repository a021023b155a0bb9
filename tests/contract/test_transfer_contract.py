"""Export and import through the ports: every ordered pair of stores, and each store's import
being all or nothing, with its conflicts, its id sequence and its selection."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.adapters import Storage
from app.adapters.migrate import migrate
from app.container import build_container
from app.domain.accounts import AccountService
from app.domain.errors import ImportConflictError, NoteError, NoteNotFoundError
from app.domain.history import ChangeToken
from app.domain.model import Note
from app.domain.owners import LOCAL, Scope
from app.domain.query import ListQuery, NoteFilter, Sort, SortField
from app.domain.transfer import (
    WHOLE_STORE,
    NoteRecord,
    OnConflict,
    OwnerRecord,
    Record,
    Replacement,
    RevisionRecord,
    Selection,
    TokenRecord,
)
from tests.conftest import BACKENDS, _empty, settings_for
from tests.databases import in_thread, owner_is_held, row_is_held
from tests.factories import T0, draft, owner

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=7)
        return self.now


@asynccontextmanager
async def store_of(kind: str, request: pytest.FixtureRequest, path: Path) -> AsyncIterator[Storage]:
    """An empty, migrated store of this kind, open for the block."""
    if kind == "memory":
        url = "memory://"
    elif kind == "sqlite":
        url = f"sqlite:///{path}"
        in_thread(migrate, url, "sqlite")
    else:
        url = request.getfixturevalue("migrated_postgres")
        await _empty(url)
    container = build_container(settings_for(url))
    try:
        yield await container.storage()
    finally:
        await container.shutdown_resources()


async def fill(store: Storage) -> dict[str, str]:
    """Owners, tokens and notes of every shape; the secret of each owner's tokens by owner."""
    clock = Clock()
    accounts = AccountService(store, clock)
    await accounts.add_owner("alice")
    await accounts.add_owner("bob.smith-2")
    secrets = {
        "alice": (await accounts.issue_token("alice", label="laptop ✓", scope=Scope.WRITE)).secret,
        "bob.smith-2": (await accounts.issue_token("bob.smith-2", scope=Scope.READ, expires_in_days=30)).secret,
    }
    await accounts.issue_token(LOCAL, label="revoked soon")
    shapes = [
        draft(title="Ünïcødé 📝 日本語 עברית e\u0301", tags=tuple(sorted(f"tag-{i}-ß" for i in range(20)))),
        draft(title="x" * 200, description="ü" * 10_000, priority=10, created_by="c" * 100),
        draft(title="earliest", created_at=EARLIEST, updated_at=EARLIEST, tags=(), created_by=None, priority=0),
        draft(title="latest", created_at=LATEST, updated_at=LATEST, description=""),
        draft(title="whole second", created_at=datetime(2020, 2, 29, 12, tzinfo=UTC)),
        draft(title="to be deleted"),
        draft(title="to be revised"),
        draft(title="to be purged"),
    ]
    made: list[Note] = []
    for index, shape in enumerate(shapes):
        owner = ("alice", "bob.smith-2", LOCAL)[index % 3]
        made.append(await store.notes_of(owner).add(shape))
    deleted, revised, purged = made[5], made[6], made[7]
    owner_of = {note.id: ("alice", "bob.smith-2", LOCAL)[i % 3] for i, note in enumerate(made)}
    trash = store.notes_of(owner_of[deleted.id])
    await trash.update(deleted.revised(replace(deleted.content(), title="deleted, then in the trash"), clock()))
    await trash.delete(deleted.id, at=T0)  # in the trash, with two revisions
    await store.notes_of(owner_of[purged.id]).delete(purged.id, at=T0, purge=True)  # a gap in the ids
    notes = store.notes_of(owner_of[revised.id])
    second = await notes.update(revised.revised(replace(revised.content(), title="revised once"), clock()))
    await notes.update(second.revised(replace(second.content(), priority=1), clock()))
    await store.notes_of("alice").add_many([draft(title=f"bulk {i}", priority=i % 11) for i in range(30)])
    return secrets


async def everything(store: Storage, selection: Selection = WHOLE_STORE) -> list[Record]:
    return [record async for record in store.export(selection)]


@pytest.mark.parametrize(("source_kind", "target_kind"), list(itertools.permutations(BACKENDS, 2)))
async def test_a_store_copied_into_another_answers_exactly_as_it_did(
    source_kind: str, target_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with store_of(source_kind, request, tmp_path / "source.db") as source, \
            store_of(target_kind, request, tmp_path / "target.db") as target:
        secrets = await fill(source)
        before = await everything(source)
        imported = await target.import_records(source.export(WHOLE_STORE), OnConflict.FAIL, at=T0)

        after = await everything(target)
        assert after == before  # every field of every record, times to the microsecond
        notes = [r for r in before if isinstance(r, NoteRecord)]
        assert (imported.notes, imported.tokens, imported.owners, imported.revisions) == (len(notes), 3, 2, 3)
        assert sum(r.deleted_at is not None for r in notes) == 1
        assert sum(isinstance(r, RevisionRecord) for r in before) == 3
        for record in notes:  # and as the API reads them, one by one
            if record.deleted_at is None:
                assert await target.notes_of(record.owner).get(record.note.id) == record.note
                revisions = await target.notes_of(record.owner).revisions(
                    record.note.id, newest=record.note.version, oldest=1, limit=10)
                assert revisions == await source.notes_of(record.owner).revisions(
                    record.note.id, newest=record.note.version, oldest=1, limit=10)
            else:
                [trashed] = await target.notes_of(record.owner).trash(limit=10)
                assert (trashed.note, trashed.deleted_at) == (record.note, record.deleted_at)
        assert {r.note.version for r in notes} >= {1, 3}
        for owner in ("alice", "bob.smith-2", LOCAL):  # the target's feed rebuilds each owner's notes
            rebuilt: dict[int, Note] = {}
            for change in (await target.notes_of(owner).changes(None, 1000)).changes:
                if change.note is None:
                    rebuilt.pop(change.note_id)
                else:
                    rebuilt[change.note_id] = change.note
            assert sorted(rebuilt.values(), key=lambda n: n.id) == [
                r.note for r in notes if r.owner == owner and r.deleted_at is None]

        newest = max(r.note.id for r in notes)
        assert (await target.notes_of("alice").add(draft(title="new"))).id > newest
        clock = Clock()
        accounts = AccountService(target, clock)
        for owner, secret in secrets.items():
            identity = await accounts.authenticate(secret)
            assert identity is not None and identity.owner == owner
        newest_token = max(r.id for r in before if isinstance(r, TokenRecord))
        assert (await accounts.issue_token("alice")).token.id > newest_token


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _note(owner: str, note_id: int, title: str = "imported") -> NoteRecord:
    return NoteRecord(owner, Note(id=note_id, title=title, description="", priority=1, tags=("a",),
                                  created_by=None, created_at=T0, updated_at=T0, version=4))


async def _stream(*records: Record, fail_after: int | None = None) -> AsyncIterator[Record]:
    for index, record in enumerate(records):
        if index == fail_after:
            raise NoteError("the file was cut short")  # as the reader of a bad file does
        yield record


async def test_an_id_that_exists_fails_the_whole_import_and_writes_nothing(storage: Storage) -> None:
    existing = await storage.notes_of(LOCAL).add(draft())
    before = await everything(storage)
    stream = _stream(OwnerRecord("carol", T0), _note("carol", existing.id + 5), _note("carol", existing.id))
    with pytest.raises(ImportConflictError) as raised:
        await storage.import_records(stream, OnConflict.FAIL, at=T0)
    assert raised.value.item_id == existing.id and f"note {existing.id}" in str(raised.value)
    assert await everything(storage) == before  # not even the owner carol


async def test_skip_keeps_what_the_target_has(storage: Storage) -> None:
    existing = await storage.notes_of(LOCAL).add(draft(title="mine"))
    skipped = await storage.import_records(
        _stream(OwnerRecord(LOCAL, None), _note(LOCAL, existing.id), _note(LOCAL, existing.id + 1)), OnConflict.SKIP,
        at=T0,
    )
    assert (skipped.notes, skipped.skipped, skipped.replaced) == (1, [existing.id], 0)
    assert (await storage.notes_of(LOCAL).get(existing.id)).title == "mine"


async def _edited(storage: Storage, owner_: str, *titles: str) -> Note:
    """A note of `owner_` made with the first title, then changed to each of the others."""
    notes = storage.notes_of(owner_)
    note = await notes.add(draft(title=titles[0]))
    for title in titles[1:]:
        note = await notes.update(note.revised(replace(note.content(), title=title), note.updated_at + timedelta(1)))
    return note


def _file_note(owner_: str, note_id: int, *titles: str) -> list[Record]:
    """A file's note at version len(titles) with the last title, after its older revisions."""
    versions = [Note(id=note_id, title=title, description="", priority=1, tags=(), created_by=None,
                     created_at=T0, updated_at=T0 + timedelta(version), version=version)
                for version, title in enumerate(titles, start=1)]
    return [OwnerRecord(owner_, T0), NoteRecord(owner_, versions[-1]),
            *(RevisionRecord(owner_, note) for note in versions[:-1])]


async def _history(storage: Storage, owner_: str, note_id: int) -> list[tuple[int, str]]:
    """(version, title) of each revision of the note, the current one first."""
    found = await storage.notes_of(owner_).revisions(note_id, newest=1000, oldest=1, limit=100)
    return [(note.version, note.title) for note in found]


async def _changes_after(storage: Storage, owner_: str, token: ChangeToken) -> list[tuple[str, int, int]]:
    page = await storage.notes_of(owner_).changes(token, 100)
    return [(str(change.op), change.note_id, change.version) for change in page.changes]


async def test_a_replaced_note_takes_a_version_past_every_one_the_target_gave_it(storage: Storage) -> None:
    """Its version is its ETag, and a follower keeps the highest version it saw: a version the
    target gave out once never names other content (a client holding "3" would get a 304 for
    the old note, and a follower would ignore the import)."""
    mine = await _edited(storage, LOCAL, "mine 1", "mine 2", "mine 3")
    before = (await storage.notes_of(LOCAL).changes(None, 1000)).next
    replaced = await storage.import_records(
        _stream(*_file_note(LOCAL, mine.id, "theirs 1", "theirs 2")), OnConflict.REPLACE, at=T0
    )
    assert (replaced.notes, replaced.replaced, replaced.revisions, replaced.skipped) == (1, 1, 0, [])
    now = await storage.notes_of(LOCAL).get(mine.id)
    assert (now.title, now.version, now.updated_at) == ("theirs 2", 4, T0 + timedelta(2))
    # the versions the target gave out still name what they named
    assert await _history(storage, LOCAL, mine.id) == [(4, "theirs 2"), (3, "mine 3"), (2, "mine 2"), (1, "mine 1")]
    assert await _changes_after(storage, LOCAL, before) == [("put", mine.id, 4)]


async def test_a_replaced_note_further_along_keeps_its_version_and_the_revisions_past_the_targets(
    storage: Storage,
) -> None:
    """The copy of a note edited further in the source: what the target had stays, the rest
    follows, and the note ends as the source's, version included."""
    mine = await _edited(storage, LOCAL, "one", "two")
    before = (await storage.notes_of(LOCAL).changes(None, 1000)).next
    replaced = await storage.import_records(
        _stream(*_file_note(LOCAL, mine.id, "one", "two (theirs)", "three", "four")), OnConflict.REPLACE, at=T0
    )
    assert (replaced.replaced, replaced.revisions) == (1, 1)
    assert await _history(storage, LOCAL, mine.id) == [(4, "four"), (3, "three"), (2, "two"), (1, "one")]
    assert await _changes_after(storage, LOCAL, before) == [("put", mine.id, 3), ("put", mine.id, 4)]


async def test_replacing_a_note_with_itself_changes_nothing(storage: Storage) -> None:
    """The same copy run twice: the second run writes nothing, and no follower hears of it."""
    await _edited(storage, LOCAL, "one", "two")
    await storage.notes_of(LOCAL).delete((await _edited(storage, LOCAL, "binned")).id, at=T0 + timedelta(9))
    records = await everything(storage)
    before = (await storage.notes_of(LOCAL).changes(None, 1000)).next
    again = await storage.import_records(_stream(*records), OnConflict.REPLACE, at=T0)
    assert (again.notes, again.replaced, again.revisions, len(again.skipped)) == (0, 0, 0, 2)
    assert await everything(storage) == records
    assert await _changes_after(storage, LOCAL, before) == []


async def test_the_same_replace_run_again_writes_nothing_though_it_took_another_version(storage: Storage) -> None:
    mine = await _edited(storage, LOCAL, "mine 1", "mine 2", "mine 3")
    records = _file_note(LOCAL, mine.id, "theirs 1", "theirs 2")
    first = await storage.import_records(_stream(*records), OnConflict.REPLACE, at=T0)
    assert (first.replaced, first.renumbered) == (1, {mine.id: 2})
    before = (await storage.notes_of(LOCAL).changes(None, 1000)).next
    again = await storage.import_records(_stream(*records), OnConflict.REPLACE, at=T0)
    assert (again.replaced, again.skipped, again.renumbered) == (0, [mine.id], {})
    assert (await storage.notes_of(LOCAL).get(mine.id)).version == 4
    assert await _changes_after(storage, LOCAL, before) == []


async def test_a_replace_holds_each_note_it_compares_until_it_commits(
    storage: Storage, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL, where a server may write the note while the import runs: the import takes a
    version past the one it read, so a write between the read and its commit would give out that
    version again. The note is locked from the moment it is read."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite and memory write one transaction at a time")
    mine = await _edited(storage, LOCAL, "mine")
    held: list[bool] = []
    over = Replacement.over

    def deciding(cls: type[Replacement], *args: Any) -> Replacement:
        # (the import's connection waits meanwhile; the probe is another one)
        held.append(in_thread(asyncio.run, row_is_held(database_url, "SELECT 1 FROM notes WHERE id = $1", mine.id)))
        return over(*args)

    monkeypatch.setattr(Replacement, "over", classmethod(deciding))
    replaced = await storage.import_records(_stream(*_file_note(LOCAL, mine.id, "theirs")), OnConflict.REPLACE, at=T0)
    assert (replaced.replaced, held) == (1, [True])


@pytest.mark.parametrize(("target_binned", "file_binned"), [(True, False), (False, True), (True, True)],
                         ids=["from the trash", "to the trash", "in the trash"])
async def test_a_replace_across_the_trash_takes_a_new_version_and_tells_followers(
    storage: Storage, target_binned: bool, file_binned: bool
) -> None:
    notes = storage.notes_of(LOCAL)
    mine = await _edited(storage, LOCAL, "same")
    if target_binned:
        await notes.delete(mine.id, at=T0 + timedelta(5))
    file = _file_note(LOCAL, mine.id, "same")
    if file_binned:  # the same note, but in the file's trash
        file[1] = replace(file[1], note=mine, deleted_at=T0 + timedelta(6))
    else:
        file[1] = replace(file[1], note=mine)
    before = (await notes.changes(None, 1000)).next
    replaced = await storage.import_records(_stream(*file), OnConflict.REPLACE, at=T0)
    assert (replaced.replaced, replaced.renumbered) == (1, {mine.id: 1})
    logged = [("put", mine.id, 2)] + ([("delete", mine.id, 2)] if file_binned else [])
    assert await _changes_after(storage, LOCAL, before) == logged
    binned = [(trashed.note.id, trashed.note.version) for trashed in await notes.trash(limit=10)]
    if file_binned:
        assert binned == [(mine.id, 2)]
    else:
        assert binned == [] and await _history(storage, LOCAL, mine.id) == [(2, "same"), (1, "same")]


async def test_a_note_replaced_by_another_owners_leaves_the_first_owner_with_a_delete(storage: Storage) -> None:
    alice = await owner(storage, "alice")
    hers = await _edited(storage, alice, "hers 1", "hers 2")
    alice_before = (await storage.notes_of(alice).changes(None, 1000)).next
    replaced = await storage.import_records(
        _stream(*_file_note("bob", hers.id, "his 1", "his 2", "his 3")), OnConflict.REPLACE, at=T0 + timedelta(30)
    )
    assert (replaced.replaced, replaced.revisions) == (1, 2)
    with pytest.raises(NoteNotFoundError):
        await storage.notes_of(alice).get(hers.id)
    assert await _changes_after(storage, alice, alice_before) == [("delete", hers.id, 2)]
    assert await _history(storage, "bob", hers.id) == [(3, "his 3"), (2, "his 2"), (1, "his 1")]
    assert [(str(c.op), c.version) for c in (await storage.notes_of("bob").changes(None, 100)).changes] == [
        ("put", 1), ("put", 2), ("put", 3)
    ]


async def test_a_stream_that_fails_half_way_leaves_the_store_as_it_was(storage: Storage) -> None:
    await storage.notes_of(LOCAL).add(draft())
    before = await everything(storage)
    records = [OwnerRecord("dave", T0), *(_note("dave", 100 + i) for i in range(2500))]
    with pytest.raises(NoteError, match="cut short"):
        await storage.import_records(_stream(*records, fail_after=2400), OnConflict.FAIL, at=T0)
    assert await everything(storage) == before
    # and the store still takes writes, on the same connections
    assert (await storage.notes_of(LOCAL).add(draft())).id > 0


async def test_an_owners_export_holds_only_that_owner_and_no_token(storage: Storage) -> None:
    secrets = await fill(storage)
    assert secrets
    alone = await everything(storage, Selection(("alice",)))
    whole = await everything(storage)
    assert [r for r in alone if isinstance(r, OwnerRecord | TokenRecord)] == [
        r for r in whole if isinstance(r, OwnerRecord) and r.name == "alice"]
    assert [r for r in alone if isinstance(r, RevisionRecord)] == [
        r for r in whole if isinstance(r, RevisionRecord) and r.owner == "alice"]
    notes = [r for r in alone if isinstance(r, NoteRecord)]
    assert notes and {r.owner for r in notes} == {"alice"}
    assert [r.note.id for r in notes] == sorted(r.note.id for r in notes)
    assert await storage.count_notes(Selection(("alice",))) == len(notes)


async def test_ids_continue_past_an_import_into_an_empty_store(storage: Storage) -> None:
    await storage.import_records(_stream(OwnerRecord(LOCAL, None), _note(LOCAL, 1000)), OnConflict.FAIL, at=T0)
    assert (await storage.notes_of(LOCAL).add(draft())).id > 1000
    made = await storage.notes_of(LOCAL).add_many([draft(title=str(i)) for i in range(3)])
    assert [n.id for n in made] == sorted(n.id for n in made) and made[0].id > 1001
    assert [await storage.notes_of(LOCAL).get(n.id) for n in made] == list(made)


def _listings() -> list[ListQuery]:
    """Queries that each use a search structure an import into an empty store builds apart (the
    search index, the tag table or index, one index per sort order)."""
    sorts = [Sort(field, descending) for field in SortField for descending in (False, True)]
    filters = [NoteFilter(terms=("lorem",)), NoteFilter(terms=("été", "ipsum")), NoteFilter(terms=("xyzzy",)),
               NoteFilter(tags=frozenset({"odd"})), NoteFilter(tags=frozenset({"odd", "tag-3"})),
               NoteFilter(created_by="bot"), NoteFilter(priority=7)]
    return [ListQuery(sort=sort, limit=60) for sort in sorts] + [ListQuery(filter=f, limit=60) for f in filters]


async def _schema(kind: str, url: str, path: Path) -> set[tuple]:
    """What an import may set aside for speed and must put back: indexes, triggers, and the
    search index's own configuration."""
    if kind == "sqlite":
        with sqlite3.connect(path) as db:
            return {*db.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')"),
                    *db.execute("SELECT k, v FROM notes_fts_config")}
    connection = await asyncpg.connect(url)
    try:
        return {tuple(row) for row in await connection.fetch(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
            " UNION ALL SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger")}
    finally:
        await connection.close()


@pytest.mark.parametrize("target_kind", [kind for kind in BACKENDS if kind != "memory"])
async def test_an_import_into_an_empty_store_searches_filters_and_sorts_as_its_source(
    target_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Into an empty store the SQL adapters build their search structures in bulk, after the
    rows or beside them: every listing then answers as in the source, and the schema is as the
    migrations left it, after a failed import as after one that succeeded."""
    words = ["lorem", "ipsum", "été", "Straße", "dolor"]
    drafts = [draft(title=f"{words[i % 5]} {i}", description=" ".join(words[j % 5] for j in range(i % 7)),
                    priority=i % 11, tags=tuple(sorted({f"tag-{i % 4}", "odd" if i % 2 else "even"})),
                    created_by="bot" if i % 3 else None, created_at=T0 + timedelta(seconds=(i * 7919) % 3001))
              for i in range(2500)]
    target_path = tmp_path / "target.db"
    async with store_of("memory", request, tmp_path) as source, \
            store_of(target_kind, request, target_path) as target:
        await source.notes_of(await owner(source, "alice")).add_many(drafts)
        url = "" if target_kind == "sqlite" else request.getfixturevalue("migrated_postgres")
        migrated = await _schema(target_kind, url, target_path)
        with pytest.raises(NoteError, match="cut short"):  # half way through the notes
            await target.import_records(_stream(*await everything(source), fail_after=1800), OnConflict.FAIL, at=T0)
        assert await _schema(target_kind, url, target_path) == migrated
        assert await everything(target) == [OwnerRecord(LOCAL, None)]

        await target.import_records(source.export(WHOLE_STORE), OnConflict.FAIL, at=T0)
        assert await _schema(target_kind, url, target_path) == migrated
        for query in _listings():
            expected = await source.notes_of("alice").list(query)
            assert await target.notes_of("alice").list(query) == expected, query
        alice = target.notes_of("alice")
        every_lorem = ListQuery(filter=NoteFilter(terms=("lorem",)), limit=len(drafts))
        assert len(await alice.list(every_lorem)) > 1000  # written in several batches
        assert await alice.list(every_lorem) == await source.notes_of("alice").list(every_lorem)
        # and the store goes on as one written note by note: the next note is found and listed
        added = await alice.add(draft(title="lorem after", tags=("odd",)))
        assert await alice.list(ListQuery(filter=NoteFilter(terms=("after",), tags=frozenset({"odd"})))) == [added]


async def test_an_export_carries_the_revisions_a_server_keeping_that_many_shows(storage: Storage) -> None:
    """GET /export (a server's --keep-revisions) holds what GET /notes/{id}/revisions shows, on
    every store, whether or not the pruner has run; the command line's export holds every one."""
    notes = storage.notes_of(LOCAL)
    note = await notes.add(draft())
    for day in range(1, 6):  # versions 2 to 6
        note = await notes.update(note.revised(replace(note.content(), title=f"v{day + 1}"), T0 + timedelta(day)))

    def versions(records: list[Record]) -> list[int]:
        return [r.note.version for r in records if isinstance(r, RevisionRecord)]

    assert versions(await everything(storage, Selection((LOCAL,), keep_revisions=3))) == [4, 5]
    assert versions(await everything(storage, Selection((LOCAL,), keep_revisions=1))) == []
    assert versions(await everything(storage)) == [1, 2, 3, 4, 5]


async def test_an_import_holds_the_owners_it_writes_for_until_it_commits(storage: Storage, database_url: str) -> None:
    """PostgreSQL, where an import and `users remove` may run at once: the removal waits for the
    import, then counts (here deletes) what it imported. No note is left without its owner."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite and memory write one transaction at a time")
    await owner(storage, "dave")
    owner_written = asyncio.Event()
    go_on = asyncio.Event()

    async def records() -> AsyncIterator[Record]:
        yield OwnerRecord("dave", T0)
        owner_written.set()
        await go_on.wait()
        yield _note("dave", 500)

    importing = asyncio.ensure_future(storage.import_records(records(), OnConflict.FAIL, at=T0))
    try:
        await owner_written.wait()
        held = await owner_is_held(database_url, "dave")  # a removal now would wait for the import
    finally:
        go_on.set()  # the import ends either way: its transaction never outlives the test
    assert held
    assert (await importing).notes == 1
    assert await storage.accounts.remove_owner("dave", delete_notes=True) == 1  # it finds the note
    exported = await everything(storage)
    owners = {r.name for r in exported if isinstance(r, OwnerRecord)}
    assert {r.owner for r in exported if isinstance(r, NoteRecord)} <= owners


async def test_a_token_the_target_has_is_counted_when_skipped(storage: Storage) -> None:
    """So that a copy neither reports the target's own token as a difference nor leaves out the
    source's without a word."""
    issued = await AccountService(storage, Clock()).issue_token(LOCAL, label="mine", scope=Scope.WRITE)
    theirs = TokenRecord(id=issued.token.id, owner=LOCAL, label="theirs", scope=Scope.READ, secret_hash="ab" * 32,
                         created_at=T0, expires_at=None, last_used_at=None)
    skipped = await storage.import_records(_stream(OwnerRecord(LOCAL, None), theirs), OnConflict.SKIP, at=T0)
    assert (skipped.tokens, skipped.skipped_tokens) == (0, [issued.token.id])
    assert [token.label for token in await storage.accounts.tokens(LOCAL)] == ["mine"]
