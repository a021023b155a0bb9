"""A note as API.md writes it: in answers of the HTTP API and in the lines of a notes file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.model import Note
from app.domain.timestamps import UTC, format_timestamp


def note_document(note: Note) -> dict[str, Any]:
    """The note as API.md writes it, for orjson (`dumps`).

    orjson writes a UTC datetime exactly as API.md does, in C, except when its microseconds are
    zero: then it leaves out the fraction, so those few are formatted here (`moment_document`'s
    rule, written out: every note served runs it twice, and a call would cost more than the
    test). A dict is faster for orjson than the slotted dataclass itself, whose fields it reads
    one getattr at a time.
    """
    created, updated = note.created_at, note.updated_at
    return {
        "id": note.id,
        "title": note.title,
        "description": note.description,
        "priority": note.priority,
        "tags": note.tags,
        "created_by": note.created_by,
        "created_at": created
        if created.microsecond and created.tzinfo is UTC
        else format_timestamp(created),
        "updated_at": updated
        if updated.microsecond and updated.tzinfo is UTC
        else format_timestamp(updated),
        "version": note.version,
    }


def moment_document(moment: datetime) -> datetime | str:
    """A time as API.md writes it, for orjson (see `note_document`)."""
    return moment if moment.microsecond and moment.tzinfo is UTC else format_timestamp(moment)
