"""`serve --workers N`: a stop is a stop at any moment, and crashes are replaced, within reason."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from app.entrypoints.workers import MAX_RESTARTS
from tests.e2e.processes import Process, Server

pytestmark = pytest.mark.slow


def is_worker(process: Process) -> bool:
    return any("spawn_main" in part for part in process.argv)


def workers(server: Server, count: int, timeout: float = 30) -> list[Process]:
    """The server's worker processes, once `count` of them run (serving or not)."""
    deadline = time.monotonic() + timeout
    while len(found := [p for p in server.descendants() if is_worker(p)]) < count:
        assert time.monotonic() < deadline and server.process.poll() is None, server.output()
        time.sleep(0.01)
    return found


@pytest.mark.parametrize("how", ["SIGTERM to the server", "Ctrl-C to its process group"])
def test_a_stop_while_the_workers_start_exits_zero(how: str, tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'notes.db'}", tmp_path / "server.log", "--workers", "2",
                    own_process_group=True)
    try:
        workers(server, 1)
        assert "serving on" not in server.output()  # so the stop comes while they start
        if how == "SIGTERM to the server":
            server.process.send_signal(signal.SIGTERM)
        else:
            os.killpg(server.process.pid, signal.SIGINT)
        code = server.process.wait(30)
    finally:
        server.kill()
    assert code == 0, server.output()
    assert "Traceback" not in server.output() and "error" not in server.output().lower()


def test_a_worker_that_crashes_while_serving_is_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    server = Server(url, tmp_path / "server.log", "--workers", "2").wait_ready()
    try:
        server.wait_for("serving on", count=2)
        victim = workers(server, 2)[0]
        os.kill(victim.pid, signal.SIGKILL)
        server.wait_for(f"worker {victim.pid} exited with code -9 while serving; starting another")
        server.wait_for("serving on", count=3)
        assert requests.get(f"{server.base}/healthz", timeout=10).status_code == 200
    finally:
        code = server.stop()
    assert code == 0, server.output()


def gone(pid: int) -> bool:
    """No such process any more, or only its exit status left (a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_workers_stop_when_the_server_process_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    server = Server(url, tmp_path / "server.log", "--workers", "2").wait_ready()
    server.wait_for("serving on", count=2)
    orphans = workers(server, 2)
    server.kill()  # SIGKILL: the parent cannot pass a stop on
    deadline = time.monotonic() + 30
    while not all(gone(worker.pid) for worker in orphans):
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    assert "Traceback" not in server.output()


def test_workers_that_keep_crashing_make_the_server_give_up(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'notes.db'}", tmp_path / "server.log", "--workers", "2")
    try:
        for crash in range(MAX_RESTARTS + 1):
            server.wait_for("serving on", count=2 + crash)  # the replacement of the last one serves
            output = server.output()
            serving = [p for p in workers(server, 2) if f"worker {p.pid} exited" not in output]
            os.kill(serving[0].pid, signal.SIGKILL)
        code = server.process.wait(30)
    finally:
        server.kill()
    assert code == 1
    last = server.output().splitlines()[-1]
    assert last == (f"notes-api: error: workers keep crashing: {MAX_RESTARTS + 1} crashes"
                    " within 60 s, the last one with exit code -9; giving up")
