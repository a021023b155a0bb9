"""Units of work and idempotency records: one contract, every store, a fake clock."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import asyncpg
import pytest

from app.adapters import Storage
from app.adapters import sqlite as sqlite_adapter
from app.container import build_container
from app.domain.errors import IdempotencyKeyInUseError, IdempotencyKeyReusedError, NoteNotFoundError
from app.domain.owners import LOCAL
from app.domain.ports import IDEMPOTENCY_RETENTION
from app.domain.query import ListQuery
from tests.conftest import settings_for
from tests.databases import postgres_database
from tests.factories import T0, draft


class Boom(Exception):
    """Raised inside a unit of work, as a lost connection or a cancelled request would be."""


async def record(storage: Storage, key: str, fingerprint: str, outcome: bytes, at=T0) -> int:
    async with storage.transaction(LOCAL) as tx:
        assert await tx.idempotency.claim(key, fingerprint, at) is None
        note = await tx.notes.add(draft(title=key))
        await tx.idempotency.record(key, fingerprint, outcome, at)
    return note.id


async def claim(storage: Storage, key: str, fingerprint: str, at=T0) -> bytes | None:
    async with storage.transaction(LOCAL) as tx:
        return await tx.idempotency.claim(key, fingerprint, at)


async def test_a_recorded_key_gives_its_outcome_to_every_later_claim(storage: Storage) -> None:
    await record(storage, "k", "f", b"first answer")
    assert await claim(storage, "k", "f", T0 + timedelta(hours=1)) == b"first answer"
    assert await claim(storage, "k", "f", T0 + IDEMPOTENCY_RETENTION) == b"first answer"


async def test_a_key_claimed_with_another_fingerprint_is_refused(storage: Storage) -> None:
    await record(storage, "k", "f", b"first answer")
    with pytest.raises(IdempotencyKeyReusedError):
        await claim(storage, "k", "other")


async def test_a_key_is_free_again_once_its_retention_has_passed(storage: Storage) -> None:
    await record(storage, "k", "f", b"first answer")
    later = T0 + IDEMPOTENCY_RETENTION + timedelta(microseconds=1)
    assert await claim(storage, "k", "other", later) is None
    await record(storage, "k", "other", b"second answer", later)
    assert await claim(storage, "k", "other", later) == b"second answer"


async def test_keys_are_independent(storage: Storage) -> None:
    await record(storage, "a", "f", b"A")
    await record(storage, "b", "f", b"B")
    assert [await claim(storage, k, "f") for k in ("a", "b", "c")] == [b"A", b"B", None]


async def test_a_unit_of_work_that_fails_leaves_nothing_behind(storage: Storage) -> None:
    kept = await storage.notes_of(LOCAL).add(draft(title="kept"))
    with pytest.raises(Boom):
        async with storage.transaction(LOCAL) as tx:
            assert await tx.idempotency.claim("k", "f", T0) is None
            added = await tx.notes.add(draft(title="lost"))
            await tx.notes.update(kept.revised(kept.content(), T0))
            await tx.idempotency.record("k", "f", b"never seen", T0)
            raise Boom
    assert await storage.notes_of(LOCAL).list(ListQuery()) == [kept]  # no note, no change
    with pytest.raises(NoteNotFoundError):
        await storage.notes_of(LOCAL).get(added.id)
    assert await claim(storage, "k", "f") is None  # and the key is free: a retry may run


async def test_a_key_held_by_an_open_unit_of_work_is_in_use_or_waits_for_it(storage: Storage) -> None:
    """A second claim while the first unit of work is open either says "in use" at once or, on
    a store that runs one writer at a time, waits and then gets the first outcome: never a
    second note."""
    claimed, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with storage.transaction(LOCAL) as tx:
            assert await tx.idempotency.claim("k", "f", T0) is None
            await tx.notes.add(draft(title="first"))
            claimed.set()
            await release.wait()
            await tx.idempotency.record("k", "f", b"first answer", T0)

    running = asyncio.create_task(first())
    await claimed.wait()
    second = asyncio.create_task(claim(storage, "k", "f"))
    done, _ = await asyncio.wait({second}, timeout=0.2)  # a bounded look: waiting is allowed
    release.set()
    await running
    if done:
        with pytest.raises(IdempotencyKeyInUseError):
            second.result()
    else:
        assert await second == b"first answer"
    assert [n.title for n in await storage.notes_of(LOCAL).list(ListQuery())] == ["first"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_unit_of_work_cancelled_while_sqlite_writes_its_rows_leaves_none(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite writes a unit of work's many rows on a thread (the loop goes on answering). Were
    the cancelled caller to roll back at once, beside the thread, the rows that the thread then
    writes would commit on their own; it waits for the thread, then rolls back."""
    writing, go_on, written = threading.Event(), threading.Event(), threading.Event()
    insert_rows = sqlite_adapter.insert_rows

    def held(*args: object) -> None:  # on the thread: wait until the caller has been cancelled
        writing.set()
        try:
            assert go_on.wait(10)
            insert_rows(*args)
        finally:
            written.set()

    monkeypatch.setattr(sqlite_adapter, "insert_rows", held)

    async def import_many() -> None:
        async with storage.transaction(LOCAL, rows=100) as tx:
            await tx.notes.add_many([draft(title=f"n{i}") for i in range(100)])

    importing = asyncio.ensure_future(import_many())
    await asyncio.to_thread(writing.wait, 10)
    importing.cancel()
    # One turn of the loop, in which the cancelled task takes its step (cancel() put that step
    # on the ready queue first): no time passes, and a rollback made at once has been made.
    await asyncio.sleep(0)
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await importing
    assert await asyncio.to_thread(written.wait, 10)  # the thread's rows: in the rolled-back transaction, or not
    assert await storage.notes_of(LOCAL).list(ListQuery()) == []
    assert (await storage.notes_of(LOCAL).add(draft(title="after"))).title == "after"  # the writer is free


# A deferred trigger: at COMMIT, each transaction that wrote notes waits for the lock the test holds.
HELD_AT_COMMIT = """
CREATE FUNCTION wait_for_the_test() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER held_at_commit AFTER INSERT ON notes DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION wait_for_the_test();
"""
HOLD = {  # what the test's own transaction does to hold the unit of work up
    "taking the ids": "ALTER SEQUENCE notes_id_seq CACHE 1",  # nextval waits for its lock
    "committing": "SELECT pg_advisory_xact_lock(4242)",
}


@pytest.mark.parametrize("step", HOLD)
async def test_a_unit_of_work_for_many_rows_waits_past_a_requests_timeout_on_postgresql(
    postgres_server_url: str, postgres_template: str, step: str
) -> None:
    """Every statement of a unit of work for many rows (an import's) answers to its deadline,
    --db-timeout plus the rows' time: taking the ids and committing had a request's timeout, so
    that a lock, or a busy machine in a full test run, made POST /import a 503."""
    db_timeout = 0.25
    with postgres_database(postgres_server_url, template=postgres_template) as url:
        container = build_container(settings_for(url, db_timeout=db_timeout))
        storage = await container.storage()
        admin = await asyncpg.connect(url)
        try:
            await admin.execute(HELD_AT_COMMIT)
            writing: asyncio.Future[list[str]] = asyncio.Future()

            async def add_one_of_many() -> list[str]:
                async with storage.transaction(LOCAL, rows=10_000) as tx:  # 2 s more
                    return [note.title for note in await tx.notes.add_many([draft(title="held up")])]

            async with admin.transaction():
                await admin.execute(HOLD[step])
                writing = asyncio.ensure_future(add_one_of_many())
                while not await admin.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND database ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())"
                ):
                    assert not writing.done(), writing.result()
                    await asyncio.sleep(0.01)
                await asyncio.sleep(4 * db_timeout)  # the scenario: held up past a request's time
            assert await writing == ["held up"]
        finally:
            writing.cancel()
            await admin.close()
            await container.shutdown_resources()
