"""One contract for every NoteRepository: memory, SQLite and PostgreSQL answer alike."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.adapters import Storage
from app.domain.errors import NoteNotFoundError, VersionConflictError
from app.domain.owners import LOCAL
from app.domain.query import ListQuery
from tests.factories import T0, draft


async def test_an_added_note_reads_back_equal_to_microseconds(storage: Storage) -> None:
    added = await storage.notes_of(LOCAL).add(draft())
    assert added.version == 1 and added.id >= 1
    fetched = await storage.notes_of(LOCAL).get(added.id)
    assert fetched == added
    assert fetched.created_at == T0 and fetched.created_at.utcoffset() == timedelta(0)
    assert fetched.updated_at.microsecond == 123457


async def test_extreme_timestamps_round_trip(storage: Storage) -> None:
    for moment in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ):
        added = await storage.notes_of(LOCAL).add(draft(created_at=moment))
        assert (await storage.notes_of(LOCAL).get(added.id)).created_at == moment


async def test_ids_increase_and_are_never_reused_even_after_deleting_the_newest(storage: Storage) -> None:
    first = await storage.notes_of(LOCAL).add(draft())
    newest = await storage.notes_of(LOCAL).add(draft())
    await storage.notes_of(LOCAL).delete(newest.id, at=T0)
    again = await storage.notes_of(LOCAL).add(draft())
    assert first.id < newest.id < again.id


@pytest.mark.parametrize("operation", ["get", "update", "delete", "delete_version"])
async def test_every_method_raises_not_found_for_a_missing_note(storage: Storage, operation: str) -> None:
    gone = await storage.notes_of(LOCAL).add(draft())
    await storage.notes_of(LOCAL).delete(gone.id, at=T0)
    calls = {
        "get": lambda: storage.notes_of(LOCAL).get(gone.id),
        "update": lambda: storage.notes_of(LOCAL).update(replace(gone, version=2)),
        "delete": lambda: storage.notes_of(LOCAL).delete(gone.id, at=T0),
        "delete_version": lambda: storage.notes_of(LOCAL).delete(gone.id, at=T0, version=1),
    }
    with pytest.raises(NoteNotFoundError):
        await calls[operation]()


async def test_update_stores_the_successor_of_the_current_version(storage: Storage) -> None:
    note = await storage.notes_of(LOCAL).add(draft())
    successor = replace(note, title="edited", tags=("x",), version=2, updated_at=T0 + timedelta(days=1))
    assert await storage.notes_of(LOCAL).update(successor) == successor
    assert await storage.notes_of(LOCAL).get(note.id) == successor


async def test_update_from_a_stale_version_is_a_conflict_and_writes_nothing(storage: Storage) -> None:
    note = await storage.notes_of(LOCAL).add(draft())
    await storage.notes_of(LOCAL).update(replace(note, title="first", version=2))
    with pytest.raises(VersionConflictError):
        await storage.notes_of(LOCAL).update(replace(note, title="lost", version=2))
    assert (await storage.notes_of(LOCAL).get(note.id)).title == "first"


async def test_delete_at_another_version_is_a_conflict_and_keeps_the_note(storage: Storage) -> None:
    note = await storage.notes_of(LOCAL).add(draft())
    with pytest.raises(VersionConflictError):
        await storage.notes_of(LOCAL).delete(note.id, at=T0, version=7)
    assert await storage.notes_of(LOCAL).get(note.id) == note
    await storage.notes_of(LOCAL).delete(note.id, at=T0, version=1)
    with pytest.raises(NoteNotFoundError):
        await storage.notes_of(LOCAL).get(note.id)


async def test_maximum_lengths_and_unicode_round_trip(storage: Storage) -> None:
    title = ("📝🇫🇷" + "שלום" + "é" + "\u0301" + "ß")[:8] * 25  # 200 code points, RTL and emoji
    tags = tuple(sorted(f"{i:02d}" + "ü" * 48 for i in range(20)))
    note = draft(title=title[:200], description="مرحبا\n" * 1666 + "abcd", tags=tags, created_by="界" * 100)
    added = await storage.notes_of(LOCAL).add(note)
    fetched = await storage.notes_of(LOCAL).get(added.id)
    assert fetched == added
    assert len(fetched.title) == 200 and len(fetched.description) == 10_000


async def test_listing_pages_through_every_note_in_id_order(storage: Storage) -> None:
    ids = [(await storage.notes_of(LOCAL).add(draft(title=f"n{i}"))).id for i in range(23)]
    seen: list[int] = []
    after = None
    while True:
        page = await storage.notes_of(LOCAL).list(ListQuery(limit=5, after=after))
        seen += [n.id for n in page]
        if len(page) < 5:
            break
        after = (page[-1].id, page[-1].id)
    assert seen == ids


async def test_listing_returns_nothing_after_the_last_note(storage: Storage) -> None:
    last = await storage.notes_of(LOCAL).add(draft())
    assert await storage.notes_of(LOCAL).list(ListQuery(after=(last.id, last.id))) == []


async def test_fifty_concurrent_creates_all_land_with_distinct_ids(storage: Storage) -> None:
    notes = await asyncio.gather(*(storage.notes_of(LOCAL).add(draft(title=f"c{i}")) for i in range(50)))
    assert len({n.id for n in notes}) == 50
    listed = await storage.notes_of(LOCAL).list(ListQuery(limit=100))
    assert sorted(n.title for n in listed) == sorted(f"c{i}" for i in range(50))


async def test_fifty_concurrent_updates_of_one_note_lose_nothing(storage: Storage) -> None:
    note = await storage.notes_of(LOCAL).add(draft(description=""))

    async def append(mark: str) -> None:
        while True:  # the compare-and-set loop every writer must run
            current = await storage.notes_of(LOCAL).get(note.id)
            successor = replace(current, description=current.description + mark, version=current.version + 1)
            try:
                await storage.notes_of(LOCAL).update(successor)
                return
            except VersionConflictError:
                await asyncio.sleep(0)

    await asyncio.gather(*(append(f"[{i}]") for i in range(50)))
    final = await storage.notes_of(LOCAL).get(note.id)
    assert final.version == 51
    assert sorted(final.description[1:-1].split("][")) == sorted(str(i) for i in range(50))


async def test_check_succeeds_while_the_store_answers(storage: Storage) -> None:
    await storage.check()


async def test_a_writable_store_is_not_read_only_and_takes_writes_after_the_question(storage: Storage) -> None:
    """(SQLite asks by writing a row and rolling it back: nothing may stay open after.)"""
    note = await storage.notes_of(LOCAL).add(draft(title="before"))
    await storage.check_not_read_only()
    after = await storage.notes_of(LOCAL).add(draft(title="after"))
    async with storage.transaction(LOCAL) as tx:
        await tx.notes.add(draft(title="in a transaction"))
    assert [n.title for n in await storage.notes_of(LOCAL).list(ListQuery())] == ["before", "after", "in a transaction"]
    assert await storage.notes_of(LOCAL).get(after.id) == after and note.id < after.id



async def test_each_store_has_its_own_random_cursor_secret(storage: Storage) -> None:
    assert len(storage.cursor_secret) >= 32 and storage.cursor_secret != "notes-cursor"
