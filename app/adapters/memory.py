"""The in-memory adapter: a real store for one process, not a test double.

Safe under concurrent requests because no method awaits between reading and writing its state: on
one event loop each call is atomic. Notes are frozen values with tuple tags, so what a caller gets
can never alias mutable state inside the store. Ids come from a counter and are never reused.
Each sort order has a sorted index of (key, id), so a page costs a seek plus the notes it reads,
whatever its depth. A unit of work keeps an undo journal and plays it back if its block raises.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Container, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sortedcontainers import SortedDict, SortedList

from app.adapters import PoolUsage
from app.adapters.signals import ChangeSignals, Watch
from app.domain.errors import (
    ChangeTokenAheadError,
    ChangeTokenExpiredError,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    ImportConflictError,
    IssuerRevokedError,
    NoteNotFoundError,
    NotInTrashError,
    OwnerExistsError,
    OwnerHasNotesError,
    OwnerNotFoundError,
    OwnerRemovedError,
    TokenNotFoundError,
    VersionConflictError,
)
from app.domain.history import START, Change, ChangeOp, ChangesPage, ChangeToken, Pruned, Retention, Trashed
from app.domain.model import Note, NoteDraft, search_text
from app.domain.owners import LOCAL, NewToken, OwnerSummary, Token
from app.domain.ports import IDEMPOTENCY_RETENTION
from app.domain.query import ListQuery, NoteFilter, Sort, SortField
from app.domain.transfer import (
    Imported,
    NoteRecord,
    OnConflict,
    OwnerRecord,
    Record,
    Replacement,
    RevisionRecord,
    Selection,
    TokenRecord,
    replacement,
)

_SORTS = {field: Sort(field) for field in SortField}
_NO_FILTER = NoteFilter()
Undo = list[Callable[[], object]]


class MemoryHistory:
    """The change log of a memory store. Positions are handed out in the order of the writes,
    and a write is one atomic step on the event loop: a row is visible from the moment it has a
    position, so a follower can never read past a row that appears later. Tokens have `key` 0."""

    def __init__(self) -> None:
        self.positions = IdSequence()
        self.horizon = START  # every row up to it has left the feed
        # position -> (repository, change): the feed's rows, in the order of their positions
        self.rows: dict[int, tuple[MemoryNoteRepository, Change]] = {}
        self.signals = ChangeSignals()


class MemoryNoteRepository:
    """The notes of one owner, with indexes of their own; ids come from the store's one counter."""

    def __init__(
        self, next_id: Callable[[], int], history: MemoryHistory, owner: str, owners: Container[str]
    ) -> None:
        self._owners = owners  # the store's: a note is made only while its owner is one of them
        self._notes: dict[int, Note] = {}
        self._search: dict[int, str] = {}
        self._next_id = next_id
        self._indexes = {field: SortedList() for field in SortField}
        self._history, self._owner = history, owner
        self._feed: SortedDict = SortedDict()  # position -> Change
        self._revisions: dict[int, dict[int, Change]] = {}  # note id -> version -> its `put`, oldest first
        self._trash: dict[int, Trashed] = {}
        self._trash_order = SortedList()  # (deleted_at, id)
        self._content_rows: dict[int, set[int]] = {}  # note id -> positions of its `put` rows in the feed
        self.journal: Undo | None = None  # set inside a unit of work: how to undo each change

    def __len__(self) -> int:
        return len(self._notes)

    def move_to(self, other: MemoryNoteRepository, at: datetime) -> int:
        """Give every note to `other`, with the trash and their history (a move of owner; a
        purged note's rows stay), logged `at` as the store's port says; how many notes moved."""
        notes, trash = list(self._notes.values()), list(self._trash.values())
        for note in notes:
            self._replace(note, None)
            other._store(note)
        for trashed in trash:
            self._trash_take(trashed.note.id)
            other._trash_put(trashed)
        moving = {note.id for note in notes} | {trashed.note.id for trashed in trash}
        for note_id in moving:
            if note_id in self._revisions:
                other._revisions[note_id] = self._revisions.pop(note_id)
            if note_id in self._content_rows:
                other._content_rows[note_id] = self._content_rows.pop(note_id)
        for position, change in list(self._feed.items()):
            if change.note_id in moving:
                del self._feed[position]
                other._feed[position] = change
                self._history.rows[position] = (other, change)
        for note in notes:
            other._log_again(note, at)
            self._log(ChangeOp.DELETE, note.id, note.version, at, None)
        for trashed in trash:
            self._log(ChangeOp.DELETE, trashed.note.id, trashed.note.version, at, None)
        return len(notes)

    def _log_again(self, note: Note, at: datetime) -> None:
        """The row of the note's current version leaves its place for the end of the log."""
        logged = self._revisions.get(note.id, {}).get(note.version)
        if logged is not None:
            position = logged.token.position
            self._feed.pop(position, None)
            self._history.rows.pop(position, None)
            self._rows_of_note(note.id).discard(position)
        self._log(ChangeOp.PUT, note.id, note.version, at, note)

    def current_version(self, note_id: int) -> int:
        note = self._notes.get(note_id)
        return note.version if note is not None else self._trash[note_id].note.version

    def record(self, note_id: int) -> NoteRecord:
        """The note, or the note in the trash, as an export carries it."""
        note = self._notes.get(note_id)
        if note is not None:
            return NoteRecord(self._owner, note)
        trashed = self._trash[note_id]
        return NoteRecord(self._owner, trashed.note, trashed.deleted_at)

    def give_way(self, note_id: int, change: Replacement, at: datetime) -> None:
        """Take the note (or the note in the trash) away for an imported one (`change`): its
        revisions above `change.kept_up_to` go too, and if it leaves this owner, its followers
        hear a delete `at`."""
        note = self._notes.get(note_id)
        if note is not None:
            self._replace(note, None)
        else:
            self._trash_take(note_id)
        if change.from_another_owner:
            self._drop_revisions(note_id)
        if change.leaves is not None and note is not None:
            self._log(ChangeOp.DELETE, note_id, note.version, at, None)

    def take_imported(self, record: NoteRecord, older: list[Note]) -> None:
        """An imported note, with its older revisions: logged oldest first, as they were made,
        then a delete if it is in the trash."""
        note = record.note
        for revision in [*older, note]:
            self._log(ChangeOp.PUT, note.id, revision.version, revision.updated_at, revision)
        if record.deleted_at is None:
            self._store(note)
        else:
            self._trash_put(Trashed(note, record.deleted_at))
            self._log(ChangeOp.DELETE, note.id, note.version, record.deleted_at, None)

    def forget(self) -> None:
        """The owner is removed: its rows leave the log."""
        for position in self._feed:
            self._history.rows.pop(position, None)

    async def add(self, draft: NoteDraft) -> Note:
        if self._owner not in self._owners:  # removed: a process may still trust its token
            raise OwnerRemovedError(self._owner)
        note = draft.stored_as(self._next_id())
        self._store(note)
        self._undo(lambda: self._replace(note, None))
        self._log(ChangeOp.PUT, note.id, note.version, note.updated_at, note)
        return note

    async def add_many(self, drafts: Sequence[NoteDraft]) -> Sequence[Note]:
        return [await self.add(draft) for draft in drafts]  # no await yields: one atomic step

    async def get(self, note_id: int) -> Note:
        try:
            return self._notes[note_id]
        except KeyError:
            raise NoteNotFoundError(note_id) from None

    async def update(self, note: Note) -> Note:
        before = self._current(note.id, note.version - 1)
        self._replace(before, note)
        self._undo(lambda: self._replace(note, before))
        self._log(ChangeOp.PUT, note.id, note.version, note.updated_at, note)
        return note

    async def delete(self, note_id: int, *, at: datetime, version: int | None = None, purge: bool = False) -> None:
        before = self._current(note_id, version)
        self._replace(before, None)
        self._undo(lambda: self._replace(None, before))
        if purge:
            self._drop_revisions(note_id)
        else:
            trashed = Trashed(before, at)
            self._trash_put(trashed)
            self._undo(lambda: self._trash_take(note_id))
        self._log(ChangeOp.DELETE, note_id, before.version, at, None)

    async def revisions(self, note_id: int, *, newest: int, oldest: int, limit: int) -> Sequence[Note]:
        if note_id not in self._notes:
            raise NoteNotFoundError(note_id)
        kept = self._revisions.get(note_id)
        if kept is None or limit <= 0:
            return []
        found = (change.note for version, change in reversed(kept.items()) if oldest <= version <= newest)
        return [note for note, _ in zip(found, range(limit), strict=False)]  # type: ignore[misc]

    async def trash(self, *, limit: int, after: tuple[datetime, int] | None = None) -> Sequence[Trashed]:
        keys = (
            reversed(self._trash_order) if after is None
            else self._trash_order.irange(maximum=after, inclusive=(True, False), reverse=True)
        )
        return [self._trash[note_id] for (_, note_id), _ in zip(keys, range(limit), strict=False)]

    async def in_trash(self, note_id: int) -> Trashed:
        trashed = self._trash.get(note_id)
        if trashed is None:
            raise NotInTrashError(note_id)
        return trashed

    async def restore(self, note_id: int, at: datetime, version: int | None = None) -> Note:
        trashed = self._trash.get(note_id) if self._owner in self._owners else None  # gone with them
        if trashed is None:
            raise NotInTrashError(note_id)
        if version is not None and trashed.note.version != version:
            raise VersionConflictError(note_id)
        self._trash_take(note_id)
        note = replace(trashed.note, version=trashed.note.version + 1, updated_at=at)
        self._store(note)

        def undo() -> None:
            self._replace(note, None)
            self._trash_put(trashed)

        self._undo(undo)
        self._log(ChangeOp.PUT, note.id, note.version, at, note)
        return note

    async def purge(self, note_id: int, version: int | None = None) -> None:
        trashed = self._trash.get(note_id)
        if trashed is None:
            raise NotInTrashError(note_id)
        if version is not None and trashed.note.version != version:
            raise VersionConflictError(note_id)
        self._trash_take(note_id)
        self._drop_revisions(note_id)
        self._history.signals.changed(self._owner)

    async def changes(self, since: ChangeToken | None, limit: int) -> ChangesPage:
        history = self._history
        if since is not None and since < history.horizon:
            raise ChangeTokenExpiredError(since)
        if since is not None and (since.key or since.position > history.positions.last):
            raise ChangeTokenAheadError(since)
        start = max(since or START, history.horizon)
        positions = self._feed.irange(minimum=start.position, inclusive=(False, True))
        found = tuple(self._feed[p] for p, _ in zip(positions, range(limit), strict=False))
        if len(found) == limit:
            return ChangesPage(found, found[-1].token)
        # Every row up to the last position handed out is in place: the next read starts there.
        return ChangesPage(found, max(start, ChangeToken(0, history.positions.last)))

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

    def prune(self, now: datetime, retention: Retention, budget: int) -> Pruned:
        """Up to `budget` revisions, notes of the trash and rows of the feed, as `Store.prune`."""
        revisions = trashed = 0
        trash_cutoff = retention.trash_cutoff(now)
        while self._trash_order and trashed < budget and self._trash_order[0][0] < trash_cutoff:
            _, note_id = self._trash_order[0]
            self._trash_take(note_id)
            self._drop_revisions(note_id)
            trashed += 1
        for note_id, kept in list(self._revisions.items()):
            current = self._notes.get(note_id) or self._trash[note_id].note
            oldest = retention.oldest_kept(current.version)
            while kept and (first := next(iter(kept))) < oldest and revisions < budget:
                del kept[first]
                revisions += 1
        return Pruned(revisions=revisions, trashed=trashed)

    def _log(self, op: ChangeOp, note_id: int, version: int, at: datetime, note: Note | None) -> None:
        history = self._history
        change = Change(ChangeToken(0, history.positions.next()), op, note_id, version, at, note)
        position = change.token.position
        self._feed[position] = change
        history.rows[position] = (self, change)
        if note is not None:
            self._revisions.setdefault(note_id, {})[version] = change
            self._content_rows.setdefault(note_id, set()).add(position)
        self._undo(lambda: self._unlog(change))
        if self.journal is None:
            history.signals.changed(self._owner)

    def _unlog(self, change: Change) -> None:
        position = change.token.position
        self._feed.pop(position, None)
        self._history.rows.pop(position, None)
        self._rows_of_note(change.note_id).discard(position)
        kept = self._revisions.get(change.note_id)
        if kept is not None:
            kept.pop(change.version, None)
            if not kept:
                del self._revisions[change.note_id]

    def _drop_revisions(self, note_id: int) -> None:
        """A purge: the note's revisions go, and with them its rows in the feed that carry its
        content (its `delete` rows stay: a follower still learns that it went)."""
        self._revisions.pop(note_id, None)
        for position in self._content_rows.pop(note_id, set()):
            self._feed.pop(position, None)
            self._history.rows.pop(position, None)

    def _rows_of_note(self, note_id: int) -> set[int]:
        return self._content_rows.get(note_id) or set()

    def leave_feed(self, position: int) -> None:
        """The row at `position` is older than the kept log (its revision, if any, stays)."""
        change = self._feed.pop(position)
        self._rows_of_note(change.note_id).discard(position)

    def _trash_put(self, trashed: Trashed) -> None:
        self._trash[trashed.note.id] = trashed
        self._trash_order.add((trashed.deleted_at, trashed.note.id))

    def _trash_take(self, note_id: int) -> Trashed:
        trashed = self._trash.pop(note_id)
        self._trash_order.remove((trashed.deleted_at, note_id))
        return trashed

    def _undo(self, step: Callable[[], object]) -> None:
        if self.journal is not None:
            self.journal.append(step)

    def _current(self, note_id: int, version: int | None) -> Note:
        note = self._notes.get(note_id)
        if note is None:
            raise NoteNotFoundError(note_id)
        if version is not None and note.version != version:
            raise VersionConflictError(note_id)
        return note

    def _replace(self, old: Note | None, new: Note | None) -> None:
        """Put `new` where `old` was (either may be None): the undo of a change is the reverse."""
        if old is not None:
            for field, index in self._indexes.items():
                index.remove(_SORTS[field].key(old))
            del self._notes[old.id], self._search[old.id]
        if new is not None:
            self._store(new)

    def _store(self, note: Note) -> None:
        self._notes[note.id] = note
        self._search[note.id] = search_text(note.title, note.description)
        for field, index in self._indexes.items():
            index.add(_SORTS[field].key(note))

    def _keys_after(self, query: ListQuery) -> Iterator[tuple]:
        index = self._indexes[query.sort.field]
        after, descending = query.after, query.sort.descending
        if after is None:
            return reversed(index) if descending else iter(index)
        if descending:
            return index.irange(maximum=after, inclusive=(True, False), reverse=True)
        return index.irange(minimum=after, inclusive=(False, True))


class _JournaledNotes:
    """The repository as seen inside a unit of work: each change notes how to undo it. A change
    is one step with no await inside, so no other request's change can land in this journal."""

    def __init__(self, notes: MemoryNoteRepository, undo: Undo) -> None:
        self._notes, self._undo = notes, undo

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._notes, name)

        async def journaled(*args: Any, **kwargs: Any) -> Any:
            self._notes.journal = self._undo
            try:
                return await method(*args, **kwargs)
            finally:
                self._notes.journal = None

        return journaled


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
class _Key:
    fingerprint: str
    recorded_at: datetime
    outcome: bytes | None  # None while the unit of work that claimed it is open


class MemoryIdempotencyStore:
    """Keys in a dict in the order they were recorded, so the expired ones are at its front."""

    def __init__(self, keys: dict[tuple[str, str], _Key], undo: Undo, owner: str) -> None:
        self._keys, self._undo, self._owner = keys, undo, owner
        self.claimed: list[tuple[str, str]] = []

    async def claim(self, text: str, fingerprint: str, now: datetime) -> bytes | None:
        key = (self._owner, text)  # the same key of two owners: two independent requests
        self._forget_expired(now)
        held = self._keys.get(key)
        if held is not None and held.outcome is not None and _expired(held, now):
            held = None
        if held is None:
            self._keys.pop(key, None)
            self._keys[key] = _Key(fingerprint, now, None)
            self._undo.append(lambda: self._keys.pop(key, None))
            self.claimed.append(key)
            return None
        if held.fingerprint != fingerprint:
            raise IdempotencyKeyReusedError(text)
        if held.outcome is None:
            raise IdempotencyKeyInUseError(text)
        return held.outcome

    async def record(self, text: str, fingerprint: str, outcome: bytes, now: datetime) -> None:
        key = (self._owner, text)
        self._keys.pop(key, None)  # re-inserted at the end: the dict stays in time order
        self._keys[key] = _Key(fingerprint, now, outcome)

    def _forget_expired(self, now: datetime) -> None:
        while self._keys:
            oldest = next(iter(self._keys))
            held = self._keys[oldest]
            if held.outcome is None or not _expired(held, now):
                break
            del self._keys[oldest]


def _expired(key: _Key, now: datetime) -> bool:
    return now - key.recorded_at > IDEMPOTENCY_RETENTION


@dataclass(frozen=True, slots=True)
class _Transaction:
    notes: _JournaledNotes
    idempotency: MemoryIdempotencyStore


class IdSequence:
    """Ids handed out in increasing order, never twice; an import moves it past what it brought."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last

    def advance_past(self, value: int) -> None:
        self.last = max(self.last, value)


class MemoryStore:
    """Owners, tokens, notes and idempotency keys in this process's memory."""

    PRUNE_BATCH = 500

    def __init__(self) -> None:
        self._by_owner: dict[str, MemoryNoteRepository] = {}
        self._ids = IdSequence()
        self._history = MemoryHistory()
        self.accounts = MemoryAccounts(self._by_owner, self._repository)
        self.cursor_secret = secrets.token_urlsafe(32)
        self.pool_usage: PoolUsage | None = None
        self.followers = self._history.signals.followers
        self._keys: dict[tuple[str, str], _Key] = {}

    def _repository(self, owner: str) -> MemoryNoteRepository:
        notes = self._by_owner.get(owner)
        if notes is None:
            notes = self._by_owner[owner] = MemoryNoteRepository(
                self._ids.next, self._history, owner, self.accounts.names
            )
        return notes

    def notes_of(self, owner: str) -> MemoryNoteRepository:
        notes = self._by_owner.get(owner)  # the owner's repository at once: this runs per request
        return self._repository(owner) if notes is None else notes

    @asynccontextmanager
    async def transaction(self, owner: str, *, rows: int = 0) -> AsyncIterator[_Transaction]:
        undo: Undo = []
        keys = MemoryIdempotencyStore(self._keys, undo, owner)
        try:
            yield _Transaction(_JournaledNotes(self._repository(owner), undo), keys)  # type: ignore[arg-type]
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        else:
            if undo:
                self._history.signals.changed(owner)
        finally:  # a key claimed but not recorded is not kept, as in a SQL store
            for key in keys.claimed:
                if key in self._keys and self._keys[key].outcome is None:
                    del self._keys[key]

    async def check(self) -> None:
        return None

    async def check_not_read_only(self) -> None:
        return None

    def watch(self, owner: str) -> AbstractAsyncContextManager[Watch]:
        return self._history.signals.watch(owner)

    def close(self) -> None:
        self._history.signals.close()

    def close_watches(self) -> None:
        self._history.signals.close()

    async def prune(self, now: datetime, retention: Retention) -> Pruned:
        revisions = trashed = 0
        for repository in list(self._by_owner.values()):
            pruned = repository.prune(now, retention, self.PRUNE_BATCH - max(revisions, trashed))
            revisions, trashed = revisions + pruned.revisions, trashed + pruned.trashed
        history, changes = self._history, 0
        cutoff = retention.changes_cutoff(now)
        while history.rows and changes < self.PRUNE_BATCH:
            position = next(iter(history.rows))
            repository, change = history.rows[position]
            if change.at >= cutoff:
                break
            del history.rows[position]
            repository.leave_feed(position)
            history.horizon = max(history.horizon, change.token)
            changes += 1
        return Pruned(revisions=revisions, trashed=trashed, changes=changes)

    async def export(self, selection: Selection) -> AsyncIterator[Record]:
        # A snapshot first (references only): the stream may be read while requests change notes.
        owners = self.accounts.owner_records(selection)
        tokens = self.accounts.token_records() if selection.whole_store else []
        covered = [(owner, repository) for owner, repository in self._by_owner.items() if selection.covers(owner)]
        notes = sorted(
            [NoteRecord(owner, note) for owner, repository in covered for note in repository._notes.values()]
            + [NoteRecord(owner, t.note, t.deleted_at) for owner, repository in covered
               for t in repository._trash.values()],
            key=lambda record: record.note.id,
        )
        revisions = sorted(
            (RevisionRecord(owner, change.note) for owner, repository in covered  # type: ignore[arg-type]
             for note_id, kept in repository._revisions.items() for version, change in kept.items()
             if selection.older_kept(repository.current_version(note_id), version)),
            key=lambda record: (record.note.id, record.note.version),
        )
        for owner_record in owners:
            yield owner_record
        for token in tokens:
            yield token
        for note_record in notes:
            yield note_record
        for revision in revisions:
            yield revision

    async def count_notes(self, selection: Selection) -> int:
        return sum(len(notes) + len(notes._trash) for owner, notes in self._by_owner.items() if selection.covers(owner))

    async def import_records(
        self, records: AsyncIterable[Record], on_conflict: OnConflict, *, at: datetime
    ) -> Imported:
        # Everything is read and checked before the first change: then applied with no await
        # between the changes, it is one atomic step on the event loop.
        owners: list[OwnerRecord] = []
        tokens: list[TokenRecord] = []
        notes: list[NoteRecord] = []
        revisions: dict[int, list[RevisionRecord]] = {}
        async for record in records:
            if isinstance(record, NoteRecord):
                notes.append(record)
            elif isinstance(record, RevisionRecord):
                revisions.setdefault(record.note.id, []).append(record)
            elif isinstance(record, TokenRecord):
                tokens.append(record)
            else:
                owners.append(record)
        imported = Imported()
        where = {note_id: owner for owner, repo in self._by_owner.items() for note_id in (*repo._notes, *repo._trash)}
        conflicts = [record.note.id for record in notes if record.note.id in where]
        token_conflicts = self.accounts.conflicts(tokens)
        if on_conflict is OnConflict.FAIL and (conflicts or token_conflicts):
            raise ImportConflictError(*(("note", conflicts[0]) if conflicts else ("token", token_conflicts[0])))
        imported.owners = self.accounts.import_owners(owners)
        imported.tokens = self.accounts.import_tokens(
            tokens, replace=on_conflict is OnConflict.REPLACE, skipped=imported.skipped_tokens
        )
        for record in notes:
            note = record.note
            older = [r.note for r in revisions.get(note.id, [])]
            if note.id in where:
                holder = self._by_owner[where[note.id]]
                change = None if on_conflict is OnConflict.SKIP else replacement(holder.record(note.id), record)
                if change is None:
                    imported.skipped.append(note.id)
                    continue
                holder.give_way(note.id, change, at)
                imported.count_replaced(note.id, note.version, change)
                record = NoteRecord(record.owner, replace(note, version=change.version), record.deleted_at)
                older = [revision for revision in older if revision.version > change.kept_up_to]
            self._repository(record.owner).take_imported(record, older)
            self._ids.advance_past(note.id)
            imported.notes += 1
            imported.revisions += len(older)
        return imported


class MemoryAccounts:
    """Owners and tokens of a memory store."""

    def __init__(
        self, by_owner: dict[str, MemoryNoteRepository], notes_of: Callable[[str], MemoryNoteRepository]
    ) -> None:
        self._owners: dict[str, datetime | None] = {LOCAL: None}
        self.names = self._owners.keys()  # the owners there are now (a live view)
        self._by_owner, self._notes_of = by_owner, notes_of
        self._tokens: dict[int, Token] = {}
        self._hashes: dict[str, int] = {}
        self._token_ids = IdSequence()

    async def add_owner(self, name: str, now: datetime) -> None:
        if name in self._owners:
            raise OwnerExistsError(name)
        self._owners[name] = now

    async def owners(self) -> Sequence[OwnerSummary]:
        tokens = Counter(token.owner for token in self._tokens.values())
        return [
            OwnerSummary(name, len(self._by_owner.get(name, ())), tokens[name]) for name in sorted(self._owners)
        ]

    async def remove_owner(self, name: str, *, delete_notes: bool) -> int:
        self._existing(name)
        count = len(self._by_owner.get(name, ()))
        if count and not delete_notes:
            raise OwnerHasNotesError(name, count)
        removed = self._by_owner.pop(name, None)
        if removed is not None:
            removed.forget()
        for token in [t for t in self._tokens.values() if t.owner == name]:
            self._forget(token.id)
        del self._owners[name]
        return count

    async def add_token(self, token: NewToken) -> Token:
        self._existing(token.owner)
        if token.issuer_id is not None and (
            (issuer := self._tokens.get(token.issuer_id)) is None or issuer.owner != token.owner
        ):
            raise IssuerRevokedError()
        stored = Token(
            id=self._token_ids.next(), owner=token.owner, label=token.label, scope=token.scope,
            created_at=token.created_at, expires_at=token.expires_at,
        )
        self._tokens[stored.id] = stored
        self._hashes[token.secret_hash] = stored.id
        return stored

    async def token_by_hash(self, secret_hash: str) -> Token | None:
        token_id = self._hashes.get(secret_hash)
        return None if token_id is None else self._tokens[token_id]

    async def tokens(self, owner: str | None = None) -> Sequence[Token]:
        return [t for t in self._tokens.values() if owner is None or t.owner == owner]

    async def revoke_token(self, token_id: int, owner: str | None = None) -> None:
        token = self._tokens.get(token_id)
        if token is None or (owner is not None and token.owner != owner):
            raise TokenNotFoundError(token_id)
        self._forget(token_id)

    async def touch_token(self, token_id: int, used_at: datetime) -> None:
        token = self._tokens.get(token_id)
        if token is not None:
            self._tokens[token_id] = replace(token, last_used_at=used_at)

    async def move_notes(self, source: str, target: str, *, at: datetime) -> int:
        self._existing(source)
        self._existing(target)
        if source == target:
            return 0
        return self._notes_of(source).move_to(self._notes_of(target), at)

    def _existing(self, name: str) -> None:
        if name not in self._owners:
            raise OwnerNotFoundError(name)

    def owner_records(self, selection: Selection) -> list[OwnerRecord]:
        return [OwnerRecord(name, self._owners[name]) for name in sorted(self._owners) if selection.covers(name)]

    def token_records(self) -> list[TokenRecord]:
        hashes = {token_id: hashed for hashed, token_id in self._hashes.items()}
        return [
            TokenRecord(id=t.id, owner=t.owner, label=t.label, scope=t.scope, secret_hash=hashes[t.id],
                        created_at=t.created_at, expires_at=t.expires_at, last_used_at=t.last_used_at)
            for t in sorted(self._tokens.values(), key=lambda t: t.id)
        ]

    def conflicts(self, tokens: Sequence[TokenRecord]) -> list[int]:
        return [t.id for t in tokens if t.id in self._tokens or t.secret_hash in self._hashes]

    def import_owners(self, owners: Sequence[OwnerRecord]) -> int:
        added = [owner for owner in owners if owner.name not in self._owners]
        for owner in added:
            self._owners[owner.name] = owner.created_at
        return len(added)

    def import_tokens(self, tokens: Sequence[TokenRecord], *, replace: bool, skipped: list[int]) -> int:
        written = 0
        for t in tokens:
            if t.id in self._tokens or t.secret_hash in self._hashes:
                if not replace:
                    skipped.append(t.id)
                    continue
                for clash in {t.id, self._hashes.get(t.secret_hash, t.id)} & self._tokens.keys():
                    self._forget(clash)
            self._tokens[t.id] = Token(id=t.id, owner=t.owner, label=t.label, scope=t.scope,
                                       created_at=t.created_at, expires_at=t.expires_at,
                                       last_used_at=t.last_used_at)
            self._hashes[t.secret_hash] = t.id
            written += 1
            self._token_ids.advance_past(t.id)
        return written

    def _forget(self, token_id: int) -> None:
        del self._tokens[token_id]
        for hashed, found in list(self._hashes.items()):
            if found == token_id:
                del self._hashes[hashed]


async def open_storage() -> AsyncIterator[MemoryStore]:
    """The container's resource for `memory://`: nothing to open or close."""
    store = MemoryStore()
    try:
        yield store
    finally:
        store.close()
