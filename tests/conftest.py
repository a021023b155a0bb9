"""Fixtures shared by every suite: one storage fixture parametrized over all three adapters."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from app.adapters import Storage
from app.adapters.migrate import migrate
from app.container import Container, build_container, http_app
from app.settings import Settings
from tests.databases import database_name, in_thread, postgres_database, postgres_server, sqlite_copy
from tests.http.spec_check import SpecChecker

BACKENDS = ("memory", "sqlite", "postgresql")


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: `-p no:xdist` runs without it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one test process more than there are cores. The end-to-end tests spend much of
    their time waiting on the processes they start and on PostgreSQL, so one process per core left
    a fifth of two cores idle (196 s against 207 to 222 s for the suite here; two more processes
    than cores was slower, at 229 s). PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set; the
    cores are those this process may run on (taskset, a container's cpuset)."""
    if (given := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")) is not None:
        return int(given)
    return len(os.sched_getaffinity(0)) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, then the other end-to-end ones, then the rest. pytest-xdist gives
    each worker a contiguous share of this order, and an idle worker takes tests only from the end
    of a busy one's share, never the last two: so a long test started late would leave the other
    core idle at the end of the run."""

    def rank(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("longest") else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per test process: a test's store is a copy of it, made in a
    millisecond, where migrating takes a tenth of a second here and a server's migration child a
    second. (Migrations themselves are tested on stores made empty: tests/e2e/test_migrations.py.)"""
    path = tmp_path_factory.mktemp("template") / "notes.db"
    in_thread(migrate, f"sqlite:///{path}", "sqlite")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server_url: str) -> Iterator[str]:
    """The name of a database migrated once per test process, the template of migrated ones
    (`CREATE DATABASE ... TEMPLATE`). No one stays connected to it, as PostgreSQL requires."""
    with postgres_database(postgres_server_url, "notes_template") as url:
        in_thread(migrate, url, "postgresql")
        yield database_name(url)


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server_url: str) -> Iterator[str]:
    """One migrated database for the session; each test starts from empty tables."""
    with postgres_database(postgres_server_url) as url:
        in_thread(migrate, url, "postgresql")
        yield url


# The migrated database as it was made, with its ids counting from 1 again. A few rows (what most
# tests leave) are deleted: TRUNCATE's new files cost 50 ms here, which nearly every PostgreSQL
# test paid, where DELETE takes 2 ms. Many rows are truncated: deleted ones would slow the next
# tests' queries until autovacuum came by.
_TABLES = "notes, idempotency_records, tokens, changes, trash"
_DELETE = f"""
{"".join(f"DELETE FROM {table};" for table in _TABLES.split(", "))}
SELECT setval(sequence, 1, false)
  FROM unnest(ARRAY['notes_id_seq', 'tokens_id_seq', 'changes_position_seq', 'trash_id_seq']::regclass[]) AS sequence;
"""
_TRUNCATE = f"TRUNCATE {_TABLES} RESTART IDENTITY;"
_RESET = """
DELETE FROM owners WHERE name <> 'local';
UPDATE change_log SET horizon_key = '0', horizon_position = 0, examined = 0, revisions_examined = 0;
"""
_FEW_ROWS = 1000


async def _empty(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetchval(
            "SELECT (SELECT count(*) FROM notes) + (SELECT count(*) FROM changes) + (SELECT count(*) FROM trash)"
        )
        await connection.execute((_DELETE if rows <= _FEW_ROWS else _TRUNCATE) + _RESET)  # one transaction
    finally:
        await connection.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated store of each kind."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path / "notes.db")
    url = request.getfixturevalue("migrated_postgres")
    await _empty(url)
    return url


def settings_for(database_url: str, **overrides: object) -> Settings:
    # auth local: what `make run` on a laptop does (auth auto on loopback); auth tests ask for required
    values: dict[str, object] = {"db_timeout": 5.0, "pool_size": 4, "auth": "local", **overrides}
    return Settings(database_url=database_url, **values)  # type: ignore[arg-type]


@pytest.fixture
async def container(database_url: str) -> AsyncIterator[Container]:
    container = build_container(settings_for(database_url))
    yield container
    await container.shutdown_resources()


@pytest.fixture
async def storage(container: Container) -> Storage:
    return await container.storage()


@pytest.fixture
def make_client(aiohttp_client) -> Iterator[Callable[..., Awaitable[TestClient]]]:
    """Clients of the whole application; every response they get is checked against the spec."""
    checkers: list[SpecChecker] = []

    async def make(database_url: str, **settings: object) -> TestClient:
        container = build_container(settings_for(database_url, **settings))
        checker = SpecChecker(container.http_settings())
        checkers.append(checker)
        return await aiohttp_client(http_app(container), middlewares=(checker.middleware,))

    yield make
    violations = [v for checker in checkers for v in checker.violations]
    assert not violations, "responses that break /openapi.json:\n" + "\n".join(violations)


@pytest.fixture
async def client(make_client, database_url: str) -> TestClient:
    """An HTTP client of the whole application, on each adapter."""
    return await make_client(database_url)
