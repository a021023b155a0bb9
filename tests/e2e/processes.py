"""Real `python -m app` processes: a server on a free port, or a command run to its end."""

from __future__ import annotations

import locale
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.e2e import fork_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One `python -m app serve` process; its output goes to a log file for the failure report."""

    def __init__(
        self, database_url: str, log: Path, *args: str, port: int | None = None,
        env: Mapping[str, str] | None = None, own_process_group: bool = False,
    ) -> None:
        self.port = free_port() if port is None else port
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        log.touch()  # readable at once, before the first line is copied
        self._news = threading.Condition()  # notified on every line the process writes, and at its end
        self._ended = False
        self.process = start(
            ["serve", "--database-url", database_url, "--port", str(self.port), *args],
            _environment(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            new_session=own_process_group,  # so that a test can signal the whole group
        )
        threading.Thread(target=self._copy_output, daemon=True).start()

    def _copy_output(self) -> None:
        """Copy the process's output into the log file line by line, announcing each line."""
        assert self.process.stdout is not None
        with self.process.stdout as output, self.log_path.open("ab") as sink:
            for line in output:
                sink.write(line)
                sink.flush()
                with self._news:
                    self._news.notify_all()
        with self._news:
            self._ended = True
            self._news.notify_all()

    def wait_ready(self, timeout: float = 30) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"server exited with {code}:\n{self.output()}")
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not become ready:\n{self.output()}")

    def stop(self, how: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.process.send_signal(how)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        """What the process wrote; once it has exited, all of it (the copy catches up first)."""
        if self.process.poll() is not None:
            with self._news:
                self._news.wait_for(lambda: self._ended, timeout=5)
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1, timeout: float = 30) -> str:
        """The output, once `text` occurs `count` times in it; fails if the output ends first.
        Woken by each line the process writes, not by a clock."""

        def seen() -> bool:
            return self._ended or self.log_path.read_text(errors="replace").count(text) >= count

        with self._news:
            self._news.wait_for(seen, timeout)
        output = self.log_path.read_text(errors="replace")
        assert output.count(text) >= count, f"{text!r} not seen {count} times:\n{output}"
        return output

    def descendants(self) -> list[Process]:
        return descendants(self.process.pid)


def interruptible() -> None:
    """In a child before it runs: SIGINT at its default and not blocked, as a process started from
    a terminal has it, whatever code that ran in this test process did with its own (a disposition
    of "ignored" and the signal mask are both inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# Modules of the test extras that a process under test would import if it could see them:
# dependency-injector looks for pydantic-settings (and then pydantic) and werkzeug, which
# schemathesis brings, and imports them when they are there (about 0.12 s a process, which each
# new interpreter and fork server paid). Production has none of them (`make run` installs no test extra), and
# neither do the processes under test: this folder, first on their path, hides them.
WITHOUT_TEST_EXTRAS = Path(__file__).parent / "without_test_extras"


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """This environment without DATABASE_URL and without the test extras' modules, and `extra`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WITHOUT_TEST_EXTRAS), env.get("PYTHONPATH")]))
    env.pop("DATABASE_URL", None)
    return {**env, **(extra or {})}


def start(
    args: Sequence[str], env: Mapping[str, str], *, stdout: int, stderr: int, new_session: bool = False
) -> subprocess.Popen[bytes] | fork_server.ForkedProcess:
    """`python -m app ARGS`, forked from the fork server where it can be (fork_server.py says how
    such a process differs from a new interpreter's, and which tests start theirs fresh)."""
    if fork_server.enabled():
        fork_server.start(_environment(None))
        if fork_server.can_fork(env):
            return fork_server.spawn(args, env, stdout=stdout, stderr=stderr, new_session=new_session)
    return subprocess.Popen([sys.executable, "-m", "app", *args], stdout=stdout, stderr=stderr, env=env,
                            start_new_session=new_session)


def run(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`python -m app ARGS` to its end, with stdout and stderr as text (as subprocess.run's)."""
    process = start(args, _environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode is not None
    return subprocess.CompletedProcess(process.args, process.returncode, _text(out), _text(err))


def _text(output: bytes) -> str:
    """As subprocess decodes output with text=True."""
    return output.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class Process:
    pid: int
    argv: list[str]  # what ps shows


def descendants(pid: int) -> list[Process]:
    """The processes below `pid` now, at any depth (Linux /proc); gone ones are left out."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        todo.extend(children.get(child, []))
        try:
            argv = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        found.append(Process(child, [part.decode(errors="replace") for part in argv if part]))
    return found
