"""The in-memory adapter: a real store for one process, not a test double.

Safe under concurrent requests because no method awaits between reading and writing its state: on
one event loop each call is atomic. Notes are frozen values with tuple tags, so what a caller gets
can never alias mutable state inside the store. Ids come from a counter and are never reused.
Each sort order has a sorted index of (key, id), so a page costs a seek plus the notes it reads,
whatever its depth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sortedcontainers import SortedList

from app.adapters import Storage
from app.domain.errors import (
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    NoteNotFoundError,
    VersionConflictError,
)
from app.domain.model import Note, NoteDraft, search_text
from app.domain.ports import IDEMPOTENCY_LEASE, IDEMPOTENCY_RETENTION, RecordedResponse
from app.domain.query import ListQuery, NoteFilter, Sort, SortField

_SORTS = {field: Sort(field) for field in SortField}
_NO_FILTER = NoteFilter()


class MemoryNoteRepository:
    def __init__(self) -> None:
        self._notes: dict[int, Note] = {}
        self._search: dict[int, str] = {}
        self._last_id = 0
        self._indexes = {field: SortedList() for field in SortField}

    async def add(self, draft: NoteDraft) -> Note:
        self._last_id += 1
        note = draft.stored_as(self._last_id)
        self._store(note)
        return note

    async def get(self, note_id: int) -> Note:
        try:
            return self._notes[note_id]
        except KeyError:
            raise NoteNotFoundError(note_id) from None

    async def update(self, note: Note) -> Note:
        current = self._current(note.id, note.version - 1)
        self._unindex(current)
        self._store(note)
        return note

    async def delete(self, note_id: int, *, version: int | None = None) -> None:
        self._unindex(self._current(note_id, version))
        del self._notes[note_id], self._search[note_id]

    async def list(self, query: ListQuery) -> Sequence[Note]:
        found: list[Note] = []
        if query.limit <= 0:
            return found
        unfiltered = query.filter == _NO_FILTER
        for _, note_id in self._keys_after(query):
            note = self._notes[note_id]
            if unfiltered or _matches(note, self._search[note_id], query.filter):
                found.append(note)
                if len(found) == query.limit:
                    break
        return found

    async def check(self) -> None:
        return None

    def _current(self, note_id: int, version: int | None) -> Note:
        note = self._notes.get(note_id)
        if note is None:
            raise NoteNotFoundError(note_id)
        if version is not None and note.version != version:
            raise VersionConflictError(note_id)
        return note

    def _store(self, note: Note) -> None:
        self._notes[note.id] = note
        self._search[note.id] = search_text(note.title, note.description)
        for field, index in self._indexes.items():
            index.add(_SORTS[field].key(note))

    def _unindex(self, note: Note) -> None:
        for field, index in self._indexes.items():
            index.remove(_SORTS[field].key(note))

    def _keys_after(self, query: ListQuery) -> Iterator[tuple]:
        index = self._indexes[query.sort.field]
        after, descending = query.after, query.sort.descending
        if after is None:
            return reversed(index) if descending else iter(index)
        if descending:
            return index.irange(maximum=after, inclusive=(True, False), reverse=True)
        return index.irange(minimum=after, inclusive=(False, True))



def _matches(note: Note, text: str, f: NoteFilter) -> bool:
    return (
        f.tags.issubset(note.tags)
        and (f.created_by is None or note.created_by == f.created_by)
        and (f.priority is None or note.priority == f.priority)
        and (f.min_priority is None or note.priority >= f.min_priority)
        and (f.max_priority is None or note.priority <= f.max_priority)
        and _within(note.created_at, f.created_after, f.created_before)
        and _within(note.updated_at, f.updated_after, f.updated_before)
        and all(term in text for term in f.terms)
    )


def _within(moment: datetime, after: datetime | None, before: datetime | None) -> bool:
    return (after is None or moment >= after) and (before is None or moment < before)


@dataclass(frozen=True, slots=True)
class _Claim:
    fingerprint: str
    claimed_at: datetime
    response: RecordedResponse | None = None


class MemoryIdempotencyStore:
    def __init__(self) -> None:
        self._claims: dict[str, _Claim] = {}

    async def claim(self, key: str, fingerprint: str, now: datetime) -> RecordedResponse | None:
        self._forget_expired(now)
        held = self._claims.get(key)
        if held is None or _expired(held, now):
            self._claims.pop(key, None)  # re-inserted at the end, to keep the dict in claim order
            self._claims[key] = _Claim(fingerprint, now)
            return None
        if held.fingerprint != fingerprint:
            raise IdempotencyKeyReusedError(key)
        if held.response is None:
            raise IdempotencyKeyInUseError(key)
        return held.response

    async def finish(self, key: str, response: RecordedResponse, now: datetime) -> None:
        held = self._claims.get(key)
        if held is not None:
            self._claims[key] = replace(held, response=response)

    async def release(self, key: str) -> None:
        held = self._claims.get(key)
        if held is not None and held.response is None:
            del self._claims[key]

    def _forget_expired(self, now: datetime) -> None:
        # The dict is in claim order, so the expired keys are at its front.
        while self._claims:
            oldest = next(iter(self._claims))
            if now - self._claims[oldest].claimed_at <= IDEMPOTENCY_RETENTION:
                break
            del self._claims[oldest]


def _expired(claim: _Claim, now: datetime) -> bool:
    """Past retention, or an unfinished claim whose request must have died."""
    age = now - claim.claimed_at
    return age > IDEMPOTENCY_RETENTION or (claim.response is None and age > IDEMPOTENCY_LEASE)


async def open_storage() -> AsyncIterator[Storage]:
    """The container's resource for `memory://`: nothing to open or close."""
    yield Storage(notes=MemoryNoteRepository(), idempotency=MemoryIdempotencyStore())
