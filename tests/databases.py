"""Where the tests find PostgreSQL, and how they make and drop their own databases.

Order: NOTES_TEST_POSTGRES_URL; else a testcontainers PostgreSQL where Docker works; else the
PostgreSQL tests are skipped with one line, except when CI is set, where that fails the run.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import sqlalchemy as sa

from app.adapters.migrate import MIGRATION_LOCK
from app.settings import sqlite_path

T = TypeVar("T")


def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking set-up (which may call asyncio.run) away from the test's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def _admin(server_url: str, statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(server_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    in_thread(asyncio.run, run())


def database_url(server_url: str, name: str) -> str:
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def postgres_database(server_url: str, prefix: str = "notes_test", template: str | None = None) -> Iterator[str]:
    """A new database on the server (empty, or a copy of the database named `template`),
    dropped afterwards whatever happens."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin(server_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield database_url(server_url, name)
    finally:
        _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(url: str) -> str:
    name = sa.make_url(url).database
    assert name is not None, url
    return name


def sqlite_copy(template: Path, path: Path) -> str:
    """The URL of a copy of the SQLite file `template` at `path`."""
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get("NOTES_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        container = _start_container()
    except Exception as error:  # no Docker engine, no image, no permission
        reason = f"no PostgreSQL: NOTES_TEST_POSTGRES_URL is unset and Docker failed ({type(error).__name__})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI requires PostgreSQL", pytrace=False)
        pytest.skip(reason)
    try:
        yield container.get_connection_url(driver=None)
    finally:
        container.stop()


def _docker_answers() -> bool:
    """A cheap look for a Docker engine, so that testcontainers is only tried where one runs."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True  # a remote engine: let testcontainers find out
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(2)
        try:
            probe.connect(host.removeprefix("unix://"))
        except OSError:
            return False
    return True


def _start_container() -> Any:
    if not _docker_answers():
        raise ConnectionError("no Docker engine answers")
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # older testcontainers keep it at testcontainers.postgres
        from testcontainers.postgres import PostgresContainer  # type: ignore[no-redef]
    return PostgresContainer("postgres:16-alpine").start()


async def owner_is_held(database_url: str, name: str) -> bool:
    """Whether another transaction holds the owner's row, so that `remove_owner`, which locks it
    FOR UPDATE before it counts the owner's notes, would wait for that transaction."""
    return await row_is_held(database_url, "SELECT 1 FROM owners WHERE name = $1", name)


async def row_is_held(database_url: str, select: str, *args: Any) -> bool:
    """Whether another transaction holds a row that `select` finds, so that a write of it would
    wait for that transaction (FOR UPDATE NOWAIT: the answer comes at once, from the lock itself)."""
    probe = await asyncpg.connect(database_url)
    try:
        async with probe.transaction():
            await probe.fetchval(f"{select} FOR UPDATE NOWAIT", *args)
        return False
    except asyncpg.LockNotAvailableError:
        return True
    finally:
        await probe.close()


@contextmanager
def migration_lock_held(url: str) -> Iterator[threading.Event]:
    """The lock a migration of this store takes first (SQLite: a flock on the file; PostgreSQL:
    the advisory lock), held by this process until the event is set or the block ends: a
    migration waits for it, in plain view."""
    release = threading.Event()
    if url.startswith("sqlite"):
        fd = os.open(sqlite_path(url), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield release
        finally:
            os.close(fd)
        return
    locked = threading.Event()

    async def hold() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            locked.set()
            await asyncio.to_thread(release.wait)
        finally:
            await connection.close()

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert locked.wait(30), "the advisory lock was not granted"
        yield release
    finally:
        release.set()
        holder.join()
