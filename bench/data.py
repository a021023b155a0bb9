"""Deterministic synthetic notes, as each store keeps them.

One note in a hundred carries MARKER in its description, and no other word contains it, so
`GET /notes?q=MARKER` matches about 1% of the notes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from app.domain.model import search_text, title_sort_key
from app.domain.timestamps import format_timestamp, to_microseconds

MARKER = "kiwi"
MARKER_SHARE = 0.01
_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut"
    " labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris"
    " nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse"
    " cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui"
    " officia deserunt mollit anim id est laborum été café naïve Zürich garden budget meeting"
    " invoice travel recipe groceries deadline review draft plan idea call email report"
)
_WORDS = _TEXT.split()
_TAGS = ("home", "work", "urgent", "later", "ideas", "travel", "money", "health", "books", "music")
_AUTHORS = tuple(f"user{n}" for n in range(50))
_START = datetime(2024, 1, 1, tzinfo=UTC)
_SPAN_US = 2 * 365 * 86_400 * 1_000_000
assert not any(MARKER in word.casefold() for word in _WORDS)


@dataclass(frozen=True, slots=True)
class NoteData:
    title: str
    description: str
    priority: int
    tags: tuple[str, ...]
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    def body(self) -> dict:
        """The JSON body that creates this note over HTTP (updated_at is the server's)."""
        return {
            "title": self.title, "description": self.description, "priority": self.priority,
            "tags": list(self.tags), "created_by": self.created_by,
            "created_at": format_timestamp(self.created_at),
        }

    def keys(self) -> tuple[str, str]:
        return title_sort_key(self.title), search_text(self.title, self.description)

    def postgres_record(self) -> tuple:
        return (
            self.title, self.description, self.priority, list(self.tags), self.created_by,
            self.created_at, self.updated_at, 1, *self.keys(),
        )

    def sqlite_row(self) -> tuple:
        return (
            self.title, self.description, self.priority, orjson.dumps(list(self.tags)).decode(),
            self.created_by, to_microseconds(self.created_at), to_microseconds(self.updated_at),
            1, *self.keys(),
        )


COLUMNS = (
    "title", "description", "priority", "tags", "created_by", "created_at", "updated_at",
    "version", "title_key", "search_text",
)


def notes(count: int, seed: int = 7) -> Iterator[NoteData]:
    """`count` notes, the same ones for the same seed."""
    rng = random.Random(seed)
    for _ in range(count):
        words = rng.choices(_WORDS, k=rng.randint(8, 24))
        if rng.random() < MARKER_SHARE:
            words[rng.randrange(len(words))] = MARKER
        title = " ".join(rng.choices(_WORDS, k=rng.randint(2, 6))).capitalize()
        created = _START + timedelta(microseconds=rng.randrange(_SPAN_US))
        yield NoteData(
            title=title,
            description=" ".join(words),
            priority=rng.randint(0, 10),
            tags=tuple(sorted(set(rng.sample(_TAGS, rng.randint(0, 3))))),
            created_by=rng.choice(_AUTHORS) if rng.random() < 0.8 else None,
            created_at=created,
            updated_at=created + timedelta(microseconds=rng.randrange(30 * 86_400 * 1_000_000)),
        )


def request_body(seed: int = 1) -> bytes:
    """The body of the benchmark's POST and PUT: a typical note, no created_at."""
    note = next(notes(1, seed))
    body = note.body()
    del body["created_at"]
    return json.dumps(body).encode()
