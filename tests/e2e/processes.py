"""Real `python -m app` processes: a server on a free port, or a command run to its end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests


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
        with log.open("ab") as sink:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--database-url", database_url,
                 "--port", str(self.port), *args],
                stdout=sink, stderr=subprocess.STDOUT, env=_environment(env),
                start_new_session=own_process_group,  # so that a test can signal the whole group
            )

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
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1, timeout: float = 30) -> str:
        """The output, once `text` occurs `count` times in it; fails if the server exits first."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.process.poll() is not None  # checked first: its last lines count too
            output = self.output()
            if output.count(text) >= count:
                return output
            assert not exited, f"exited with {self.process.returncode} before {text!r}:\n{output}"
            assert time.monotonic() < deadline, f"{text!r} not seen {count} times:\n{output}"
            time.sleep(0.02)

    def descendants(self) -> list[Process]:
        return descendants(self.process.pid)


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """This environment without DATABASE_URL, and `extra`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    return {**env, **(extra or {})}


def run(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`python -m app ARGS` to its end, with stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          env=_environment(env), timeout=timeout, check=False)


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
