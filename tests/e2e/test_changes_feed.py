"""The changes feed under load, across server processes: followers that poll, long-poll and
stream (reconnecting at random) each see every change exactly once, in the log's order, while
writers on two processes make thousands of changes in overlapping transactions."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.adapters import postgres
from app.domain.history import ChangeToken
from app.domain.owners import LOCAL
from tests.e2e.processes import Server
from tests.factories import draft

pytestmark = pytest.mark.slow
CHANGES = 5000
WRITERS = 8
Row = tuple[str, str, int, int]  # token, op, id, version


@pytest.fixture
def two_servers(sql_database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    first = Server(sql_database_url, tmp_path / "first.log").wait_ready()
    second = Server(sql_database_url, tmp_path / "second.log").wait_ready()
    yield first, second
    for server in (first, second):
        assert server.stop() == 0, server.output()


class Progress:
    """How many writes have been answered; a waiter wakes at the count it waits for."""

    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()
        self._changed = asyncio.Condition()
        self.last: str | None = None  # the token of the log's last row, once the writing is over
        self.last_known = asyncio.Event()

    def set_last(self, token: str) -> None:
        self.last = token
        self.last_known.set()

    async def wrote(self) -> None:
        async with self._changed:
            self.count += 1
            self._changed.notify_all()

    async def finish(self) -> None:
        async with self._changed:
            self.done.set()
            self._changed.notify_all()

    async def reach(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.count >= count or self.done.is_set())


async def writer(session: aiohttp.ClientSession, bases: list[str], writes: int, progress: Progress,
                 rng: random.Random) -> None:
    """Creates, replaces, patches, deletes and restores notes of its own, on either process."""
    live: list[int] = []
    trashed: list[int] = []
    for _ in range(writes):
        base = rng.choice(bases)
        choice = rng.random()
        if not live or choice < 0.3:
            async with session.post(f"{base}/notes", json={"title": "w", "tags": ["x"]}) as response:
                assert response.status == 201, await response.text()
                live.append((await response.json())["id"])
        elif choice < 0.55:
            async with session.put(f"{base}/notes/{rng.choice(live)}", json={"title": "put"}) as response:
                assert response.status == 200, await response.text()
        elif choice < 0.75:
            async with session.patch(f"{base}/notes/{rng.choice(live)}", json={"priority": 3}) as response:
                assert response.status == 200, await response.text()
        elif choice < 0.9 or not trashed:
            note_id = live.pop(rng.randrange(len(live)))
            async with session.delete(f"{base}/notes/{note_id}") as response:
                assert response.status == 204, await response.text()
            trashed.append(note_id)
        else:
            note_id = trashed.pop()
            async with session.post(f"{base}/trash/{note_id}/restore") as response:
                assert response.status == 200, await response.text()
            live.append(note_id)
        await progress.wrote()


async def interloper(database_url: str, progress: Progress, rounds: int) -> int:
    """Transactions that take their id, write a note, then stay open while 20 more changes of
    the writers commit: the order of commits differs from the order of the transactions."""
    made = 0
    async for store in postgres.open_storage(database_url, pool_size=2, timeout=60):
        for _ in range(rounds):
            async with store.transaction(LOCAL) as tx:
                await tx.notes.add(draft(title="held open"))
                await progress.reach(progress.count + 20)
            made += 1
    return made


async def _none() -> int:
    return 0


async def poller(session: aiohttp.ClientSession, bases: list[str], progress: Progress, rng: random.Random,
                 wait: bool) -> list[Row]:
    """Follows with `since`, each request to either process; with `wait`, as a long poll."""
    seen: list[Row] = []
    since: str | None = None
    while not (progress.last is not None and since is not None
               and ChangeToken.parse(since) >= ChangeToken.parse(progress.last)):
        params = {"limit": str(rng.randint(1, 300))}
        if since is not None:
            params["since"] = since
        if wait:
            params["wait"] = "2"
        async with session.get(f"{rng.choice(bases)}/changes", params=params) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        seen += [("", c["op"], c["id"], c["version"]) for c in page["changes"]]  # a page has one token, `next`
        since = page["next"]
    return seen


async def streamer(session: aiohttp.ClientSession, bases: list[str], progress: Progress,
                   rng: random.Random) -> list[Row]:
    """Follows the event stream, dropping it after a random number of events and resuming on
    either process with Last-Event-ID."""
    seen: list[Row] = []
    while not (progress.last is not None and seen and seen[-1][0] == progress.last):
        headers = {"Accept": "text/event-stream"}
        if seen:
            headers["Last-Event-ID"] = seen[-1][0]
        quota = rng.randint(1, 400)
        async with session.get(f"{rng.choice(bases)}/changes", headers=headers) as response:
            assert response.status == 200, await response.text()
            events = _events(response)
            known = asyncio.ensure_future(progress.last_known.wait())
            while quota and not (progress.last is not None and seen and seen[-1][0] == progress.last):
                following = asyncio.ensure_future(anext(events))
                # the next event, or the news of which one is the last (the stream is quiet then)
                await asyncio.wait([following, known], return_when=asyncio.FIRST_COMPLETED)
                if not following.done() and seen and seen[-1][0] == progress.last:
                    following.cancel()
                    break
                event = await following
                change = event["data"]
                seen.append((event["id"], change["op"], change["id"], change["version"]))
                quota -= 1
            known.cancel()
    return seen


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    event: dict[str, Any] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("id: "):
            event["id"] = line[4:]
        elif line.startswith("data: "):
            event["data"] = orjson.loads(line[6:])
        elif line == "" and "data" in event:
            yield event
            event = {}


async def whole_log(session: aiohttp.ClientSession, base: str, count: int) -> list[dict[str, Any]]:
    """The first `count` rows of the log, read through the event stream (each with its own
    token), and a check that no row follows them."""
    log: list[dict[str, Any]] = []
    async with session.get(f"{base}/changes", headers={"Accept": "text/event-stream"}) as response:
        async for event in _events(response):
            log.append({**event["data"], "token": event["id"]})
            if len(log) == count:
                break
    async with session.get(f"{base}/changes", params={"since": log[-1]["token"]}) as response:
        assert (await response.json())["changes"] == []
    return log


@pytest.mark.longest
async def test_every_follower_sees_every_change_once_in_order(two_servers, sql_database_url: str) -> None:
    bases = [server.base for server in two_servers]
    rng = random.Random(15)
    progress = Progress()
    async with aiohttp.ClientSession() as session:
        followers = [
            asyncio.ensure_future(poller(session, bases, progress, random.Random(1), wait=False)),
            asyncio.ensure_future(poller(session, bases, progress, random.Random(2), wait=True)),
            asyncio.ensure_future(streamer(session, bases, progress, random.Random(3))),
        ]
        writing = [writer(session, bases, CHANGES // WRITERS, progress, random.Random(rng.random()))
                   for _ in range(WRITERS)]
        # On PostgreSQL, transactions held open across others' commits (SQLite has one writer).
        postgres_url = sql_database_url.startswith("postgresql")
        held_open = asyncio.ensure_future(interloper(sql_database_url, progress, 25) if postgres_url else _none())
        await asyncio.wait_for(asyncio.gather(*writing), 300)
        await progress.finish()
        held = await asyncio.wait_for(held_open, 60)
        log = await asyncio.wait_for(whole_log(session, bases[0], CHANGES + held), 60)
        progress.set_last(log[-1]["token"])
        seen = await asyncio.wait_for(asyncio.gather(*followers), 120)
    expected = [(row["token"], row["op"], row["id"], row["version"]) for row in log]
    for rows_seen in seen[:2]:  # the pollers: every row, and the page ends where they were
        assert [row[1:] for row in rows_seen] == [row[1:] for row in expected]
    assert seen[2] == expected  # the stream, token by token across every reconnection
    versions: dict[int, int] = {}
    for row in log:  # each note's changes come in the order they were made
        assert row["version"] >= versions.get(row["id"], 0)
        versions[row["id"]] = row["version"]


async def test_a_follower_waits_for_a_transaction_held_open_rather_than_skip_it(
    postgres_server_url, postgres_template, tmp_path
):
    from tests.databases import postgres_database

    with postgres_database(postgres_server_url, "notes_e2e", postgres_template) as url:
        server = Server(url, tmp_path / "server.log").wait_ready()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{server.base}/changes") as response:
                    start = (await response.json())["next"]
                async for store in postgres.open_storage(url, pool_size=2, timeout=60):
                    async with store.transaction(LOCAL) as tx:
                        held = await tx.notes.add(draft(title="held"))
                        async with session.post(f"{server.base}/notes", json={"title": "later"}) as response:
                            later = await response.json()
                        async with session.get(f"{server.base}/changes", params={"since": start}) as response:
                            page = await response.json()
                        assert page["changes"] == []  # `later` is committed, yet held back
                        waiting = asyncio.ensure_future(
                            session.get(f"{server.base}/changes", params={"since": start, "wait": "30"}))
                        done, _ = await asyncio.wait([waiting], timeout=0.5)
                        assert not done  # the long poll does not answer with `later` alone
                    response = await asyncio.wait_for(waiting, 30)
                    page = await response.json()
                    if len(page["changes"]) < 2:
                        async with session.get(f"{server.base}/changes", params={"since": start}) as again:
                            page = await again.json()
                    assert [c["id"] for c in page["changes"]] == [held.id, later["id"]]
        finally:
            assert server.stop() == 0, server.output()


async def test_wait_answers_soon_after_a_change_in_another_process(two_servers) -> None:
    first, second = two_servers
    delays = []
    async with aiohttp.ClientSession() as session:
        for _ in range(7):
            async with session.get(f"{first.base}/changes", params={"limit": "1000"}) as response:
                start = (await response.json())["next"]
            waiting = asyncio.ensure_future(
                session.get(f"{first.base}/changes", params={"since": start, "wait": "30"}))
            # Whether the long poll is waiting already or reads the change when it starts, its answer
            # comes this soon after the write.
            async with session.post(f"{second.base}/notes", json={"title": "elsewhere"}) as response:
                assert response.status == 201
                written = time.perf_counter()
            answer = await asyncio.wait_for(waiting, 30)
            delays.append(time.perf_counter() - written)
            assert len((await answer.json())["changes"]) == 1
        for _ in range(7):  # the same through a stream, once it is open
            async with session.get(f"{first.base}/changes", params={"limit": "1000"}) as response:
                start = (await response.json())["next"]
            async with session.get(f"{first.base}/changes", headers={
                    "Accept": "text/event-stream", "Last-Event-ID": start}) as stream:
                assert (await stream.content.readline()).startswith(b"retry:")
                async with session.post(f"{second.base}/notes", json={"title": "elsewhere"}) as response:
                    written = time.perf_counter()
                await anext(_events(stream))
                delays.append(time.perf_counter() - written)
    assert statistics.median(delays) < 0.1, delays
    assert max(delays) < 5, delays  # a missed wake-up is the whole wait of 30 s


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


async def _followers(session: aiohttp.ClientSession, server: Server) -> dict[str, int]:
    """The server's followers of the changes feed by state, from its /metrics."""
    async with session.get(f"{server.base}/metrics") as response:
        text = await response.text()
    return {sample.labels["state"]: int(sample.value)
            for family in text_string_to_metric_families(text) if family.name == "notes_changes_followers"
            for sample in family.samples}


async def _statements_since(watcher: asyncpg.Connection, database: str, since: Any) -> list[str]:
    """The statements that connections to `database` began after `since` (the server's clock),
    each connection's last one: pg_stat_activity is live, unlike the statistics flushed later."""
    seen = await watcher.fetch("SELECT query, query_start FROM pg_stat_activity WHERE datname = $1", database)
    assert any(row["query_start"] is not None for row in seen), "pg_stat_activity shows no statement at all"
    return [row["query"] for row in seen if row["query_start"] is not None and row["query_start"] > since]


async def test_two_hundred_idle_followers_cost_no_cpu_and_no_queries(two_servers, sql_database_url) -> None:
    first, _ = two_servers
    server_url, database = sql_database_url.rsplit("/", 1)
    # from another database, so that its own statements are not counted
    watcher = await asyncpg.connect(f"{server_url}/postgres") if sql_database_url.startswith("postgresql") else None
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            streams = [await session.get(f"{first.base}/changes", headers={"Accept": "text/event-stream"})
                       for _ in range(100)]
            polls = [asyncio.ensure_future(session.get(f"{first.base}/changes", params={"since": "0", "wait": "60"}))
                     for _ in range(100)]
            for stream in streams:
                assert stream.status == 200
            deadline = time.monotonic() + 30
            # PostgreSQL: the process LISTENs from its first follower on, and wakes them all once it
            # does ("anything written while no one listened"): that comes first
            while watcher and not await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %' AND state = 'idle'",
                database,
            ):
                assert time.monotonic() < deadline, "the server never LISTENed"
            while (now := await _followers(session, first)) != {"waiting": 200, "active": 0}:  # settled
                assert time.monotonic() < deadline, now
            pid = first.process.pid
            cpu = _cpu_seconds(pid)
            since = await watcher.fetchval("SELECT clock_timestamp()") if watcher else None
            await asyncio.sleep(3)  # the measurement itself: what 200 idle followers cost in 3 seconds
            spent = _cpu_seconds(pid) - cpu
            if watcher:
                assert await _statements_since(watcher, database, since) == []
            assert spent < 0.1, spent
            assert await _followers(session, first) == {"waiting": 200, "active": 0}
            for stream in streams:
                stream.close()
            for poll in polls:
                poll.cancel()
    finally:
        if watcher:
            await watcher.close()


async def test_a_stopping_server_ends_its_streams_cleanly(any_database_url: str, tmp_path) -> None:
    server = Server(any_database_url, tmp_path / "server.log").wait_ready()
    stopped = False
    events = {"Accept": "text/event-stream"}
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{server.base}/changes", headers=events) as stream:
            assert (await stream.content.readline()).startswith(b"retry:")  # the stream is open
            stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
            stopped = True
            # the stream ends at once (its keep-alive is 15 s away, the shutdown timeout 10 s)
            rest = await asyncio.wait_for(stream.content.read(), 5)
            assert b"id:" not in rest
            assert await stopping == 0, server.output()
            assert "Traceback" not in server.output()
    finally:
        if not stopped:
            server.stop()
