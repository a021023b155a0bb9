"""The processes the harness starts: pinned to a core, waited for, and always stopped.

With two cores or more the server under test runs on SERVER_CORE and the load generator on
LOAD_CORE, so neither steals the other's cycles (PostgreSQL's own processes stay unpinned).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USABLE_CORES = sorted(os.sched_getaffinity(0))  # read at import, before the harness pins itself
SERVER_CORE = USABLE_CORES[0]
LOAD_CORE = USABLE_CORES[1] if len(USABLE_CORES) >= 2 else USABLE_CORES[0]


def stop_on_sigterm() -> None:
    """SIGTERM then unwinds like Ctrl-C, through the `finally` that stops every server."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def pinning() -> bool:
    return len(USABLE_CORES) >= 2 and _which("taskset")


def _which(program: str) -> bool:
    return any(Path(d, program).is_file() for d in os.environ.get("PATH", "").split(os.pathsep))


def pinned(argv: list[str], core: int) -> list[str]:
    """`argv` run on `core` alone when the machine has cores to spare."""
    return ["taskset", "-c", str(core), *argv] if pinning() else argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


class Processes:
    """Every server the harness starts; `stop_all` ends them (used in a `finally`)."""

    def __init__(self) -> None:
        self._running: list[tuple[str, subprocess.Popen]] = []
        self._logs = tempfile.TemporaryDirectory(prefix="notes_bench_logs_")

    def start_server(
        self, name: str, argv: list[str], port: int, root: Path = ROOT,
        wrapper: Sequence[str] = (), timeout: float = 30.0,
    ) -> subprocess.Popen:
        """Start a server on SERVER_CORE, its code in `root`, run by `wrapper` (valgrind, say) if
        one is given; wait until it answers /healthz."""
        with open(Path(self._logs.name, f"{name}.log"), "wb") as log:  # the child keeps its copy
            process = subprocess.Popen(
                pinned([*wrapper, sys.executable, *argv], SERVER_CORE), cwd=root, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._running.append((name, process))
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", process, timeout)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n--- {name} log ---\n{self.log_of(name)}") from None
        return process

    def log_of(self, name: str) -> str:
        path = Path(self._logs.name, f"{name}.log")
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self, process: subprocess.Popen) -> None:
        _terminate(process)
        self._running = [(n, p) for n, p in self._running if p is not process]

    def stop_all(self) -> None:
        for _name, process in reversed(self._running):
            _terminate(process)
        self._running.clear()
        self._logs.cleanup()


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM (the service's graceful stop), then SIGKILL after a few seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url}: no answer within {timeout:.0f} s")


def run_quietly(argv: list[str], root: Path = ROOT) -> None:
    """A short helper command (a migration) of the code in `root`; its output is shown only when
    it fails."""
    done = subprocess.run([sys.executable, *argv], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
