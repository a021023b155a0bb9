"""Running the HTTP server: one process, or several sharing the port with SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time

from aiohttp import web

from app.container import Settings, build_container
from app.entrypoints.http import create_app
from app.entrypoints.http.logs import (
    ACCESS_LOGGER,
    DEFAULT_LOGS,
    AccessLogger,
    LogSettings,
    configure_logging,
    flush_access_log,
)

log = logging.getLogger("app.server")
SHUTDOWN_TIMEOUT = 10.0  # seconds that requests in flight get to finish after SIGTERM


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # not on this platform: the default loop works too, a little slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_server(
    settings: Settings, host: str, port: int, *,
    logs: LogSettings = DEFAULT_LOGS, reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then let requests in flight finish and return.

    The access log is on at `--log-level info` or lower: one line per request on "app.access".
    """
    _event_loop_policy()
    app = create_app(build_container(settings))
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            reuse_port=reuse_port,
            access_log=logging.getLogger(ACCESS_LOGGER),  # skipped by aiohttp when below INFO
            access_log_class=AccessLogger,
            access_log_format=logs.format,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            print=lambda text: log.info(
                "serving on http://%s:%s (%s)", host, port, settings.database_url.split("@")[-1]
            ),
        )
    finally:
        flush_access_log()  # the lines of the last few milliseconds


def _worker(settings: Settings, host: str, port: int, logs: LogSettings) -> None:
    configure_logging(logs)  # a spawned process starts with logging unconfigured
    run_server(settings, host, port, logs=logs, reuse_port=True)


def run_workers(
    settings: Settings, host: str, port: int, count: int, *, logs: LogSettings = DEFAULT_LOGS
) -> int:
    """A pre-fork parent: `count` server processes on one port; a crashed one is restarted.

    SIGTERM or SIGINT is passed on to every worker, which finishes its requests in flight.
    """
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.Process:
        process = context.Process(target=_worker, args=(settings, host, port, logs), daemon=False)
        process.start()
        return process

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: a graceful stop

    workers = [start() for _ in range(count)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(0.2)
        for index, process in enumerate(workers):
            if not process.is_alive() and not stopping:
                log.error("worker %s exited with %s; starting another", process.pid, process.exitcode)
                workers[index] = start()
    for process in workers:
        process.join(SHUTDOWN_TIMEOUT + 5)
    return 0 if all(p.exitcode == 0 for p in workers) else 1
