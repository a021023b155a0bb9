"""`serve --no-migrate` refuses a store whose schema it does not fit, checked without SQLAlchemy or
Alembic; and the head revision it expects is Alembic's."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.adapters.migrate import SCRIPTS, migrate
from app.adapters.schema_version import HEAD_REVISION, REVISIONS
from tests.databases import in_thread, postgres_database
from tests.e2e.processes import Server, free_port, run

pytestmark = pytest.mark.slow
FIX = "or start the server without --no-migrate"


def test_the_revisions_known_to_the_server_are_alembics_in_order() -> None:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    scripts = ScriptDirectory.from_config(config)
    history = [script.revision for script in scripts.walk_revisions()]  # newest first
    assert list(REVISIONS) == history[::-1], "add the new migration's revision to REVISIONS"
    assert scripts.get_current_head() == HEAD_REVISION


def serve_without_migrating(database_url: str) -> subprocess.CompletedProcess:
    return run("serve", "--no-migrate", "--database-url", database_url, "--port", str(free_port()))


def test_a_sqlite_file_without_the_schema_is_refused_and_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    result = serve_without_migrating(url)
    assert result.returncode == 1
    assert result.stderr == (
        f"notes-api: error: {url} has no schema yet: migrate it with"
        f" 'notes-api migrate --database-url {url}', {FIX}\n")
    assert not (tmp_path / "notes.db").exists()


def test_a_postgresql_database_without_the_schema_is_refused(postgres_server_url: str) -> None:
    with postgres_database(postgres_server_url, "notes_e2e") as url:
        result = serve_without_migrating(url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"notes-api: error: {url} has no schema yet: migrate it with")
    assert result.stderr.count("\n") == 1


def migrated_sqlite_at(revision: str, path: Path) -> str:
    """A migrated SQLite store whose alembic_version says `revision`."""
    url = f"sqlite:///{path}"
    migrate(url, "sqlite")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    connection.close()
    return url


@pytest.mark.parametrize("migrating", [False, True], ids=["--no-migrate", "migrating"])
def test_a_schema_newer_than_the_server_is_refused(migrating: bool, tmp_path: Path) -> None:
    """Migrating cannot mend it either: a plain serve says the same, not Alembic's "Can't locate
    revision"."""
    url = migrated_sqlite_at("f00d", tmp_path / "notes.db")
    if migrating:
        result = run("serve", "--database-url", url, "--port", str(free_port()))
    else:
        result = serve_without_migrating(url)
    assert result.returncode == 1
    assert result.stderr == (
        f"notes-api: error: the schema of {url} is at revision f00d, newer than this server knows"
        f" (its newest is {HEAD_REVISION}): serve it with the notes-api that migrated it,"
        " or a later one\n")


def test_a_schema_behind_the_server_is_refused_with_the_command_that_migrates_it(tmp_path):
    url = migrated_sqlite_at(REVISIONS[-2], tmp_path / "notes.db")
    result = serve_without_migrating(url)
    assert result.returncode == 1
    assert result.stderr == (
        f"notes-api: error: the schema of {url} is at revision {REVISIONS[-2]}, behind this"
        f" server's {HEAD_REVISION}: migrate it with 'notes-api migrate --database-url {url}',"
        f" {FIX}\n")


def test_a_store_at_the_head_is_served_without_migrating(sql_database_url: str, tmp_path: Path):
    backend = "sqlite" if sql_database_url.startswith("sqlite") else "postgresql"
    in_thread(migrate, sql_database_url, backend)
    server = Server(sql_database_url, tmp_path / "server.log", "--no-migrate").wait_ready()
    assert server.stop() == 0, server.output()
    assert "alembic" not in server.output()


def test_checking_the_schema_loads_neither_sqlalchemy_nor_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    migrate(url, "sqlite")
    check = (
        "import sys; from app.entrypoints import cli, server, workers;"
        " from app.adapters.schema_version import check_schema;"
        f" check_schema({url!r}, 'sqlite', 5);"
        " print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'alembic'}))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


def test_migrating_loads_neither_aiohttp_nor_the_wiring(tmp_path: Path) -> None:
    """`migrate` (and serve's migration child) imports what migrating needs, not the HTTP adapter:
    it starts in half the time."""
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    check = (
        "import sys; from app.entrypoints import cli;"
        f" code = cli.main(['migrate', '--database-url', {url!r}, '--log-level', 'warning']);"
        " print(code, sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'dependency_injector'}))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout == "0 []\n", done.stderr


def test_the_account_and_transfer_commands_load_no_aiohttp(tmp_path: Path) -> None:
    """They open the store through the container, as the server does, without its HTTP adapter."""
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    migrate(url, "sqlite")
    check = (
        "import sys; from app.entrypoints import cli;"
        f" codes = [cli.main(['users', 'list', '--database-url', {url!r}]),"
        f" cli.main(['export', '--database-url', {url!r}, '--output', {str(tmp_path / 'all.ndjson')!r}])];"
        " print(codes, sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'yarl'}))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[0, 0] []", done.stdout + done.stderr
