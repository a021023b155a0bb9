"""The rules of API.md's note table, as data, and their application to a decoded JSON body.

The rule objects below are the one description of a valid note: `parse_content` and `merge_patch`
check bodies with them, and the HTTP adapter renders the same objects as the OpenAPI schemas.
Every check runs, and every problem is reported with its JSON pointer, so a client fixes its body
in one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.errors import FieldProblem, NoteValidationError
from app.domain.model import Note, NoteContent
from app.domain.timestamps import parse_timestamp

# Exactly the characters for which str.isspace() is true (tests/unit checks it), so the rules
# and the patterns rendered from them agree on what whitespace is.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
NUL = "\x00"

Fail = Callable[..., None]  # fail(detail, *path)


@dataclass(frozen=True, slots=True)
class Text:
    """A string of `min_length` to `max_length` code points, never with NUL (PostgreSQL cannot
    store it), optionally without `forbidden` characters or needing one that is not whitespace."""

    min_length: int
    max_length: int
    forbidden: str = NUL
    not_blank: bool = False
    nullable: bool = False
    description: str = ""
    _forbidden: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A set's isdisjoint() walks the string in C: a loop over characters here would not.
        object.__setattr__(self, "_forbidden", frozenset(self.forbidden))

    def check(self, value: Any, fail: Fail, *path: str | int) -> str | None:
        if value is None and self.nullable:
            return None
        if not isinstance(value, str):
            fail("must be a string" + (" or null" if self.nullable else ""), *path)
            return None
        if not self.min_length <= len(value) <= self.max_length:
            fail(f"must be {self.min_length} to {self.max_length:,} characters long", *path)
        elif not self._forbidden.isdisjoint(value):
            fail(f"must not contain {_names(self.forbidden)}", *path)
        elif self.not_blank and not value.strip():
            fail("must not be only whitespace", *path)
        return value


@dataclass(frozen=True, slots=True)
class Integer:
    minimum: int
    maximum: int
    description: str = ""

    def check(self, value: Any, fail: Fail, *path: str | int) -> int | None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 4.0 is the integer 4, as in JSON Schema
        if not isinstance(value, int) or isinstance(value, bool):  # JSON true is not an integer
            fail("must be an integer", *path)
            return None
        if not self.minimum <= value <= self.maximum:
            fail(f"must be between {self.minimum} and {self.maximum}", *path)
        return value


@dataclass(frozen=True, slots=True)
class Timestamp:
    """RFC 3339, or the tutorial's 'YYYY-MM-DD HH:MM[:SS[.ffffff]]'; no offset means UTC."""

    description: str = ""

    def check(self, value: Any, fail: Fail, *path: str | int) -> datetime | None:
        if not isinstance(value, str):
            fail("must be a timestamp string", *path)
            return None
        try:
            return parse_timestamp(value)
        except ValueError as error:
            fail(str(error), *path)
            return None


@dataclass(frozen=True, slots=True)
class Tags:
    """An array of at most `max_items` tags, as sent (a limit JSON Schema's maxItems states as it
    is: one on distinct tags it could not); duplicates are then removed, and the rest sorted."""

    max_items: int
    item: Text
    description: str = ""

    def check(self, value: Any, fail: Fail, *path: str | int) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            fail("must be an array of strings", *path)
            return None
        for index, tag in enumerate(value):
            self.item.check(tag, fail, *path, index)
        if len(value) > self.max_items:
            fail(f"must hold at most {self.max_items} tags", *path)
        return tuple(sorted({t for t in value if isinstance(t, str)}))


Rule = Text | Integer | Timestamp | Tags

TAG = Text(1, 50, forbidden=WHITESPACE + "," + NUL, description="no whitespace or commas")
TAGS = Tags(20, TAG, description="duplicates removed; returned sorted")
FIELDS: dict[str, Rule] = {
    "title": Text(1, 200, not_blank=True, description="not only whitespace"),
    "description": Text(0, 10_000),
    "priority": Integer(0, 10),
    "tags": TAGS,
    "created_by": Text(1, 100, nullable=True),
    "created_at": Timestamp(description="default: now; kept by PUT when omitted"),
}
REQUIRED = ("title",)
DEFAULTS: dict[str, Any] = {"description": "", "priority": 0, "tags": (), "created_by": None}
SERVER_FIELDS = ("id", "updated_at", "version")  # may be echoed back; ignored but for a wrong id


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) to a member of the body."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _names(characters: str) -> str:
    parts = []
    if NUL in characters:
        parts.append("NUL characters")
    if "," in characters:
        parts.append("commas")
    if " " in characters:
        parts.append("whitespace")
    return " or ".join(parts)


MAX_PROBLEMS = 100  # listed in one answer; a body can hold half a million broken tags


class _Problems:
    """Counts every problem, keeps the first MAX_PROBLEMS."""

    def __init__(self) -> None:
        self.found: list[FieldProblem] = []
        self.count = 0

    def __call__(self, detail: str, *path: str | int) -> None:
        self.count += 1
        if self.count <= MAX_PROBLEMS:
            self.found.append(FieldProblem(pointer(*path), detail))

    def raise_if_any(self) -> None:
        if self.found:
            raise NoteValidationError(self.found, self.count)


def _check_members(body: Mapping[str, Any], fail: _Problems, note_id: int | None) -> None:
    for name in body:
        if name not in FIELDS and name not in SERVER_FIELDS:
            fail("is not a field of a note", name)
    if "id" not in body:
        return
    sent = body["id"]
    if note_id is not None:
        if isinstance(sent, bool) or sent != note_id:
            fail(f"must equal the id in the URL ({note_id}) or be left out", "id")
    elif not _is_integer(sent):  # an id as a client received it is ignored; anything else is no id
        fail("must be an integer (a note's id, which is ignored here) or be left out", "id")


def _is_integer(value: Any) -> bool:
    """An integer as JSON Schema counts one: 4.0 is, true is not."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def parse_content(body: Mapping[str, Any], *, note_id: int | None = None) -> NoteContent:
    """Check a full note body (create or replace); omitted optional fields take their defaults."""
    fail = _Problems()
    _check_members(body, fail, note_id)
    values = dict(DEFAULTS)
    for name in REQUIRED:
        if name not in body:
            fail("is required", name)
    for name, rule in FIELDS.items():
        if name in body:
            values[name] = rule.check(body[name], fail, name)
    fail.raise_if_any()
    return NoteContent(**values)


def merge_patch(note: Note, patch: Mapping[str, Any]) -> NoteContent:
    """Apply a JSON merge patch (RFC 7396) to a note's content.

    `null` resets a field to its default; `title` and `created_at` have none, so `null` is refused.
    """
    fail = _Problems()
    _check_members(patch, fail, note.id)
    values = {name: getattr(note, name) for name in FIELDS}
    for name, rule in FIELDS.items():
        if name not in patch:
            continue
        if patch[name] is None and name in DEFAULTS:
            values[name] = DEFAULTS[name]
        elif patch[name] is None:
            fail("cannot be null", name)
        else:
            values[name] = rule.check(patch[name], fail, name)
    fail.raise_if_any()
    return NoteContent(**values)
