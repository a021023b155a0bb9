"""A note's JSON: API.md's fields in order, and every timestamp in UTC with six fraction digits,
whether orjson writes the datetime itself or it is formatted in Python first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from app.domain.model import Note
from app.entrypoints.http.representation import note_response

MOMENTS = [  # each pair: both, one or neither written by orjson itself
    datetime(2017, 8, 23, tzinfo=UTC),  # no fraction: orjson alone would leave it out
    datetime(2020, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2024, 5, 1, 10, 0, 0, 1, tzinfo=UTC),
    datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=1))),  # not UTC
]


@pytest.mark.parametrize("created_at", MOMENTS)
@pytest.mark.parametrize("updated_at", MOMENTS)
def test_a_note_is_written_as_api_md_says(created_at, updated_at) -> None:
    note = Note(
        id=7, title="Ünïcödé 📝", description="", priority=0, tags=("a", "b"), created_by=None,
        created_at=created_at, updated_at=updated_at, version=3,
    )
    document = orjson.loads(note_response(note).body)
    assert list(document) == [
        "id", "title", "description", "priority", "tags", "created_by", "created_at",
        "updated_at", "version",
    ]
    for field in ("created_at", "updated_at"):
        moment = getattr(note, field).astimezone(UTC)
        assert document[field] == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
