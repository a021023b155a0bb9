"""The access log (aiohttp's access-log hook) and the text and JSON formats of every log line."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterator

import orjson
import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, LineTooLong
from aiohttp.test_utils import TestServer

from app.container import build_container, http_app
from app.domain.owners import Scope
from app.entrypoints.http.access_log import ACCESS_LOGGER, AccessLog
from app.entrypoints.http.keys import ACCOUNTS
from app.entrypoints.logs import CURRENT_REQUEST, JsonFormatter, TextFormatter, client_protocol_errors
from tests.conftest import settings_for

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FIELDS = {"time", "level", "logger", "request_id", "method", "path", "status", "owner", "duration_ms", "bytes"}
SECRETS = ("Bearer s3cr3t-token", "session=c00kie-value", "body-secret-words", "query-secret")


class Lines(list):
    """Lines logged so far, and an event set whenever more arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()
        self.logs: list[AccessLog] = []  # the access logs of the servers writing here

    def flush(self) -> None:
        for log in self.logs:
            log.flush()


class Sink(logging.Handler):
    """Keeps every line logged to it (a record of access lines holds several)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines = Lines()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += record.getMessage().split("\n")
        self.lines.arrived.set()


async def logged(lines: Lines, count: int) -> Lines:
    """The lines once `count` are out. aiohttp logs a request just after sending its response,
    and the batch goes out on its own timer: woken by each batch, not by a clock."""
    async with asyncio.timeout(5):
        while len(lines) < count:
            lines.arrived.clear()
            await lines.arrived.wait()
    return lines


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    logger = logging.getLogger(ACCESS_LOGGER)
    sink, level = Sink(), logger.level
    logger.addHandler(sink)
    logger.setLevel(logging.INFO)
    yield sink.lines
    sink.lines.flush()
    logger.removeHandler(sink)
    logger.setLevel(level)


async def logged_client(aiohttp_client, log_format: str, lines: Lines):
    """A memory-backed app served with the access-log hook, as `python -m app serve` does."""
    log = AccessLog(log_format)
    lines.logs.append(log)
    server = TestServer(http_app(build_container(settings_for("memory://"))))
    await server.start_server(  # TestServer(**kwargs) would drop these; start_server passes them on
        access_log_class=log.hook(), access_log=log.logger, access_log_format=log.format
    )
    return await aiohttp_client(server)


async def test_a_write_refused_to_a_read_token_names_its_owner(aiohttp_client, access_lines) -> None:
    """The token is good, so the line says whose it is, on the first request (its token looked
    up) and on the next (its token verified moments ago)."""
    log = AccessLog("json")
    access_lines.logs.append(log)
    server = TestServer(http_app(build_container(settings_for("memory://", auth="required"))))
    await server.start_server(access_log_class=log.hook(), access_log=log.logger, access_log_format=log.format)
    client = await aiohttp_client(server)
    accounts = client.app[ACCOUNTS]
    await accounts.add_owner("ann")
    issued = await accounts.issue_token("ann", scope=Scope.READ)
    for _ in range(2):
        refused = await client.post("/notes", json={"title": "t"}, headers={"Authorization": f"Bearer {issued.secret}"})
        assert refused.status == 403
    lines = [orjson.loads(line) for line in await logged(access_lines, 2)]
    assert [(line["status"], line["owner"]) for line in lines] == [(403, "ann"), (403, "ann")]


async def send_requests(client) -> None:
    """Three requests with known ids: a write carrying credentials, a read, an unknown path."""
    await client.post(
        "/notes?mode=query-secret",
        data=b'{"title": "body-secret-words"}',
        headers={
            "X-Request-ID": "req-post",
            "Authorization": SECRETS[0],
            "Cookie": SECRETS[1],
            "Content-Type": "application/json",
        },
    )
    await client.get("/notes/1", headers={"X-Request-ID": "req-get"})
    await client.get("/no/such/path", headers={"X-Request-ID": "req-missing"})


async def test_each_request_is_one_json_line_with_its_fields(aiohttp_client, access_lines) -> None:
    client = await logged_client(aiohttp_client, "json", access_lines)
    await send_requests(client)
    lines = [orjson.loads(line) for line in await logged(access_lines, 3)]
    by_id = {line["request_id"]: line for line in lines}
    assert len(lines) == len(by_id) == 3
    assert all(set(line) == FIELDS for line in lines)
    assert [
        (by_id[i]["method"], by_id[i]["path"], by_id[i]["status"]) for i in ("req-post", "req-get", "req-missing")
    ] == [("POST", "/notes", 401), ("GET", "/notes/1", 404), ("GET", "/no/such/path", 404)]
    # the POST's token is unknown: no owner; the GET acts for local; no route, no owner
    assert [by_id[i]["owner"] for i in ("req-post", "req-get", "req-missing")] == [None, "local", None]
    for line in lines:
        assert TIME.fullmatch(line["time"]) and line["level"] == "INFO" and line["logger"] == ACCESS_LOGGER
        assert isinstance(line["duration_ms"], float) and 0 <= line["duration_ms"] < 10_000
        assert isinstance(line["bytes"], int) and line["bytes"] > 0


async def test_the_text_line_has_the_same_fields_as_key_value_pairs(aiohttp_client, access_lines) -> None:
    client = await logged_client(aiohttp_client, "text", access_lines)
    await send_requests(client)
    assert len(await logged(access_lines, 3)) == 3
    line = next(line for line in access_lines if "request_id=req-get " in line)
    assert re.fullmatch(
        r"\S+Z INFO app\.access: request_id=req-get method=GET path=/notes/1 status=404 owner=local"
        r" duration_ms=\d+\.\d{3} bytes=\d+",
        line,
    ), line


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_no_body_credential_or_query_string_is_ever_logged(aiohttp_client, access_lines, log_format) -> None:
    await send_requests(await logged_client(aiohttp_client, log_format, access_lines))
    assert len(await logged(access_lines, 3)) == 3
    assert not [line for line in access_lines for secret in SECRETS if secret.split("=")[-1] in line]


async def test_a_url_cannot_split_or_forge_an_access_line(aiohttp_client, access_lines) -> None:
    client = await logged_client(aiohttp_client, "text", access_lines)
    await client.get("/notes%0A2026-01-01T00:00:00.000Z%20INFO%20app.access:%20forged")
    assert len(await logged(access_lines, 1)) == 1 and "path=/notes%0A2026" in access_lines[0]


async def test_below_info_the_access_log_formats_nothing(aiohttp_client, access_lines) -> None:
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
    await send_requests(await logged_client(aiohttp_client, "json", access_lines))
    assert not access_lines.logs[0].hook()(logging.getLogger(ACCESS_LOGGER), "json").enabled
    access_lines.flush()  # whatever had been queued comes out now, without waiting for the timer
    assert access_lines == []


def record(message: str, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("app.http", logging.ERROR, __file__, 1, message, None, exc_info)  # type: ignore[arg-type]


def test_an_app_log_record_is_one_json_object_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        line = JsonFormatter().format(record("two\nlines", sys.exc_info()))
    assert "\n" not in line
    document = orjson.loads(line)
    assert document["level"] == "ERROR" and document["logger"] == "app.http" and document["message"] == "two\nlines"
    assert TIME.fullmatch(document["time"]) and "ValueError: boom" in document["exception"]


async def test_app_log_records_written_during_a_request_carry_its_id() -> None:
    token = CURRENT_REQUEST.set(["req-77", None, asyncio.current_task()])
    try:
        json_line, text_line = JsonFormatter().format(record("m")), TextFormatter().format(record("m"))
    finally:
        CURRENT_REQUEST.reset(token)
    assert orjson.loads(json_line)["request_id"] == "req-77"
    assert re.fullmatch(r"\S+Z ERROR app\.http: m request_id=req-77", text_line)
    assert "request_id" not in JsonFormatter().format(record("m"))


async def test_log_records_of_a_task_started_during_a_request_carry_no_request_id() -> None:
    """A driver's pool may start a task while a request runs; the task inherits the request's
    context, but what it logs later (a warning about a connection) is not that request's."""

    async def log_in_task() -> tuple[str, str]:
        return JsonFormatter().format(record("m")), TextFormatter().format(record("m"))

    token = CURRENT_REQUEST.set(["req-78", None, asyncio.current_task()])
    try:
        json_line, text_line = await asyncio.create_task(log_in_task())
    finally:
        CURRENT_REQUEST.reset(token)
    assert "request_id" not in orjson.loads(json_line)
    assert "req-78" not in text_line


@pytest.mark.parametrize(
    "error",
    [
        LineTooLong(b"/secret-in-the-url" * 500, "8190"),
        BadStatusLine(b"XEVIL /secret HTTP/1.1"),
        BadHttpMessage("Invalid header value char:\n\n  b'X-Probe: secret'\n"),
    ],
)
def test_a_malformed_request_is_logged_in_one_line_that_repeats_nothing_it_sent(error) -> None:
    try:
        raise error
    except BadHttpMessage:
        logged = logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("127.0.0.1",),
            sys.exc_info(),
        )
    client_protocol_errors(logged)
    line = TextFormatter().format(logged)
    assert "\n" not in line and "secret" not in line and "WARNING" in line and ": 400 " in line
