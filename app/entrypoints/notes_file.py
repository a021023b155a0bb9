"""The notes file of API.md ("Export, import and copy"): JSON Lines, one record a line, from a
`header` to an `end` line that counts the records and holds the SHA-256 of every byte before it.

`NotesFileWriter` turns a store's export into lines; `read_notes_file` turns lines back into
records, checking each against the rules of its kind. The reader yields records only while it has
found nothing wrong, and at the end raises `NotesFileError` with every problem (up to 100) and
its line number if there was any, or if the file was cut short or altered: an import that
consumes it inside its transaction therefore writes nothing from a bad file.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.domain.errors import NoteError
from app.domain.model import Note
from app.domain.owners import Scope, owner_name
from app.domain.rules import FIELDS, MAX_PROBLEMS, Text, Timestamp
from app.domain.timestamps import format_timestamp
from app.domain.transfer import NoteRecord, OwnerRecord, Record, RevisionRecord, TokenRecord
from app.entrypoints.note_json import note_document

FORMAT = "notes"
VERSION = 1
MEDIA_TYPE = "application/x-ndjson"
KINDS = ("owner", "token", "note", "revision")  # in the order a file holds them
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = Timestamp()
_LABEL = Text(0, 100)
_NOTE_FIELDS = {"kind", "owner", "id", "title", "description", "priority", "tags", "created_by", "created_at",
                "updated_at", "version"}
_FIELDS = {
    "owner": {"kind", "name", "created_at"},
    "token": {"kind", "id", "owner", "label", "scope", "sha256", "created_at", "expires_at", "last_used_at"},
    "note": _NOTE_FIELDS | {"deleted_at"},
    "revision": _NOTE_FIELDS,
}


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    detail: str


class NotesFileError(NoteError):
    """A notes file that cannot be imported: every problem found (up to 100), by line."""

    def __init__(self, problems: list[LineProblem], count: int) -> None:
        first = problems[0]
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        super().__init__(f"line {first.line}: {first.detail}{more}; nothing was imported")
        self.problems, self.count = problems, count


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def record_document(record: Record) -> dict[str, Any]:
    """A record as its line writes it."""
    if isinstance(record, NoteRecord):
        document = {"kind": "note", "owner": record.owner, **note_document(record.note)}
        if record.deleted_at is not None:
            document["deleted_at"] = format_timestamp(record.deleted_at)
        return document
    if isinstance(record, RevisionRecord):
        return {"kind": "revision", "owner": record.owner, **note_document(record.note)}
    if isinstance(record, TokenRecord):
        return {
            "kind": "token", "id": record.id, "owner": record.owner, "label": record.label,
            "scope": str(record.scope), "sha256": record.secret_hash,
            "created_at": format_timestamp(record.created_at), "expires_at": _moment(record.expires_at),
            "last_used_at": _moment(record.last_used_at),
        }
    return {"kind": "owner", "name": record.name, "created_at": _moment(record.created_at)}


def record_line(record: Record) -> bytes:
    return orjson.dumps(record_document(record), option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


class NotesFileWriter:
    """The lines of one file: `header()`, then `line(record)` for each record, then `end()`."""

    def __init__(self) -> None:
        self._file = hashlib.sha256()
        self.counts = dict.fromkeys(KINDS, 0)

    def header(self, source: str, exported_at: datetime) -> bytes:
        line = orjson.dumps(
            {"kind": "header", "format": FORMAT, "version": VERSION, "exported_at": format_timestamp(exported_at),
             "source": source},
            option=orjson.OPT_APPEND_NEWLINE,
        )
        self._file.update(line)
        return line

    def line(self, record: Record) -> bytes:
        line = record_line(record)
        self._file.update(line)
        self.counts[kind_of(record)] += 1
        return line

    def end(self) -> bytes:
        return orjson.dumps(
            {"kind": "end", "counts": self.counts, "sha256": self._file.hexdigest()},
            option=orjson.OPT_APPEND_NEWLINE,
        )


def kind_of(record: Record) -> str:
    """The `kind` of a record's line: owner, token or note."""
    match record:
        case NoteRecord():
            return "note"
        case RevisionRecord():
            return "revision"
        case TokenRecord():
            return "token"
    return "owner"


async def write_notes_file(records: AsyncIterable[Record], source: str, now: datetime) -> AsyncIterator[bytes]:
    """The file's bytes, in chunks of about 64 KiB."""
    writer = NotesFileWriter()
    chunk = [writer.header(source, now)]
    size = 0
    async for record in records:
        line = writer.line(record)
        chunk.append(line)
        size += len(line)
        if size >= 65536:
            yield b"".join(chunk)
            chunk, size = [], 0
    chunk.append(writer.end())
    yield b"".join(chunk)


class _Reading:
    """The state of one read: where it is, what it has seen, what was wrong."""

    def __init__(self) -> None:
        self.problems: list[LineProblem] = []
        self.count = 0
        self.line = 0
        self.hash = hashlib.sha256()
        self.counts = dict.fromkeys(KINDS, 0)
        self.kind_index = 0
        self.owners: set[str] = set()
        self.last_id = {"token": 0, "note": 0}
        self.last_revision = (0, 0)  # (note id, version): revisions ascend by both
        # each note line's id, version and owner (as an index into `owner_names`), in id order:
        # a revision line must be an older version of one of them, of the same owner
        self.note_ids, self.note_versions, self.note_owners = array("q"), array("q"), array("I")
        self.owner_names: dict[str, int] = {}
        self.ended = False
        self.foreign = False  # its first line is no notes header: the rest is not read

    def fail(self, detail: str) -> None:
        self.count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(LineProblem(self.line, detail))


async def read_notes_file(lines: AsyncIterable[bytes]) -> AsyncIterator[Record]:
    """The records of a notes file given as its lines (each with its newline, as read)."""
    state = _Reading()
    async for raw in lines:
        record = _read_line(state, raw)
        if record is not None and not state.count:
            yield record
        elif state.foreign:
            break  # some other file: nothing more of it is read (standard input may be endless)
    _finish(state)


def check_first_line(first: bytes) -> None:
    """`NotesFileError` when a file's first line is no notes header of this version: what a
    command checks before it makes a store to import into."""
    state = _Reading()
    if not first:
        state.line = 1
        state.fail("the file is empty: a notes file begins with a header line")
    else:
        _read_line(state, first)
    if state.count:
        raise NotesFileError(state.problems, state.count)


def read_all(lines: Iterable[bytes]) -> list[Record]:
    """Every record of a whole notes file, or `NotesFileError` with every problem."""
    state = _Reading()
    records = [record for raw in lines if (record := _read_line(state, raw)) is not None]
    _finish(state)
    return records


def _finish(state: _Reading) -> None:
    """At the end of the lines: the file must have ended, and have broken no rule."""
    if not state.ended and not state.foreign:
        _ended_early(state)
    if state.count:
        raise NotesFileError(state.problems, state.count)


def _ended_early(state: _Reading) -> None:
    if state.line == 0:
        state.line = 1  # the line that should be there
        state.fail("the file is empty: a notes file begins with a header line")
    else:
        state.fail(f"the file ends at line {state.line} without its end line: it was cut short")


def _read_line(state: _Reading, raw: bytes) -> Record | None:
    state.line += 1
    if state.foreign:
        return None
    if state.ended:
        if raw.strip():
            state.fail("there is more after the end line")
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        if state.line == 1:
            _not_a_notes_file(state)
            return None
        state.fail("is not a JSON object (one object a line, in UTF-8)")
        state.hash.update(raw)
        return None
    kind = document.get("kind")
    if state.line == 1:
        state.hash.update(raw)
        _check_header(state, document)
        return None
    if kind == "end":
        _check_end(state, document)
        state.ended = True
        return None
    state.hash.update(raw)
    if kind not in KINDS:
        state.fail(f"has kind {_shown(kind)}: a line's kind is one of header, owner, token, note, revision, end")
        return None
    index = KINDS.index(kind)
    if index < state.kind_index:
        state.fail(f"a {kind} line comes after the {KINDS[state.kind_index]} lines:"
                   " owners, tokens, notes, revisions, in order")
    state.kind_index = max(state.kind_index, index)
    state.counts[kind] += 1
    unknown = sorted(set(document) - _FIELDS[kind])
    if unknown:
        state.fail(f"has {', '.join(unknown)}, not a field of a {kind} line")
        return None
    if kind == "owner":
        return _owner(state, document)
    if kind == "token":
        return _token(state, document)
    return _note(state, document, revision=kind == "revision")


def _shown(value: Any) -> str:
    return repr(value)[:60]


def _has_id(document: dict[str, Any]) -> str:
    """What a line says of its id: none at all, or one that is not an id."""
    return f"has id {_shown(document['id'])}" if "id" in document else "has no id"


def _not_a_notes_file(state: _Reading) -> None:
    """A first line that is no notes header: some other file, whose every line would be a problem
    of its own. One is said, and the rest is not read."""
    state.fail('is not the header of a notes file, so this is no notes file (one made by `notes-api export`'
               ' or GET /export begins with {"kind": "header", "format": "notes", ...})')
    state.foreign = True


def _check_header(state: _Reading, document: dict[str, Any]) -> None:
    if document.get("kind") != "header" or document.get("format") != FORMAT:
        _not_a_notes_file(state)
        return
    version = document.get("version")
    if type(version) is not int or version != VERSION:  # `true` is no version, though true == 1
        state.fail(f"is of version {_shown(version)}; this notes-api reads version {VERSION}: use a newer one")


def _check_end(state: _Reading, document: dict[str, Any]) -> None:
    if document.get("sha256") != state.hash.hexdigest():
        state.fail("the file's SHA-256 differs from the one in its end line: it was altered or damaged")
    counts = document.get("counts")
    # a file of before revisions counts none: it has none
    if not isinstance(counts, dict) or any(counts.get(kind, 0 if kind == "revision" else None) != state.counts[kind]
                                           for kind in KINDS):
        state.fail(f"the end line's counts {_shown(counts)} differ from the lines in the file {state.counts}")


def _owner_of(state: _Reading, document: dict[str, Any]) -> str | None:
    owner = document.get("owner")
    if owner not in state.owners:
        state.fail(f"belongs to owner {_shown(owner)}, which has no owner line before it")
        return None
    return owner  # type: ignore[no-any-return]


# The largest id a file may hold: every JSON client reads it exactly (JavaScript's numbers end
# at 2**53), and the ids a store gives after an import, past the largest imported, have room.
# (One of 2**63 - 1 was imported, and every note made afterwards failed.)
MAX_ID = 2**53 - 1
_BAD_ID = f"an id is a whole number from 1 to {MAX_ID:,}"


def _id(state: _Reading, document: dict[str, Any], kind: str) -> int | None:
    value = document.get("id")
    if type(value) is not int or not 1 <= value <= MAX_ID:
        state.fail(f"{_has_id(document)}: {_BAD_ID}")
        return None
    if value <= state.last_id[kind]:
        state.fail(f"has id {value}, not above the {kind} before it ({state.last_id[kind]}): ids ascend, each once")
    state.last_id[kind] = value
    return value


def _time(state: _Reading, document: dict[str, Any], name: str, *, nullable: bool) -> datetime | None:
    value = document.get(name)
    if value is None and nullable:
        return None
    problems: list[str] = []
    moment = _TIMESTAMP.check(value, lambda detail, *path: problems.append(detail))
    if problems:
        state.fail(f"{name} {problems[0]}")
    return moment


def _owner(state: _Reading, document: dict[str, Any]) -> OwnerRecord | None:
    name = document.get("name")
    try:
        owner_name(name)  # type: ignore[arg-type]
    except NoteError as error:
        state.fail(str(error))
        return None
    created_at = _time(state, document, "created_at", nullable=True)
    if name in state.owners:
        state.fail(f"owner {name} has a line already")
    state.owners.add(name)  # type: ignore[arg-type]
    return OwnerRecord(name, created_at)  # type: ignore[arg-type]


def _token(state: _Reading, document: dict[str, Any]) -> TokenRecord | None:
    failed = state.count
    token_id = _id(state, document, "token")
    owner = _owner_of(state, document)
    problems: list[str] = []
    label = _LABEL.check(document.get("label"), lambda detail, *path: problems.append(f"label {detail}"))
    scope = document.get("scope")
    if scope not in ("read", "write"):
        problems.append("scope must be read or write")
    hashed = document.get("sha256")
    if not isinstance(hashed, str) or _SHA256.fullmatch(hashed) is None:
        problems.append("sha256 must be 64 lowercase hexadecimal digits")
    for problem in problems:
        state.fail(problem)
    created_at = _time(state, document, "created_at", nullable=False)
    expires_at = _time(state, document, "expires_at", nullable=True)
    last_used_at = _time(state, document, "last_used_at", nullable=True)
    if state.count > failed:
        return None
    return TokenRecord(
        id=token_id, owner=owner, label=label, scope=Scope(scope), secret_hash=hashed,  # type: ignore[arg-type]
        created_at=created_at, expires_at=expires_at, last_used_at=last_used_at,  # type: ignore[arg-type]
    )


def _revision_id(state: _Reading, document: dict[str, Any]) -> int | None:
    """A revision's note id: revisions ascend by note id, then version, each once."""
    value, version = document.get("id"), document.get("version")
    if type(value) is not int or not 1 <= value <= MAX_ID:
        state.fail(f"{_has_id(document)}: {_BAD_ID}")
        return None
    if type(version) is int and (value, version) <= state.last_revision:
        state.fail(f"is revision {version} of note {value}, not after the revision before it"
                   f" ({state.last_revision[1]} of note {state.last_revision[0]}): revisions ascend by id and version")
    if type(version) is int:
        state.last_revision = (value, version)
    return value


def _note(state: _Reading, document: dict[str, Any], *, revision: bool = False) -> NoteRecord | RevisionRecord | None:
    failed = state.count
    note_id = _revision_id(state, document) if revision else _id(state, document, "note")
    owner = _owner_of(state, document)
    values: dict[str, Any] = {"description": "", "priority": 0, "tags": (), "created_by": None}

    def fail(detail: str, *path: str | int) -> None:
        state.fail(f"{'/'.join(map(str, path))} {detail}")

    for name in ("title", "created_at", "updated_at", "version"):
        if name not in document:
            state.fail(f"has no {name}, which a note line needs")
    for name, rule in FIELDS.items():
        if name in document:
            values[name] = rule.check(document[name], fail, name)
    updated_at = _time(state, document, "updated_at", nullable=False) if "updated_at" in document else None
    version = document.get("version")
    if "version" in document and (type(version) is not int or version < 1):
        state.fail(f"has version {_shown(version)}: a version is a whole number of 1 or more")
    deleted_at = _time(state, document, "deleted_at", nullable=True) if not revision else None
    if state.count > failed:
        return None
    if revision:
        _check_revision_of_a_note(state, note_id, owner, version)  # type: ignore[arg-type]
    else:
        state.note_ids.append(note_id)  # type: ignore[arg-type]
        state.note_versions.append(version)  # type: ignore[arg-type]
        state.note_owners.append(state.owner_names.setdefault(owner, len(state.owner_names)))  # type: ignore[arg-type]
    note = Note(id=note_id, updated_at=updated_at, version=version, **values)  # type: ignore[arg-type]
    return RevisionRecord(owner, note) if revision else NoteRecord(owner, note, deleted_at)  # type: ignore[arg-type]


def _check_revision_of_a_note(state: _Reading, note_id: int, owner: str, version: int) -> None:
    """A revision line is an older version of a note line above it, of the same owner: a store
    would otherwise hold the history of a note that is not there (shown when the id is next given)."""
    at = bisect_left(state.note_ids, note_id)
    if at == len(state.note_ids) or state.note_ids[at] != note_id:
        state.fail(f"is a revision of note {note_id}, which has no note line")
    elif state.note_owners[at] != state.owner_names.get(owner):
        state.fail(f"is a revision of note {note_id} of owner {_shown(owner)}, but the note line is another owner's")
    elif version >= state.note_versions[at]:
        state.fail(f"is revision {version} of note {note_id}, whose note line is version {state.note_versions[at]}:"
                   " a revision is older than its note")
