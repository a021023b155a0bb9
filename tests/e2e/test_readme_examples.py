"""Every shell example of the README, in order, against a freshly started server: each curl
succeeds and each listing finds something; the `notes-api` commands run on the server's store, and
`make run ARGS=...` restarts the server with those flags."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_database
from tests.e2e.processes import Server

README = Path(__file__).parents[2] / "README.md"


COMMANDS = ("    curl ", "    .venv/bin/notes-api ", "    TOKEN=$(", "    export ", "    make run ")


def shell_examples() -> list[str]:
    """The indented shell commands of the README, in order, each with its continuation lines
    (a trailing backslash, or a quoted body still open)."""
    commands, current = [], ""
    for line in README.read_text().splitlines():
        text = line.strip()
        if current or line.startswith(COMMANDS):
            current = f"{current}\n{text}" if current else text
            if not text.endswith("\\") and current.count("'") % 2 == 0:
                commands.append(current)
                current = ""
    return commands


README_POSTGRES = "postgresql://postgres@localhost/notes"  # the README's PostgreSQL


@pytest.fixture
def postgres_for_readme(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database for the README's; a SQLite file where there is no PostgreSQL
    (then the copy's example still runs, store to store)."""
    try:
        server = request.getfixturevalue("postgres_server_url")
    except pytest.skip.Exception:
        yield f"sqlite:///{tmp_path / 'instead-of-postgres.db'}"
        return
    with postgres_database(server, "notes_readme") as url:
        yield url


@pytest.mark.slow
@pytest.mark.longest
def test_every_shell_example_of_the_readme_works_in_order(tmp_path: Path, postgres_for_readme: str) -> None:
    examples = shell_examples()
    assert len(examples) >= 13
    database = f"sqlite:///{tmp_path / 'notes.db'}"
    venv = Path(sys.executable).parent
    state = tmp_path / "state.sh"  # what one command exports for the next, as one shell session would
    state.write_text("")
    server = Server(database, tmp_path / "server.log").wait_ready()
    try:
        for example in examples:
            if example.startswith("make run"):  # the server again, with the flags it names
                assert server.stop() == 0
                given = re.match(r"make run ARGS='([^']*)'", example)
                flags = shlex.split(given[1]) if given else []
                server = Server(database, tmp_path / "server.log", *flags).wait_ready()
                continue
            command = (example.replace("localhost:8080", f"127.0.0.1:{server.port}")
                       .replace("curl -i", "curl -si", 1).replace("sqlite:///notes.db", database)
                       .replace(".venv/bin/", f"{venv}/").replace(README_POSTGRES, postgres_for_readme))
            script = f"set -ae; source {state}; {command}; export -p > {state}"  # -a: TOKEN=... is kept
            done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
            assert done.returncode == 0 and "Traceback" not in done.stderr, (example, done.stdout, done.stderr)
            if not example.startswith("curl") or not done.stdout.startswith("HTTP/"):
                continue  # not a curl that shows its answer (-o: a download)
            status = int(done.stdout.split(" ", 2)[1])
            assert status < 400, (example, done.stdout)
            if "-X" not in command and re.search(r"/notes(\?|'|\"| |$)", command):
                assert '"notes":[{' in done.stdout, (example, done.stdout)  # a listing finds notes
    finally:
        assert server.stop() == 0
