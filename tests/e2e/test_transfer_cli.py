"""export, import and copy in real processes: SQLite to PostgreSQL and back, what a terminal and a
pipe show, bad files and conflicts refused with one line, and Ctrl-C leaving the target as it was."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import os
import pty
import resource
import signal
import sqlite3
import stat
import struct
import subprocess
import sys
import termios
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import requests
import yaml

from app.adapters.migrate import migrate
from app.domain.model import NoteDraft
from app.domain.transfer import WHOLE_STORE, NoteRecord, Record
from app.entrypoints.transfer import opened, slug
from app.settings import backend_of
from tests.databases import in_thread, postgres_database
from tests.e2e.processes import Server, _environment, interruptible, run
from tests.e2e.test_owners_cli import issue, ok
from tests.e2e.test_start_up_errors import read_only

pytestmark = pytest.mark.slow
NOTES = 3000


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    with postgres_database(postgres_server_url, "notes_copy") as url:
        yield url


def fill(url: str, count: int = NOTES) -> None:
    """Migrated, with owners alice and bob and `count` notes spread over them and local (set up
    in this process: the commands under test are what run in processes of their own)."""
    in_thread(migrate, url, backend_of(url))

    async def notes() -> None:
        async with opened(url) as store:
            for owner in ("alice", "bob"):
                await store.accounts.add_owner(owner, datetime(2019, 5, 1, tzinfo=UTC))
            for owner, share in (("alice", range(0, count, 3)), ("bob", range(1, count, 3)),
                                 ("local", range(2, count, 3))):
                await store.notes_of(owner).add_many([NoteDraft(
                    title=f"note {i} ✓", description="words " * (i % 50), priority=i % 11,
                    tags=tuple(sorted({f"t{i % 7}", "all"})), created_by=None if i % 5 else "me",
                    created_at=datetime(2020, 1, 1, 0, 0, i % 60, i, tzinfo=UTC),
                    updated_at=datetime(2021, 1, 1, tzinfo=UTC),
                ) for i in share])

    in_thread(asyncio.run, notes())


def body_of(url: str) -> list[Record]:
    """Every record of the store, read through its port."""
    async def read() -> list[Record]:
        async with opened(url) as store:
            return [record async for record in store.export(WHOLE_STORE)]

    return in_thread(asyncio.run, read())


def test_copy_to_postgresql_and_back_loses_nothing(tmp_path: Path, postgres_url: str) -> None:
    source, back = f"sqlite:///{tmp_path / 'laptop.db'}", f"sqlite:///{tmp_path / 'back.db'}"
    fill(source)
    token = issue(source, "alice", "--label", "laptop")
    there = run("copy", "--from", source, "--to", postgres_url)
    assert there.returncode == 0, there.stderr
    assert there.stdout == ""
    last = there.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{NOTES:,} notes of 3 owners copied in ")
    assert "checksums match" in last and "\x1b" not in there.stderr and "\r" not in there.stderr
    back_again = run("copy", "--from", postgres_url, "--to", back, "--progress-every", "0")
    lines = back_again.stderr.splitlines()  # into a pipe: plain lines, here one every 1,000 notes
    assert lines[0] == f"copying {NOTES:,} notes"
    assert lines[1].startswith(f"copied 1,000 of {NOTES:,} notes (") and "notes/s, about" in lines[1]
    assert "checksums match" in lines[-1]
    records = body_of(source)
    assert sum(isinstance(r, NoteRecord) for r in records) == NOTES
    assert records == body_of(postgres_url) == body_of(back)

    server = Server(postgres_url, tmp_path / "server.log", "--auth", "required").wait_ready()
    try:
        bearer = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{server.base}/me", headers=bearer).json()["owner"] == "alice"
        made = requests.post(f"{server.base}/notes", json={"title": "after the move"}, headers=bearer).json()
        assert made["id"] > NOTES
    finally:
        assert server.stop() == 0


def test_copy_draws_a_progress_bar_on_a_terminal(tmp_path: Path, postgres_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size
    process = subprocess.Popen([sys.executable, "-m", "app", "copy", "--from", source, "--to", postgres_url],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal,
                               env=_environment(None))
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0, seen
    text = seen.decode(errors="replace")
    assert "copying:" in text and "100%" in text and f"{NOTES / 1000:.2f}k/{NOTES / 1000:.2f}k" in text, text
    assert "\r" in text  # redrawn in place
    assert "checksums match" in text


def corrupted(path: Path, change: Callable[[list[bytes]], list[bytes]]) -> Path:
    lines = path.read_bytes().splitlines(keepends=True)
    bad = path.with_name(f"bad-{change.__name__}.ndjson")
    bad.write_bytes(b"".join(change(lines)))
    return bad


def truncated(lines: list[bytes]) -> list[bytes]:
    return lines[: len(lines) // 2]


def one_byte(lines: list[bytes]) -> list[bytes]:
    lines[40] = lines[40].replace(b'"title":"note', b'"title":"nose', 1)
    return lines


def broken_rule(lines: list[bytes]) -> list[bytes]:
    import hashlib

    import orjson

    lines[40] = lines[40].replace(b'"priority":', b'"priority":"high","was":', 1)
    end = orjson.loads(lines[-1])
    end["sha256"] = hashlib.sha256(b"".join(lines[:-1])).hexdigest()
    return [*lines[:-1], orjson.dumps(end) + b"\n"]


def test_a_bad_file_is_refused_with_one_line_and_writes_nothing(tmp_path: Path, postgres_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source, 100)
    exported = tmp_path / "notes.ndjson"
    ok("export", "--database-url", source, "--output", str(exported))
    in_thread(migrate, postgres_url, "postgresql")
    before = body_of(postgres_url)
    for change, expected in ((truncated, "it was cut short"), (one_byte, "it was altered or damaged"),
                             (broken_rule, "line 41: has was, not a field of a note line")):
        done = run("import", "--database-url", postgres_url, "--input", str(corrupted(exported, change)))
        assert done.returncode == 1, done.stderr
        first = done.stderr.splitlines()[0]
        assert first.startswith("notes-api: error: line ") and expected in first, done.stderr
        assert first.endswith("nothing was imported") and "Traceback" not in done.stderr
        assert body_of(postgres_url) == before
    newer = tmp_path / "newer.ndjson"
    newer.write_bytes(exported.read_bytes().replace(b'"version":1', b'"version":2', 1))
    done = run("import", "--database-url", postgres_url, "--input", str(newer))
    assert "is of version 2; this notes-api reads version 1: use a newer one" in done.stderr


def test_an_id_that_exists_fails_skips_or_replaces_as_asked(tmp_path: Path, postgres_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source, 30)
    exported = tmp_path / "notes.ndjson"
    ok("export", "--database-url", source, "-o", str(exported))
    assert run("import", "--database-url", postgres_url, "-i", str(exported)).returncode == 0
    again = run("import", "--database-url", postgres_url, "-i", str(exported))
    assert again.returncode == 1
    assert again.stderr.strip() == ("notes-api: error: note 1 exists in the target already: nothing was imported;"
                                    " use --on-conflict skip or --on-conflict replace to keep or replace what is there")
    skipped = run("import", "--database-url", postgres_url, "-i", str(exported), "--on-conflict", "skip")
    assert skipped.returncode == 0 and "30 notes the target had already were kept" in skipped.stderr
    same = run("import", "--database-url", postgres_url, "-i", str(exported), "--on-conflict", "replace")
    assert same.returncode == 0 and "30 notes the target had already were kept as they were" in same.stderr
    assert "replaced" not in same.stderr  # the target held them already: nothing was written
    assert body_of(postgres_url) == body_of(source)
    edit(source, 1, "edited on the laptop")  # version 2 there; version 1 in the target
    edit(postgres_url, 2, "edited in production")  # version 2 in the target...
    edit(source, 2, "edited on the laptop too")  # ...and another version 2 in the source
    replaced = run("copy", "--from", source, "--to", postgres_url, "--on-conflict", "replace")
    assert replaced.returncode == 0, replaced.stderr
    assert (
        "; 28 notes the target had already were kept as they were; 2 notes the target had were replaced; 1 of them"
        " took a version past the target's own, so that no version names two states of a note; the revisions were"
        " not compared (the target keeps its own of those notes); checksums match (SHA-256 "
    ) in replaced.stderr
    notes = {record.note.id: record.note for record in body_of(postgres_url) if isinstance(record, NoteRecord)}
    assert (notes[1].title, notes[1].version) == ("edited on the laptop", 2)
    assert (notes[2].title, notes[2].version) == ("edited on the laptop too", 3)  # "2" named the other title


def test_a_damaged_file_is_told_as_damaged_even_where_its_ids_exist_already(tmp_path: Path) -> None:
    """The conflict came first (a token's, met as its line is read), and its advice
    (--on-conflict) only led to the damage."""
    source, target = f"sqlite:///{tmp_path / 'laptop.db'}", f"sqlite:///{tmp_path / 'server.db'}"
    fill(source, 30)
    issue(source, "alice")
    exported = tmp_path / "notes.ndjson"
    ok("export", "--database-url", source, "-o", str(exported))
    ok("import", "--database-url", target, "-i", str(exported))
    before = body_of(target)
    lines = exported.read_bytes().splitlines(keepends=True)
    damaged = {
        "cut short": (b"".join(lines[:-1]), "without its end line: it was cut short"),
        "altered": (b"".join(lines).replace(b'"title":"', b'"title":"X', 1), "it was altered or damaged"),
    }
    for name, (data, told) in damaged.items():
        file = tmp_path / f"{name}.ndjson"
        file.write_bytes(data)
        done = run("import", "--database-url", target, "-i", str(file))
        assert done.returncode == 1 and told in done.stderr and "exists in the target" not in done.stderr, done.stderr
    assert body_of(target) == before


def edit(url: str, note_id: int, title: str) -> None:
    """A new version of alice's note with this title, written through the store's port."""
    async def write() -> None:
        async with opened(url) as store:
            notes = store.notes_of("alice")
            note = await notes.get(note_id)
            content = dataclasses.replace(note.content(), title=title)
            await notes.update(note.revised(content, note.updated_at + timedelta(seconds=1)))

    in_thread(asyncio.run, write())


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_ctrl_c_during_an_import_from_a_pipe_leaves_the_target_as_it_was(stop: int, tmp_path: Path) -> None:
    """SIGTERM (systemd, `docker stop`, `timeout`) as Ctrl-C: it ended the command without a word."""
    source, target = f"sqlite:///{tmp_path / 'laptop.db'}", tmp_path / "target.db"
    fill(source)
    lines = ok("export", "--database-url", source).encode().splitlines(keepends=True)
    in_thread(migrate, f"sqlite:///{target}", "sqlite")
    before = body_of(f"sqlite:///{target}")
    process = subprocess.Popen([sys.executable, "-m", "app", "import", "--database-url", f"sqlite:///{target}",
                                "--log-level", "debug"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=_environment(None), preexec_fn=interruptible)
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write(b"".join(lines[:2500]))  # half of the file; the pipe stays open
    process.stdin.flush()
    begun = f"importing into sqlite:///{target}\n".encode()  # (it cannot end: the input has no end yet)
    while not (said := process.stderr.readline()).endswith(begun):  # each line as it is written
        assert said, "the import ended before it began"
    process.send_signal(stop)
    process.wait(timeout=30)  # the pipe stays open: the interrupt, not the end of the input, stops it
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert err.decode().strip() == f"notes-api: error: import interrupted: nothing was written to sqlite:///{target}"
    assert body_of(f"sqlite:///{target}") == before


async def test_ctrl_c_during_a_copy_leaves_the_target_as_it_was(tmp_path: Path, postgres_url: str) -> None:
    """The copy is stopped once it has begun, and before it can end: this test holds a lock on the
    target's notes that its writes wait for."""
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    await asyncio.to_thread(fill, source)
    await asyncio.to_thread(issue, source, "alice")
    await asyncio.to_thread(migrate, postgres_url, "postgresql")
    before = await asyncio.to_thread(body_of, postgres_url)
    code, err = await interrupted_while_it_waits_for_the_notes(
        postgres_url, "copying 3,000 notes", "copy", "--from", source, "--to", postgres_url
    )
    assert code == 130, err
    assert err.decode().strip().endswith(f"notes-api: error: copy interrupted: nothing was written to {postgres_url}")
    assert await asyncio.to_thread(body_of, postgres_url) == before


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_copy_into_a_store_that_differs_says_what_differs_and_exits_1(log_format: str, tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'laptop.db'}", f"sqlite:///{tmp_path / 'target.db'}"
    fill(source, 30)
    in_thread(migrate, target, "sqlite")

    async def alice_already_there() -> None:
        async with opened(target) as store:
            await store.accounts.add_owner("alice", datetime(2025, 1, 1, tzinfo=UTC))

    in_thread(asyncio.run, alice_already_there())
    done = run("copy", "--from", source, "--to", target, "--log-format", log_format)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    if log_format == "json":  # a failure: at ERROR, for a collector that alerts on those
        record = json.loads(last)
        assert (record["level"], record["logger"]) == ("ERROR", "app.cli")
        last = record["message"]
    assert last.startswith("30 notes of 3 owners copied in ")
    assert last.endswith("checksums differ: owner alice differs (the target had it already, created at another time)")


def test_a_markdown_export_is_a_zip_of_notes_with_front_matter(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source, 12)
    ok("export", "--database-url", source, "--format", "markdown", "--owner", "alice", "-o", str(tmp_path / "n.zip"))
    notes = {r.note.id: r.note for r in body_of(source) if isinstance(r, NoteRecord) and r.owner == "alice"}
    with zipfile.ZipFile(tmp_path / "n.zip") as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(f"alice/{n.id}-{slug(n.title)}.md" for n in notes.values())
        assert slug("note 3 ✓") == "note-3" and slug("Été à Zürich!") == "ete-a-zurich" and slug("✓") == "note"
        for name in names:
            text = archive.read(name).decode()
            _, front, body = text.split("---\n", 2)
            meta = yaml.safe_load(front)
            note = notes[meta["id"]]
            assert meta["title"] == note.title and meta["tags"] == list(note.tags)
            assert [meta["priority"], meta["created_by"], meta["version"]] == [
                note.priority, note.created_by, note.version]
            assert str(meta["created_at"]).startswith(note.created_at.strftime("%Y-%m-%d"))
            assert body == "\n" + note.description + ("\n" if note.description else "")
    issue(source, "bob")  # a token, which a Markdown export leaves out: so does the line that says what it holds
    whole = run("export", "--database-url", source, "--format", "markdown", "-o", str(tmp_path / "all.zip"))
    assert whole.stderr == (f"exported 12 notes of 3 owners as Markdown (not the trash, the revisions or the tokens)"
                            f" to {tmp_path / 'all.zip'}\n")
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert len(archive.namelist()) == 12 and {name.split("/")[0] for name in archive.namelist()} == {
            "alice", "bob", "local"}


def test_an_import_from_a_file_that_is_not_there_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new.db"
    done = run("import", "--database-url", f"sqlite:///{target}", "--input", str(tmp_path / "missing.ndjson"))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"notes-api: error: there is no file {tmp_path / 'missing.ndjson'}: give --input a"
                                   " notes file made by `notes-api export`, or leave it out to read standard input")
    assert not target.exists()  # not even migrated


def test_a_file_that_is_no_notes_file_makes_no_store_and_a_failed_copy_says_what_it_left(tmp_path: Path) -> None:
    """A README given to import is refused before any store is made. A copy that fails into a
    SQLite file it made leaves that file, migrated and empty, and says so: removing it could
    remove a store that another process (a server) opened meanwhile."""
    readme = Path(__file__).parents[2] / "README.md"
    target = tmp_path / "new.db"
    done = run("import", "--database-url", f"sqlite:///{target}", "--input", str(readme))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "notes-api: error: line 1: is not the header of a notes file, so this is no notes file (one made by"
        ' `notes-api export` or GET /export begins with {"kind": "header", "format": "notes", ...}); nothing was'
        " imported")
    assert sorted(tmp_path.iterdir()) == []
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source, 10)
    with sqlite3.connect(tmp_path / "laptop.db") as db:  # SQLite lets a column hold any type
        db.execute("UPDATE notes SET created_at = 'yesterday' WHERE id = 3")
    db.close()
    done = run("copy", "--from", source, "--to", f"sqlite:///{target}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1:] == [  # one line (there were two, which seemed to disagree)
        "notes-api: error: copy failed (TypeError: unsupported type for timedelta microseconds component: str);"
        f" nothing was written to sqlite:///{target}; --log-level debug shows where; sqlite:///{target} was made"
        " for this copy and holds no notes: delete it, or run it again",
    ]
    assert not [record for record in body_of(f"sqlite:///{target}") if isinstance(record, NoteRecord)]


def test_a_source_that_is_not_there_is_named_and_nothing_is_made(tmp_path: Path) -> None:
    missing, target = tmp_path / "laptpo.db", tmp_path / "server.db"
    for command, flag in ((("copy", "--from", f"sqlite:///{missing}", "--to", f"sqlite:///{target}"), "--from"),
                          (("export", "--database-url", f"sqlite:///{missing}"), "--database-url")):
        done = run(*command)
        assert done.returncode == 2
        assert done.stderr.strip() == (f"notes-api: error: there is no file {missing}: give {flag} the URL of a"
                                       " store made by `notes-api serve`")
    assert sorted(tmp_path.iterdir()) == []


def test_a_dash_is_standard_output_and_standard_input(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'laptop.db'}", f"sqlite:///{tmp_path / 'server.db'}"
    fill(source, 30)
    exported = run("export", "--database-url", source, "--output", "-")
    assert exported.returncode == 0 and exported.stdout.startswith('{"kind":"header"')
    imported = subprocess.run([sys.executable, "-m", "app", "import", "--database-url", target, "--input", "-"],
                              input=exported.stdout, capture_output=True, text=True, env=_environment(None),
                              timeout=60, check=False)
    assert imported.returncode == 0, imported.stderr
    assert body_of(target) == body_of(source) and not (Path.cwd() / "-").exists()


def test_an_export_writes_through_a_link_into_a_pipe_and_over_a_file_keeping_its_mode(tmp_path: Path) -> None:
    """What --output names is written, not replaced: the file a symbolic link names (the link
    stays), a named pipe as it is (the reader gets the file), a file with the mode it had."""
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source, 3)
    kept = tmp_path / "kept.ndjson"
    kept.write_text("an older export")
    kept.chmod(0o640)
    link = tmp_path / "link"
    link.symlink_to(kept)
    assert run("export", "--database-url", source, "-o", str(link)).returncode == 0
    assert link.is_symlink() and kept.read_text().startswith('{"kind":"header"')
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with subprocess.Popen(["cat", str(pipe)], stdout=subprocess.PIPE) as reader:
        done = run("export", "--database-url", source, "-o", str(pipe))
        read = reader.communicate(timeout=30)[0]
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert read.splitlines()[1:-1] == kept.read_bytes().splitlines()[1:-1]  # (the header and end carry the time)
    new = tmp_path / "new.ndjson"
    assert run("export", "--database-url", source, "-o", str(new)).returncode == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o600  # every owner's notes, and the tokens' hashes
    into_a_pipe = subprocess.run(  # /dev/stdout is a link into /proc, to a pipe here
        [sys.executable, "-m", "app", "export", "--database-url", source, "-o", "/dev/stdout"],
        capture_output=True, env=_environment(None), timeout=60, check=False)
    assert into_a_pipe.returncode == 0 and into_a_pipe.stdout.startswith(b'{"kind":"header"'), into_a_pipe.stderr
    refused = run("export", "--database-url", source, "-o", str(tmp_path))
    assert refused.returncode != 0
    assert refused.stderr == f"notes-api: error: {tmp_path} is a directory: give --output a file's name\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export-")] == []


def test_an_output_that_cannot_be_written_is_one_line_naming_why_before_the_store_is_read(tmp_path: Path) -> None:
    """Not the error of the export's own file beside it (`.export-...`), nor a file made
    elsewhere: --output names a file in a directory that is missing, read-only, or a file; or
    nothing at all."""
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source, 3)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "shut").mkdir()
    cases = {
        str(tmp_path / "missing" / "x.ndjson"):
            f"the directory {tmp_path / 'missing'} of --output {tmp_path / 'missing' / 'x.ndjson'} does not exist:"
            " create it first",
        str(tmp_path / "a-file" / "x.ndjson"):
            f"cannot write {tmp_path / 'a-file' / 'x.ndjson'}: a part of {tmp_path / 'a-file'} is a file, not a"
            " directory",
        "": "--output is empty: give it a file's name, or - for standard output",
        f"{tmp_path / 'new'}/": f"{tmp_path / 'new'}/ names a directory, not a file: give --output a file's name",
        f"{tmp_path / 'new'}/.": f"{tmp_path / 'new'}/. names a directory, not a file: give --output a file's name",
        f"{tmp_path / 'laptop.db'}/.":  # once: the store replaced by its export
            f"--output {tmp_path / 'laptop.db'}/. is the store being exported (or its -wal or -shm): give another file",
        f"{tmp_path / 'a-file'}/..":
            f"{tmp_path / 'a-file'}/.. names a directory, not a file: give --output a file's name",
        str(tmp_path / "laptop.db"):
            f"--output {tmp_path / 'laptop.db'} is the store being exported (or its -wal or -shm): give another file",
        f"{tmp_path}/./laptop.db-wal":
            f"--output {tmp_path}/./laptop.db-wal is the store being exported (or its -wal or -shm): give another file",
        str(tmp_path / "shut" / "x.ndjson"):
            f"cannot write {tmp_path / 'shut' / 'x.ndjson'}: this user may not create files in {tmp_path / 'shut'};"
            " give --output a file in a directory it may write",
    }
    before, store = sorted(tmp_path.parent.iterdir()), (tmp_path / "laptop.db").read_bytes()
    with read_only(tmp_path / "shut"):
        for output, line in cases.items():
            for kind in ("jsonl", "markdown"):
                refused = run("export", "--database-url", source, "--format", kind, "-o", output)
                assert (refused.returncode, refused.stderr) == (1, f"notes-api: error: {line}\n"), output
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith(".export-")) == []
    assert sorted(tmp_path.parent.iterdir()) == before  # nothing made beside the working directory's
    assert (tmp_path / "laptop.db").read_bytes() == store and not (tmp_path / "new").exists()


def test_an_import_or_a_copy_into_a_directory_is_told_as_such(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source, 3)
    exported = tmp_path / "notes.ndjson"
    ok("export", "--database-url", source, "-o", str(exported))
    directory = tmp_path / "server.db"
    directory.mkdir()
    line = f"notes-api: error: {directory} is a directory: name the store's file, e.g. sqlite:///{directory}/notes.db\n"
    for command in (("import", "--database-url", f"sqlite:///{directory}", "-i", str(exported)),
                    ("copy", "--from", source, "--to", f"sqlite:///{directory}")):
        done = run(*command)
        assert (done.returncode, done.stderr) == (1, line), command
    assert list(directory.iterdir()) == []


def test_an_import_that_runs_out_of_disk_writes_nothing(tmp_path: Path) -> None:
    """SQLite rolls the transaction back by itself when a write fails for want of space; the
    batches of notes still queued then committed one by one, outside it (a store holding 4,000
    of 300,000 notes, whose owner it lacked). A file size limit (RLIMIT_FSIZE) stands in for a
    full disk."""
    source, target = f"sqlite:///{tmp_path / 'laptop.db'}", tmp_path / "small.db"
    fill(source, 12_000)
    exported = tmp_path / "notes.ndjson"
    ok("export", "--database-url", source, "-o", str(exported))
    limit = 3 << 19  # bytes: the store's files fill some batches after the first

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # (Python ignores SIGXFSZ: writes fail)

    done = subprocess.run(
        [sys.executable, "-m", "app", "import", "--database-url", f"sqlite:///{target}", "-i", str(exported)],
        capture_output=True, text=True, env=_environment(None), timeout=120, check=False, preexec_fn=small_disk,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("notes-api: error: ") and "Traceback" not in done.stderr, done.stderr
    with closing(sqlite3.connect(target)) as db:
        assert db.execute("SELECT count(*) FROM notes").fetchone() == (0,)
        assert db.execute("SELECT name FROM owners").fetchall() == [("local",)]


async def test_ctrl_c_during_an_account_command_is_one_line(tmp_path: Path, postgres_url: str) -> None:
    """`notes move`, stopped once it has begun and before it can end (this test holds a lock on the
    notes): it printed a 54-line traceback ending in KeyboardInterrupt."""
    await asyncio.to_thread(fill, postgres_url, 30)
    before = await asyncio.to_thread(body_of, postgres_url)
    code, err = await interrupted_while_it_waits_for_the_notes(
        postgres_url, "moving the notes of alice to bob", "notes", "move", "--from", "alice", "--to", "bob",
        "--database-url", postgres_url, "--log-level", "debug",
    )
    assert code == 130, err
    assert err.decode() == "notes-api: error: interrupted\n"
    assert await asyncio.to_thread(body_of, postgres_url) == before


@pytest.mark.parametrize("given", [b"hello\n", b"", b"x" * (65 << 20)],
                         ids=["no header", "empty", "a line without end"])
def test_standard_input_that_is_no_notes_file_makes_no_store(given: bytes, tmp_path: Path) -> None:
    """As for --input FILE: the first line is read and checked before any store is made. A line
    without end once grew in memory for as long as the input lasted (/dev/zero)."""
    target = tmp_path / "new.db"
    done = subprocess.run([sys.executable, "-m", "app", "import", "--database-url", f"sqlite:///{target}"],
                          input=given, capture_output=True, env=_environment(None), timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.decode().startswith("notes-api: error: line 1: ") and len(done.stderr.splitlines()) == 1
    assert not target.exists()


def test_an_export_that_cannot_write_or_read_names_what(tmp_path: Path) -> None:
    """It said '[Errno 28] No space left on device', naming nothing, and 'disk I/O error' for a
    store's URL that names a directory."""
    source = f"sqlite:///{tmp_path / 'laptop.db'}"
    fill(source, 3)
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "app", "export", "--database-url", source], stdout=full,
                              stderr=subprocess.PIPE, text=True, env=_environment(None), timeout=60, check=False)
    assert (done.returncode, done.stderr) == (1, "notes-api: error: cannot write standard output: No space left on"
                                                 " device; standard output holds a part of the export\n")
    done = run("export", "--database-url", f"sqlite:///{tmp_path}")
    assert (done.returncode, done.stderr) == (2, f"notes-api: error: {tmp_path} is a directory: give --database-url"
                                                 " the URL of a store's file, made by `notes-api serve`\n")


async def interrupted_while_it_waits_for_the_notes(
    postgres_url: str, begun: str, *command: str
) -> tuple[int | None, bytes]:
    """`python -m app COMMAND`, given Ctrl-C once its standard error says `begun`: it cannot end
    meanwhile, since this test holds a lock on the notes that no writer gets past. Its exit code
    and the rest of its standard error."""
    reader = await asyncpg.connect(postgres_url)
    try:
        async with reader.transaction():
            await reader.execute("LOCK TABLE notes IN SHARE MODE")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app", *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=_environment(None), preexec_fn=interruptible)
            assert process.stderr is not None
            while begun not in (said := await asyncio.wait_for(process.stderr.readline(), 30)).decode():
                assert said, f"it ended before it said {begun!r}"  # (each line as it is written)
            process.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await reader.close()
    return process.returncode, err


def test_a_copy_takes_its_stores_from_the_environment(tmp_path: Path) -> None:
    """So that a password in a URL stays out of `ps` (the command line is visible to every user of
    the machine), as serve's DATABASE_URL does."""
    source, target = f"sqlite:///{tmp_path / 'laptop.db'}", f"sqlite:///{tmp_path / 'copy.db'}"
    fill(source, 3)
    missing = run("copy", env={"NOTES_COPY_FROM": source})
    assert (missing.returncode, missing.stderr) == (2, "notes-api: error: give --to URL, or NOTES_COPY_TO (a password"
                                                       " in it then stays out of `ps`)\n")
    done = run("copy", env={"NOTES_COPY_FROM": source, "NOTES_COPY_TO": target})
    assert done.returncode == 0, done.stderr
    assert body_of(target) == body_of(source)


def test_a_copy_onto_its_own_source_is_refused_before_either_is_touched(tmp_path: Path) -> None:
    """It ended in a conflict, or with --on-conflict skip in 'checksums match'."""
    source = tmp_path / "laptop.db"
    fill(f"sqlite:///{source}", 3)
    before = source.read_bytes()
    line = "notes-api: error: --from and --to name the same store: a copy needs another one to fill\n"
    for target in (f"sqlite:///{source}", f"sqlite:///{tmp_path}/../{tmp_path.name}/laptop.db"):
        done = run("copy", "--from", f"sqlite:///{source}", "--to", target, "--on-conflict", "skip")
        assert (done.returncode, done.stderr) == (2, line), target
    (tmp_path / "hard.db").hardlink_to(source)
    done = run("copy", "--from", f"sqlite:///{source}", "--to", f"sqlite:///{tmp_path / 'hard.db'}")
    assert (done.returncode, done.stderr) == (2, line)
    for one, other in (("postgresql://u:pw@db.example/notes", "postgresql://v@db.example:5432/notes"),):
        done = run("copy", "--from", one, "--to", other)  # told before any connection is tried
        assert (done.returncode, done.stderr) == (2, line)
    assert source.read_bytes() == before
    # Not refused where it may be two stores: each names its database by its user, or a host is one of a list
    # (nothing listens on port 1: each fails, later, for want of a server)
    for one, other in (("postgresql://alice@127.0.0.1:1/", "postgresql://bob@127.0.0.1:1/"),
                       ("postgresql://u@127.0.0.1:1,127.0.0.2:1/notes", "postgresql://u@127.0.0.1:1/notes")):
        done = run("copy", "--from", one, "--to", other)
        assert done.returncode == 1 and "nothing is listening" in done.stderr, done.stderr
