"""The use cases: create (once per idempotency key), get, replace, patch, delete and list an
owner's notes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.domain.errors import PreconditionFailedError, StorageUnavailableError, VersionConflictError
from app.domain.model import Note, NoteContent, NoteDraft
from app.domain.ports import Store
from app.domain.query import ListQuery, Page
from app.domain.rules import merge_patch, parse_content
from app.domain.transfer import Record, Selection

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Versions:
    """A set of versions of a note, or every version (`any`)."""

    versions: frozenset[int] = frozenset()
    any: bool = False

    def __contains__(self, note: Note) -> bool:
        return self.any or note.version in self.versions


@dataclass(frozen=True, slots=True)
class Precondition:
    """What a write asks of the current note: to be at one of `match` (when given), and at none of
    `none_match`. Checked in the same atomic step as the write."""

    match: Versions | None = None
    none_match: Versions | None = None

    def holds(self, note: Note) -> bool:
        return (self.match is None or note in self.match) and (
            self.none_match is None or note not in self.none_match
        )


NO_PRECONDITION = Precondition()


@dataclass(frozen=True, slots=True)
class Created:
    """The outcome of a create with an idempotency key: the note made now (`note`), or, for a
    retry, None and the outcome recorded by the first request."""

    outcome: bytes
    note: Note | None = None


class NoteService:
    """The use cases of the Notes service, over one store and one clock. Each acts for one owner,
    and the store scopes every query by it: no use case can reach another owner's notes."""

    # A write without a precondition retries a lost race; each lost round means another writer won.
    MAX_ATTEMPTS = 64

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, owner: str, body: Mapping[str, Any]) -> Note:
        content = parse_content(body)
        return await self._store.notes_of(owner).add(NoteDraft.from_content(content, self._clock()))

    async def create_once(
        self, owner: str, body: Mapping[str, Any], key: str, fingerprint: str, outcome: Callable[[Note], bytes]
    ) -> Created:
        """Create a note once per `key`: the claim of the key, the note and its recorded `outcome`
        commit in one transaction, so a retry after any failure, a lost commit reply included,
        either gets the first outcome again or finds that nothing was written."""
        content = parse_content(body)  # a broken body claims nothing
        now = self._clock()
        async with self._store.transaction(owner) as tx:
            recorded = await tx.idempotency.claim(key, fingerprint, now)
            if recorded is not None:
                return Created(recorded)
            note = await tx.notes.add(NoteDraft.from_content(content, now))
            made = outcome(note)
            await tx.idempotency.record(key, fingerprint, made, now)
        return Created(made, note)

    async def get(self, owner: str, note_id: int) -> Note:
        return await self._store.notes_of(owner).get(note_id)

    async def replace(
        self, owner: str, note_id: int, body: Mapping[str, Any], condition: Precondition = NO_PRECONDITION
    ) -> Note:
        """Full replace: omitted optional fields take their defaults, `created_at` is kept."""
        content = parse_content(body, note_id=note_id)
        return await self._revise(owner, note_id, condition, lambda _current: content)

    async def patch(
        self, owner: str, note_id: int, patch: Mapping[str, Any], condition: Precondition = NO_PRECONDITION
    ) -> Note:
        """A JSON merge patch (RFC 7396) of the note's content."""
        return await self._revise(owner, note_id, condition, lambda current: merge_patch(current, patch))

    async def delete(self, owner: str, note_id: int, condition: Precondition = NO_PRECONDITION) -> None:
        notes = self._store.notes_of(owner)
        if condition == NO_PRECONDITION or condition == Precondition(Versions(any=True)):
            await notes.delete(note_id)  # "*" holds for any note that exists: the delete checks that
            return
        current = await notes.get(note_id)
        if not condition.holds(current):
            raise PreconditionFailedError(note_id)
        try:
            await notes.delete(note_id, version=current.version)
        except VersionConflictError:
            raise PreconditionFailedError(note_id) from None

    def export(self, owner: str) -> AsyncIterator[Record]:
        """The owner's line and notes, as a store exports them: streamed, in one snapshot."""
        return self._store.export(Selection((owner,)))

    async def import_notes(self, owner: str, notes: Sequence[Note]) -> Sequence[Note]:
        """New notes of `owner` with the content of `notes` (their `created_at` kept), at version 1
        under new ids, in one transaction: all of them or none."""
        now = self._clock()
        drafts = [NoteDraft.from_content(note.content(), now) for note in notes]
        async with self._store.transaction(owner) as tx:
            return await tx.notes.add_many(drafts)

    async def check_storage(self) -> None:
        """Raise `StorageUnavailableError` unless the store can take writes now."""
        await self._store.check()

    async def list(self, owner: str, query: ListQuery) -> Page:
        """One page, and the key to continue from when more notes follow it."""
        found = await self._store.notes_of(owner).list(replace(query, limit=query.limit + 1))
        notes = tuple(found[: query.limit])
        more = len(found) > query.limit
        return Page(notes, query.sort.key(notes[-1]) if more else None)

    async def _revise(
        self, owner: str, note_id: int, condition: Precondition, change: Callable[[Note], NoteContent]
    ) -> Note:
        """Read, change and compare-and-set: the check of the precondition and the write are one
        step, since the write only lands on the version that was checked. A lost race is retried
        from a fresh read, where the precondition is checked again."""
        notes = self._store.notes_of(owner)
        for _ in range(self.MAX_ATTEMPTS):
            current = await notes.get(note_id)
            if not condition.holds(current):
                raise PreconditionFailedError(note_id)
            try:
                return await notes.update(current.revised(change(current), self._clock()))
            except VersionConflictError:
                continue
        raise StorageUnavailableError(f"note {note_id} is changing too often; try again")
