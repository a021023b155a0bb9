"""The use cases: create (once per idempotency key), get, replace, patch, delete and list an
owner's notes; their revisions, the trash and the changes feed."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from app.domain.errors import (
    PreconditionFailedError,
    RevisionNotFoundError,
    StorageUnavailableError,
    VersionConflictError,
)
from app.domain.history import DEFAULT_RETENTION, ChangesPage, ChangeToken, Pruned, Retention, Trashed
from app.domain.model import Note, NoteContent, NoteDraft
from app.domain.ports import ChangeWatch, Store
from app.domain.query import ListQuery, Page
from app.domain.rules import merge_patch, parse_content
from app.domain.transfer import NoteRecord, Record, Selection

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


@dataclass(frozen=True, slots=True)
class RevisionsPage:
    revisions: tuple[Note, ...]
    next_before: int | None  # the version the next page starts below; None on the last page


@dataclass(frozen=True, slots=True)
class TrashPage:
    notes: tuple[Trashed, ...]
    next_after: tuple[datetime, int] | None  # (deleted_at, id) of the last note, when more follow


# A page can say that changes have committed but cannot be read yet (`held_back`: a transaction
# still in flight holds them back, postgres_history.py), and the end of that transaction may wake
# no one (another owner's, or one that logs nothing). The follower then looks again after each of
# these many seconds, then after the last one each time, for as long as its pages say so.
# Otherwise it waits for the next wake-up only: an idle follower runs no query.
_LOOK_AGAIN = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)


class _Waiting:
    """One wait for changes, up to `deadline` (a `time.monotonic()`)."""

    def __init__(self, watch: ChangeWatch, deadline: float) -> None:
        self._watch, self._deadline = watch, deadline
        self._looks = 0  # looks again in a row while changes are held back

    async def more(self, held_back: bool = False) -> bool:
        """Wait for the next wake-up, or, when the last page said changes are held back, until
        it is time to look again; False once the time was up before or the store closes."""
        left = self._deadline - time.monotonic()
        if left <= 0 or self._watch.closing:
            return False
        if held_back:
            pause = _LOOK_AGAIN[min(self._looks, len(_LOOK_AGAIN) - 1)]
            self._looks += 1
            await self._watch.wait(min(left, pause), looking_again=True)
        else:
            self._looks = 0
            # woken, or the whole wait passed: one more read either way (a change whose wake-up
            # was lost, with a connection, is still answered at the end of the wait)
            await self._watch.wait(left)
        return not self._watch.closing


_Written = TypeVar("_Written")


async def _conditionally(
    condition: Precondition, note_id: int, read: Callable[[], Awaitable[Note]],
    write: Callable[[int | None], Awaitable[_Written]],
) -> _Written:
    """`write` (given the version it must find, or None for any) if `condition` holds. With none,
    or "*", which holds for any note there is, the write itself finds the note. Else the note is
    read and checked, and written only at the version checked: one that changed meanwhile (a
    VersionConflictError) fails the condition too."""
    if condition == NO_PRECONDITION or condition == Precondition(Versions(any=True)):
        return await write(None)
    current = await read()
    if not condition.holds(current):
        raise PreconditionFailedError(note_id)
    try:
        return await write(current.version)
    except VersionConflictError:
        raise PreconditionFailedError(note_id) from None


class NoteService:
    """The use cases of the Notes service, over one store and one clock. Each acts for one owner,
    and the store scopes every query by it: no use case can reach another owner's notes."""

    # A write without a precondition retries a lost race; each lost round means another writer won.
    MAX_ATTEMPTS = 64

    def __init__(self, store: Store, clock: Clock, retention: Retention = DEFAULT_RETENTION) -> None:
        self._store = store
        self._clock = clock
        self._retention = retention

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

    async def delete(
        self, owner: str, note_id: int, condition: Precondition = NO_PRECONDITION, *, purge: bool = False
    ) -> None:
        """Move the note to the trash; with `purge`, delete it for good."""
        notes = self._store.notes_of(owner)

        async def delete(version: int | None) -> None:
            await notes.delete(note_id, at=self._clock(), version=version, purge=purge)

        await _conditionally(condition, note_id, lambda: notes.get(note_id), delete)

    async def revisions(self, owner: str, note_id: int, limit: int, before: int | None = None) -> RevisionsPage:
        """The kept revisions of a note, newest first, from below version `before` on."""
        notes = self._store.notes_of(owner)
        current = await notes.get(note_id)
        newest = current.version if before is None else min(before - 1, current.version)
        oldest = self._retention.oldest_kept(current.version)
        if newest < oldest:
            return RevisionsPage((), None)
        found = await notes.revisions(note_id, newest=newest, oldest=oldest, limit=limit + 1)
        page = tuple(found[:limit])
        return RevisionsPage(page, page[-1].version if len(found) > limit else None)

    async def revision(self, owner: str, note_id: int, version: int) -> Note:
        """The note as its version `version` was; `RevisionNotFoundError` unless that one is kept."""
        notes = self._store.notes_of(owner)
        current = await notes.get(note_id)
        if not self._retention.oldest_kept(current.version) <= version <= current.version:
            raise RevisionNotFoundError(note_id, version)
        found = await notes.revisions(note_id, newest=version, oldest=version, limit=1)
        if not found:
            raise RevisionNotFoundError(note_id, version)
        return found[0]

    async def restore_revision(
        self, owner: str, note_id: int, version: int, condition: Precondition = NO_PRECONDITION
    ) -> Note:
        """A new version of the note whose content is revision `version`'s."""
        content = (await self.revision(owner, note_id, version)).content()
        return await self._revise(owner, note_id, condition, lambda _current: content)

    async def trash(self, owner: str, limit: int, after: tuple[datetime, int] | None = None) -> TrashPage:
        found = await self._store.notes_of(owner).trash(limit=limit + 1, after=after)
        page = tuple(found[:limit])
        more = len(found) > limit
        return TrashPage(page, (page[-1].deleted_at, page[-1].note.id) if more else None)

    async def in_trash(self, owner: str, note_id: int) -> Trashed:
        return await self._store.notes_of(owner).in_trash(note_id)

    async def restore(self, owner: str, note_id: int, condition: Precondition = NO_PRECONDITION) -> Note:
        """The note back from the trash, under its id, if `condition` holds for it as it was deleted."""
        notes = self._store.notes_of(owner)

        async def as_deleted() -> Note:
            return (await notes.in_trash(note_id)).note

        return await _conditionally(
            condition, note_id, as_deleted, lambda version: notes.restore(note_id, self._clock(), version)
        )

    async def purge(self, owner: str, note_id: int, condition: Precondition = NO_PRECONDITION) -> None:
        """Delete a note in the trash for good, if `condition` holds for it as it was deleted."""
        notes = self._store.notes_of(owner)

        async def as_deleted() -> Note:
            return (await notes.in_trash(note_id)).note

        await _conditionally(condition, note_id, as_deleted, lambda version: notes.purge(note_id, version))

    async def changes(self, owner: str, since: ChangeToken | None, limit: int, wait: float = 0) -> ChangesPage:
        """The owner's changes after `since`; with `wait`, held up to that many seconds until
        there is one (or the store closes)."""
        notes = self._store.notes_of(owner)
        if wait <= 0:
            return await notes.changes(since, limit)
        async with self._store.watch(owner) as watch:
            waiting = _Waiting(watch, time.monotonic() + wait)
            page = await notes.changes(since, limit)
            while not page.changes and await waiting.more(page.held_back):
                page = await notes.changes(page.next, limit)
            return page

    async def follow(
        self, owner: str, since: ChangeToken | None, limit: int, idle: float
    ) -> AsyncGenerator[ChangesPage, None]:
        """The owner's changes after `since`, page after page for as long as the caller reads
        them, and an empty page after each `idle` seconds without one (a stream's keep-alive).
        Ends when the store closes."""
        notes = self._store.notes_of(owner)
        async with self._store.watch(owner) as watch:
            page = await notes.changes(since, limit)
            while not watch.closing:
                waiting = _Waiting(watch, time.monotonic() + idle)
                while not page.changes and await waiting.more(page.held_back):
                    page = await notes.changes(page.next, limit)
                if watch.closing:
                    return
                yield page
                page = await notes.changes(page.next, limit)

    def stop_following(self) -> None:
        """The process is stopping: every wait for changes ends now, and every follow."""
        self._store.close_watches()

    async def prune(self) -> Pruned:
        """One small round of pruning by the retention settings."""
        return await self._store.prune(self._clock(), self._retention)

    def export(self, owner: str) -> AsyncIterator[Record]:
        """The owner's line and notes, as a store exports them: streamed, in one snapshot; of
        each note, the revisions GET /notes/{id}/revisions shows (the ones kept)."""
        return self._store.export(Selection((owner,), keep_revisions=self._retention.keep_revisions))

    async def import_notes(self, owner: str, records: Sequence[NoteRecord]) -> Sequence[Note]:
        """New notes of `owner` with the content of the records' notes (their `created_at` kept), at
        version 1 under new ids, in one transaction: all of them or none. A note that was in the
        trash is put in the trash, not brought back to life: deleted now, as its `put` is, so the
        log's times run in order and the owner has the trash's whole time to restore it."""
        now = self._clock()
        drafts = [NoteDraft.from_content(record.note.content(), now) for record in records]
        async with self._store.transaction(owner, rows=len(drafts)) as tx:
            made = await tx.notes.add_many(drafts)
            for record, note in zip(records, made, strict=True):
                if record.deleted_at is not None:
                    await tx.notes.delete(note.id, at=now)
            return made

    async def check_storage(self) -> None:
        """Raise `StorageUnavailableError` unless the store can take writes now."""
        await self._store.check()

    async def check_not_read_only(self) -> None:
        """Raise `StorageReadOnlyError` if the store refuses every write until it is mended
        and this process started again."""
        await self._store.check_not_read_only()

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
