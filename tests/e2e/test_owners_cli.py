"""Owners and tokens end to end, in real processes: the command line issues a token, a server
with --auth required takes it, `auto` opens only on loopback, and revocation reaches every worker."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.databases import sqlite_copy
from tests.e2e.processes import Server, _environment, run

pytestmark = pytest.mark.slow
TOKEN = re.compile(r"notes_[A-Za-z0-9_-]{43}")


def ok(*args: str) -> str:
    done = run(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def issue(url: str, owner: str, *flags: str) -> str:
    """`TOKEN=$(notes-api tokens issue alice)`: the token, alone on standard output."""
    done = run("tokens", "issue", owner, *flags, "--database-url", url)
    assert done.returncode == 0, done.stderr
    assert TOKEN.fullmatch(done.stdout.rstrip("\n")) and done.stdout.count("\n") == 1, done.stdout
    assert done.stdout.strip() not in done.stderr and "issued token" in done.stderr
    return done.stdout.strip()


def test_a_token_from_the_command_line_opens_a_server_that_requires_one(sql_database_url: str, tmp_path: Path) -> None:
    url = sql_database_url
    ok("users", "add", "alice", "--database-url", url)
    token = issue(url, "alice", "--label", "laptop")
    server = Server(url, tmp_path / "server.log", "--auth", "required").wait_ready()
    try:
        assert "; auth required; API docs at" in server.output()
        base, bearer = server.base, {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{base}/notes").status_code == 401
        made = requests.post(f"{base}/notes", json={"title": "mine"}, headers=bearer)
        assert made.status_code == 201
        assert requests.get(f"{base}/me", headers=bearer).json()["owner"] == "alice"
        listed = ok("tokens", "list", "--database-url", url)
        assert "laptop" in listed and "alice" in listed and token not in listed
        assert re.search(r"^alice\s+1\s+1$", ok("users", "list", "--database-url", url), re.M)
        ok("users", "add", "bob", "--database-url", url)
        moved = run("notes", "move", "--from", "alice", "--to", "bob", "--database-url", url)
        assert (moved.returncode, moved.stderr) == (0, "moved 1 note from alice to bob\n")
        assert requests.get(f"{base}/notes/{made.json()['id']}", headers=bearer).status_code == 404
    finally:
        assert server.stop() == 0
    assert token not in server.output()


def test_a_revoked_token_is_refused_by_every_worker_within_five_seconds(sqlite_url: str, tmp_path: Path) -> None:
    ok("users", "add", "alice", "--database-url", sqlite_url)
    token = issue(sqlite_url, "alice")
    server = Server(sqlite_url, tmp_path / "server.log", "--auth", "required", "--workers", "2").wait_ready()
    try:
        bearer = {"Authorization": f"Bearer {token}"}
        for _ in range(20):  # new connections, spread over both workers: each caches the token
            assert requests.get(f"{server.base}/notes", headers=bearer).status_code == 200
        (token_id,) = re.findall(r"^(\d+)\s+alice", ok("tokens", "list", "--database-url", sqlite_url), re.M)
        ok("tokens", "revoke", token_id, "--database-url", sqlite_url)
        revoked_at = time.monotonic()
        refused = 0
        while refused < 20:  # twenty refusals in a row, on new connections: both workers refuse
            status = requests.get(f"{server.base}/notes", headers=bearer).status_code
            refused = refused + 1 if status == 401 else 0
            assert time.monotonic() - revoked_at < 5.5, "a revoked token still works after 5 seconds"
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(("host", "status"), [("127.0.0.1", 201), ("0.0.0.0", 401)])
def test_auto_lets_the_tutorial_client_in_on_loopback_only(
    sqlite_url: str, tmp_path: Path, host: str, status: int
) -> None:
    server = Server(sqlite_url, tmp_path / "server.log", "--host", host).wait_ready()
    try:
        response = requests.post(f"{server.base}/notes", data='{"title": "note two"}')  # no token, no type
        assert response.status_code == status
        mode = "local" if status == 201 else "required"
        assert f"auth {mode} (--auth auto" in server.output()
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(("args", "code", "says"), [
    (("tokens", "issue", "nobody"), 1, "no owner named nobody: add one with `notes-api users add nobody`"),
    (("users", "add", "Alice"), 1, "'Alice' is not a valid owner name"),
    (("users", "remove", "local"), 1, "the owner local always exists"),
    (("tokens", "revoke", "99"), 1, "no token with id 99"),
    (("notes", "move", "--from", "local", "--to", "nobody"), 1, "no owner named nobody"),
])
def test_a_command_that_cannot_work_says_why_in_one_line(
    migrated_sqlite_url: str, args: tuple[str, ...], code: int, says: str
) -> None:
    done = run(*args, "--database-url", migrated_sqlite_url)
    assert done.returncode == code and done.stdout == ""
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr


def test_account_commands_refuse_memory_and_an_unmigrated_store(tmp_path: Path) -> None:
    memory = run("users", "list", "--database-url", "memory://")
    assert memory.returncode == 2 and "memory:// keeps nothing between processes" in memory.stderr
    (tmp_path / "new.db").touch()  # a SQLite file with no tables: one the server never started on
    fresh = run("users", "list", "--database-url", f"sqlite:///{tmp_path / 'new.db'}")
    assert fresh.returncode == 1 and fresh.stderr.count("\n") == 1 and "migrate" in fresh.stderr, fresh.stderr


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A new store at the head schema (tests/conftest.py's template)."""
    return sqlite_copy(sqlite_template, tmp_path / "notes.db")


@pytest.fixture(scope="module")
def migrated_sqlite_url(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> str:
    """One migrated store for the commands that change nothing."""
    return sqlite_copy(sqlite_template, tmp_path_factory.mktemp("cli") / "notes.db")


@pytest.mark.parametrize("token_id", ["0", "99999999999999999999", "seven"])
def test_a_token_id_no_store_could_hold_is_a_usage_error(token_id: str, tmp_path: Path) -> None:
    done = run("tokens", "revoke", token_id, "--database-url", f"sqlite:///{tmp_path / 'notes.db'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == (
        f"notes-api tokens revoke: error: argument id: {token_id!r} is no token's id"
        " (a whole number from 1 to 9,223,372,036,854,775,807) (notes-api tokens revoke --help shows the usage)\n"
    )


def test_a_token_that_cannot_be_shown_is_revoked_at_once(tmp_path: Path) -> None:
    """Its secret exists only in that output: a token issued into a full disk was kept, usable
    by no one who knew it, and the message did not say it existed."""
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    assert run("migrate", "--database-url", url, "--log-level", "warning").returncode == 0
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "app", "tokens", "issue", "local", "--database-url", url],
                              stdout=full, stderr=subprocess.PIPE, text=True, env=_environment(None), timeout=60,
                              check=False)
    assert done.returncode == 1
    assert done.stderr == ("notes-api: error: the token could not be written to standard output (No space left on"
                           " device), so token 1 was revoked at once: run the command again\n")
    listed = run("tokens", "list", "local", "--database-url", url)
    assert listed.returncode == 0 and listed.stdout.splitlines()[1:] == []


def test_a_label_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    assert run("migrate", "--database-url", url, "--log-level", "warning").returncode == 0
    done = run("tokens", "issue", "local", "--label", "laptop\n9  local  x  write", "--database-url", url)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("notes-api: error: a label is text of at most 100 characters, without control characters"
                           " (a newline, a tab)\n")


def test_commands_that_would_do_nothing_say_why(tmp_path: Path) -> None:
    """A typo of an owner listed an empty table; a move to the same owner said 'moved 0 notes';
    a copy took any --progress-every, nan included."""
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    assert run("migrate", "--database-url", url, "--log-level", "warning").returncode == 0
    for command, code, line in (
        (["tokens", "list", "nobody"], 1, "no owner named nobody: add one with `notes-api users add nobody`"),
        (["notes", "move", "--from", "local", "--to", "local"], 1,
         "--from and --to both name local: the notes are where they would go"),
    ):
        done = run(*command, "--database-url", url)
        assert (done.returncode, done.stdout, done.stderr) == (code, "", f"notes-api: error: {line}\n"), command
    for every in ("nan", "inf", "-1"):
        done = run("copy", "--from", url, "--to", f"sqlite:///{tmp_path / 'copy.db'}", "--progress-every", every)
        assert (done.returncode, done.stderr) == (2, "notes-api: error: --progress-every must be a number of"
                                                     " seconds, 0 or more\n")
    assert not (tmp_path / "copy.db").exists()


def test_a_store_file_that_is_not_there_is_a_mistyped_path_not_one_to_migrate(tmp_path: Path) -> None:
    """Migrating it, as the line once advised, made a second, empty store beside the real one."""
    missing = tmp_path / "typo.db"
    for command in (("users", "add", "zed"), ("users", "list"), ("tokens", "list"), ("tokens", "issue", "local"),
                    ("notes", "move", "--from", "local", "--to", "zed")):
        done = run(*command, "--database-url", f"sqlite:///{missing}")
        assert (done.returncode, done.stderr) == (
            2, f"notes-api: error: there is no file {missing}: give --database-url the URL of a store made by"
               " `notes-api serve`\n"), command
    assert list(tmp_path.iterdir()) == []
