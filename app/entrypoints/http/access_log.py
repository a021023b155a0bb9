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
from time import time as now

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from app.entrypoints.logs import CURRENT_REQUEST, Timestamps

ACCESS_LOGGER = "app.access"
FLUSH_SECONDS = 0.05
MAX_LINES = 2000  # at most this many lines wait: a burst is written without waiting for the timer
# Seconds by which aiohttp's time of a request must pass the pipeline's for the access log to take
# it: aiohttp's clock (uvloop's) counts whole milliseconds, so a difference of one or two is its
# rounding, and the pipeline's own time is the finer.
STREAMED = 0.005
_VERBATIM = {"verbatim": True}  # marks a record of finished lines for the formatters (logs.py)


class AccessLog:
    """The access log of one server: its format, and its lines waiting to be logged together, at
    most FLUSH_SECONDS after the first. `hook()` is the class aiohttp builds per connection."""

    def __init__(self, log_format: str, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.format = log_format
        self.timestamps = Timestamps()
        self.lines: list[str] = []  # waiting; the hook appends to it (`AccessLogger.log`)
        self.flush_on: asyncio.AbstractEventLoop | None = None  # the loop whose timer flushes them

    def hook(self) -> type[AbstractAccessLogger]:
        """For `web.AppRunner(access_log_class=...)`: a hook that writes to this log."""
        return type("BoundAccessLogger", (AccessLogger,), {"access_log": self})

    def added(self, loop: asyncio.AbstractEventLoop) -> None:
        """After a line was appended to `lines`: start the timer of the first line, or flush a
        burst without waiting for it."""
        if self.flush_on is not loop:  # also when a loop closed before its flush could run
            self.flush_on = loop
            loop.call_later(FLUSH_SECONDS, self.flush)
        elif len(self.lines) >= MAX_LINES:
            self.flush()

    def flush(self) -> None:
        """Log the lines still waiting (the server calls it when it stops)."""
        self.flush_on = None
        lines = self.lines
        if lines:
            batch = "\n".join(lines)
            lines.clear()  # the same list: hooks hold it
            self.logger.info(batch, extra=_VERBATIM)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access-log hook; use `AccessLog.hook()`, which binds it to its log.

    `log` formats both formats itself, from locals, with no call of its own but the timestamp's
    and the properties of aiohttp it must read: it runs once per request, and each call would
    cost about as much as the formatting (README's Operations has what the access log costs).
    """

    __slots__ = ("_json", "_lines", "_logger_name", "_loop", "_timestamps")
    access_log: AccessLog  # set by AccessLog.hook()

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        log = self.access_log
        self._json = log.format == "json"
        self._logger_name = log.logger.name
        self._timestamps = log.timestamps.__call__  # bound: cheaper to call than the instance
        self._lines = log.lines
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
            if time - seconds > STREAMED:  # a body sent long after the pipeline timed the request (the
                seconds = time  # changes' events, an export): aiohttp's time, to its last byte
        # what was sent; a stream the client left has no length of its own, but its writer counted it
        sent = response.body_length or request.writer.output_size
        try:
            # the path as sent, still percent-encoded, so that no URL can split or forge a line;
            # never the query string (it carries search terms)
            path = request.raw_path.partition("?")[0]
            if self._json:
                line = orjson.dumps({
                    "time": self._timestamps(now()), "level": "INFO", "logger": self._logger_name,
                    "request_id": id_, "method": request.method, "path": path, "status": response.status,
                    "owner": owner, "duration_ms": int(seconds * 1_000_000) / 1000,
                    "bytes": sent,
                }).decode()
            else:
                line = (  # an f-string: about twice as fast as str.format or %
                    f"{self._timestamps(now())} INFO {self._logger_name}: request_id={id_}"
                    f" method={request.method} path={path} status={response.status} owner={owner or '-'}"
                    f" duration_ms={seconds * 1000:.3f} bytes={sent}"
                )
        except Exception:  # the request is answered already: a failure here must not touch it
            self.access_log.logger.exception("cannot format the access log line")
            return
        lines = self._lines
        lines.append(line)
        if self.access_log.flush_on is not self._loop or len(lines) >= MAX_LINES:
            self.access_log.added(self._loop)  # the first line of a batch, or a burst
