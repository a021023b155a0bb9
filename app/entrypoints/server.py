"""Running the HTTP server: one process, or several sharing the port with SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys
import time

from aiohttp import web

from app.container import Settings, build_container
from app.entrypoints.http import create_app

log = logging.getLogger("app.server")
SHUTDOWN_TIMEOUT = 10.0  # seconds that requests in flight get to finish after SIGTERM


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # not on this platform: the default loop works too, a little slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_server(settings: Settings, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then let requests in flight finish and return."""
    _event_loop_policy()
    app = create_app(build_container(settings))
    web.run_app(
        app,
        host=host,
        port=port,
        reuse_port=reuse_port,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        print=lambda text: log.info("serving on http://%s:%s (%s)", host, port, settings.database_url.split("@")[-1]),
    )


def _worker(settings: Settings, host: str, port: int) -> None:
    logging.basicConfig(level=logging.getLogger().level or logging.INFO)
    run_server(settings, host, port, reuse_port=True)


def run_workers(settings: Settings, host: str, port: int, count: int) -> int:
    """A pre-fork parent: `count` server processes on one port; a crashed one is restarted.

    SIGTERM or SIGINT is passed on to every worker, which finishes its requests in flight.
    """
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.Process:
        process = context.Process(target=_worker, args=(settings, host, port), daemon=False)
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
