"""The migrations build exactly the schema described once in app/adapters/schema.py, and running
them again changes nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from app.adapters.migrate import SCRIPTS, migrate
from app.adapters.schema import metadata
from app.domain.errors import StorageUnavailableError
from app.settings import sqlite_path
from tests.databases import in_thread, migration_lock_held, postgres_database
from tests.e2e.processes import run


def _differences(connection: sa.Connection) -> list:
    dialect = connection.dialect.name

    def include(obj, name, type_, reflected, compare_to) -> bool:
        # SQLite's tag table and full-text index are built by hand beside the described schema,
        # and the described GIN indexes exist on PostgreSQL only (Index.ddl_if).
        # Some columns of the history exist on PostgreSQL only (`info["only_on"]`).
        only_on = getattr(getattr(obj, "_ddl_if", None), "dialect", None) or getattr(obj, "info", {}).get("only_on")
        return not (type_ == "table" and reflected and compare_to is None) and only_on in (None, dialect)

    context = MigrationContext.configure(connection, opts={"include_object": include})
    return compare_metadata(context, metadata)


def test_sqlite_migrations_match_the_described_schema_and_rerun_as_no_ops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    migrate(url, "sqlite")
    migrate(url, "sqlite")  # a second run finds nothing to do
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        assert _differences(connection) == []
    engine.dispose()


def test_postgresql_migrations_match_the_described_schema_and_rerun_as_no_ops(postgres_server_url: str) -> None:
    async def differences(url: str) -> list:
        engine = create_async_engine(sa.make_url(url).set(drivername="postgresql+asyncpg"))
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(_differences)
        finally:
            await engine.dispose()

    with postgres_database(postgres_server_url, "notes_migrations") as url:
        in_thread(migrate, url, "postgresql")
        in_thread(migrate, url, "postgresql")
        assert in_thread(asyncio.run, differences(url)) == []


def test_the_cursor_secret_is_made_once_per_store_and_kept(tmp_path) -> None:
    """Every process of one deployment reads the same secret; another store has another."""
    secrets = []
    for name in ("a.db", "b.db"):
        url = f"sqlite:///{tmp_path / name}"
        migrate(url, "sqlite")
        migrate(url, "sqlite")  # a second run keeps it
        with sqlite3.connect(tmp_path / name) as db:
            secrets += db.execute("SELECT value FROM store_settings WHERE name = 'cursor_secret'").fetchall()
    assert len(secrets) == 2 and secrets[0] != secrets[1] and len(secrets[0][0]) >= 32


def _sqlite_at(path: Path, revision: str) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
    engine.dispose()


def test_a_sqlite_migration_that_fails_half_way_leaves_the_schema_as_it_was(tmp_path: Path) -> None:
    """0005 drops the log's triggers first: a failure after that must not leave a store whose
    writes go unlogged. (Here the second trigger is missing, so the second statement fails.)"""
    path = tmp_path / "notes.db"
    _sqlite_at(path, "0004")
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER notes_log_au")
    db.close()
    with pytest.raises(StorageUnavailableError, match="no such trigger"):
        migrate(f"sqlite:///{path}", "sqlite")
    with sqlite3.connect(path) as db:
        triggers = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'notes_log_%'")]
        version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    db.close()
    assert triggers == ["notes_log_ai"] and version == [("0004",)]


def test_sqlite_log_positions_given_before_0005_are_never_given_again(tmp_path: Path) -> None:
    """A store whose newest log rows were deleted under AUTOINCREMENT (a purge) keeps their
    positions taken: the next change comes after them, where a follower's token points."""
    path = tmp_path / "notes.db"
    _sqlite_at(path, "0004")
    insert = ("INSERT INTO notes (title, description, priority, tags, created_at, updated_at, version,"
              " title_key, search_text) VALUES ('t', '', 1, '[]', 0, 0, 1, 't', 't')")
    with sqlite3.connect(path) as db:
        for _ in range(3):
            db.execute(insert)
        db.execute("DELETE FROM changes WHERE position > 1")  # as a purge of the newest notes did
        (given,) = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    db.close()
    migrate(f"sqlite:///{path}", "sqlite")
    with sqlite3.connect(path) as db:
        db.execute(insert)
        newest = db.execute("SELECT position, owner FROM changes ORDER BY position DESC LIMIT 2").fetchall()
    db.close()
    assert given == 3 and newest == [(4, "local"), (3, "")]  # the marker holds position 3


def test_a_migration_gives_up_on_a_lock_held_past_its_lock_timeout_and_changes_nothing(
    empty_sql_database_url: str, tmp_path: Path
) -> None:
    """Another migration holds the store's migration lock (on PostgreSQL, a long transaction on a
    table the migration alters would make it wait the same way, with every query behind it)."""
    url = empty_sql_database_url
    with migration_lock_held(url):
        done = run("migrate", "--database-url", url, "--lock-timeout", "0.2")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"notes-api: error: another process held a lock on {url} for 0.2 s (another migration, or a long"
        " transaction such as an import or an export): nothing was migrated; run it again once that ends,"
        " or wait longer with --lock-timeout"
    )
    assert "Traceback" not in done.stderr
    assert _tables(url) == []
    assert run("migrate", "--database-url", url).returncode == 0  # once it is free


def _tables(url: str) -> list[str]:
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(sqlite_path(url))) as db:
            return [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    async def names() -> list[str]:
        connection = await asyncpg.connect(url)
        try:
            query = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            return [row[0] for row in await connection.fetch(query)]
        finally:
            await connection.close()

    return in_thread(asyncio.run, names())


def test_a_postgresql_url_with_parameters_migrates_as_the_server_connects(postgres_server_url: str) -> None:
    """The migration reads the URL as the server's driver does: `sslmode` and the like are
    asyncpg's parameters, which the migration once refused ("unexpected keyword argument")."""
    with postgres_database(postgres_server_url, "notes_migrations") as url:
        with_parameters = f"{url}?sslmode=disable&application_name=notes-migrate"
        done = run("migrate", "--database-url", with_parameters, "--log-level", "warning")
        assert done.returncode == 0, done.stderr
        assert "notes" in _tables(url)
