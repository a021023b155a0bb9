"""The use cases, over the in-memory adapter and a fixed clock: no I/O."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.adapters.memory import MemoryStore
from app.domain.errors import NoteNotFoundError, NoteValidationError, PreconditionFailedError
from app.domain.owners import LOCAL
from app.domain.query import ListQuery, Sort, SortField
from app.domain.services import NoteService, Precondition, Versions
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
