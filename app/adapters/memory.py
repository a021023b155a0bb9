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
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from sortedcontainers import SortedList

from app.adapters import PoolUsage
from app.domain.errors import (
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    ImportConflictError,
    NoteNotFoundError,
    OwnerExistsError,
    OwnerHasNotesError,
    OwnerNotFoundError,
    TokenNotFoundError,
    VersionConflictError,
)
from app.domain.model import Note, NoteDraft, search_text
from app.domain.owners import LOCAL, NewToken, OwnerSummary, Token
from app.domain.ports import IDEMPOTENCY_RETENTION
from app.domain.query import ListQuery, NoteFilter, Sort, SortField
from app.domain.transfer import Imported, NoteRecord, OnConflict, OwnerRecord, Record, Selection, TokenRecord

_SORTS = {field: Sort(field) for field in SortField}
_NO_FILTER = NoteFilter()
Undo = list[Callable[[], object]]


class MemoryNoteRepository:
    """The notes of one owner, with indexes of their own; ids come from the store's one counter."""

    def __init__(self, next_id: Callable[[], int]) -> None:
        self._notes: dict[int, Note] = {}
        self._search: dict[int, str] = {}
        self._next_id = next_id
        self._indexes = {field: SortedList() for field in SortField}

    def __len__(self) -> int:
        return len(self._notes)

    def take_all(self) -> list[Note]:
        """Remove every note and return them (a move to another owner)."""
        notes = list(self._notes.values())
        for note in notes:
            self._replace(note, None)
        return notes

    async def add(self, draft: NoteDraft) -> Note:
        note = draft.stored_as(self._next_id())
        self._store(note)
        return note

    async def add_many(self, drafts: Sequence[NoteDraft]) -> Sequence[Note]:
        return [await self.add(draft) for draft in drafts]  # no await yields: one atomic step

    async def get(self, note_id: int) -> Note:
        try:
            return self._notes[note_id]
        except KeyError:
            raise NoteNotFoundError(note_id) from None

    async def update(self, note: Note) -> Note:
        self._replace(self._current(note.id, note.version - 1), note)
        return note

    async def delete(self, note_id: int, *, version: int | None = None) -> None:
        self._replace(self._current(note_id, version), None)

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
    """The repository as seen inside a unit of work: each change notes how to undo it."""

    def __init__(self, notes: MemoryNoteRepository, undo: Undo) -> None:
        self._notes, self._undo = notes, undo

    async def add(self, draft: NoteDraft) -> Note:
        note = await self._notes.add(draft)
        self._undo.append(lambda: self._notes._replace(note, None))
        return note

    async def add_many(self, drafts: Sequence[NoteDraft]) -> Sequence[Note]:
        return [await self.add(draft) for draft in drafts]

    async def get(self, note_id: int) -> Note:
        return await self._notes.get(note_id)

    async def update(self, note: Note) -> Note:
        before = self._notes._current(note.id, note.version - 1)
        await self._notes.update(note)
        self._undo.append(lambda: self._notes._replace(note, before))
        return note

    async def delete(self, note_id: int, *, version: int | None = None) -> None:
        before = self._notes._current(note_id, version)
        await self._notes.delete(note_id, version=version)
        self._undo.append(lambda: self._notes._replace(None, before))

    async def list(self, query: ListQuery) -> Sequence[Note]:
        return await self._notes.list(query)


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

    def __init__(self) -> None:
        self._by_owner: dict[str, MemoryNoteRepository] = {}
        self._ids = IdSequence()
        self.accounts = MemoryAccounts(self._by_owner, self._repository)
        self.cursor_secret = secrets.token_urlsafe(32)
        self.pool_usage: PoolUsage | None = None
        self._keys: dict[tuple[str, str], _Key] = {}

    def _repository(self, owner: str) -> MemoryNoteRepository:
        notes = self._by_owner.get(owner)
        if notes is None:
            notes = self._by_owner[owner] = MemoryNoteRepository(self._ids.next)
        return notes

    def notes_of(self, owner: str) -> MemoryNoteRepository:
        return self._repository(owner)

    @asynccontextmanager
    async def transaction(self, owner: str) -> AsyncIterator[_Transaction]:
        undo: Undo = []
        keys = MemoryIdempotencyStore(self._keys, undo, owner)
        try:
            yield _Transaction(_JournaledNotes(self._repository(owner), undo), keys)
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        finally:  # a key claimed but not recorded is not kept, as in a SQL store
            for key in keys.claimed:
                if key in self._keys and self._keys[key].outcome is None:
                    del self._keys[key]

    async def check(self) -> None:
        return None

    async def export(self, selection: Selection) -> AsyncIterator[Record]:
        # A snapshot first (references only): the stream may be read while requests change notes.
        owners = self.accounts.owner_records(selection)
        tokens = self.accounts.token_records() if selection.whole_store else []
        notes = sorted(
            ((note.id, owner, note) for owner, repository in self._by_owner.items() if selection.covers(owner)
             for note in repository._notes.values()),
            key=lambda item: item[0],
        )
        for owner_record in owners:
            yield owner_record
        for token in tokens:
            yield token
        for _, owner, note in notes:
            yield NoteRecord(owner, note)

    async def count_notes(self, selection: Selection) -> int:
        return sum(len(notes) for owner, notes in self._by_owner.items() if selection.covers(owner))

    async def import_records(self, records: AsyncIterable[Record], on_conflict: OnConflict) -> Imported:
        # Everything is read and checked before the first change: then applied with no await
        # between the changes, it is one atomic step on the event loop.
        owners: list[OwnerRecord] = []
        tokens: list[TokenRecord] = []
        notes: list[NoteRecord] = []
        async for record in records:
            if isinstance(record, NoteRecord):
                notes.append(record)
            elif isinstance(record, TokenRecord):
                tokens.append(record)
            else:
                owners.append(record)
        imported = Imported()
        where = {note_id: owner for owner, repo in self._by_owner.items() for note_id in repo._notes}
        conflicts = [record.note.id for record in notes if record.note.id in where]
        token_conflicts = self.accounts.conflicts(tokens)
        if on_conflict is OnConflict.FAIL and (conflicts or token_conflicts):
            raise ImportConflictError(*(("note", conflicts[0]) if conflicts else ("token", token_conflicts[0])))
        imported.owners = self.accounts.import_owners(owners)
        imported.tokens = self.accounts.import_tokens(tokens, replace=on_conflict is OnConflict.REPLACE)
        for record in notes:
            note = record.note
            if note.id in where:
                if on_conflict is OnConflict.SKIP:
                    imported.skipped.append(note.id)
                    continue
                existing = self._by_owner[where[note.id]]
                existing._replace(existing._notes[note.id], None)
                imported.replaced += 1
            self._repository(record.owner)._store(note)
            self._ids.advance_past(note.id)
            imported.notes += 1
        return imported


class MemoryAccounts:
    """Owners and tokens of a memory store."""

    def __init__(
        self, by_owner: dict[str, MemoryNoteRepository], notes_of: Callable[[str], MemoryNoteRepository]
    ) -> None:
        self._owners: dict[str, datetime | None] = {LOCAL: None}
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
        self._by_owner.pop(name, None)
        for token in [t for t in self._tokens.values() if t.owner == name]:
            self._forget(token.id)
        del self._owners[name]
        return count

    async def add_token(self, token: NewToken) -> Token:
        self._existing(token.owner)
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

    async def move_notes(self, source: str, target: str) -> int:
        self._existing(source)
        self._existing(target)
        if source == target:
            return 0
        moved = self._notes_of(source).take_all()
        into = self._notes_of(target)
        for note in moved:
            into._store(note)
        return len(moved)

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

    def import_tokens(self, tokens: Sequence[TokenRecord], *, replace: bool) -> int:
        written = 0
        for t in tokens:
            if t.id in self._tokens or t.secret_hash in self._hashes:
                if not replace:
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
    yield MemoryStore()
