"""The process's logs: text or JSON lines on stderr, each record of a request's task with its id.

`configure_logging` is called once by each process (the server, each worker, `migrate`). The
request pipeline notes the request being answered in `CURRENT_REQUEST`; the formatters read it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TextIO, cast

import orjson

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
# [request id, seconds taken or None while running, its task, its owner once known] of the
# request being answered
CURRENT_REQUEST: ContextVar[list | None] = ContextVar("current_request", default=None)


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
    handler.addFilter(driver_errors)
    logging.basicConfig(level=settings.level.upper(), handlers=[handler])
    # Alembic announces each of its plugins at INFO when imported: no news to an operator.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def failure_lines(settings: LogSettings, lines: list[str]) -> str:
    """What a command writes on stderr as it fails: `notes-api: error: ...` and any lines that
    follow it; with --log-format json one JSON record, at ERROR, so that a collector reading the
    process's stderr as JSON parses its last line too. (Written whatever --log-level says: it is
    the command's answer, not a log record that a level may leave out.)"""
    if settings.format != "json":
        return "".join(f"notes-api: error: {line}\n" if i == 0 else f"{line}\n" for i, line in enumerate(lines))
    return _command_record(JsonFormatter(), logging.ERROR, "\n".join(lines))


def _command_record(formatter: JsonFormatter, level: int, message: str) -> str:
    """A line a command writes on stderr, as a JSON record of the logger app.cli."""
    return formatter.format(logging.LogRecord("app.cli", level, __file__, 0, message, None, None)) + "\n"


def json_asked(argv: Sequence[str]) -> bool:
    """Whether this command line, or else NOTES_LOG_FORMAT, asks for JSON logs, read without
    parsing it: for the failures that come before the parsed flags do (a bad flag, Ctrl-C while
    the modules load). The last --log-format wins, as in argparse."""
    asked = os.environ.get("NOTES_LOG_FORMAT")
    for i, arg in enumerate(argv):
        if arg == "--log-format" and i + 1 < len(argv):
            asked = argv[i + 1]
        elif arg.startswith("--log-format="):
            asked = arg.partition("=")[2]
    return asked == "json"


class RecordLines(io.TextIOBase):
    """A text stream whose lines become JSON records (INFO, logger app.cli) on `sink`: what a
    command reports on stderr (what it exported, the token it issued, a copy's progress) when
    --log-format json asks that stderr hold nothing but JSON lines."""

    def __init__(self, sink: TextIO) -> None:
        super().__init__()
        self._sink, self._partial, self._format = sink, "", JsonFormatter()

    def writable(self) -> bool:
        return True

    def write(self, text: str, level: int = logging.INFO) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._sink.write(_command_record(self._format, level, line))
        return len(text)

    def flush(self) -> None:
        self._sink.flush()


def report_failure(err: TextIO, line: str) -> None:
    """A report that says the command failed (a copy that does not match its source): a line
    of text as the others, or a JSON record at ERROR, for a collector that alerts on those."""
    if isinstance(err, RecordLines):
        err.write(line + "\n", logging.ERROR)
    else:
        err.write(line + "\n")


def reports(settings: LogSettings) -> TextIO:
    """Where a command writes what it did: stderr, as text or as JSON records."""
    # (a TextIOBase is a TextIO to every use here, though not to the type checker)
    return cast(TextIO, RecordLines(sys.stderr)) if settings.format == "json" else sys.stderr


def client_protocol_errors(record: logging.LogRecord) -> bool:
    """aiohttp answers a malformed request (a NUL in a header, a broken request line) with 400
    before any handler runs, and logs it with a traceback; it is the client's error, so one
    warning line without the traceback says all there is to say. Nothing the client sent is
    repeated in it: aiohttp's reasons quote the offending bytes after a colon or a quote."""
    if record.name != "aiohttp.server" or not record.exc_info:
        return True
    from aiohttp.http_exceptions import HttpProcessingError  # loaded by then: aiohttp logged it

    error = record.exc_info[1]
    if isinstance(error, HttpProcessingError):
        message = record.getMessage()
        reason = next((line for line in str(error.message).splitlines() if line.strip()), "")
        reason = re.split(r"[:'\"]", reason, maxsplit=1)[0].strip() or type(error).__name__
        record.msg, record.args = "%s: %d %s", (message, error.code, reason)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def driver_errors(record: logging.LogRecord) -> bool:
    """The database driver logs what it does by itself with a traceback: asyncpg's pool, which
    keeps one connection open, warns each time it fails to reconnect during an outage (after 1,
    2, 4 ... 60 s). Its frames are the driver's own, of no use to an operator: one line, the
    error's type and first line after the driver's message."""
    if record.exc_info and record.exc_info[1] is not None and record.name.split(".", 1)[0] == "asyncpg":
        error = record.exc_info[1]
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        record.msg, record.args = "%s: %s", (record.getMessage(), f"{type(error).__name__}: {reason}".rstrip(": "))
        record.exc_info = record.exc_text = None
    return True


class Timestamps:
    """`2026-11-23T22:30:23.602Z` for a moment: the seconds formatted once a second, the rest
    once a millisecond (a busy server logs many lines within each)."""

    __slots__ = ("_millisecond", "_second", "_second_text", "_text")

    def __init__(self) -> None:
        self._second = self._millisecond = -1
        self._second_text = self._text = ""

    def __call__(self, moment: float) -> str:
        millisecond = int(moment * 1000)
        if millisecond != self._millisecond:
            second, fraction = divmod(millisecond, 1000)
            if second != self._second:
                self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._millisecond, self._text = millisecond, f"{self._second_text}.{fraction:03d}Z"
        return self._text


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


def is_verbatim(record: logging.LogRecord) -> bool:
    """A record whose message is finished lines (the access log's batches): written as it is."""
    return getattr(record, "verbatim", False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._timestamps = Timestamps()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._timestamps(record.created)

    def format(self, record: logging.LogRecord) -> str:
        if is_verbatim(record):
            return record.msg
        request_id = _request_id()
        line = super().format(record)
        return line if request_id is None else f"{line} request_id={request_id}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message; request_id and exception if any."""

    def __init__(self) -> None:
        super().__init__()
        self._timestamps = Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        if is_verbatim(record):
            return record.msg
        document = {
            "time": self._timestamps(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := _request_id()) is not None:
            document["request_id"] = request_id
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document).decode()
