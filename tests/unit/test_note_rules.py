"""The rules of the note, checked without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.errors import NoteValidationError
from app.domain.model import search_text, title_sort_key
from app.domain.rules import merge_patch, parse_content, pointer
from app.domain.timestamps import format_timestamp, from_microseconds, parse_timestamp, to_microseconds
from tests.factories import T0


def problems(body, **kw) -> list[str]:
    with pytest.raises(NoteValidationError) as caught:
        parse_content(body, **kw)
    return [p.pointer for p in caught.value.problems]


def test_a_minimal_body_takes_every_default() -> None:
    content = parse_content({"title": "t"})
    assert (content.description, content.priority, content.tags, content.created_by, content.created_at) == (
        "", 0, (), None, None,
    )


def test_tags_are_deduplicated_and_sorted() -> None:
    assert parse_content({"title": "t", "tags": ["b", "a", "b", "C"]}).tags == ("C", "a", "b")


def test_twenty_distinct_tags_are_allowed_even_when_more_are_sent_twice() -> None:
    tags = [f"t{i}" for i in range(20)] * 2
    assert len(parse_content({"title": "t", "tags": tags}).tags) == 20


def test_every_problem_is_reported_not_only_the_first() -> None:
    assert problems({"title": 1, "priority": "high", "tags": [None], "created_by": 7}) == [
        "/title", "/priority", "/tags/0", "/created_by",
    ]


def test_booleans_are_not_integers() -> None:
    assert problems({"title": "t", "priority": False}) == ["/priority"]


def test_title_is_required_on_create_and_replace() -> None:
    assert problems({"description": "d"}) == ["/title"]


def test_json_pointers_escape_tilde_and_slash() -> None:
    assert pointer("a/b", "c~d", 3) == "/a~1b/c~0d/3"


def test_merge_patch_keeps_what_it_does_not_name_and_resets_nulls() -> None:
    from tests.factories import draft

    note = draft().stored_as(1)
    content = merge_patch(note, {"priority": 1, "tags": None})
    assert (content.title, content.priority, content.tags, content.created_at) == (note.title, 1, (), note.created_at)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2017-08-23 00:00", "2017-08-23T00:00:00.000000Z"),
     ("2017-08-23 00:00:05", "2017-08-23T00:00:05.000000Z"),
     ("2017-08-23 00:00:05.5", "2017-08-23T00:00:05.500000Z"),
     ("2017-08-23T00:00:00Z", "2017-08-23T00:00:00.000000Z"),
     ("2017-08-23t10:00:00.123456z", "2017-08-23T10:00:00.123456Z"),
     ("2017-08-23T02:00:00+02:00", "2017-08-23T00:00:00.000000Z"),
     ("2017-08-22T23:30:00-00:30", "2017-08-23T00:00:00.000000Z")],
)
def test_timestamps_in_rfc3339_or_the_tutorials_format_become_utc(text: str, expected: str) -> None:
    assert format_timestamp(parse_timestamp(text)) == expected


@pytest.mark.parametrize("text", ["2017-08-23", "23/08/2017 00:00", "2017-08-23T25:00:00Z", "2017-08-23T00:00:00+24:00",
                                  "2017-08-23T00:00:60Z", "2017-08-23T00:00:00.1234567Z", " 2017-08-23 00:00"])
def test_malformed_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_microseconds_since_the_epoch_round_trip() -> None:
    for moment in (T0, datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        assert from_microseconds(to_microseconds(moment)) == moment


def test_titles_collate_without_case_or_accents() -> None:
    titles = ["banana", "Été", "apple", "ete", "Apple", "ÉTÉ", "Zebra", "ß"]
    assert sorted(titles, key=title_sort_key) == ["apple", "Apple", "banana", "Été", "ete", "ÉTÉ", "ß", "Zebra"]


def test_search_text_folds_case_the_unicode_way() -> None:
    assert "été" in search_text("ÉTÉ", "")
    assert "strasse" in search_text("", "Straße")


def test_the_whitespace_of_the_rules_is_exactly_what_python_calls_whitespace() -> None:
    import sys

    from app.domain.rules import WHITESPACE

    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
