from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_database


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, unmigrated store: the server migrates it at start-up."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'notes.db'}"
    else:
        with postgres_database(request.getfixturevalue("postgres_server_url"), "notes_e2e") as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'notes.db'}"
    else:
        with postgres_database(request.getfixturevalue("postgres_server_url"), "notes_e2e") as url:
            yield url
