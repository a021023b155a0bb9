"""The access log: one line per request on "app.access", through aiohttp's access-log hook.

aiohttp calls the hook once per request after the response is sent. Its id and duration come
from what the request pipeline noted in `CURRENT_REQUEST` (aiohttp runs a request, its handler
and this hook in one task of its own, so one context). The lines of up to 50 ms go out together as
one log record: a request then costs the formatting of its line, not a record and a write of its
own, which would cost more than the rest of the access log (see README's Operations). A kill -9
can lose those last 50 ms of lines; a graceful stop flushes them (`AccessLog.flush`).
No body and no header value but the request id is ever logged; nor is the query string (it
carries search terms).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from app.entrypoints.logs import CURRENT_REQUEST, Timestamps

ACCESS_LOGGER = "app.access"
FLUSH_SECONDS = 0.05
MAX_LINES = 2000  # at most this many lines wait: a burst is written without waiting for the timer
_VERBATIM = {"verbatim": True}  # marks a record of finished lines for the formatters (logs.py)


class AccessLog:
    """The access log of one server: its format, and its lines waiting to be logged together, at
    most FLUSH_SECONDS after the first. `hook()` is the class aiohttp builds per connection."""

    def __init__(self, log_format: str, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.format = log_format
        self.timestamps = Timestamps()
        self._lines: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def hook(self) -> type[AbstractAccessLogger]:
        """For `web.AppRunner(access_log_class=...)`: a hook that writes to this log."""
        return type("BoundAccessLogger", (AccessLogger,), {"access_log": self})

    def add(self, line: str, loop: asyncio.AbstractEventLoop) -> None:
        self._lines.append(line)
        if self._flush_on is not loop:  # also when a loop closed before its flush could run
            self._flush_on = loop
            loop.call_later(FLUSH_SECONDS, self.flush)
        elif len(self._lines) >= MAX_LINES:
            self.flush()

    def flush(self) -> None:
        """Log the lines still waiting (the server calls it when it stops)."""
        self._flush_on = None
        lines, self._lines = self._lines, []
        if lines:
            self.logger.info("\n".join(lines), extra=_VERBATIM)


def _path(request: BaseRequest) -> str:
    """The path as sent, still percent-encoded, so that no URL can split or forge a line."""
    path = request.raw_path
    return path[: path.index("?")] if "?" in path else path


def _text_line(
    log: AccessLog, request: BaseRequest, response: StreamResponse, id_: str, seconds: float, owner: str | None
) -> str:
    return (
        f"{log.timestamps(time.time())} INFO {log.logger.name}: request_id={id_} method={request.method}"
        f" path={_path(request)} status={response.status} owner={owner or '-'}"
        f" duration_ms={seconds * 1000:.3f} bytes={response.body_length}"
    )


def _json_line(
    log: AccessLog, request: BaseRequest, response: StreamResponse, id_: str, seconds: float, owner: str | None
) -> str:
    return orjson.dumps({
        "time": log.timestamps(time.time()), "level": "INFO", "logger": log.logger.name, "request_id": id_,
        "method": request.method, "path": _path(request), "status": response.status, "owner": owner,
        "duration_ms": int(seconds * 1_000_000) / 1000, "bytes": response.body_length,
    }).decode()


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access-log hook; use `AccessLog.hook()`, which binds it to its log."""

    __slots__ = ("_line", "_loop")
    access_log: AccessLog  # set by AccessLog.hook()

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._line: Callable[..., str] = _json_line if self.access_log.format == "json" else _text_line
        self._loop = asyncio.get_running_loop()  # aiohttp builds one per connection, in its loop

    @property
    def enabled(self) -> bool:
        """Off below INFO: aiohttp then neither times nor formats anything for it."""
        return self.access_log.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        noted = CURRENT_REQUEST.get()
        if noted is None or noted[1] is None:  # answered by aiohttp before any route
            id_, seconds, owner = "-", time, None
        else:
            id_, seconds, owner = noted[0], noted[1], noted[3]  # the owner: never the token
        try:
            line = self._line(self.access_log, request, response, id_, seconds, owner)
        except Exception:  # the request is answered already: a failure here must not touch it
            self.access_log.logger.exception("cannot format the access log line")
            return
        self.access_log.add(line, self._loop)
