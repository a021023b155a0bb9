"""`export`, `import` and `copy`: a store's content to a file, from a file, and to another store
(cli.py runs them). Each goes through the store's own streaming ports (`Store.export`,
`Store.import_records`), so every pair of stores works and memory stays flat whatever the size.

What a person reads goes to standard error; standard output carries only the exported file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import re
import stat
import sys
import tempfile
import threading
import time
import unicodedata
import zipfile
from array import array
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any, TextIO

import orjson

from app.container import build_container
from app.domain.errors import ImportConflictError, OwnerNotFoundError
from app.domain.owners import owner_name
from app.domain.ports import Store
from app.domain.timestamps import format_timestamp, to_microseconds
from app.domain.transfer import (
    WHOLE_STORE,
    Imported,
    NoteRecord,
    OnConflict,
    OwnerRecord,
    Record,
    RevisionRecord,
    Selection,
    TokenRecord,
)
from app.entrypoints import notes_file
from app.entrypoints.logs import report_failure
from app.entrypoints.notes_file import KINDS, kind_of, read_notes_file, write_notes_file
from app.settings import Settings, backend_of, redacted, sqlite_path

ZIP_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)
PROGRESS_EVERY = 5.0  # seconds between two plain progress lines when standard error is no terminal


log = logging.getLogger("app.transfer")
LONGEST_LINE = 64 << 20  # bytes: a note is at most --max-body-bytes of JSON (1 MiB by default)


class Interrupted(Exception):
    """Ctrl-C: the command stopped, and says what it left behind."""


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[Store]:
    """The store of a URL, opened as the server opens it, and closed after."""
    container = build_container(Settings(database_url=database_url, pool_size=2))
    try:
        yield await container.storage()  # type: ignore[misc]  # async: the storage opens here
    finally:
        shutdown = container.shutdown_resources()
        if shutdown is not None:
            await shutdown


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _counted(counts: dict[str, int]) -> str:
    return (f"{_plural(counts['owner'], 'owner')}, {_plural(counts['token'], 'token')}"
            f" and {_plural(counts['note'], 'note')}")


# export


def run_export(args: argparse.Namespace, err: TextIO = sys.stderr) -> int:
    if args.output == "-":  # standard output, as for most commands that take a file
        args.output = None
    if args.output is None and args.format == "markdown" and sys.stdout.isatty():
        raise ValueError("a zip file cannot be shown on a terminal: give --output FILE, or redirect standard output")
    if args.output is not None and _writes_over_the_store(args.output, args.database_url):
        raise ValueError(f"--output {args.output} is the store being exported (or its -wal or -shm): give another file")
    selection = Selection(tuple(owner_name(name) for name in args.owner) if args.owner else None)
    try:
        with _output(args.output) as sink:
            exported = asyncio.run(_export(args.database_url, selection, args.format, sink))
    except KeyboardInterrupt:
        raise Interrupted(f"export interrupted: {_left_of(args.output)}") from None
    except OSError as error:  # writing: a full disk, say (reading a store fails as StorageUnavailableError)
        if error.filename is not None or error.strerror is None:
            raise
        where = "standard output" if args.output is None else args.output
        raise OSError(f"cannot write {where}: {error.strerror}; {_left_of(args.output)}") from None
    where = "standard output" if args.output is None else args.output
    err.write(f"exported {exported} to {where}\n")
    return 0


def _writes_over_the_store(output: str, database_url: str) -> bool:
    """Whether --output names the SQLite file being exported, or one of SQLite's files beside it:
    the export would replace the store it is read from."""
    if backend_of(database_url) != "sqlite":
        return False
    store = os.path.realpath(sqlite_path(database_url))
    return os.path.realpath(output) in (store, f"{store}-wal", f"{store}-shm", f"{store}-journal")


def _left_of(path: str | None) -> str:
    """What a failed export left where it wrote."""
    if path is None or _in_place(path):
        return f"{'standard output' if path is None else path} holds a part of the export"
    return f"{path} was not written"


def _in_place(path: str) -> bool:
    """Whether the export writes into `path` as it is: a device, a pipe, /dev/stdout."""
    try:
        found = os.stat(path)  # (following links, /dev/stdout's into /proc included)
    except OSError:  # none there, or none that can be reached: writing it says which
        return False
    return (not stat.S_ISREG(found.st_mode) and not stat.S_ISDIR(found.st_mode)) or path.startswith(("/dev/", "/proc/"))


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[bytes]]:
    """Standard output; what is not a regular file (a device, a pipe), written as it is; or a
    file (through a symbolic link, the file it names) that appears, complete, only when the export
    succeeded, with the mode of the file it replaces."""
    if path is None:
        if sys.stdout is None:  # (closed: `>&-`)
            raise ValueError("standard output is closed: give --output FILE")
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if not path:
        raise ValueError("--output is empty: give it a file's name, or - for standard output")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory: give --output a file's name")
    if os.path.basename(path) in ("", ".", ".."):  # a directory's name (realpath would drop it: `n.db/.` was n.db)
        raise ValueError(f"{path} names a directory, not a file: give --output a file's name")
    if _in_place(path):  # appending: a shell's `>` has emptied it already, and its `>>` asks for that
        with open(path, "ab") as sink:
            yield sink
        return
    found = os.stat(path) if os.path.exists(path) else None
    given, path = path, os.path.realpath(path)
    directory = os.path.dirname(path)
    # Written beside the file it becomes, in mode 0600 (every owner's notes and the tokens'
    # hashes); a file it replaces keeps its own mode.
    try:
        handle, partial = tempfile.mkstemp(prefix=".export-", dir=directory)
    except FileNotFoundError:
        raise ValueError(f"the directory {directory} of --output {given} does not exist: create it first") from None
    except PermissionError:
        raise ValueError(f"cannot write {given}: this user may not create files in {directory};"
                         " give --output a file in a directory it may write") from None
    except NotADirectoryError:
        raise ValueError(f"cannot write {given}: a part of {directory} is a file, not a directory") from None
    try:
        if found is not None:
            os.fchmod(handle, stat.S_IMODE(found.st_mode))
        with os.fdopen(handle, "wb") as sink:
            yield sink
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


async def _export(database_url: str, selection: Selection, kind: str, sink: IO[bytes]) -> str:
    """Write the export; what it holds, for the line that says so."""
    async with opened(database_url) as store:
        if selection.owners is not None:
            known = {owner.name for owner in await store.accounts.owners()}
            for name in selection.owners:
                if name not in known:
                    raise OwnerNotFoundError(name)
        if kind == "markdown":
            return await _markdown_zip(store.export(selection), sink)
        counting = Counted(store.export(selection))
        async for chunk in write_notes_file(counting, backend_of(database_url), datetime.now(UTC)):
            sink.write(chunk)
        return _counted(counting.counts)


class Counted:
    """A stream of records that counts them by kind as they pass."""

    def __init__(self, records: AsyncIterator[Record]) -> None:
        self._records = records
        self.counts = dict.fromkeys(KINDS, 0)

    async def __aiter__(self) -> AsyncIterator[Record]:
        async for record in self._records:
            self.counts[kind_of(record)] += 1
            yield record


_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(title: str) -> str:
    """A file name's part from a title: ASCII letters and digits joined by dashes, at most 60."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return _NOT_SLUG.sub("-", ascii_title).strip("-")[:60].rstrip("-") or "note"


def markdown_note(note: Any) -> bytes:
    """A note as Markdown with YAML front matter; JSON strings are YAML's double-quoted scalars."""
    def text(value: Any) -> str:
        return orjson.dumps(value).decode()

    front = [
        f"id: {note.id}", f"title: {text(note.title)}", f"tags: {text(list(note.tags))}",
        f"priority: {note.priority}", f"created_by: {text(note.created_by)}",
        f"created_at: {format_timestamp(note.created_at)}", f"updated_at: {format_timestamp(note.updated_at)}",
        f"version: {note.version}",
    ]
    return ("---\n" + "\n".join(front) + "\n---\n\n" + note.description + ("\n" if note.description else "")).encode()


async def _markdown_zip(records: AsyncIterator[Record], sink: IO[bytes]) -> str:
    """The notes as Markdown files, a folder for each owner; not the trash, the revisions or the
    tokens, which the summary says (a whole store's counts would claim more than the zip holds)."""
    owners: set[str] = set()
    notes = 0
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        async for record in records:
            if isinstance(record, NoteRecord) and record.deleted_at is None:  # the notes, not the trash
                owners.add(record.owner)
                notes += 1
                note = record.note
                at = max(note.updated_at.astimezone(UTC), ZIP_EPOCH)  # a zip holds no earlier time
                stamp = (at.year, at.month, at.day, at.hour, at.minute, at.second)
                info = zipfile.ZipInfo(f"{record.owner}/{note.id}-{slug(note.title)}.md", stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, markdown_note(note))
    return (f"{_plural(notes, 'note')} of {_plural(len(owners), 'owner')} as Markdown (not the trash, the"
            " revisions or the tokens)")


# import


@dataclass
class Input:
    """What an import reads (a file, a pipe, standard input), with what was read of it already:
    its first line, checked before any store is made or touched, so that a file that is no
    notes file changes nothing."""

    stream: IO[bytes]
    read_ahead: bytes

    @classmethod
    def opened(cls, path: str | None) -> Input:
        if (path is None or path == "-") and sys.stdin is None:  # (closed: `<&-`)
            raise ValueError("standard input is closed: give --input FILE")
        source = cls(sys.stdin.buffer if path is None or path == "-" else open(path, "rb"), b"")  # noqa: SIM115
        try:
            read = bytearray()
            while len(read) <= LONGEST_LINE:
                if not (chunk := os.read(source.stream.fileno(), 1 << 20)):
                    break
                read += chunk
                if b"\n" in chunk:
                    break
            end = read.find(b"\n")
            notes_file.check_first_line(bytes(read if end < 0 else read[:end + 1]))
        except BaseException:
            source.close()
            raise
        source.read_ahead = bytes(read)
        return source

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()


def run_import(args: argparse.Namespace, err: TextIO = sys.stderr) -> int:
    target = redacted(args.database_url)
    try:
        with contextlib.closing(args.opened_input) as source:
            imported = asyncio.run(_import(args.database_url, source, OnConflict(args.on_conflict)))
    except KeyboardInterrupt:
        raise Interrupted(f"import interrupted: nothing was written to {target}") from None
    err.write(f"imported {_imported(imported)} into {target}\n")
    return 0


async def _import(database_url: str, source: Input, on_conflict: OnConflict) -> Imported:
    async with opened(database_url) as store:
        log.debug("importing into %s", redacted(database_url))
        records = read_notes_file(lines_of(source.stream, read_ahead=source.read_ahead))
        try:
            return await store.import_records(records, on_conflict, at=datetime.now(UTC))
        except ImportConflictError:
            # Read to its end first: a file cut short or altered is what to mend, and the advice
            # of a conflict (--on-conflict) would not mend it.
            async for _ in records:
                pass
            raise


async def lines_of(source: IO[bytes], chunks_ahead: int = 4, *, read_ahead: bytes = b"") -> AsyncIterator[bytes]:
    """The lines of a file or a pipe, read in a thread of their own 1 MiB at a time, so that the
    event loop never blocks on a pipe that is slow to fill and Ctrl-C is seen at once. The thread
    reads the descriptor itself (`os.read`), holding no lock of Python's buffered file, and is a
    daemon: a process interrupted while it waits for input ends without waiting for it."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
    room = threading.Semaphore(chunks_ahead)  # how far the thread may read ahead
    descriptor = source.fileno()

    def read() -> None:
        try:
            while True:
                room.acquire()
                chunk = os.read(descriptor, 1 << 20)
                loop.call_soon_threadsafe(arrived.put_nowait, chunk)
                if not chunk:
                    return
        except BaseException as error:  # an unreadable file: raised where the lines are read
            loop.call_soon_threadsafe(arrived.put_nowait, error)

    threading.Thread(target=read, name="notes-file-reader", daemon=True).start()

    async def chunks() -> AsyncIterator[bytes]:
        if read_ahead:
            yield read_ahead  # (read from the descriptor before the thread began)
        while chunk := await arrived.get():
            if isinstance(chunk, BaseException):
                raise chunk
            room.release()
            yield chunk

    started: list[bytes] = []  # the pieces of a line that has not ended yet
    started_size = 0
    async for chunk in chunks():
        lines = chunk.splitlines(keepends=True)
        unended = lines.pop() if not lines[-1].endswith(b"\n") else None
        if lines and started:
            lines[0] = b"".join([*started, lines[0]])
            started, started_size = [], 0
        for line in lines:
            yield line
        if unended is not None:
            started.append(unended)
            started_size += len(unended)
            if started_size > LONGEST_LINE:  # (/dev/zero, say: it grew without end)
                raise ValueError(f"the input has a line longer than {LONGEST_LINE >> 20} MiB, which no notes file"
                                 " has: nothing was imported")
    if started:
        yield b"".join(started)


def _imported(imported: Imported) -> str:
    said = (f"{_plural(imported.notes, 'note')}, {_plural(imported.tokens, 'token')}"
            f" and {_plural(imported.owners, 'new owner')}")
    if conflicts := _conflicts(imported):
        said += f" ({'; '.join(conflicts)})"
    if imported.revisions:
        said += f", with {_plural(imported.revisions, 'older revision')}"
    return said


def _conflicts(imported: Imported) -> list[str]:
    """What became of the notes whose ids the target had, one phrase each."""
    said = []
    if kept := len(imported.skipped):
        said.append(f"{_plural(kept, 'note')} the target had already {_was(kept)} kept as"
                    f" {_was(kept, 'it was', 'they were')}")
    if kept_tokens := len(imported.skipped_tokens):
        said.append(f"{_plural(kept_tokens, 'token')} whose id or secret the target had already"
                    f" {_was(kept_tokens, 'was', 'were')} left out")
    if replaced := imported.replaced:
        def some(count: int) -> str:  # of the replaced notes
            return "it" if replaced == 1 else f"{count:,} of them"

        said.append(f"{_plural(replaced, 'note')} the target had {_was(replaced)} replaced")
        if others := imported.from_other_owners:
            said.append(f"{some(others)} {_was(others, 'was', 'were')} another owner's")
        if renumbered := len(imported.renumbered):
            said.append(f"{some(renumbered)} took a version past the target's own, so that no version names"
                        " two states of a note")
    return said


def _was(count: int, one: str = "was", more: str = "were") -> str:
    return one if count == 1 else more


# copy


def run_copy(args: argparse.Namespace, err: TextIO = sys.stderr) -> int:
    target = redacted(args.target)
    committed = [False]  # the copy's transaction: once committed, an interrupt stops only the compare
    try:
        report = asyncio.run(_copy(args.source, args.target, OnConflict(args.on_conflict), err, args.progress_every,
                                   committed))
    except KeyboardInterrupt:
        if committed[0]:
            raise Interrupted(f"copy interrupted while comparing: {target} holds the copy, not compared") from None
        raise Interrupted(f"copy interrupted: nothing was written to {target}") from None
    if report.matches:
        err.write(report.summary() + "\n")
        return 0
    report_failure(err, report.summary())
    return 1


class Progress:
    """Notes done of the total: a bar on a terminal (tqdm), else a plain line every few seconds."""

    def __init__(self, total: int, err: TextIO, every: float = PROGRESS_EVERY) -> None:
        self._total, self._err, self._every, self.done = total, err, every, 0
        self._started = self._shown = time.monotonic()
        self._bar: Any = None
        if err.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=" notes", unit_scale=True, file=err, dynamic_ncols=True,
                             desc="copying", smoothing=0.1)
        else:
            err.write(f"copying {_plural(total, 'note')}\n")

    def advance(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        if now - self._shown >= self._every:
            self._shown = now
            rate = self.done / (now - self._started)
            left = f", about {max(self._total - self.done, 0) / rate:.0f} s left" if rate else ""
            self._err.write(f"copied {self.done:,} of {self._total:,} notes ({rate:,.0f} notes/s{left})\n")
            self._err.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def fingerprint(record: Record) -> bytes:
    """A record's values in one canonical byte string, times as exact integer microseconds: what
    a copy compares on both sides. Cheaper than the record's line, and as exact."""
    if isinstance(record, NoteRecord | RevisionRecord):
        n = record.note
        deleted = _micros(record.deleted_at) if isinstance(record, NoteRecord) else None
        return orjson.dumps((
            kind_of(record), record.owner, n.id, n.title, n.description, n.priority, n.tags, n.created_by,
            to_microseconds(n.created_at), to_microseconds(n.updated_at), n.version, deleted,
        ))
    if isinstance(record, TokenRecord):
        return orjson.dumps((
            "token", record.id, record.owner, record.label, str(record.scope), record.secret_hash,
            to_microseconds(record.created_at), _micros(record.expires_at), _micros(record.last_used_at),
        ))
    return orjson.dumps(("owner", record.name, _micros(record.created_at)))


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_microseconds(moment)


def _digest(values: bytes) -> int:
    """64 bits of a record's `fingerprint`: Python's own keyed hash of bytes (SipHash), the same
    for the same bytes within this process, where both sides of a copy are hashed; a tenth of
    the time of a BLAKE2b digest."""
    return hash(values) & 0xFFFF_FFFF_FFFF_FFFF


@dataclass
class Revisions:
    """Revisions by their number and the sum of their digests: equal on both sides, or not."""

    count: int = 0
    total: int = 0

    def add(self, values: bytes) -> None:
        self.count += 1
        self.total = (self.total + _digest(values)) % 2**64


@dataclass
class Fingerprints:
    """Each record of a copy's source by its key, as a 64-bit digest of its `fingerprint`; notes
    in two flat arrays (16 bytes a note), in the id order of the export; and a SHA-256 of all."""

    owners: dict[str, int] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)
    note_ids: array = field(default_factory=lambda: array("q"))
    note_digests: array = field(default_factory=lambda: array("Q"))
    revisions: Revisions = field(default_factory=lambda: Revisions())
    sha256: Any = field(default_factory=hashlib.sha256)

    def add(self, record: Record) -> None:
        values = fingerprint(record)
        self.sha256.update(values)
        if isinstance(record, RevisionRecord):
            self.revisions.add(values)
        elif isinstance(record, NoteRecord):
            self.note_ids.append(record.note.id)
            self.note_digests.append(_digest(values))
        elif isinstance(record, TokenRecord):
            self.tokens[record.id] = _digest(values)
        else:
            self.owners[record.name] = _digest(values)


@dataclass
class CopyReport:
    notes: int
    owners: int
    imported: Imported
    sha256: str
    elapsed: float
    compared: float  # seconds spent reading the target back and comparing
    differing: list[str] = field(default_factory=list)  # what differs, one phrase each

    @property
    def matches(self) -> bool:
        return not self.differing

    def summary(self) -> str:
        rate = self.notes / self.elapsed if self.elapsed else 0
        said = (f"{_plural(self.notes, 'note')} of {_plural(self.owners, 'owner')} copied"
                f" in {self.elapsed:.1f} s ({rate:,.0f} notes/s), compared in {self.compared:.1f} s")
        if conflicts := _conflicts(self.imported):
            said += f"; {'; '.join(conflicts)}"
        if self.imported.skipped or self.imported.replaced:
            said += "; the revisions were not compared (the target keeps its own of those notes)"
        if self.matches:
            return f"{said}; checksums match (SHA-256 {self.sha256[:16]})"
        return f"{said}; checksums differ: {'; '.join(self.differing)}"


async def _copy(
    source_url: str, target_url: str, on_conflict: OnConflict, err: TextIO, progress_every: float,
    committed: list[bool],
) -> CopyReport:
    started = time.monotonic()
    async with opened(source_url) as source, opened(target_url) as target:
        progress = Progress(await source.count_notes(WHOLE_STORE), err, progress_every)
        fingerprints = Fingerprints()

        async def read() -> AsyncIterator[Record]:
            pending = 0
            async for record in source.export(WHOLE_STORE):
                fingerprints.add(record)
                if isinstance(record, NoteRecord):
                    pending += 1
                    if pending == 1000:
                        progress.advance(pending)
                        pending = 0
                yield record
            progress.advance(pending)

        try:
            imported = await target.import_records(read(), on_conflict, at=datetime.now(UTC))
        finally:
            progress.close()
        committed[0] = True
        elapsed = time.monotonic() - started
        try:
            differing = await _compare(target, fingerprints, imported)
        except Exception as error:  # the copy stands; it could not be checked
            differing = [f"the target could not be read back ({type(error).__name__}: {error})"]
        compared = time.monotonic() - started - elapsed
    return CopyReport(len(fingerprints.note_ids), len(fingerprints.owners), imported,
                      fingerprints.sha256.hexdigest(), elapsed, compared, differing)


async def _compare(target: Store, source: Fingerprints, imported: Imported) -> list[str]:
    """What differs between the source's records and the target's records of the same keys.
    A note the target kept is not compared; one replaced with another version is compared at
    the source's version; the revisions are compared when no note was kept or replaced (the
    target then keeps its own revisions of it)."""
    skipped, renumbered = set(imported.skipped), imported.renumbered
    differing: list[str] = []
    wrong_notes: list[int] = []
    missing_notes: list[int] = []
    ids, digests = source.note_ids, source.note_digests
    at = 0
    seen_owners: set[str] = set()
    seen_tokens: set[int] = set()
    revisions = Revisions()
    async for record in target.export(WHOLE_STORE):
        if isinstance(record, RevisionRecord):
            if record.note.id not in skipped:
                revisions.add(fingerprint(record))
            continue
        if isinstance(record, NoteRecord) and record.note.id in renumbered:
            record = replace(record, note=replace(record.note, version=renumbered[record.note.id]))
        values = _digest(fingerprint(record))
        if isinstance(record, NoteRecord):
            note_id = record.note.id
            while at < len(ids) and ids[at] < note_id:
                if ids[at] not in skipped:
                    missing_notes.append(ids[at])
                at += 1
            if at < len(ids) and ids[at] == note_id:
                if digests[at] != values and note_id not in skipped:
                    wrong_notes.append(note_id)
                at += 1
        elif isinstance(record, TokenRecord):
            if record.id in source.tokens:
                seen_tokens.add(record.id)
                if source.tokens[record.id] != values and record.id not in imported.skipped_tokens:
                    differing.append(f"token {record.id} differs")
        elif isinstance(record, OwnerRecord) and record.name in source.owners:
            seen_owners.add(record.name)
            if source.owners[record.name] != values:
                differing.append(f"owner {record.name} differs (the target had it already, created at another time)")
    missing_notes += [note_id for note_id in ids[at:] if note_id not in skipped]
    if not skipped and not imported.replaced and revisions != source.revisions:
        differing.append(f"the revisions differ ({source.revisions.count:,} in the source,"
                         f" {revisions.count:,} in the target)")
    differing += [f"owner {name} is missing" for name in sorted(source.owners.keys() - seen_owners)]
    left_out = seen_tokens.union(imported.skipped_tokens)
    differing += [f"token {token_id} is missing" for token_id in sorted(source.tokens.keys() - left_out)]
    for notes, how in ((wrong_notes, "differ"), (missing_notes, "are missing")):
        if notes:
            shown = ", ".join(map(str, notes[:10])) + (", ..." if len(notes) > 10 else "")
            differing.append(f"{_plural(len(notes), 'note')} {how} (ids {shown})")
    return differing
