from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_database, sqlite_copy
from tests.e2e import fork_server

# Another process: writes in a transaction, in rollback-journal mode, more than its page cache
# holds, so that its changes reach the file before it commits; says so, and waits to be killed.
HALF_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=DELETE")
db.execute("PRAGMA cache_size=10")
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE half_written (data BLOB)")
db.executemany("INSERT INTO half_written VALUES (randomblob(4000))", [()] * 500)
print("written", flush=True)
sys.stdin.readline()
"""


def pytest_sessionfinish() -> None:
    fork_server.stop()


def _sql_store(request: pytest.FixtureRequest, tmp_path: Path, kind: str, *, migrated: bool) -> Iterator[str]:
    if kind == "sqlite":
        path = tmp_path / "notes.db"
        yield sqlite_copy(request.getfixturevalue("sqlite_template"), path) if migrated else f"sqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template") if migrated else None
    with postgres_database(request.getfixturevalue("postgres_server_url"), "notes_e2e", template) as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new store at this code's schema, as a server that ran before leaves it: a copy of a
    migrated template, so that a server starts on it without its migration child (a second of
    CPU each, which the suite would pay a hundred times). Tests of migrating at start-up take
    `empty_sql_database_url`."""
    if request.param == "memory":
        yield "memory://"
    else:
        yield from _sql_store(request, tmp_path, request.param, migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """As `any_database_url`, on the two SQL stores."""
    yield from _sql_store(request, tmp_path, request.param, migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_sql_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new store with no schema at all: the server migrates it at start-up."""
    yield from _sql_store(request, tmp_path, request.param, migrated=False)


@pytest.fixture
def hot_journal_store(tmp_path: Path, sqlite_template: Path) -> Path:
    """A migrated SQLite file whose writer was killed mid-transaction, after its changes reached
    the file: a hot journal beside it, which the next read-write opening rolls back."""
    path = tmp_path / "notes.db"
    sqlite_copy(sqlite_template, path)
    with subprocess.Popen([sys.executable, "-c", HALF_WRITER, str(path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as writer:
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "written\n"
        finally:
            writer.kill()  # mid-transaction (leaving the block waits for it)
    assert Path(f"{path}-journal").stat().st_size > 0  # hot: its writer is gone mid-transaction
    return path
