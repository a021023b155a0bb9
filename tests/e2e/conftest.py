from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_database, sqlite_copy


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
