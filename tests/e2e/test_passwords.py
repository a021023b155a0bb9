"""The password in DATABASE_URL is never shown: not in an error, a log line or a process title."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from app.entrypoints.cli import migration_command
from app.settings import redacted
from tests.databases import database_url, migration_lock_held, postgres_database
from tests.e2e.processes import Process, Server, free_port, run

pytestmark = pytest.mark.slow
SECRET = "s3cret"


def with_password(url: str, password: str = SECRET) -> str:
    """The test server trusts local users, so it takes any password: a wrong one works here."""
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


COMMANDS = [("serve",), ("serve", "--no-migrate"), ("migrate",)]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_failed_start_up_does_not_show_the_password(command, postgres_server_url: str) -> None:
    url = with_password(database_url(postgres_server_url, "nosuchdb"))
    port = ("--port", str(free_port())) if command[0] == "serve" else ()
    result = run(*command, "--database-url", url, *port)
    assert result.returncode == 1 and 'database "nosuchdb" does not exist' in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("url", [
    "sqlite://bob:s3cret@host/notes.db",  # a user part, and no file
    "sqlite:notes.db?password=s3cret",  # no //
    "postgresql:bob:s3cret@127.0.0.1/notes",  # no //: PostgreSQL would have echoed it all as a database name
])
def test_a_malformed_url_is_refused_before_use_without_its_password(url: str) -> None:
    for command in (["users", "list", "--database-url", url], ["copy", "--from", url, "--to", "sqlite:///unused.db"]):
        done = run(*command)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done
        assert f" {'--from' if command[0] == 'copy' else '--database-url'} '" in done.stderr  # named as given
        assert "s3cret" not in done.stderr + done.stdout


@pytest.mark.parametrize("command", [*COMMANDS, ("copy", "--to", "sqlite:///nowhere.db", "--from")], ids=" ".join)
def test_an_unsupported_database_url_is_named_without_its_password(command) -> None:
    """Named by the flag that gave it (copy once said DATABASE_URL of its --from)."""
    url = f"mysql://bob:{SECRET}@db/notes?password={SECRET}"
    result = run(*command, url) if command[0] == "copy" else run(*command, "--database-url", url)
    assert result.returncode == 2
    flag = "--from" if command[0] == "copy" else "--database-url"
    assert f"unsupported {flag} 'mysql://bob:***@db/notes?password=***'" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_a_failed_migration_names_the_url_without_its_password(postgres_server_url: str) -> None:
    with postgres_database(postgres_server_url, "notes_e2e") as url:
        asyncio.run(execute(url, "CREATE TABLE notes (x int)"))  # in the way of the first migration
        result = run("migrate", "--database-url", with_password(url), "--log-level", "warning")
    assert result.returncode == 1
    assert result.stderr == (f"notes-api: error: cannot migrate {redacted(with_password(url))}:"
                             ' relation "notes" already exists\n')
    assert ":***@" in result.stderr


async def execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def migrating_child(server: Server, timeout: float = 30) -> Process:
    deadline = time.monotonic() + timeout
    while not (found := [p for p in server.descendants() if "migrate" in p.argv]):
        assert time.monotonic() < deadline and server.process.poll() is None, server.output()
        time.sleep(0.02)
    return found[0]


def test_no_process_title_or_log_line_shows_the_password(postgres_server_url: str, tmp_path: Path):
    with postgres_database(postgres_server_url, "notes_e2e") as url, migration_lock_held(url) as held:
        server = Server(with_password(url), tmp_path / "server.log", "--workers", "2")
        try:
            child = migrating_child(server)
            titles = [" ".join(p.argv) for p in server.descendants()]
            assert "--database-url" not in child.argv
            held.set()  # the migration goes on
            server.wait_ready().wait_for("serving on", count=2)
            titles += [" ".join(p.argv) for p in server.descendants()]
        finally:
            code = server.stop()
    assert code == 0, server.output()
    assert not [title for title in titles if SECRET in title], titles
    assert SECRET not in server.output()
    assert server.output().count(f"({redacted(with_password(url))}); auth local") == 2


def test_the_migration_child_gets_the_url_in_its_environment_not_its_arguments() -> None:
    args = argparse.Namespace(database_url="postgresql://u:s3cret@db/notes", log_level="info",
                              log_format="json")
    command, env = migration_command(args)
    assert SECRET not in " ".join(command)
    assert env["DATABASE_URL"] == "postgresql://u:s3cret@db/notes"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:s3cret@db:5432/notes", "postgresql://u:***@db:5432/notes"),
    ("postgresql://u:s3cret@db/notes?password=s3cret&sslmode=require",
     "postgresql://u:***@db/notes?password=***&sslmode=require"),
    ("postgresql://u@db/notes", "postgresql://u@db/notes"),
    ("sqlite:////var/lib/notes.db", "sqlite:////var/lib/notes.db"),
    # a password that should have been percent-encoded: the host seems to end early
    ("postgresql://u:pa/s3cret@db:5432/notes", "postgresql://***@db:5432/notes"),
    ("postgresql://u:pa?s3cret@db/notes", "postgresql://***@db/notes"),
    ("postgresql://u:pa#s3cret@db/notes", "postgresql://***@db/notes"),
    ("postgresql://u:123/s3cret@db/notes", "postgresql://***@db/notes"),
    ("postgresql://u:2024?s3cret@db/notes", "postgresql://***@db/notes"),
    ("postgresql://u?x:s3cret@db/notes", "postgresql://***@db/notes"),
    ("postgresql://u:p%2Fs3cret@db/notes", "postgresql://u:***@db/notes"),
    ("postgresql://db:5432/notes?application_name=a@b", "postgresql://db:5432/notes?application_name=a@b"),
    # no // before the user part: all of it hidden
    ("mysql:bob:s3cret@db/notes", "mysql:***@db/notes"),
    ("postgresql:u:s3cret@db/notes?password=s3cret", "postgresql:***@db/notes?password=***"),
    # a user part that must be percent-encoded, and a password parameter too
    ("postgresql://u:pa/s3cret@db/notes?password=s3cret", "postgresql://***@db/notes?password=***"),
    ("postgresql://u:pa@s3cret@db/notes", "postgresql://***@db/notes"),
    ("postgresql://u:pa@Kx/s3cret@db/notes", "postgresql://***@db/notes"),  # an @, then a /
    ("postgresql://u:pa@Kx?s3cret@db/notes", "postgresql://***@db/notes"),
    ("postgresql://db/notes?sslpassword=s3cret&sslmode=verify-full", "postgresql://db/notes?sslpassword=***&sslmode=verify-full"),
    # an unclosed [: urlsplit cannot read it at all
    ("postgresql://u:s3cret@[::1/notes?password=s3cret", "postgresql://***@[::1/notes?password=***"),
])
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.parametrize("url", ["postgresql://postgres:pa/s3cret@127.0.0.1/db", "postgresql://postgres:pa?s3cret@127.0.0.1/db",
                                 "postgresql://postgres:pa@s3cret@127.0.0.1/db", "postgresql://postgres:pa@Kx/s3cret@127.0.0.1/db",
                                 "postgresql://postgres:pa]s3cret@127.0.0.1/db"])
def test_a_password_that_needs_percent_encoding_is_named_as_such_and_not_shown(url: str) -> None:
    for command in (["users", "list", "--database-url", url], ["serve", "--database-url", url],
                    ["copy", "--from", "sqlite:///nowhere.db", "--to", url]):
        done = run(*command)
        assert done.returncode != 0
        assert done.stderr == (
            f"notes-api: error: the user or password (or database name) of {command[-2]} '{redacted(url)}' holds a"
            " character that must be percent-encoded: / as %2F, ? as %3F, # as %23, @ as %40, [ as %5B, ] as %5D\n"
        ), command
        given = run(*command[:-2], env={"DATABASE_URL": url, "NOTES_COPY_TO": url})  # from the environment
        variable = ("NOTES_COPY_TO (the value of --to)" if command[0] == "copy"
                    else "DATABASE_URL (the value of --database-url)")
        assert f"or password (or database name) of {variable} '{redacted(url)}'" in given.stderr, command
        assert "s3cret" not in given.stderr + given.stdout
        assert "s3cret" not in done.stderr + done.stdout


@pytest.mark.parametrize(("url", "line"), [
    ("postgresql://u:s3cret@127.0.0.1:notaport/db",
     "the port of --database-url 'postgresql://u:***@127.0.0.1:notaport/db' must be a number from 1 to 65535"),
    ("postgresql://u:s3cret@127.0.0.1:99999/db",
     "the port of --database-url 'postgresql://u:***@127.0.0.1:99999/db' must be a number from 1 to 65535"),
    ("postgresql://u:s3cret@[::1/db",
     "--database-url 'postgresql://***@[::1/db' has a [ or ] alone: write an IPv6 host as [::1]"),
])
def test_a_url_that_names_no_address_is_one_line_naming_the_fix(url: str, line: str) -> None:
    """Not the driver's words (`invalid literal for int()`, `port must be 0-65535`) or urllib's
    (`Invalid IPv6 URL`), with no setting named."""
    for command in (["users", "list"], ["serve", "--port", "0"], ["migrate"]):
        done = run(*command, "--database-url", url)
        assert (done.returncode, done.stderr) == (2, f"notes-api: error: {line}\n"), command
        assert "s3cret" not in done.stdout


def test_make_run_does_not_echo_the_url_it_was_given(tmp_path: Path) -> None:
    """make echoes each command it runs: `make run DATABASE_URL=...` showed the password, however
    carefully the server masks it. (`-o`: the serving install is taken as made; BIN: the Python
    these tests run in, wherever its environment is.)"""
    root = Path(__file__).parents[2]
    url = f"postgresql://u:{SECRET}@127.0.0.1:{free_port()}/db"  # nothing listens there: serve stops at once
    done = subprocess.run(["make", "-o", ".venv/.installed-serve", "run", f"DATABASE_URL={url}",
                           f"BIN={Path(sys.executable).parent}"],
                          cwd=root, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "notes-api: error: nothing is listening at 127.0.0.1:" in done.stderr, done
    assert SECRET not in done.stdout + done.stderr
