"""Idempotent creates under faults: a lost database answer or a killed server never makes two notes.

Many keys are POSTed at once and a fault strikes while they are in flight. Every key without a 201
is retried after the fault, then again once an idempotency lease would have passed (the 60 s that
freed a claim left by a crashed request; the service's clock is moved on, not waited for), until it
gets one. Then every key has exactly one note, and its answer, replayed, names that note.

The window: a fault after the note commits but before the key's answer is recorded with it. A small
pool widens it (each statement waits for a connection), a black hole too (the database commits, its
answer is swallowed), and the kill test freezes the server until it is inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
import sqlalchemy as sa
from dependency_injector import providers

from app.container import build_container, http_app
from tests.conftest import _empty as empty
from tests.conftest import settings_for
from tests.e2e.processes import Server
from tests.e2e.proxy import Proxy
from tests.e2e.test_database_outage import eventually_ready
from tests.http.support import all_notes

KEYS, ROUNDS = 200, 2  # keys POSTed at once, faults per test
PAST_THE_LEASE = timedelta(minutes=2)  # well within the 24 hours a key is kept
LOST = 0  # the status of a request whose connection broke
Answer = tuple[int, int | None, bool]  # status, the id of the note a 201 names, replayed or not


class Clock:
    """The service's clock, which the test moves on instead of sleeping."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


async def start_service(aiohttp_client, database_url: str, **settings: object):
    clock = Clock()
    container = build_container(settings_for(database_url, **settings))
    container.clock.override(providers.Object(clock))
    return await aiohttp_client(http_app(container)), clock


async def post(client, key: str) -> Answer:
    """POST a note titled with its own Idempotency-Key."""
    try:
        headers = {"Idempotency-Key": key}
        async with client.post("/notes", json={"title": key}, headers=headers) as response:
            body = await response.json(content_type=None)
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            return response.status, body["id"] if response.status == 201 else None, replayed
    except aiohttp.ClientError:
        return LOST, None, False


class Answers(dict[str, Answer]):
    """The answers so far, and a way to wait for the next one."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    def __setitem__(self, key: str, answer: Answer) -> None:
        super().__setitem__(key, answer)
        self.arrived.set()

    async def another(self) -> None:
        self.arrived.clear()
        await asyncio.wait_for(self.arrived.wait(), 30)


async def fire(client, keys: list[str], strike) -> Answers:
    """POST every key at once; `strike(answers)` runs once a quarter of them have answered."""
    answers = Answers()

    async def one(key: str) -> None:
        answers[key] = await post(client, key)

    tasks = [asyncio.create_task(one(key)) for key in keys]
    while len(answers) < len(keys) // 4:
        await answers.another()
    await strike(answers)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert {status for status, _, _ in answers.values()} <= {201, 503, LOST}, answers
    return answers


def new_keys() -> list[str]:
    batch = uuid.uuid4().hex[:8]
    return [f"{batch}-{i}" for i in range(KEYS)]


async def settle(client, clock: Clock, answers: dict[str, Answer]) -> None:
    """Retry every key without a 201 after the fault, then past the lease, until each has one."""
    pending = {key: answer for key, answer in answers.items() if answer[0] != 201}
    for ahead in (timedelta(0), PAST_THE_LEASE):
        clock.ahead = ahead
        for _ in range(10):
            if not pending:
                return
            await eventually_ready(client)
            retried = await asyncio.gather(*(post(client, key) for key in pending))
            pending = dict(zip(pending, retried, strict=True))
            assert {status for status, _, _ in pending.values()} <= {201, 409, 503}, pending
            answers |= {key: answer for key, answer in pending.items() if answer[0] == 201}
            pending = {key: answer for key, answer in pending.items() if answer[0] != 201}
            if all(status == 409 for status, _, _ in pending.values()):
                break  # held by a claim: only the lease can free them
    assert not pending, f"{len(pending)} keys answer {list(pending.items())[:5]} past the lease"


async def assert_one_note_per_key(client, answers: dict[str, Answer]) -> None:
    ids: dict[str, list[int]] = {}
    for note in await all_notes(client):
        ids.setdefault(note["title"], []).append(note["id"])
    wrong = {key: ids.get(key, []) for key in answers if len(ids.get(key, [])) != 1}
    some = dict(list(wrong.items())[:5])
    assert not wrong, f"{len(wrong)} of {len(answers)} keys have not one note but (ids): {some}"
    answered = {key: note_id for key, (_, note_id, _) in answers.items()}
    assert answered == {key: ids[key][0] for key in answers}
    replays = await asyncio.gather(*(post(client, key) for key in answers))
    assert dict(zip(answers, replays, strict=True)) == {k: (201, ids[k][0], True) for k in answers}


@pytest.fixture
async def proxy(migrated_postgres: str):
    await empty(migrated_postgres)
    url = sa.make_url(migrated_postgres)
    proxy = await Proxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    await proxy.cut()


async def black_hole(proxy: Proxy) -> None:
    proxy.black_hole = True  # what is in flight is swallowed, what comes next is never answered


@pytest.mark.parametrize("fault", [Proxy.cut, black_hole], ids=["cut", "black-holed"])
async def test_every_key_makes_one_note_when_postgresql_is_lost_mid_request(
    fault, proxy: Proxy, migrated_postgres: str, aiohttp_client
) -> None:
    url = sa.make_url(migrated_postgres).set(host="127.0.0.1", port=proxy.port)
    client, clock = await start_service(
        aiohttp_client, url.render_as_string(hide_password=False), db_timeout=0.5, pool_size=4
    )
    answers: dict[str, Answer] = {}
    for _ in range(ROUNDS):
        await eventually_ready(client)
        answers |= await fire(client, new_keys(), lambda _: fault(proxy))
        await proxy.cut()
        await proxy.restore()
    await settle(client, clock, answers)
    checker, _ = await start_service(aiohttp_client, migrated_postgres)  # unproxied, unhurried
    await assert_one_note_per_key(checker, answers)


async def committed_titles(database_url: str) -> set[str]:
    if database_url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db:
            return {title for (title,) in db.execute("SELECT title FROM notes")}
    connection = await asyncpg.connect(database_url)
    try:
        return {title for (title,) in await connection.fetch("SELECT title FROM notes")}
    finally:
        await connection.close()


class KillInTheWindow:
    """A strike that freezes the server (SIGSTOP) as each answer arrives until one of `keys` has a
    note committed but not answered, then kills it (SIGKILL). A blind kill rarely lands there when
    the server runs one request at a time (SQLite). `landed` says whether this one did."""

    def __init__(self, server: Server, database_url: str, keys: list[str]) -> None:
        self.server, self.database_url, self.keys = server, database_url, set(keys)
        self.landed = False

    async def __call__(self, answers: Answers) -> None:
        while len(answers) < len(self.keys):
            self.server.process.send_signal(signal.SIGSTOP)
            for _ in range(20):
                await asyncio.sleep(0)  # the answers it sent before the freeze are read
            try:
                committed = await committed_titles(self.database_url)
            except sqlite3.OperationalError:  # "locking protocol": it froze while it held one of
                committed = set()  # SQLite's short locks (a WAL restart); try at the next answer
            self.landed = bool((committed & self.keys) - answers.keys())
            if self.landed or len(answers) == len(self.keys):
                break
            self.server.process.send_signal(signal.SIGCONT)
            await answers.another()
        self.server.kill()


@pytest.mark.slow
async def test_every_key_makes_one_note_when_the_server_is_killed_mid_request(
    sql_database_url: str, tmp_path, aiohttp_client
) -> None:
    answers: dict[str, Answer] = {}
    landed = 0
    for round_ in range(2 * ROUNDS):  # each round starts the server again on the same database
        keys, migrated = new_keys(), ("--no-migrate",) if round_ else ()
        server = Server(sql_database_url, tmp_path / f"{round_}.log", "--pool-size", "4", *migrated)
        strike = KillInTheWindow(server, sql_database_url, keys)
        try:
            async with aiohttp.ClientSession(server.wait_ready().base) as session:
                answers |= await fire(session, keys, strike)
        finally:
            server.kill()
        landed += strike.landed
        if landed == ROUNDS:
            break
    assert landed, "no kill came between a commit and its answer"
    client, clock = await start_service(aiohttp_client, sql_database_url)  # once more, to settle
    await settle(client, clock, answers)
    await assert_one_note_per_key(client, answers)
