"""A fork server for the processes under test.

Each `python -m app ...` a test starts was a new interpreter importing the service and its
libraries: 0.42 s of CPU to start and stop a server, 0.14 s for a short command (on a quiet
machine), some 300 times a suite. Instead, one process per test worker imports them once (0.7 s)
and forks a child for each command, as Python's multiprocessing `forkserver` does: 0.07 s of CPU
for a command, a little more for a server. The child is a
process of its own. It gets the command line, the environment, the working directory and the
standard streams it was started with, runs the service's `__main__` module as `python -m app`
does, and ends as an interpreter ends (atexit, exit status, a death by signal); it starts as from
a terminal (SIGINT raises KeyboardInterrupt, no signal blocked). It differs from a new
interpreter only in what was fixed before the fork: the `PYTHON*`, locale and `TZ` variables (a
command that sets others is started fresh; see `can_fork`), `/proc/PID/cmdline` and
`sys.orig_argv`, the parent (the fork server), the umask and resource limits, the hash seed, and
the modules already in memory (so `app/__main__.py`'s Ctrl-C-while-loading branch never runs in
one).

New interpreters still run where it matters: the processes the service starts itself (its
migration child, its workers), and the tests that start theirs with subprocess because they need
what `processes.run` and `processes.Server` do not offer (a terminal, a resource limit, input on
stdin). `NOTES_TEST_FORK_SERVER=off` starts every process fresh, to compare.

Run as a script, this file is the fork server. Its argument is a socket on which the tests send
requests (SOCK_SEQPACKET: one message each, the standard streams' descriptors attached), and on
whose end-of-file it exits. For each request it answers the child's pid, then its exit status (as
subprocess gives it: minus the signal that killed it), on a socket sent with the request.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pkgutil
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

# Read by the interpreter as it starts (its path, flags, encodings): a child takes the fork
# server's, so a command that needs other values is started fresh.
_FIXED_AT_START = ("PYTHON", "LC_", "LANG", "TZ")


def enabled() -> bool:
    return os.environ.get("NOTES_TEST_FORK_SERVER", "on") != "off"


def can_fork(env: Mapping[str, str]) -> bool:
    """Whether a process with this environment may be forked from the fork server (started)."""
    return _fixed_at_start(env) == _fixed_at_start(_control_env)


def _fixed_at_start(env: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith(_FIXED_AT_START)}


class ForkedProcess:
    """The part of subprocess.Popen the tests use, for a child of the fork server: its parent is
    the fork server, which reports its exit status."""

    def __init__(self, args: Sequence[str], pid: int, status: socket.socket,
                 stdout: IO[bytes] | None, stderr: IO[bytes] | None) -> None:
        self.args = list(args)
        self.pid = pid
        self.stdout, self.stderr = stdout, stderr
        self.returncode: int | None = None
        self._status = status
        weakref.finalize(self, status.close)  # closed with this object, even within a cycle
        self._waiting = threading.Lock()

    def _collect(self, timeout: float | None) -> bool:
        """Take the exit status if it comes within `timeout`; False if it has not."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._waiting.acquire(timeout=-1 if timeout is None else timeout):  # another thread waits
            return False
        try:
            if self.returncode is None:
                self._status.settimeout(None if deadline is None else max(0, deadline - time.monotonic()))
                try:
                    message = self._status.recv(64)
                except (BlockingIOError, TimeoutError):
                    return False
                if not message:
                    raise RuntimeError(f"the fork server ended before its child {self.pid}")
                self.returncode = int(message)
                self._status.close()
            return True
        finally:
            self._waiting.release()

    def poll(self) -> int | None:
        self._collect(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._collect(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """As Popen's: not once the exit status has come. The fork server reaps a child just before
        it reports it, so the pid may be gone (ProcessLookupError, ignored, as Popen does); and a
        fork server that has died reports nothing, so its children are signalled still."""
        with contextlib.suppress(RuntimeError):  # the fork server died
            if self.poll() is not None:
                return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        """Both output pipes read to their ends, and the exit status, as Popen.communicate."""
        if not hasattr(self, "_readers"):
            self._output: dict[str, bytes] = {}
            self._readers = [threading.Thread(target=self._read, args=(name,), daemon=True)
                             for name in ("stdout", "stderr") if getattr(self, name) is not None]
            for reader in self._readers:
                reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in self._readers:
            reader.join(None if deadline is None else max(0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(None if deadline is None else max(0, deadline - time.monotonic()))
        return self._output.get("stdout", b""), self._output.get("stderr", b"")

    def _read(self, name: str) -> None:
        with getattr(self, name) as stream:
            self._output[name] = stream.read()


def spawn(args: Sequence[str], env: Mapping[str, str], *, stdin: int | None = None,
          stdout: int | None = None, stderr: int | None = None, new_session: bool = False) -> ForkedProcess:
    """`python -m app ARGS` forked from this process's fork server. Each stream is subprocess.PIPE
    (stdout and stderr), subprocess.DEVNULL, subprocess.STDOUT (stderr), or None for this
    process's own."""
    server = _server()
    ours: list[int] = []  # this process's ends of pipes, and descriptors to close once sent
    theirs: list[int] = []  # what the child gets as 0, 1 and 2
    pipes: dict[int, IO[bytes]] = {}
    for target, how in enumerate((stdin, stdout, stderr)):
        if how is None:
            theirs.append(target)
        elif how == subprocess.STDOUT:
            theirs.append(theirs[1])
        elif how == subprocess.DEVNULL:
            theirs.append(os.open(os.devnull, os.O_RDWR))
            ours.append(theirs[-1])
        elif how == subprocess.PIPE and target > 0:
            read, write = os.pipe()
            pipes[target] = os.fdopen(read, "rb")
            theirs.append(write)
            ours.append(write)
        else:
            raise ValueError(f"unsupported stream: {how!r}")
    status, child_status = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        request = json.dumps({"args": list(args), "env": dict(env), "cwd": os.getcwd(),
                              "new_session": new_session}).encode()
        socket.send_fds(server, [request], [child_status.fileno(), *theirs])
    finally:
        child_status.close()
        for fd in ours:
            os.close(fd)
    pid = status.recv(64)
    if not pid:
        raise RuntimeError("the fork server ended")
    return ForkedProcess(["python", "-m", "app", *args], int(pid), status, pipes.get(1), pipes.get(2))


_started = threading.Lock()
_process: subprocess.Popen[bytes] | None = None
_control: socket.socket | None = None
_control_env: dict[str, str] = {}


def start(env: Mapping[str, str]) -> None:
    """Start this process's fork server in `env`, once; the next calls do nothing while it runs.
    It ends when this process does (its control socket closes)."""
    global _process, _control, _control_env
    with _started:
        if _control is not None and _process is not None and _process.poll() is None:
            return
        if _control is not None:  # the fork server died: a new one
            _control.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with tempfile.TemporaryFile() as errors, theirs:
            process = subprocess.Popen(
                [sys.executable, __file__, str(theirs.fileno())], pass_fds=[theirs.fileno()], env=dict(env),
                cwd=Path(__file__).parents[2],  # each child goes to its own
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
            )
            theirs.close()
            if ours.recv(16) != b"ready":  # it could not import the service
                process.wait()
                errors.seek(0)
                raise RuntimeError("the fork server did not start:\n" + errors.read().decode(errors="replace"))
        _process, _control, _control_env = process, ours, dict(env)


def stop() -> None:
    """End this process's fork server, if it runs, and wait for it; its children go on."""
    global _process, _control
    with _started:
        if _process is not None and _control is not None:
            _control.close()
            _process.wait()
        _process = _control = None


def _server() -> socket.socket:
    assert _control is not None, "fork_server.start() first"
    return _control


# The fork server's side.

def _preload() -> None:
    """Import every module of the service, which imports the libraries it uses; then set what
    they made aside from the garbage collector, which would otherwise visit (and so copy, page by
    page) all of it in each child: 0.2 s of CPU each (the gc module's documentation advises
    this for servers that fork)."""
    import app

    for module in pkgutil.walk_packages(app.__path__, "app."):
        if module.name != "app.__main__":
            importlib.import_module(module.name)
    gc.freeze()


def _serve(control: socket.socket) -> dict[str, Any] | None:
    """Fork a child for each request and report its end. Returns the request in each child, and
    None in the fork server once the tests' end of `control` closes."""
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up pipe hears of it
    running: dict[int, socket.socket] = {}
    with selectors.DefaultSelector() as selector:
        selector.register(control, selectors.EVENT_READ)
        selector.register(wake_read, selectors.EVENT_READ)
        control.send(b"ready")
        while True:
            for key, _ in selector.select():
                if key.fileobj is control:
                    message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
                    if not message:
                        return None
                    status, streams = socket.socket(fileno=fds[0]), fds[1:]
                    pid = os.fork()
                    if pid == 0:  # the child: nothing of the fork server's stays open in it
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        for sock in (control, status, *running.values()):
                            sock.close()
                        os.close(wake_read)
                        os.close(wake_write)
                        for target, fd in enumerate(streams):
                            os.dup2(fd, target)
                        for fd in set(streams) - {0, 1, 2}:
                            os.close(fd)
                        return json.loads(message)
                    for fd in streams:
                        os.close(fd)
                    with contextlib.suppress(OSError):  # the test gave up on it
                        status.send(str(pid).encode())
                    running[pid] = status
                else:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_read, 512):
                            pass
                    _report_ended(running)


def _report_ended(running: dict[int, socket.socket]) -> None:
    while running:
        pid, how = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        status = running.pop(pid)
        with contextlib.suppress(OSError):
            status.send(str(os.waitstatus_to_exitcode(how)).encode())
        status.close()


def _run_in_child(request: dict[str, Any]) -> None:
    """Become `python -m app ARGS` as started in the request's directory and environment."""
    import runpy

    signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored by the fork server
    if request["new_session"]:
        os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # as `python -m` sets it
    sys.argv = ["-m", *request["args"]]
    runpy.run_module("app", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    sys.path[0] = os.getcwd()
    # It outlives a Ctrl-C to the tests' process group, which their teardown still needs it
    # for; its children start as from a terminal, whatever the thread that started it had done:
    # SIGINT raises KeyboardInterrupt (see _run_in_child), and no signal is blocked.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _control_socket = socket.socket(fileno=int(sys.argv[1]))
    _preload()
    _request = _serve(_control_socket)
    if _request is None:
        raise SystemExit(0)
    _run_in_child(_request)  # its SystemExit ends this child as it would end `python -m app`
