"""Running the HTTP server in this process until SIGTERM or SIGINT (`workers.py` runs several).

aiohttp's AppRunner and TCPSite rather than `web.run_app`: start-up then has two phases this
module can tell apart (opening the storage, listening), each failure becomes one line in the
service's words, a stop during start-up is a clean stop, and the addresses actually listened on
(`--port 0` picks one) are known, logged and handed to the caller.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from aiohttp import web

from app.adapters.connect_errors import connect_problem
from app.container import build_container, http_app
from app.domain.errors import StorageReadOnlyError, StorageUnavailableError
from app.entrypoints.http.access_log import AccessLog
from app.entrypoints.http.keys import AUTHENTICATION, NOTES
from app.entrypoints.logs import DEFAULT_LOGS, LogSettings
from app.settings import Settings, redacted

log = logging.getLogger("app.server")
SHUTDOWN_TIMEOUT = 10.0  # seconds that requests in flight get to finish after SIGTERM
KEEPALIVE_TIMEOUT = 75.0  # seconds an idle connection stays open: what web.run_app used to set
Address = tuple[str, int]  # (host, port) of a listening socket
_HINTS = {
    errno.EADDRINUSE: "another process listens there: stop it, or choose another --port",
    errno.EACCES: "ports below 1024 need privileges: choose another --port",
    errno.EADDRNOTAVAIL: "no interface of this machine has that address: check --host",
}


class ServeError(Exception):
    """The server cannot start or go on; the message is the one line to show, with the fix."""


def run_server(
    settings: Settings, host: str, port: int, *, logs: LogSettings = DEFAULT_LOGS,
    reuse_port: bool = False, on_serving: Callable[[list[Address]], None] | None = None,
    stop_signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Serve until one of the `stop_signals`, then let requests in flight finish and return.

    Once the server answers, it logs where, and `on_serving` gets the addresses listened on.
    The access log is on at `--log-level info` or lower: one line per request on "app.access".
    """
    _event_loop_policy()
    access_log = AccessLog(logs.format)
    app = http_app(build_container(settings))
    runner = _runner(app, access_log)
    auth_in_force = [""]

    def listening(addresses: list[Address]) -> None:  # before any request is read: no await since listen
        auth_in_force[0] = app[AUTHENTICATION].listening(host for host, _ in addresses)

    start = partial(_start, runner, host, port, reuse_port, settings.database_url, listening)

    def serving(addresses: list[Address]) -> None:
        if on_serving is not None:  # first: whoever reads the line below may act on it at once
            on_serving(addresses)  # (a worker's parent then knows it served, whatever follows)
        served = urls(addresses)
        log.info("serving on %s (%s); %s; API docs at %s/docs",
                 ", ".join(served), redacted(settings.database_url), auth_in_force[0], served[0])

    try:
        asyncio.run(_serve(runner, start, serving, stop_signals))
    finally:
        access_log.flush()  # the lines of the last few milliseconds


def _runner(app: web.Application, access_log: AccessLog) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=access_log.logger,  # skipped by aiohttp when below INFO
        access_log_class=access_log.hook(),
        access_log_format=access_log.format,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )


async def _serve(
    runner: web.AppRunner, start: Callable[[], Awaitable[list[Address]]],
    on_serving: Callable[[list[Address]], None], stop_signals: Sequence[signal.Signals],
) -> None:
    """Start, serve until a stop signal, and clean up; a stop while starting cancels the start."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in stop_signals:
        loop.add_signal_handler(signum, stopped.set)
    starting = asyncio.ensure_future(start())
    stopping = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            on_serving(starting.result())  # raises the start-up's error, if any
            await stopping
            log.info("stopping: requests in flight have up to %g s to finish", SHUTDOWN_TIMEOUT)
    finally:
        for task in (starting, stopping):
            task.cancel()
        await asyncio.wait((starting, stopping))  # let a cancelled start unwind first
        await runner.cleanup()


async def _start(
    runner: web.AppRunner, host: str, port: int, reuse_port: bool, database_url: str,
    listening: Callable[[list[Address]], None],
) -> list[Address]:
    try:
        await runner.setup()  # opens the storage (the application's cleanup_ctx)
    except StorageUnavailableError as error:
        raise ServeError(connect_problem(error, database_url) or str(error)) from error
    try:  # a store that would refuse every write is no start (/readyz: whether it takes one now)
        await runner.app[NOTES].check_not_read_only()
    except StorageReadOnlyError as error:
        raise ServeError(str(error)) from error
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
    try:
        await site.start()
    except OSError as error:
        raise ServeError(f"cannot listen on {host}:{port}: {_listen_problem(error)}") from error
    addresses = listening_addresses(runner)
    listening(addresses)
    return addresses


def listening_addresses(runner: web.BaseRunner) -> list[Address]:
    """(host, port) of every socket the runner listens on: the real port, also for `--port 0`."""
    return [(address[0], address[1]) for address in runner.addresses]


def urls(addresses: Sequence[Address]) -> list[str]:
    """`http://host:port` for each address; IPv6 hosts in brackets."""
    return [f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}" for h, p in addresses]


def _listen_problem(error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return f"no such host ({error.strerror})"
    reason = os.strerror(error.errno).lower() if error.errno else str(error)
    hint = _HINTS.get(error.errno or 0)
    return f"{reason}: {hint}" if hint else reason


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # not on this platform: the default loop works too, a little slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
