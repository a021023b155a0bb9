"""The use cases: create, get, replace, patch, delete and list notes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.domain.errors import PreconditionFailedError, StorageUnavailableError, VersionConflictError
from app.domain.model import Note, NoteContent, NoteDraft
from app.domain.ports import NoteRepository
from app.domain.query import ListQuery, Page
from app.domain.rules import merge_patch, parse_content

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class IfMatch:
    """An If-Match precondition: the versions a client will accept, or any existing note (`*`)."""

    versions: frozenset[int] = frozenset()
    any: bool = False

    def allows(self, note: Note) -> bool:
        return self.any or note.version in self.versions


class NoteService:
    """The use cases of the Notes service, over one repository and one clock."""

    # A write without If-Match retries a lost race; each lost round means another writer won.
    MAX_ATTEMPTS = 64

    def __init__(self, repository: NoteRepository, clock: Clock) -> None:
        self._repository = repository
        self._clock = clock

    async def create(self, body: Mapping[str, Any]) -> Note:
        content = parse_content(body)
        return await self._repository.add(NoteDraft.from_content(content, self._clock()))

    async def get(self, note_id: int) -> Note:
        return await self._repository.get(note_id)

    async def replace(
        self, note_id: int, body: Mapping[str, Any], if_match: IfMatch | None = None
    ) -> Note:
        """Full replace: omitted optional fields take their defaults, `created_at` is kept."""
        content = parse_content(body, note_id=note_id)
        return await self._revise(note_id, if_match, lambda _current: content)

    async def patch(
        self, note_id: int, patch: Mapping[str, Any], if_match: IfMatch | None = None
    ) -> Note:
        """A JSON merge patch (RFC 7396) of the note's content."""
        return await self._revise(note_id, if_match, lambda current: merge_patch(current, patch))

    async def delete(self, note_id: int, if_match: IfMatch | None = None) -> None:
        if if_match is None or if_match.any:
            await self._repository.delete(note_id)
            return
        current = await self._repository.get(note_id)
        if not if_match.allows(current):
            raise PreconditionFailedError(note_id)
        try:
            await self._repository.delete(note_id, version=current.version)
        except VersionConflictError:
            raise PreconditionFailedError(note_id) from None

    async def check_storage(self) -> None:
        """Raise `StorageUnavailableError` unless the store answers now."""
        await self._repository.check()

    async def list(self, query: ListQuery) -> Page:
        """One page, and the key to continue from when more notes follow it."""
        found = await self._repository.list(replace(query, limit=query.limit + 1))
        notes = tuple(found[: query.limit])
        more = len(found) > query.limit
        return Page(notes, query.sort.key(notes[-1]) if more else None)

    async def _revise(
        self, note_id: int, if_match: IfMatch | None, change: Callable[[Note], NoteContent]
    ) -> Note:
        """Read, change and compare-and-set: the check of If-Match and the write are one step."""
        for _ in range(self.MAX_ATTEMPTS):
            current = await self._repository.get(note_id)
            if if_match is not None and not if_match.allows(current):
                raise PreconditionFailedError(note_id)
            try:
                return await self._repository.update(current.revised(change(current), self._clock()))
            except VersionConflictError:
                if if_match is not None and not if_match.any:
                    raise PreconditionFailedError(note_id) from None
        raise StorageUnavailableError(f"note {note_id} is changing too often; try again")
