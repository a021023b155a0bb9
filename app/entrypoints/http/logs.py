"""Logs: text or JSON lines on stderr, and the access log, one line per request on "app.access".

The access log is aiohttp's access-log hook (`AccessLogger`): aiohttp calls it once per request
after the response is sent. Its id and duration come from what the request's observer
(pipeline.py) noted in `CURRENT_REQUEST` (aiohttp runs a request, its handler and this
hook in one task of its own, so one context). The lines of up to 50 ms go out together as one log
record: a request then costs the formatting of its line, not a record and a write of its own,
which would cost more than the rest of the access log (see README's Operations). A kill -9 can
lose those last 50 ms of lines; a graceful stop flushes them (`flush_access_log`).
No body and no header value but the request id is ever logged; nor is the query string (it
carries search terms).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

ACCESS_LOGGER = "app.access"
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
# [request id, seconds taken or None while running, its task] of the request being answered
CURRENT_REQUEST: ContextVar[list | None] = ContextVar("current_request", default=None)
_VERBATIM = {"verbatim": True}  # marks a record of finished access lines for the formatters


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: str = "info"  # INFO and below include the access log; WARNING and above leave it out
    format: str = "text"  # or "json": one JSON object per line


DEFAULT_LOGS = LogSettings()


def configure_logging(settings: LogSettings) -> None:
    """Send the app's, aiohttp's and the access log's records to stderr, at one level."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.addFilter(client_protocol_errors)
    logging.basicConfig(level=settings.level.upper(), handlers=[handler])
    # Alembic announces each of its plugins at INFO when imported: no news to an operator.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def client_protocol_errors(record: logging.LogRecord) -> bool:
    """aiohttp answers a malformed request (a NUL in a header, a broken request line) with 400
    before any handler runs, and logs it with a traceback; it is the client's error, so one
    warning line without the traceback says all there is to say. Nothing the client sent is
    repeated in it: aiohttp's reasons quote the offending bytes after a colon or a quote."""
    error = record.exc_info[1] if record.exc_info else None
    if record.name == "aiohttp.server" and isinstance(error, HttpProcessingError):
        message = record.getMessage()
        reason = next((line for line in str(error.message).splitlines() if line.strip()), "")
        reason = re.split(r"[:'\"]", reason, maxsplit=1)[0].strip() or type(error).__name__
        record.msg, record.args = "%s: %d %s", (message, error.code, reason)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


_second: list = [-1, ""]  # the last second formatted, and its text
_millisecond: list = [-1, ""]  # the same for the last millisecond


def utc_timestamp(moment: float) -> str:
    """`2026-11-23T22:30:23.602Z`: the seconds formatted once a second, the rest once a ms."""
    millisecond = int(moment * 1000)
    if millisecond != _millisecond[0]:
        second, fraction = divmod(millisecond, 1000)
        if second != _second[0]:
            _second[:] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _millisecond[:] = millisecond, f"{_second[1]}.{fraction:03d}Z"
    return _millisecond[1]


def _request_id() -> str | None:
    """The id of the request whose own task logs the record. A task started while answering a
    request (a driver's pool keeping its connections) inherits the request's context but works
    for no request: its records carry no id."""
    noted = CURRENT_REQUEST.get()
    if noted is None:
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:  # a thread without an event loop
        return None
    return noted[0] if task is noted[2] else None


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record.created)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "verbatim", False):
            return record.msg
        request_id = _request_id()
        line = super().format(record)
        return line if request_id is None else f"{line} request_id={request_id}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message; request_id and exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "verbatim", False):
            return record.msg
        document = {
            "time": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := _request_id()) is not None:
            document["request_id"] = request_id
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document).decode()


FLUSH_SECONDS = 0.05
MAX_LINES = 2000  # at most this many lines wait: a burst is written without waiting for the timer


class _Lines:
    """Access lines waiting to be logged together, at most FLUSH_SECONDS after the first."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lines: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def add(self, line: str, loop: asyncio.AbstractEventLoop) -> None:
        self._lines.append(line)
        if self._flush_on is not loop:  # also when a loop closed before its flush could run
            self._flush_on = loop
            loop.call_later(FLUSH_SECONDS, self.flush)
        elif len(self._lines) >= MAX_LINES:
            self.flush()

    def flush(self) -> None:
        self._flush_on = None
        lines, self._lines = self._lines, []
        if lines:
            self._logger.info("\n".join(lines), extra=_VERBATIM)


_lines: dict[str, _Lines] = {}  # one per logger in this process, shared by its connections


@atexit.register  # runs before logging's own atexit shutdown, which was registered earlier
def flush_access_log() -> None:
    """Log the access lines still waiting (the server calls it when it stops)."""
    for lines in list(_lines.values()):
        lines.flush()


def _path(request: BaseRequest) -> str:
    """The path as sent, still percent-encoded, so that no URL can split or forge a line."""
    path = request.raw_path
    return path[: path.index("?")] if "?" in path else path


def _text_line(
    logger: str, request: BaseRequest, response: StreamResponse, id_: str, seconds: float
) -> str:
    return (
        f"{utc_timestamp(time.time())} INFO {logger}: request_id={id_} method={request.method}"
        f" path={_path(request)} status={response.status}"
        f" duration_ms={seconds * 1000:.3f} bytes={response.body_length}"
    )


def _json_line(
    logger: str, request: BaseRequest, response: StreamResponse, id_: str, seconds: float
) -> str:
    return orjson.dumps({
        "time": utc_timestamp(time.time()), "level": "INFO", "logger": logger, "request_id": id_,
        "method": request.method, "path": _path(request), "status": response.status,
        "duration_ms": int(seconds * 1_000_000) / 1000, "bytes": response.body_length,
    }).decode()


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access-log hook: `web.run_app(access_log_class=AccessLogger)`.

    `log_format` is "text" or "json".
    """

    __slots__ = ("_line", "_lines", "_loop", "_name")

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._name = logger.name
        self._line: Callable[..., str] = _json_line if log_format == "json" else _text_line
        if logger.name not in _lines:
            _lines[logger.name] = _Lines(logger)
        self._lines = _lines[logger.name]
        self._loop = asyncio.get_running_loop()  # aiohttp builds one per connection, in its loop

    @property
    def enabled(self) -> bool:
        """Off below INFO: aiohttp then neither times nor formats anything for it."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        noted = CURRENT_REQUEST.get()
        if noted is None or noted[1] is None:  # answered by aiohttp before any route (routing.py)
            id_, seconds = "-", time
        else:
            id_, seconds = noted[0], noted[1]
        try:
            line = self._line(self._name, request, response, id_, seconds)
        except Exception:  # the request is answered already: a failure here must not touch it
            self.logger.exception("cannot format the access log line")
            return
        self._lines.add(line, self._loop)
