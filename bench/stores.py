"""The benchmark's databases: made fresh, seeded in bulk, and removed whatever happens.

SQL stores are migrated by the service's own `migrate` command, then filled directly (COPY on
PostgreSQL, one executemany transaction on SQLite, whose triggers fill note_tags and the FTS
index). memory:// lives inside the server, so it is filled over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import orjson
import sqlalchemy as sa

from app.domain.model import title_sort_key
from app.domain.timestamps import parse_timestamp
from app.settings import sqlite_path
from bench import data
from bench.processes import ROOT, run_quietly

T = TypeVar("T")
JSON = {"Content-Type": "application/json"}
SortRow = tuple[int, datetime, datetime, int, str]  # id, created_at, updated_at, priority, key


@dataclass(frozen=True)
class Seeded:
    """A filled store: how many notes, and (when asked for) every note's sort keys."""

    count: int
    rows: list[SortRow]


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _sort_row(note_id: int, note: data.NoteData) -> SortRow:
    return (note_id, note.created_at, note.updated_at, note.priority, title_sort_key(note.title))


class Databases:
    """Creates SQLite files in a temporary directory and `notes_bench_*` PostgreSQL databases."""

    def __init__(self, postgres_server: str) -> None:
        self._server = postgres_server
        self._dir = tempfile.TemporaryDirectory(prefix="notes_bench_")
        self._postgres: list[str] = []

    def sqlite(self, label: str) -> str:
        return f"sqlite:///{Path(self._dir.name, label + '.db')}"

    def postgres(self, label: str) -> str:
        name = f"notes_bench_{os.getpid()}_{label}"
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        self._postgres.append(name)
        return sa.make_url(self._server).set(database=name).render_as_string(hide_password=False)

    def postgres_version(self) -> str:
        """The server's version; raises RuntimeError saying why when it cannot be reached."""
        try:
            return asyncio.run(self._admin("SHOW server_version"))
        except (OSError, asyncpg.PostgresError) as error:
            raise RuntimeError(f"PostgreSQL at {self._server} is unreachable: {error}") from None

    def drop(self, url: str) -> None:
        """Remove one store made here (early, to give its disk space back)."""
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                Path(sqlite_path(url) + suffix).unlink(missing_ok=True)
            return
        name = sa.make_url(url).database
        if name in self._postgres:
            self._drop_postgres(name)
            self._postgres.remove(name)

    def drop_all(self) -> None:
        for name in self._postgres:
            self._drop_postgres(name)
        self._postgres.clear()
        self._dir.cleanup()

    def _drop_postgres(self, name: str) -> None:
        try:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except (OSError, asyncpg.PostgresError) as error:
            print(f"warning: could not drop database {name}: {error}")

    async def _admin(self, statement: str) -> Any:
        connection = await asyncpg.connect(self._server, timeout=5)
        try:
            return await connection.fetchval(statement)
        finally:
            await connection.close()


def _noting(notes: Iterator[data.NoteData], rows: list[SortRow] | None) -> Iterator[data.NoteData]:
    """The notes, appending each one's sort keys to `rows` on the way (ids count from 1)."""
    for note_id, note in enumerate(notes, start=1):
        if rows is not None:
            rows.append(_sort_row(note_id, note))
        yield note


def migrate(url: str, root: Path = ROOT) -> None:
    """Migrate with the migrations of the code in `root` (a --baseline's, for its own store)."""
    run_quietly(["-m", "app", "migrate", "--database-url", url], root)


def seed_sql(url: str, count: int, *, keep_rows: bool, root: Path = ROOT) -> Seeded:
    """Migrate (with the code in `root`) and fill a fresh SQLite or PostgreSQL database; ids come
    out as 1..count, the same notes every time."""
    migrate(url, root)
    rows: list[SortRow] = []
    notes = _noting(data.notes(count), rows if keep_rows else None)
    if url.startswith("sqlite"):
        last = _fill_sqlite(sqlite_path(url), notes)
    else:
        last = asyncio.run(_fill_postgres(url, notes))
    if last != count:
        raise RuntimeError(f"seeding {url} gave ids up to {last}, not {count}")
    if root == ROOT:
        _log_seeded(url)
    return Seeded(count, rows)


_CONTENT = "title, description, priority, tags, created_by, created_at, updated_at"


def _log_seeded(url: str) -> None:
    """The seeded notes' first revisions in PostgreSQL's change log, as migration 0004 writes them
    for the notes it finds: the feed starts with the whole store. (SQLite's log triggers wrote
    them as the notes went in.)"""
    if url.startswith("sqlite"):
        return

    async def postgres() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(
                f"INSERT INTO changes (key, owner, note_id, version, op, at, {_CONTENT}) SELECT pg_current_xact_id(),"
                f" owner, id, version, 'put', updated_at, {_CONTENT} FROM notes ORDER BY id"
            )
        finally:
            await connection.close()

    asyncio.run(postgres())


def share_out(url: str, owners: int) -> None:
    """Give the notes of a seeded store to `owners` owners, o0 to o{owners - 1}, in turn by id."""
    names = [f"o{i}" for i in range(owners)]
    if url.startswith("sqlite"):
        db = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            db.execute("BEGIN")
            db.executemany("INSERT INTO owners (name) VALUES (?)", [(name,) for name in names])
            db.execute("UPDATE notes SET owner = 'o' || (id % ?)", (owners,))  # tags follow (trigger)
            db.execute("COMMIT")
            db.execute("ANALYZE")
        finally:
            db.close()
        return

    async def postgres() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.executemany("INSERT INTO owners (name) VALUES ($1)", [(name,) for name in names])
            await connection.execute("UPDATE notes SET owner = 'o' || (id % $1)", owners)
            await connection.execute("VACUUM ANALYZE notes")
        finally:
            await connection.close()

    asyncio.run(postgres())


def issue_token(url: str, owner: str) -> str:
    """A write token of `owner`, by the service's own command line."""
    done = subprocess.run(
        [sys.executable, "-m", "app", "tokens", "issue", owner, "--label", "bench", "--database-url", url],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cannot issue a token: {done.stderr.strip()}")
    return done.stdout.strip()


def _fill_sqlite(path: str, notes: Iterator[data.NoteData]) -> int:
    marks = ", ".join("?" * len(data.COLUMNS))
    insert = f"INSERT INTO notes ({', '.join(data.COLUMNS)}) VALUES ({marks})"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA cache_size=-524288")  # 512 MiB: the indexes' pages stay in memory
        db.execute("BEGIN")
        db.executemany(insert, (note.sqlite_row() for note in notes))
        db.execute("COMMIT")
        return db.execute("SELECT coalesce(max(id), 0) FROM notes").fetchone()[0]
    finally:
        db.close()


async def _fill_postgres(url: str, notes: Iterator[data.NoteData]) -> int:
    connection = await asyncpg.connect(url)
    try:
        for chunk in chunks(notes, 20_000):
            records = [note.postgres_record() for note in chunk]
            await connection.copy_records_to_table("notes", records=records, columns=data.COLUMNS)
        await connection.execute("VACUUM ANALYZE notes")  # what autovacuum would do, now
        return await connection.fetchval("SELECT coalesce(max(id), 0) FROM notes")
    finally:
        await connection.close()


async def seed_http(base_url: str, count: int, connections: int = 32) -> Seeded:
    """Fill a running memory:// service by POSTing `count` notes; keeps what it answered."""
    bodies = iter(data.notes(count))
    rows: list[SortRow] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        for note in bodies:  # the shared iterator hands each note to one worker
            body = orjson.dumps(note.body())
            async with session.post("/notes", data=body, headers=JSON) as response:
                if response.status != 201:
                    raise RuntimeError(f"seeding: POST /notes gave {response.status}")
                doc = orjson.loads(await response.read())
            rows.append((
                doc["id"], parse_timestamp(doc["created_at"]), parse_timestamp(doc["updated_at"]),
                doc["priority"], title_sort_key(doc["title"]),
            ))

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return Seeded(count, sorted(rows))
