"""Losing PostgreSQL mid-run: 503 with Retry-After, nothing written, and recovery without restart."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from pathlib import Path

import asyncpg
import orjson
import pytest
import sqlalchemy as sa

from app.container import build_container, http_app
from tests.conftest import settings_for
from tests.e2e.processes import Server
from tests.e2e.proxy import Proxy
from tests.http.support import all_notes, create, problem, send

TIMEOUT = 1.0


@pytest.fixture
async def proxy(migrated_postgres: str):
    url = sa.make_url(migrated_postgres)
    proxy = await Proxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    await proxy.cut()


@pytest.fixture
async def client(aiohttp_client, migrated_postgres: str, proxy: Proxy):
    connection = await asyncpg.connect(migrated_postgres)
    await connection.execute("TRUNCATE notes, idempotency_records RESTART IDENTITY")
    await connection.close()
    through_proxy = sa.make_url(migrated_postgres).set(host="127.0.0.1", port=proxy.port)
    url = through_proxy.render_as_string(hide_password=False)
    return await aiohttp_client(http_app(build_container(settings_for(url, db_timeout=TIMEOUT))))


async def unavailable(response) -> None:
    document = await problem(response, 503)
    assert int(response.headers["Retry-After"]) >= 1
    assert "Traceback" not in orjson.dumps(document).decode()


async def eventually_ready(client, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await client.get("/readyz")).status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the service did not recover")


async def test_a_lost_database_gives_503_then_the_service_recovers_by_itself(client, proxy: Proxy) -> None:
    note = await create(client, title="before")
    await proxy.cut()
    await unavailable(await client.get(f"/notes/{note['id']}"))
    await unavailable(await client.get("/notes"))
    await unavailable(await send(client, "POST", "/notes", {"title": "during"}))
    await unavailable(await send(client, "PATCH", f"/notes/{note['id']}", {"title": "during"}))
    await unavailable(await client.get("/readyz"))
    assert (await client.get("/healthz")).status == 200  # the process itself is fine

    await proxy.restore()
    await eventually_ready(client)
    assert await all_notes(client) == [note]  # nothing from the outage was written
    assert (await send(client, "POST", "/notes", {"title": "after"})).status == 201


async def test_a_database_that_stops_answering_gives_503_within_one_timeout(
    client, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    note = await create(client)
    proxy.black_hole = True  # the open connections stop answering mid-conversation
    for method, path, body, headers in (
        ("GET", f"/notes/{note['id']}", None, {}),
        ("PATCH", f"/notes/{note['id']}", {"priority": 1}, {}),
        ("POST", "/notes", {"title": "t"}, {"Idempotency-Key": "k1"}),
        ("GET", "/notes", None, {}),
    ):
        started = time.monotonic()
        await unavailable(await send(client, method, path, body, headers=headers))
        assert time.monotonic() - started < TIMEOUT * 1.5, (method, path)
        # the operator learns why, in the log
        assert f"{method} {path} answered 503: PostgreSQL did not answer in time" in caplog.text, caplog.text
    # OPTIONS needs no database: it is answered, and no 503 is logged for it
    assert (await client.options(f"/notes/{note['id']}")).status == 204
    assert "OPTIONS" not in caplog.text, caplog.text
    await proxy.cut()
    await proxy.restore()
    await eventually_ready(client)
    gc.collect()  # asyncio reports a task whose exception no one took when it is collected
    assert "never retrieved" not in caplog.text


async def test_a_database_that_refuses_connections_gives_503_not_500(
    client, migrated_postgres: str, postgres_server_url: str
) -> None:
    """55000 "database is not currently accepting connections", as during maintenance."""
    note = await create(client)
    name = sa.make_url(migrated_postgres).database
    admin = await asyncpg.connect(postgres_server_url)  # another database than the one closed
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        statuses = {(await client.get(f"/notes/{note['id']}")).status for _ in range(5)}
        assert statuses == {503}
        await unavailable(await send(client, "POST", "/notes", {"title": "t"}, headers={"Idempotency-Key": "k"}))
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    await eventually_ready(client)


async def test_terminated_backends_give_503_not_500_and_then_recover(client, migrated_postgres: str) -> None:
    note = await create(client)
    admin = await asyncpg.connect(migrated_postgres)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    statuses = {(await client.get(f"/notes/{note['id']}")).status for _ in range(10)}
    assert statuses <= {200, 503} and 500 not in statuses
    await eventually_ready(client)
    assert (await client.get(f"/notes/{note['id']}")).status == 200


async def test_a_stop_while_the_storage_opens_exits_zero_without_a_traceback(
    migrated_postgres: str, proxy: Proxy, tmp_path: Path
) -> None:
    """SIGTERM to a server whose database stops answering as it opens its storage (its schema
    check got through): the start is cancelled, the server exits 0 once the opening has ended
    (its connection times out after --db-timeout), and its output holds no traceback
    (dependency-injector set the result of the cancelled opening, which asyncio reported as
    'Exception in callback ... InvalidStateError')."""
    proxy.black_hole_after = 1  # the schema check (--no-migrate) gets through; the pool does not
    through_proxy = sa.make_url(migrated_postgres).set(host="127.0.0.1", port=proxy.port)
    server = Server(through_proxy.render_as_string(hide_password=False), tmp_path / "server.log",
                    "--no-migrate", "--db-timeout", str(TIMEOUT))
    try:
        await asyncio.wait_for(proxy.wait_accepted(2), 30)  # the storage is opening
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.process.wait, 30)
    finally:
        server.kill()
    output = server.output()
    assert code == 0, output
    assert "Traceback" not in output and "Exception" not in output, output


async def test_the_driver_reconnecting_through_an_outage_logs_one_line_each_time(
    migrated_postgres: str, proxy: Proxy, tmp_path: Path
) -> None:
    """asyncpg's pool keeps a connection open, and warns each time it fails to open one again,
    with the driver's traceback attached: the server's log says it in one line instead."""
    through_proxy = sa.make_url(migrated_postgres).set(host="127.0.0.1", port=proxy.port)
    server = Server(through_proxy.render_as_string(hide_password=False), tmp_path / "server.log",
                    "--no-migrate", "--db-timeout", str(TIMEOUT))
    try:
        await asyncio.to_thread(server.wait_ready)
        await proxy.cut()  # the pool's connection breaks, and reconnecting is refused
        output = await asyncio.to_thread(server.wait_for, "WARNING asyncpg")
    finally:
        code = server.stop()
    warned = next(line for line in output.splitlines() if "WARNING asyncpg" in line)
    assert "ConnectionRefusedError" in warned, output
    assert "Traceback" not in output and code == 0, output
