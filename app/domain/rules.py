"""The rules of API.md's note table, applied to a decoded JSON body.

Every check runs, and every problem is reported with its JSON pointer, so a client fixes its body
in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.domain.errors import FieldProblem, NoteValidationError
from app.domain.model import Note, NoteContent
from app.domain.timestamps import parse_timestamp

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
PRIORITY_MIN, PRIORITY_MAX = 0, 10
TAGS_MAX, TAG_MAX = 20, 50
CREATED_BY_MAX = 100

CLIENT_FIELDS = ("title", "description", "priority", "tags", "created_by", "created_at")
SERVER_FIELDS = ("id", "updated_at", "version")
_DEFAULTS: dict[str, Any] = {"description": "", "priority": 0, "tags": (), "created_by": None}


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) to a member of the body."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def fail(self, detail: str, *path: str | int) -> None:
        self.problems.append(FieldProblem(pointer(*path), detail))

    def text(self, name: str, value: Any, low: int, high: int) -> str | None:
        if not isinstance(value, str):
            self.fail("must be a string", name)
            return None
        if not low <= len(value) <= high:
            self.fail(f"must be {low} to {high:,} characters long", name)
        elif "\x00" in value:
            self.fail("must not contain NUL characters", name)
        return value

    def title(self, value: Any) -> str | None:
        title = self.text("title", value, 1, TITLE_MAX)
        if title and not title.strip():
            self.fail("must not be only whitespace", "title")
        return title

    def priority(self, value: Any) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail("must be an integer", "priority")
            return None
        if not PRIORITY_MIN <= value <= PRIORITY_MAX:
            self.fail(f"must be between {PRIORITY_MIN} and {PRIORITY_MAX}", "priority")
        return value

    def tags(self, value: Any) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.fail("must be an array of strings", "tags")
            return None
        for index, tag in enumerate(value):
            if not isinstance(tag, str):
                self.fail("must be a string", "tags", index)
            elif not 1 <= len(tag) <= TAG_MAX:
                self.fail(f"must be 1 to {TAG_MAX} characters long", "tags", index)
            elif "," in tag or any(c.isspace() or c == "\x00" for c in tag):
                self.fail("must not contain whitespace, commas or NUL characters", "tags", index)
        unique = sorted({t for t in value if isinstance(t, str)})
        if len(unique) > TAGS_MAX:
            self.fail(f"must hold at most {TAGS_MAX} distinct tags", "tags")
        return tuple(unique)

    def created_by(self, value: Any) -> str | None:
        return None if value is None else self.text("created_by", value, 1, CREATED_BY_MAX)

    def created_at(self, value: Any) -> datetime | None:
        if not isinstance(value, str):
            self.fail("must be a timestamp string", "created_at")
            return None
        try:
            return parse_timestamp(value)
        except ValueError as error:
            self.fail(str(error), "created_at")
            return None

    def field(self, name: str, value: Any) -> Any:
        if name == "title":
            return self.title(value)
        if name == "description":
            return self.text("description", value, 0, DESCRIPTION_MAX)
        return getattr(self, name)(value)

    def server_fields(self, body: Mapping[str, Any], note_id: int | None) -> None:
        """Server-owned fields may come back as received and are ignored; a different id is not."""
        if note_id is not None and "id" in body:
            sent = body["id"]
            if isinstance(sent, bool) or sent != note_id:
                self.fail(f"must equal the id in the URL ({note_id}) or be left out", "id")

    def unknown_fields(self, body: Mapping[str, Any]) -> None:
        for name in body:
            if name not in CLIENT_FIELDS and name not in SERVER_FIELDS:
                self.fail("is not a field of a note", name)

    def raise_if_any(self) -> None:
        if self.problems:
            raise NoteValidationError(self.problems)


def parse_content(body: Mapping[str, Any], *, note_id: int | None = None) -> NoteContent:
    """Check a full note body (create or replace); omitted optional fields take their defaults."""
    check = _Checker()
    check.unknown_fields(body)
    check.server_fields(body, note_id)
    values = dict(_DEFAULTS)
    if "title" not in body:
        check.fail("is required", "title")
    for name in CLIENT_FIELDS:
        if name in body:
            values[name] = check.field(name, body[name])
    check.raise_if_any()
    return NoteContent(**values)


def merge_patch(note: Note, patch: Mapping[str, Any]) -> NoteContent:
    """Apply a JSON merge patch (RFC 7396) to a note's content.

    `null` resets a field to its default; `title` and `created_at` have none, so `null` is refused.
    """
    check = _Checker()
    check.unknown_fields(patch)
    check.server_fields(patch, note.id)
    values = {name: getattr(note, name) for name in CLIENT_FIELDS}
    for name in CLIENT_FIELDS:
        if name not in patch:
            continue
        value = patch[name]
        if value is None and name in _DEFAULTS:
            values[name] = _DEFAULTS[name]
        elif value is None:
            check.fail("cannot be null", name)
        else:
            values[name] = check.field(name, value)
    check.raise_if_any()
    return NoteContent(**values)
