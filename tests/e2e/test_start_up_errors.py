"""Start-up failures an operator can fix: one line naming the fix, a non-zero exit, no traceback.

Each through the real command line, in a real process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from app.settings import sqlite_path
from tests.databases import postgres_database, sqlite_copy
from tests.e2e.fake_postgres import password_refusing_server
from tests.e2e.processes import free_port, run

pytestmark = pytest.mark.slow

COMMANDS = [("serve",), ("serve", "--no-migrate"), ("serve", "--workers", "2"), ("migrate",)]


def start(command: tuple[str, ...], database_url: str) -> subprocess.CompletedProcess:
    """`command` on `database_url`, to its end: a server that starts after all is a failure."""
    port = ("--port", str(free_port())) if command[0] == "serve" else ()
    return run(*command, "--database-url", database_url, *port, timeout=60)


def only_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_stops_the_server_with_one_line(workers: str, tmp_path: Path, sqlite_template: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # listening, without SO_REUSEPORT
        port = taken.getsockname()[1]
        result = run("serve", "--database-url", sqlite_copy(sqlite_template, tmp_path / "notes.db"),
                     "--port", str(port), "--workers", workers, "--log-level", "warning")
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: cannot listen on 127.0.0.1:{port}: address already in use:"
        " another process listens there: stop it, or choose another --port")


@pytest.fixture
def postgres(postgres_server_url: str) -> tuple[str, int, str]:
    """Host, port and user of the test server."""
    parts = urlsplit(postgres_server_url)
    return parts.hostname or "localhost", parts.port or 5432, parts.username or "postgres"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_missing_database_is_named_with_the_command_that_creates_it(command, postgres) -> None:
    host, port, user = postgres
    name = f"notes_missing_{uuid.uuid4().hex[:8]}"
    result = start(command, f"postgresql://{user}@{host}:{port}/{name}")
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: database \"{name}\" does not exist on {host}:{port}:"
        f" create it with 'createdb -h {host} -p {port} -U {user} {name}'")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_missing_role_is_named_with_the_command_that_creates_it(command, postgres) -> None:
    host, port, _ = postgres
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    result = start(command, f"postgresql://{role}@{host}:{port}/postgres")
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: role \"{role}\" does not exist on {host}:{port}: create it as a"
        f" superuser with 'createuser -h {host} -p {port} --pwprompt {role}',"
        " or name another user in the database URL")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_nothing_listening_at_the_database_port_asks_whether_postgresql_runs(command) -> None:
    port = free_port()
    result = start(command, f"postgresql://postgres@127.0.0.1:{port}/notes")
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: nothing is listening at 127.0.0.1:{port}:"
        " is PostgreSQL running, and are host and port right?")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_refused_password_points_to_the_password_in_database_url(command) -> None:
    with password_refusing_server() as port:
        result = start(command, f"postgresql://postgres:wrong@127.0.0.1:{port}/notes")
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: PostgreSQL at 127.0.0.1:{port} refused the password of user"
        ' "postgres": check the password in the database URL')


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_missing_sqlite_directory_is_refused_and_not_created(command, tmp_path: Path) -> None:
    directory = tmp_path / "no" / "such" / "dir"
    result = start(command, f"sqlite:///{directory / 'notes.db'}")
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: the directory '{directory}' of the SQLite database does not exist:"
        " create it first")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_directory_where_the_sqlite_file_should_be_is_told_as_such(command, tmp_path: Path) -> None:
    """Not SQLite's or the migration's [Errno 21] Is a directory."""
    directory = tmp_path / "notes.db"
    directory.mkdir()
    result = start(command, f"sqlite:///{directory}")
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: {directory} is a directory: name the store's file, e.g. sqlite:///{directory}/notes.db")
    assert list(directory.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS[:3], ids=" ".join)
async def test_a_lock_on_the_schema_version_is_named_in_one_line(command, postgres_server_url, postgres_template):
    """Another session holds a lock that keeps the schema version from being read: the start ends
    after --db-timeout with one line that says where to look (it once said only "error: ")."""
    with postgres_database(postgres_server_url, "notes_e2e", postgres_template) as url:
        holder = await asyncpg.connect(url)
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
                result = await asyncio.to_thread(
                    run, *command, "--database-url", url, "--port", str(free_port()), "--db-timeout", "0.5")
                waiting = await holder.fetchval(  # the server ended the check's wait, not just the client
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'")
        finally:
            await holder.close()
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: {url} did not give its schema version within 0.5 s: does another session"
        " hold a lock on the table alembic_version? pg_locks shows it")
    assert waiting == 0


@pytest.mark.parametrize("command", COMMANDS[:3], ids=" ".join)
def test_a_lock_on_a_sqlite_store_is_named_in_one_line(command, tmp_path: Path, sqlite_template: Path) -> None:
    """Another process holds the SQLite file's lock past --db-timeout (it once took 5 s whatever
    the timeout, and said only "database is locked")."""
    path = tmp_path / "notes.db"
    url = sqlite_copy(sqlite_template, path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")  # kept from the first read until closed
        holder.execute("SELECT count(*) FROM notes").fetchall()
        result = run(*command, "--database-url", url, "--port", str(free_port()), "--db-timeout", "0.5")
    finally:
        holder.close()
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: {url} did not give its schema version within 0.5 s: does another process"
        f" hold a lock on it? 'fuser {path}' names the processes that have it open")


@pytest.mark.parametrize("command", [("serve", "--no-migrate"), ("users", "list"), ("export",)], ids=" ".join)
def test_a_hot_journal_is_named_with_the_command_that_rolls_it_back(command, hot_journal_store: Path) -> None:
    """A read-only look cannot roll back what a killed writer left; `migrate` can (and a plain
    serve does: tests/e2e/test_server_process.py)."""
    url = f"sqlite:///{hot_journal_store}"
    port = ("--port", str(free_port())) if command[0] == "serve" else ()
    result = run(*command, "--database-url", url, *port)
    assert result.returncode == 1
    assert only_line(result) == (
        f"notes-api: error: {url} holds a write that a process left half done when it stopped (a hot"
        f" journal): 'notes-api migrate --database-url {url}' rolls it back")
    assert run("migrate", "--database-url", url, "--log-level", "warning").returncode == 0
    assert run("users", "list", "--database-url", url).returncode == 0


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path`, a file or a directory, one this process may read but not write: its mode says so,
    or for root, whom no mode stops, the file system's immutable attribute."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"this file system keeps no immutable attribute: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture
def read_only_store(tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """The URL of a migrated SQLite file this process may read but not write."""
    path = tmp_path / "notes.db"
    url = sqlite_copy(sqlite_template, path)
    with read_only(path):
        yield url


def read_only_line(url: str) -> str:
    return (
        f"notes-api: error: the SQLite database {sqlite_path(url)} is read-only to this process: make the file,"
        " the -wal and -shm files beside it, and the directory that holds them writable by the user it runs as"
        " (on a file system mounted read-write), then run it again"
    )


@pytest.mark.parametrize("command", [("serve",), ("serve", "--workers", "2"), ("users", "add", "bob"),
                                     ("tokens", "issue", "local")], ids=" ".join)
def test_a_read_only_sqlite_store_is_named_with_the_fix(command, read_only_store: str) -> None:
    """A server on it once started, served reads and answered every write, and /readyz, 503
    "retry shortly" for ever: SQLite keeps the connection read-only even after the file becomes
    writable. A command that only reads it still works."""
    port = ("--port", str(free_port())) if command[0] == "serve" else ()
    result = run(*command, "--database-url", read_only_store, *port, "--log-level", "warning", timeout=60)
    assert result.returncode == 1
    assert only_line(result) == read_only_line(read_only_store)
    listed = run("users", "list", "--database-url", read_only_store)
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split() == ["local", "0", "0"], listed


@pytest.mark.parametrize("command", [("serve",), ("users", "add", "bob")], ids=" ".join)
@pytest.mark.parametrize("what", ["directory", "-shm file"])
def test_a_writable_file_in_a_read_only_directory_or_beside_a_read_only_shm_file_is_named_with_the_fix(
    command, what: str, tmp_path: Path, sqlite_template: Path,
) -> None:
    """SQLite keeps its -wal and -shm files beside the database: a directory that cannot hold
    them, or a -shm file left behind read-only (as a run refused for a read-only file leaves
    it), refuses writes as the file itself would. It once said "unable to open database file",
    or "attempt to write a readonly database" after the file was mended."""
    directory = tmp_path / "store"
    directory.mkdir()
    url = sqlite_copy(sqlite_template, directory / "notes.db")
    if what == "directory":
        assert not list(directory.glob("notes.db-*"))  # nothing SQLite needs is there already
        made_read_only = read_only(directory)
    else:
        shm = directory / "notes.db-shm"
        shm.write_bytes(bytes(32768))
        made_read_only = read_only(shm)
    port = ("--port", str(free_port())) if command[0] == "serve" else ()
    with made_read_only:
        result = run(*command, "--database-url", url, *port, "--log-level", "warning", timeout=60)
    assert result.returncode == 1
    assert only_line(result) == read_only_line(url)
    assert run("users", "add", "bob", "--database-url", url).returncode == 0  # mended: it writes


def test_a_copy_names_the_store_that_is_read_only(tmp_path: Path, sqlite_template: Path) -> None:
    """A copy reads one SQLite store and writes another: the line says which refused, the
    source (in a directory that cannot hold its -shm file) or the target."""
    (tmp_path / "locked").mkdir()
    source = sqlite_copy(sqlite_template, tmp_path / "locked" / "source.db")
    target = sqlite_copy(sqlite_template, tmp_path / "target.db")
    with read_only(tmp_path / "locked"):
        result = run("copy", "--from", source, "--to", f"sqlite:///{tmp_path / 'new.db'}")
    assert result.returncode == 1 and only_line(result) == read_only_line(source)
    with read_only(tmp_path / "target.db"):
        result = run("copy", "--from", sqlite_copy(sqlite_template, tmp_path / "plain.db"), "--to", target)
    assert result.returncode == 1 and result.stderr.splitlines()[-1] == read_only_line(target), result.stderr


OUT_OF_RANGE = [
    ("--db-timeout", "0", "--db-timeout must be a number of seconds above 0"),
    ("--db-timeout", "-1", "--db-timeout must be a number of seconds above 0"),
    ("--db-timeout", "nan", "--db-timeout must be a number of seconds above 0"),
    ("--db-timeout", "inf", "--db-timeout must be a number of seconds above 0"),
    ("--body-timeout", "inf", "--body-timeout must be a number of seconds above 0"),
    ("--workers", "0", "--workers must be at least 1"),
    ("--rate-limit", "0", "--rate-limit must be at least 1 request a second; leave it out for no limit"),
    ("--keep-revisions", "0", "--keep-revisions must be at least 1"),
    ("--port", "99999", "--port must be from 0 to 65535 (0 picks a free one), not 99999"),  # (it wrapped to 34463)
    ("--port", "-1", "--port must be from 0 to 65535 (0 picks a free one), not -1"),
    ("--max-body-bytes", "-1", "--max-body-bytes must be at least 1"),
    ("--max-import-bytes", "0", "--max-import-bytes must be at least 1"),
    ("--pool-size", "0", "--pool-size must be at least 1"),
]


@pytest.mark.parametrize(("flag", "value", "reason"), OUT_OF_RANGE, ids=[f"{f} {v}" for f, v, _ in OUT_OF_RANGE])
def test_a_number_out_of_range_is_one_line_and_changes_nothing(flag, value, reason, tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    result = run("serve", "--database-url", f"sqlite:///{path}", "--port", str(free_port()), flag, value)
    assert result.returncode == 2
    assert only_line(result) == f"notes-api: error: {reason}"
    assert not path.exists()


def test_migrate_without_a_database_says_there_is_nothing_to_migrate() -> None:
    result = run("migrate")
    assert result.returncode == 2
    assert only_line(result) == (
        "notes-api: error: nothing to migrate: memory:// keeps no schema;"
        " give --database-url or DATABASE_URL")


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("NOTES_WORKERS", "-3", "NOTES_WORKERS (the value of --workers) must be at least 1"),
    ("NOTES_PORT", "99999", "NOTES_PORT (the value of --port) must be from 0 to 65535 (0 picks a free one), not 99999"),
    ("NOTES_DB_TIMEOUT", "inf", "NOTES_DB_TIMEOUT (the value of --db-timeout) must be a number of seconds above 0"),
])
def test_a_value_out_of_range_from_the_environment_is_named_by_its_variable(
    variable: str, value: str, reason: str, tmp_path: Path
) -> None:
    """It was named by a flag the command line did not hold."""
    path = tmp_path / "notes.db"
    result = run("serve", "--database-url", f"sqlite:///{path}", env={variable: value})
    assert result.returncode == 2
    assert only_line(result) == f"notes-api: error: {reason}"
    assert not path.exists()
