"""The notes file: what the writer writes, the reader reads back; and the reader refuses a file
that is cut short, altered, of another version, or has a line that breaks a rule, naming it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from app.domain.model import Note
from app.domain.owners import Scope
from app.domain.transfer import NoteRecord, OwnerRecord, Record, RevisionRecord, TokenRecord
from app.entrypoints.notes_file import NotesFileError, NotesFileWriter, check_first_line, read_all, read_notes_file
from tests.factories import T0

NOW = datetime(2026, 12, 1, tzinfo=UTC)
RECORDS: list[Record] = [
    OwnerRecord("alice", T0),
    OwnerRecord("local", None),
    TokenRecord(id=3, owner="alice", label="laptop", scope=Scope.READ, secret_hash="ab" * 32, created_at=T0,
                expires_at=None, last_used_at=datetime(2026, 1, 1, 10, 5, tzinfo=UTC)),
    *(NoteRecord("alice" if i % 2 else "local", Note(
        id=i, title=f"note {i} ✓", description="d" * i, priority=i % 11, tags=("a", "b") if i % 3 else (),
        created_by=None if i % 4 else "me", created_at=T0, updated_at=datetime(2024, 5, 6, tzinfo=UTC), version=i,
    ), deleted_at=NOW if i == 5 else None) for i in range(1, 8)),  # note 5 is in the trash
    *(RevisionRecord("alice", Note(
        id=note_id, title=f"revision {version}", description="", priority=0, tags=(), created_by=None,
        created_at=T0, updated_at=T0, version=version,
    )) for note_id, version in ((3, 1), (3, 2), (5, 4))),
]


def lines_of(records: list[Record]) -> list[bytes]:
    writer = NotesFileWriter()
    return [writer.header("sqlite", NOW), *(writer.line(r) for r in records), writer.end()]


def problems(lines: list[bytes]) -> list[tuple[int, str]]:
    with pytest.raises(NotesFileError) as raised:
        read_all(lines)
    assert "nothing was imported" in str(raised.value)
    return [(p.line, p.detail) for p in raised.value.problems]


def with_end_recomputed(lines: list[bytes]) -> list[bytes]:
    """A file whose lines were changed and whose end line was then made to match them."""
    import hashlib

    digest = hashlib.sha256(b"".join(lines[:-1])).hexdigest()
    end = orjson.loads(lines[-1])
    end["sha256"] = digest
    return [*lines[:-1], orjson.dumps(end) + b"\n"]


def test_what_is_written_reads_back_the_same() -> None:
    assert read_all(lines_of(RECORDS)) == RECORDS


async def test_the_streaming_reader_reads_the_same_from_an_async_source() -> None:
    async def source():
        for line in lines_of(RECORDS):
            yield line

    assert [r async for r in read_notes_file(source())] == RECORDS


def test_the_end_line_counts_the_records_and_hashes_every_line_before_it() -> None:
    import hashlib

    lines = lines_of(RECORDS)
    end = orjson.loads(lines[-1])
    assert end == {"kind": "end", "counts": {"owner": 2, "token": 1, "note": 7, "revision": 3},
                   "sha256": hashlib.sha256(b"".join(lines[:-1])).hexdigest()}
    assert orjson.loads(lines[0]) == {"kind": "header", "format": "notes", "version": 1,
                                      "exported_at": "2026-12-01T00:00:00.000000Z", "source": "sqlite"}


def test_a_file_without_its_end_line_is_cut_short() -> None:
    lines = lines_of(RECORDS)
    assert problems(lines[:-1]) == [(14, "the file ends at line 14 without its end line: it was cut short")]
    assert problems(lines[:4])[-1][1].endswith("it was cut short")
    assert problems([]) == [(1, "the file is empty: a notes file begins with a header line")]


@pytest.mark.parametrize("first", [b"# Notes\n", b'{"kind": "owner", "name": "ann"}\n', b"[1, 2]\n", b"\xff\xfe\n"])
def test_a_file_that_is_no_notes_file_is_one_problem_not_one_a_line(first: bytes) -> None:
    """A README, a CSV, another tool's JSON Lines: said once, at its first line, not at each."""
    lines = [first, *lines_of(RECORDS)[1:], b"more text\n"]
    assert problems(lines) == [(1, "is not the header of a notes file, so this is no notes file (one made by"
                                   ' `notes-api export` or GET /export begins with {"kind": "header",'
                                   ' "format": "notes", ...})')]


async def test_the_streaming_reader_stops_at_the_first_line_of_another_kind_of_file() -> None:
    async def endless() -> AsyncIterator[bytes]:  # standard input that never ends
        yield b"id,title\n"
        while True:
            yield b"1,never read\n"
            raise AssertionError("read past the first line of a file that is no notes file")

    with pytest.raises(NotesFileError) as raised:
        _ = [record async for record in read_notes_file(endless())]
    assert [p.line for p in raised.value.problems] == [1]


@pytest.mark.parametrize(("first", "said"), [
    (b"", "the file is empty: a notes file begins with a header line"),
    (b"<html>\n", "is not the header of a notes file"),
    (b'{"kind":"header","format":"notes","version":2}\n', "is of version 2"),
])
def test_a_first_line_is_checked_before_anything_is_made(first: bytes, said: str) -> None:
    with pytest.raises(NotesFileError, match=said):
        check_first_line(first)
    check_first_line(lines_of(RECORDS)[0])  # a notes file's: no error


@pytest.mark.parametrize("line", range(0, 12))
def test_one_byte_changed_anywhere_is_refused(line: int) -> None:
    lines = lines_of(RECORDS)
    changed = bytearray(lines[line])
    position = changed.index(b'"kind"') + 2  # inside the key's text: the line stays JSON or breaks
    changed[position] ^= 0x01
    lines[line] = bytes(changed)
    assert problems(lines)  # as JSON, as a record, or by the hash: never read as it was


def test_a_changed_value_with_the_old_hash_is_altered() -> None:
    lines = lines_of(RECORDS)
    lines[6] = lines[6].replace(b'"note 3 \xe2\x9c\x93"', b'"note 3 x"')
    altered = "the file's SHA-256 differs from the one in its end line: it was altered or damaged"
    assert problems(lines) == [(15, altered)]


def test_a_newer_version_is_refused_with_what_to_do() -> None:
    lines = lines_of(RECORDS)
    lines[0] = lines[0].replace(b'"version":1', b'"version":2')
    assert problems(with_end_recomputed(lines))[0] == (
        1, "is of version 2; this notes-api reads version 1: use a newer one")
    lines[0] = lines[0].replace(b'"version":2', b'"version":true')
    assert problems(with_end_recomputed(lines))[0][1].startswith("is of version True;")


@pytest.mark.parametrize(("change", "expected"), [
    ((b'"priority":3', b'"priority":11'), "priority must be between 0 and 10"),
    ((b'"title":"note 3 \xe2\x9c\x93"', b'"title":""'), "title must be 1 to 200 characters long"),
    ((b'"version":3', b'"version":0'), "has version 0: a version is a whole number of 1 or more"),
    ((b'"id":3', b'"id":2'), "has id 2, not above the note before it (2): ids ascend, each once"),
    ((b'"id":3,', b''), "has no id: an id is a whole number from 1 to 9,007,199,254,740,991"),
    ((b'"id":3', b'"id":"3"'), "has id '3': an id is a whole number from 1 to 9,007,199,254,740,991"),
    ((b'"owner":"alice","id":3', b'"owner":"zed","id":3'), "belongs to owner 'zed', which has no owner line before it"),
    ((b'"kind":"note","owner":"alice","id":3', b'"kind":"nope","owner":"alice","id":3'),
     "has kind 'nope': a line's kind is one of header, owner, token, note, revision, end"),
    ((b'"created_by":null', b'"created_by":null,"deleted":true'), "has deleted, not a field of a note line"),
])
def test_a_line_that_breaks_a_rule_is_named_by_its_number(change: tuple[bytes, bytes], expected: str) -> None:
    lines = lines_of(RECORDS)
    assert change[0] in lines[6], lines[6]  # the note of id 3, on line 7
    lines[6] = lines[6].replace(*change, 1)
    found = problems(with_end_recomputed(lines))
    assert found[0][0] == 7 and expected in found[0][1], found


def test_every_problem_is_listed_up_to_a_hundred() -> None:
    notes = [NoteRecord("local", Note(id=i, title="t", description="", priority=1, tags=(), created_by=None,
                                      created_at=T0, updated_at=T0, version=1)) for i in range(1, 301)]
    lines = lines_of([OwnerRecord("local", None), *notes])
    lines = [line.replace(b'"priority":1', b'"priority":-1') for line in lines]
    with pytest.raises(NotesFileError) as raised:
        read_all(with_end_recomputed(lines))
    assert raised.value.count == 300 and len(raised.value.problems) == 100
    assert [p.line for p in raised.value.problems] == list(range(3, 103))


def test_lines_after_the_end_and_out_of_order_are_refused() -> None:
    lines = lines_of(RECORDS)
    assert problems([*lines, b'{"kind":"note"}\n']) == [(16, "there is more after the end line")]
    swapped = [lines[0], lines[3], *lines[1:3], *lines[4:]]  # a token line before the owners
    assert any("comes after the token lines" in detail for _, detail in problems(with_end_recomputed(swapped)))


def test_revisions_ascend_by_note_and_version() -> None:
    lines = lines_of(RECORDS)
    swapped = with_end_recomputed([*lines[:-3], lines[-2], lines[-3], lines[-1]])
    assert problems(swapped)[0][0] == len(lines) - 1  # the revision that came back in time


def test_a_file_of_before_revisions_counts_none_and_reads() -> None:
    records = [r for r in RECORDS if not isinstance(r, RevisionRecord)]
    lines = lines_of(records)
    end = orjson.loads(lines[-1])
    del end["counts"]["revision"]
    assert read_all([*lines[:-1], orjson.dumps(end) + b"\n"]) == records


def _revision(owner: str, note_id: int, version: int) -> RevisionRecord:
    return RevisionRecord(owner, Note(id=note_id, title="old", description="", priority=0, tags=(), created_by=None,
                                      created_at=T0, updated_at=T0, version=version))


@pytest.mark.parametrize(("revision", "detail"), [
    (_revision("alice", 9, 1), "is a revision of note 9, which has no note line"),
    (_revision("local", 3, 1), "is a revision of note 3 of owner 'local', but the note line is another owner's"),
    (_revision("alice", 3, 3),
     "is revision 3 of note 3, whose note line is version 3: a revision is older than its note"),
], ids=["no note", "another owner's note", "not older"])
def test_a_revision_is_an_older_version_of_a_note_line_of_its_owner(revision: RevisionRecord, detail: str) -> None:
    """A store took such a line as the history of a note it did not have, and showed it as the
    history of the next note it made with that id."""
    records = [r for r in RECORDS if not isinstance(r, RevisionRecord)] + [revision]
    assert problems(lines_of(records)) == [(len(records) + 1, detail)]


def test_an_id_past_what_every_json_client_reads_is_refused() -> None:
    """A note of id 2**63 - 1 was imported, and every note made afterwards failed."""
    records = [RECORDS[0], NoteRecord("alice", Note(
        id=2**53, title="far", description="", priority=0, tags=(), created_by=None, created_at=T0, updated_at=T0,
        version=1))]
    assert problems(lines_of(records)) == [
        (3, "has id 9007199254740992: an id is a whole number from 1 to 9,007,199,254,740,991")
    ]
