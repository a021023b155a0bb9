"""What a listing asks for: filters, a sort, a page size and a keyset position."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from app.domain.model import Note, title_sort_key

SortValue = int | str | datetime
SortKey = tuple[SortValue, int]  # (the sort field's value, the note's id): unique, so a total order


class SortField(StrEnum):
    ID = "id"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    PRIORITY = "priority"
    TITLE = "title"


@dataclass(frozen=True, slots=True)
class Sort:
    """A sort on one field, ties broken by id in the same direction."""

    field: SortField = SortField.ID
    descending: bool = False

    def key(self, note: Note) -> SortKey:
        """The position of `note` in this order (titles compare by `title_sort_key`)."""
        if self.field is SortField.TITLE:
            return (title_sort_key(note.title), note.id)
        return (getattr(note, self.field.value), note.id)

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else str(self.field)


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteFilter:
    """Conditions a listed note meets, all of them. Bounds: `*_after` inclusive, `*_before` exclusive."""

    tags: frozenset[str] = frozenset()
    created_by: str | None = None
    priority: int | None = None
    min_priority: int | None = None
    max_priority: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    terms: tuple[str, ...] = ()  # case-folded, no whitespace; each in the title or the description


@dataclass(frozen=True, slots=True, kw_only=True)
class ListQuery:
    """One page of notes: those matching `filter`, in `sort` order, strictly after `after`."""

    filter: NoteFilter = field(default_factory=NoteFilter)
    sort: Sort = field(default_factory=Sort)
    limit: int = 50
    after: SortKey | None = None


@dataclass(frozen=True, slots=True)
class Page:
    notes: tuple[Note, ...]
    next_after: SortKey | None  # the key to continue from, or None on the last page
