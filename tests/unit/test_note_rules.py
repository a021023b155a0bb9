"""The rules of the note, checked without any I/O."""

from __future__ import annotations

import dataclasses
import inspect
import re
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.errors import NoteValidationError
from app.domain.model import Note, search_text, stored_note, title_sort_key
from app.domain.rules import merge_patch, parse_content, pointer
from app.domain.timestamps import (
    TIMESTAMP_PATTERN,
    format_timestamp,
    from_microseconds,
    parse_timestamp,
    to_microseconds,
)
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


def test_twenty_tags_are_allowed_and_so_are_duplicates_among_them() -> None:
    assert len(parse_content({"title": "t", "tags": [f"t{i}" for i in range(20)]}).tags) == 20
    assert parse_content({"title": "t", "tags": ["a"] * 20}).tags == ("a",)


def test_more_than_twenty_tags_are_refused_as_sent_even_when_some_are_duplicates() -> None:
    """The limit counts the array as sent, as the OpenAPI's maxItems does: it cannot count distinct tags."""
    assert problems({"title": "t", "tags": ["a"] * 21}) == ["/tags"]


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


def _accepted(text: str) -> bool:
    try:
        parse_timestamp(text)
    except ValueError:
        return False
    return True


# Timestamps of the right shape with any digits, from the edges of the range and leap years too.
_SHAPED = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["0000", "0001", "0004", "0100", "1900", "2000", "2024", "2100", "9999"])
        | st.from_regex(re.compile(r"\d{4}", re.ASCII), fullmatch=True),
        st.from_regex(re.compile(r"-[01]\d-[0-3]\d[Tt ][0-2]\d:[0-6]\d(:[0-6]\d(\.\d{1,6})?)?", re.ASCII),
                      fullmatch=True),
        st.sampled_from(["", "Z", "+00:00", "-00:00", "+01:00", "-01:00", "+23:59", "-23:59"])
        | st.from_regex(re.compile(r"[+-][0-2]\d:[0-6]\d", re.ASCII), fullmatch=True),
    ),
)


@settings(max_examples=300, deadline=None)
@given(_SHAPED)
def test_the_openapi_timestamp_pattern_matches_exactly_what_the_server_accepts(text: str) -> None:
    assert bool(re.fullmatch(TIMESTAMP_PATTERN, text, re.ASCII)) == _accepted(text), text


@pytest.mark.parametrize(("text", "accepted"), [
    ("2000-02-29 00:00", True), ("2024-02-29 00:00", True), ("1900-02-29 00:00", False), ("2023-02-29 00:00", False),
    ("2017-04-31 00:00", False), ("0000-06-01 00:00", False), ("0001-01-01T00:00Z", True),
    ("0001-01-01T05:00+01:00", False), ("9999-12-31T23:59:59.999999Z", True), ("9999-12-31T00:00-01:00", False),
    ("0001-01-02T00:00+23:59", True), ("9999-12-30T23:59-23:59", True),
])
def test_a_timestamp_is_a_real_moment_in_years_1_to_9999(text: str, accepted: bool) -> None:
    """The first and the last day of the range take a zero offset only: the pattern then stays exact."""
    assert _accepted(text) == accepted
    assert bool(re.fullmatch(TIMESTAMP_PATTERN, text, re.ASCII)) == accepted


def test_microseconds_since_the_epoch_round_trip() -> None:
    for moment in (T0, datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        assert from_microseconds(to_microseconds(moment)) == moment


def test_titles_collate_without_case_or_accents() -> None:
    titles = ["banana", "Été", "apple", "ete", "Apple", "ÉTÉ", "Zebra", "ß"]
    assert sorted(titles, key=title_sort_key) == ["apple", "Apple", "banana", "Été", "ete", "ÉTÉ", "ß", "Zebra"]


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_a_title_key_is_the_title_decomposed_without_marks_and_case_folded(title: str) -> None:
    """The definition in full, whatever shortcut `title_sort_key` takes (ASCII titles among them)."""
    decomposed = unicodedata.normalize("NFKD", title)
    expected = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()[:200]
    assert title_sort_key(title) == expected
    ascii_title = title.encode("ascii", "ignore").decode()
    assert title_sort_key(ascii_title) == unicodedata.normalize("NFKD", ascii_title).casefold()[:200]


def test_search_text_folds_case_the_unicode_way() -> None:
    assert "été" in search_text("ÉTÉ", "")
    assert "strasse" in search_text("", "Straße")


def test_the_whitespace_of_the_rules_is_exactly_what_python_calls_whitespace() -> None:
    import sys

    from app.domain.rules import WHITESPACE

    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


def test_a_stored_note_is_the_note_its_fields_make_and_as_frozen() -> None:
    """`stored_note` (the adapters' fast constructor) takes every field of Note and makes the
    same value: a field added to Note fails here until it takes that field too."""
    names = [field.name for field in dataclasses.fields(Note)]
    assert list(inspect.signature(stored_note).parameters) == names
    values = {"id": 7, "title": "t", "description": "d", "priority": 3, "tags": ("a", "b"), "created_by": "me",
              "created_at": T0, "updated_at": T0.replace(year=2030), "version": 4}
    assert list(values) == names
    note = stored_note(**values)
    assert note == Note(**values) and hash(note) == hash(Note(**values))
    assert [getattr(note, name) for name in names] == list(values.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        note.title = "changed"  # type: ignore[misc]
