"""The processes the tests fork (fork_server.py) answer as new interpreters do."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.e2e import fork_server
from tests.e2e.processes import Server, _environment, run

TIME = r"\d{4}-\d\d-\d\dT[\d:.]+Z"  # the logs' timestamps
COMMANDS: list[tuple[list[str], dict[str, str]]] = [  # relative paths: in the working directory
    (["migrate", "--database-url", "sqlite:///no/such/dir/notes.db"], {}),  # exit 1: no such directory
    (["users", "add", "Not A Name", "--database-url", "memory://"], {}),  # exit 2, a usage line
    (["serve", "--port", "abc"], {"NOTES_LOG_FORMAT": "json"}),  # exit 2, a JSON record
    (["migrate", "--database-url", "sqlite:///notes.db"], {}),  # exit 0, Alembic's lines
    (["users", "add", "alice"], {"DATABASE_URL": "sqlite:///notes.db"}),  # exit 0, a report
]


def test_a_forked_command_answers_as_a_new_interpreter_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {}
    for how in ("on", "off"):
        monkeypatch.setenv("NOTES_TEST_FORK_SERVER", how)
        if how == "on":  # each command of this run is forked
            fork_server.start(_environment(None))
            assert [args for args, env in COMMANDS if not fork_server.can_fork(_environment(env))] == []
        (tmp_path / how).mkdir()
        monkeypatch.chdir(tmp_path / how)
        answers[how] = [(done.returncode, done.stdout, re.sub(TIME, "TIME", done.stderr))
                        for done in (run(*args, env=env) for args, env in COMMANDS)]
    assert [code for code, _, _ in answers["on"]] == [1, 2, 2, 0, 0]
    assert answers["on"] == answers["off"]
    assert (tmp_path / "on" / "notes.db").exists() and (tmp_path / "off" / "notes.db").exists()


def test_a_forked_server_has_its_own_session_and_dies_by_the_signal_it_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTES_TEST_FORK_SERVER", "on")
    server = Server("memory://", tmp_path / "server.log", own_process_group=True).wait_ready()
    try:
        assert isinstance(server.process, fork_server.ForkedProcess)
        assert os.getpgid(server.process.pid) == os.getsid(server.process.pid) == server.process.pid
        assert server.process.poll() is None
        server.process.send_signal(signal.SIGKILL)
        assert server.process.wait(10) == -signal.SIGKILL
    finally:
        server.kill()


def test_the_children_of_a_fork_server_that_died_can_be_stopped_and_the_next_command_is_forked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTES_TEST_FORK_SERVER", "on")
    server = Server("memory://", tmp_path / "server.log").wait_ready()
    try:
        dead = fork_server._process
        assert dead is not None
        dead.kill()
        dead.wait()
    finally:
        server.process.send_signal(signal.SIGKILL)  # its status will never come: signalled all the same
    deadline = time.monotonic() + 10
    with contextlib.suppress(ProcessLookupError):  # gone: reaped by whoever adopted the orphan
        while True:
            os.kill(server.process.pid, 0)
            assert time.monotonic() < deadline, "the orphan was not stopped"
    assert run("serve", "--help").returncode == 0
    assert fork_server._process is not dead
