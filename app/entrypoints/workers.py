"""`serve --workers N`: a parent process and N server processes sharing one port (SO_REUSEPORT).

Each worker tells the parent, through a pipe of its own, that it serves or why it cannot start.
A worker that fails while starting (the port is taken, the database refuses) would only fail
again the same way, so the parent stops them all and shows that one line. A worker that crashes
after it served is replaced, unless they keep crashing: more than MAX_RESTARTS in RESTART_WINDOW
seconds is something a restart will not fix, and the parent gives up.
A stop (SIGTERM, SIGINT) is passed on to every worker, which finishes its requests in flight; a
worker stopped before it could install its own handler dies of the SIGTERM, and that is a stop too.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext, SpawnProcess

from app.entrypoints.logs import DEFAULT_LOGS, LogSettings, configure_logging
from app.entrypoints.server import SHUTDOWN_TIMEOUT, Address, ServeError, run_server
from app.settings import Settings

log = logging.getLogger("app.server")
MAX_RESTARTS = 5  # crashes of serving workers replaced within RESTART_WINDOW; one more gives up
RESTART_WINDOW = 60.0  # seconds
STOPPED_CLEANLY = (0, -signal.SIGTERM)  # a worker's exit codes after a stop


def _work(settings: Settings, host: str, port: int, logs: LogSettings, report: Connection) -> None:
    """A worker process: serve, and tell the parent once serving, or why it could not start."""
    configure_logging(logs)  # a spawned process starts with logging unconfigured
    threading.Thread(target=_stop_when_orphaned, args=(report,), daemon=True).start()

    def serving(addresses: list[Address]) -> None:
        report.send(("serving", addresses))

    try:
        run_server(settings, host, port, logs=logs, reuse_port=True, on_serving=serving,
                   stop_signals=(signal.SIGTERM,))  # SIGINT stays ignored: see _spawn
    except ServeError as error:
        report.send(("failed", str(error)))
        raise SystemExit(1) from None


def _stop_when_orphaned(parent: Connection) -> None:
    """Stop this worker as if told to once its parent is gone (killed with SIGKILL, say):
    nothing else would ever stop it, and it would hold the port. The parent never writes to
    the pipe and closes its end only after the worker ended, so a read ends with the parent."""
    with suppress(EOFError, OSError):
        parent.recv()
    os.kill(os.getpid(), signal.SIGTERM)


@dataclass(slots=True)
class _Worker:
    process: SpawnProcess
    reports: Connection | None  # the parent's end of the worker's pipe; None after its EOF
    serving: bool = False
    failure: str | None = None  # why it could not start, in its own words

    def read_reports(self) -> None:
        try:
            while self.reports is not None and self.reports.poll():
                kind, detail = self.reports.recv()
                self.serving = self.serving or kind == "serving"
                self.failure = detail if kind == "failed" else self.failure
        except (EOFError, OSError):  # the worker is gone and the pipe is drained
            self.reports.close()  # type: ignore[union-attr]
            self.reports = None


def _spawn(context: SpawnContext, args: tuple) -> _Worker:
    reports, report = context.Pipe()  # both ways: the worker reads it to notice the parent's end
    process = context.Process(target=_work, args=(*args, report), daemon=False)
    with _sigint_ignored_by_child():
        process.start()
    report.close()  # the worker's end: once the worker is gone, the parent reads EOF
    return _Worker(process, reports)


@contextmanager
def _sigint_ignored_by_child() -> Iterator[None]:
    """A Ctrl-C reaches the terminal's whole process group. A worker inherits SIGINT ignored (and
    Python leaves it so), so the parent alone sees it and passes a SIGTERM on: a worker still
    importing is not broken off with a KeyboardInterrupt traceback. Meanwhile the parent blocks
    SIGINT, so that its own Ctrl-C waits for the handler instead of being ignored too."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class _StopSignals:
    """While entered, SIGTERM and SIGINT set `requested` and wake the parent's wait (`wake`)."""

    def __enter__(self) -> _StopSignals:
        self.requested = False
        self.wake, self._waker = socket.socketpair()
        self._waker.setblocking(False)
        self._previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exception: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self.wake.close()
        self._waker.close()

    def _stop(self, signum: int, frame: object) -> None:
        self.requested = True
        with suppress(BlockingIOError):  # awake already
            self._waker.send(b"\0")


def run_workers(
    settings: Settings, host: str, port: int, count: int, *, logs: LogSettings = DEFAULT_LOGS
) -> int:
    """Run `count` workers until a stop; 0 when each one stopped cleanly.

    Raises ServeError when a worker cannot start, or when workers keep crashing.
    """
    spawn = partial(_spawn, multiprocessing.get_context("spawn"), (settings, host, port, logs))
    resource_tracker.ensure_running()  # now: starting it later unblocks SIGINT (see _spawn)
    with _StopSignals() as stop:
        workers = [spawn() for _ in range(count)]
        try:
            _supervise(workers, spawn, stop)
        except ServeError:
            _stop_all(workers)
            raise
        return 0 if _stop_all(workers) else 1


def _supervise(workers: list[_Worker], spawn: Callable[[], _Worker], stop: _StopSignals) -> None:
    """Until a stop: note each worker's reports, and replace a worker that crashed serving."""
    restarts: deque[float] = deque()
    while not stop.requested:
        waiting: list[Connection | socket.socket | int] = [stop.wake]
        waiting += [w.process.sentinel for w in workers]
        wait(waiting + [w.reports for w in workers if w.reports is not None])
        for index, worker in enumerate(workers):
            worker.read_reports()
            if worker.process.exitcode is not None and not stop.requested:
                worker.read_reports()  # what it said before exiting is in the pipe by now
                _may_replace(worker, restarts)
                workers[index] = spawn()


def _may_replace(worker: _Worker, restarts: deque[float]) -> None:
    """Raise ServeError unless the worker that exited should be replaced."""
    code = worker.process.exitcode
    if not worker.serving:
        raise ServeError(
            worker.failure or f"a worker process exited with code {code} while starting"
        )
    now = time.monotonic()
    while restarts and now - restarts[0] > RESTART_WINDOW:
        restarts.popleft()
    if len(restarts) >= MAX_RESTARTS:
        raise ServeError(
            f"workers keep crashing: {len(restarts) + 1} crashes within {RESTART_WINDOW:.0f} s,"
            f" the last one with exit code {code}; giving up"
        )
    restarts.append(now)
    log.error("worker %s exited with code %s while serving; starting another",
              worker.process.pid, code)


def _stop_all(workers: list[_Worker]) -> bool:
    """SIGTERM every worker and wait for it; False if one had to be killed or failed."""
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT + 5
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            log.error("worker %s did not stop in time; killing it", worker.process.pid)
            worker.process.kill()
            worker.process.join()
        if worker.reports is not None:
            worker.reports.close()
    return all(worker.process.exitcode in STOPPED_CLEANLY for worker in workers)
