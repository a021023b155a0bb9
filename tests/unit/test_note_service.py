"""The use cases, over the in-memory adapter and a fixed clock: no I/O."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import cast

import pytest

from app.adapters.memory import MemoryStore
from app.domain.errors import NoteNotFoundError, NoteValidationError, PreconditionFailedError
from app.domain.history import Change, ChangeOp, ChangesPage, ChangeToken
from app.domain.model import Note
from app.domain.owners import LOCAL
from app.domain.ports import Store
from app.domain.query import ListQuery, Sort, SortField
from app.domain.services import NoteService, Precondition, Versions
from app.domain.transfer import NoteRecord
from tests.factories import T0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def service() -> NoteService:
    return NoteService(MemoryStore(), Clock())


async def test_create_stamps_the_note_with_the_clock(service: NoteService) -> None:
    note = await service.create(LOCAL, {"title": "t"})
    assert note.created_at == note.updated_at == T0 + timedelta(seconds=1)
    assert note.version == 1


async def test_replace_keeps_created_at_and_bumps_version_and_updated_at(service: NoteService) -> None:
    note = await service.create(LOCAL, {"title": "t", "created_at": "2001-01-01 00:00"})
    replaced = await service.replace(LOCAL, note.id, {"title": "u"})
    assert replaced.created_at == note.created_at
    assert replaced.updated_at > note.updated_at and replaced.version == 2


async def test_an_invalid_replace_changes_nothing(service: NoteService) -> None:
    note = await service.create(LOCAL, {"title": "t"})
    with pytest.raises(NoteValidationError):
        await service.replace(LOCAL, note.id, {"title": ""})
    assert await service.get(LOCAL, note.id) == note


async def test_if_match_with_a_stale_version_is_refused(service: NoteService) -> None:
    note = await service.create(LOCAL, {"title": "t"})
    await service.patch(LOCAL, note.id, {"priority": 1})
    with pytest.raises(PreconditionFailedError):
        await service.patch(LOCAL, note.id, {"priority": 2}, Precondition(Versions(frozenset({1}))))
    with pytest.raises(PreconditionFailedError):
        await service.delete(LOCAL, note.id, Precondition(Versions(frozenset({1}))))
    await service.delete(LOCAL, note.id, Precondition(Versions(frozenset({2}))))
    with pytest.raises(NoteNotFoundError):
        await service.get(LOCAL, note.id)


async def test_a_page_says_where_to_continue_only_when_more_notes_follow(service: NoteService) -> None:
    for title in ("c", "a", "b"):
        await service.create(LOCAL, {"title": title})
    query = ListQuery(sort=Sort(SortField.TITLE), limit=2)
    first = await service.list(LOCAL, query)
    assert [n.title for n in first.notes] == ["a", "b"] and first.next_after == ("b", 3)
    last = await service.list(LOCAL, ListQuery(sort=query.sort, limit=2, after=first.next_after))
    assert [n.title for n in last.notes] == ["c"] and last.next_after is None


class HeldBack:
    """A store whose one change is held back for its first `held` reads (as a transaction in flight
    holds a PostgreSQL store's back), and whose end wakes no one: its watch never wakes."""

    def __init__(self, held: int) -> None:
        self.held, self.reads = held, 0
        self.change = Change(ChangeToken(7, 1), ChangeOp.DELETE, 1, 1, T0, None)

    def notes_of(self, owner: str) -> HeldBack:
        return self

    async def changes(self, since: ChangeToken | None, limit: int) -> ChangesPage:
        self.reads += 1
        if self.reads <= self.held:
            return ChangesPage((), ChangeToken(5, 0), held_back=True)
        return ChangesPage((self.change,), self.change.token)

    @asynccontextmanager
    async def watch(self, owner: str) -> AsyncIterator[HeldBack]:
        yield self

    closing = False

    async def wait(self, timeout: float, *, looking_again: bool = False) -> bool:
        await asyncio.sleep(timeout)  # no wake-up ever comes: each wait lasts its whole timeout
        return False


async def test_a_long_poll_looks_again_while_its_changes_are_held_back_though_no_one_wakes_it() -> None:
    store = HeldBack(held=3)
    service = NoteService(cast(Store, store), Clock())
    page = await asyncio.wait_for(service.changes(LOCAL, None, 10, wait=60), 10)  # not the whole minute
    assert page.changes == (store.change,) and store.reads == 4


class WokenOnce(HeldBack):
    """A store with nothing to read, whose watch wakes once, at once."""

    def __init__(self) -> None:
        super().__init__(held=0)
        self.woken = False

    async def changes(self, since: ChangeToken | None, limit: int) -> ChangesPage:
        self.reads += 1
        return ChangesPage((), ChangeToken(5, 0))

    async def wait(self, timeout: float, *, looking_again: bool = False) -> bool:
        if not self.woken:
            self.woken = True
            return True
        return await super().wait(timeout, looking_again=looking_again)


async def test_a_wake_up_that_finds_nothing_leaves_the_follower_idle() -> None:
    """Nothing held back: the change it announced was read already, or is another's. The
    follower then runs no query until the next wake-up or the end of its wait."""
    store = WokenOnce()
    page = await NoteService(cast(Store, store), Clock()).changes(LOCAL, None, 10, wait=0.5)
    assert page.changes == () and store.reads == 3  # before the wait, after the wake-up, at its end


async def test_an_imported_note_from_the_trash_goes_to_the_trash_deleted_at_the_import(service: NoteService) -> None:
    """Not when the file says it was (its delete would come before its put in the log), nor
    brought back to life."""
    live, past, future = (Note(id=i, title=f"n{i}", description="", priority=0, tags=(), created_by=None,
                               created_at=T0, updated_at=T0, version=3) for i in (7, 8, 9))
    made = await service.import_notes(LOCAL, [
        NoteRecord(LOCAL, live), NoteRecord(LOCAL, past, deleted_at=T0 - timedelta(days=1)),
        NoteRecord(LOCAL, future, deleted_at=T0 + timedelta(days=365)),
    ])
    assert [n.title for n in made] == ["n7", "n8", "n9"] and {n.version for n in made} == {1}
    imported_at = T0 + timedelta(seconds=1)  # the import's moment, by the clock
    assert {n.updated_at for n in made} == {imported_at}
    assert [n.id for n in (await service.list(LOCAL, ListQuery())).notes] == [made[0].id]
    trash = (await service.trash(LOCAL, 10)).notes
    assert {t.note.id: t.deleted_at for t in trash} == {made[1].id: imported_at, made[2].id: imported_at}
