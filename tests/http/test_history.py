"""API.md, "History: revisions, trash and changes", line by line, over HTTP on every store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from dependency_injector import providers

from app.container import build_container, http_app
from app.domain.accounts import VERIFIED_FOR
from app.entrypoints.http.keys import ACCOUNTS, NOTES
from tests.conftest import settings_for
from tests.http.spec_check import SpecChecker
from tests.http.support import create, problem, send

SSE = {"Accept": "text/event-stream"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def timed(aiohttp_client, database_url: str) -> Callable[..., Awaitable[tuple[TestClient, Clock]]]:
    """A client of the whole application whose clock the test moves; its answers checked
    against the spec."""
    checkers: list[SpecChecker] = []

    async def make(**settings: Any) -> tuple[TestClient, Clock]:
        clock = Clock()
        container = build_container(settings_for(database_url, **settings))
        container.clock.override(providers.Object(clock))
        checker = SpecChecker(container.http_settings())
        checkers.append(checker)
        return await aiohttp_client(http_app(container), middlewares=(checker.middleware,)), clock

    yield make
    assert not [v for checker in checkers for v in checker.violations]


async def body(response: ClientResponse, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return orjson.loads(await response.read())


async def history_of(client: TestClient) -> dict[str, Any]:
    """A note with three versions: created, replaced, patched."""
    note = await create(client, title="first", tags=["a"])
    await body(await send(client, "PUT", f"/notes/{note['id']}", {"title": "second"}))
    return await body(await client.patch(f"/notes/{note['id']}", json={"priority": 9}))


async def test_revisions_are_each_version_newest_first_in_keyset_pages(client: TestClient) -> None:
    note = await history_of(client)
    first = await body(await client.get(f"/notes/{note['id']}/revisions", params={"limit": "2"}))
    revisions = [(r["version"], r["title"], r["priority"]) for r in first["revisions"]]
    assert revisions == [(3, "second", 9), (2, "second", 0)]
    link = (await client.get(f"/notes/{note['id']}/revisions", params={"limit": "2"})).headers["Link"]
    assert f"cursor={first['next_cursor']}" in link
    rest = await body(await client.get(f"/notes/{note['id']}/revisions",
                                       params={"limit": "2", "cursor": first["next_cursor"]}))
    assert [(r["version"], r["title"], r["tags"]) for r in rest["revisions"]] == [(1, "first", ["a"])]
    assert rest["next_cursor"] is None
    await problem(await client.get(f"/notes/{note['id']}/revisions", params={"cursor": "x"}), 400)
    await problem(await client.get("/notes/999/revisions"), 404)


async def test_a_revision_has_its_etag_and_answers_304(client: TestClient) -> None:
    note = await history_of(client)
    response = await client.get(f"/notes/{note['id']}/revisions/1")
    revision = await body(response)
    assert response.headers["ETag"] == '"1"' and revision["title"] == "first" and revision["version"] == 1
    assert (await client.get(f"/notes/{note['id']}/revisions/1", headers={"If-None-Match": '"1"'})).status == 304
    document = await problem(await client.get(f"/notes/{note['id']}/revisions/4"), 404)
    assert document["type"].endswith("/problems/revision-not-found")
    await problem(await client.get(f"/notes/{note['id']}/revisions/0"), 404)


async def test_restoring_a_revision_makes_a_new_version_and_if_match_applies(client: TestClient) -> None:
    note = await history_of(client)
    path = f"/notes/{note['id']}/revisions/1/restore"
    await problem(await client.post(path, headers={"If-Match": '"2"'}), 412)
    response = await client.post(path, headers={"If-Match": '"3"'})
    restored = await body(response)
    assert (restored["version"], restored["title"], restored["tags"]) == (4, "first", ["a"])
    assert response.headers["ETag"] == '"4"'
    assert await body(await client.get(f"/notes/{note['id']}")) == restored
    versions = await body(await client.get(f"/notes/{note['id']}/revisions"))
    assert [r["version"] for r in versions["revisions"]] == [4, 3, 2, 1]


async def test_keep_revisions_keeps_exactly_the_last_ones(make_client, database_url: str) -> None:
    client = await make_client(database_url, keep_revisions=2)
    note = await history_of(client)
    versions = await body(await client.get(f"/notes/{note['id']}/revisions"))
    assert [r["version"] for r in versions["revisions"]] == [3, 2]
    await problem(await client.get(f"/notes/{note['id']}/revisions/1"), 404)
    await problem(await client.post(f"/notes/{note['id']}/revisions/1/restore"), 404)


async def test_delete_moves_a_note_to_the_trash_and_it_comes_back_under_its_id(client: TestClient) -> None:
    kept = await create(client, title="kept findme")
    note = await create(client, title="gone findme", tags=["t"])
    assert (await client.delete(f"/notes/{note['id']}")).status == 204  # as before
    await problem(await client.get(f"/notes/{note['id']}"), 404)
    listed = await body(await client.get("/notes", params={"q": "findme"}))
    assert [n["id"] for n in listed["notes"]] == [kept["id"]]
    assert [n["id"] for n in (await body(await client.get("/notes", params={"tag": "t"})))["notes"]] == []
    trash = await body(await client.get("/trash"))
    [trashed] = trash["trash"]
    assert {k: v for k, v in trashed.items() if k != "deleted_at"} == note and trash["next_cursor"] is None
    one = await client.get(f"/trash/{note['id']}")
    assert await body(one) == trashed and one.headers["ETag"] == f'"{note["version"]}"'
    assert (await client.get(f"/trash/{note['id']}", headers={"If-None-Match": one.headers["ETag"]})).status == 304
    back = await body(await client.post(f"/trash/{note['id']}/restore"))
    assert back["id"] == note["id"] and back["version"] == note["version"] + 1 and back["title"] == note["title"]
    assert await body(await client.get(f"/notes/{note['id']}")) == back
    assert (await body(await client.get("/trash")))["trash"] == []
    document = await problem(await client.post(f"/trash/{note['id']}/restore"), 404)
    assert document["type"].endswith("/problems/not-in-trash")
    await problem(await client.get(f"/trash/{note['id']}"), 404)


async def test_purge_deletes_for_good_from_the_trash_or_at_once(client: TestClient) -> None:
    trashed, at_once = await create(client), await create(client)
    await client.delete(f"/notes/{trashed['id']}")
    assert (await client.delete(f"/trash/{trashed['id']}")).status == 204
    assert (await client.delete(f"/notes/{at_once['id']}", params={"purge": "true"})).status == 204
    assert (await body(await client.get("/trash")))["trash"] == []
    for note in (trashed, at_once):
        await problem(await client.post(f"/trash/{note['id']}/restore"), 404)
        await problem(await client.delete(f"/trash/{note['id']}"), 404)
    await problem(await client.delete(f"/notes/{(await create(client))['id']}", params={"purge": "yes"}), 400)
    await problem(await client.delete(f"/notes/{(await create(client))['id']}", params={"force": "true"}), 400)


async def test_a_purge_from_the_trash_is_conditional_like_every_delete(timed) -> None:
    """If-Match names the version the note was deleted at (its ETag in the trash): a purge that
    it does not match is a 412 and purges nothing, and --require-if-match asks for it (428)."""
    client, _ = await timed(require_if_match=True)
    note = await create(client)
    tag = f'"{note["version"]}"'
    assert (await client.delete(f"/notes/{note['id']}", headers={"If-Match": tag})).status == 204
    await problem(await client.delete(f"/trash/{note['id']}"), 428)
    for refused in ({"If-Match": '"99"'}, {"If-Match": tag, "If-None-Match": "*"}):
        await problem(await client.delete(f"/trash/{note['id']}", headers=refused), 412)
    assert (await body(await client.get(f"/trash/{note['id']}")))["id"] == note["id"]  # still there
    assert (await client.delete(f"/trash/{note['id']}", headers={"If-Match": tag})).status == 204
    await problem(await client.get(f"/trash/{note['id']}"), 404)


async def test_a_restore_from_the_trash_is_conditional_as_a_purge_is(timed) -> None:
    """If-Match names the version the note was deleted at (its ETag in the trash): a restore that
    it does not match is a 412 and restores nothing, and a malformed one is a 400. It is not
    required: --require-if-match is for PUT, PATCH and DELETE, and a restore loses no change."""
    client, _ = await timed(require_if_match=True)
    note = await create(client)
    tag = f'"{note["version"]}"'
    assert (await client.delete(f"/notes/{note['id']}", headers={"If-Match": tag})).status == 204
    restore = f"/trash/{note['id']}/restore"
    for refused, failed in (({"If-Match": '"99"'}, "If-Match"), ({"If-Match": f'W/{tag}'}, "If-Match"),
                            ({"If-Match": tag, "If-None-Match": "*"}, "If-Match or If-None-Match"),
                            ({"If-None-Match": tag}, "If-None-Match")):
        document = await problem(await client.post(restore, headers=refused), 412)
        assert document["detail"].startswith(f"{failed} does not hold for note {note['id']}"), document
    await problem(await client.post(restore, headers={"If-Match": "garbage"}), 400)
    assert (await body(await client.get(f"/trash/{note['id']}")))["id"] == note["id"]  # still there
    await problem(await client.get(f"/notes/{note['id']}"), 404)
    back = await body(await client.post(restore, headers={"If-Match": tag}))
    assert (back["id"], back["version"]) == (note["id"], note["version"] + 1)
    assert (await client.delete(f"/notes/{note['id']}", headers={"If-Match": f'"{back["version"]}"'})).status == 204
    assert (await client.post(restore)).status == 200  # without If-Match, even with --require-if-match


async def test_the_trash_pages_most_recently_deleted_first(timed) -> None:
    client, clock = await timed()
    notes = [await create(client, title=str(i)) for i in range(5)]
    for note in notes:
        clock.now += timedelta(seconds=1)
        await client.delete(f"/notes/{note['id']}")
    seen, params = [], {"limit": "2"}
    while True:
        page = await body(await client.get("/trash", params=params))
        seen += [n["id"] for n in page["trash"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [n["id"] for n in reversed(notes)]
    for malformed in ("nonsense", "1.99999999999999999999", "1.0", "1.01", "1234567890123456789.1", "1.-2", "1"):
        await problem(await client.get("/trash", params={"cursor": malformed}), 400)  # not one store's 500 or 503
    # a place the description's pattern allows, beyond the years a timestamp holds: before or
    # after every note (schemathesis found the 400 it was)
    for cursor, found in (("-701199160010524619.86435", []), ("999999999999999999.1", seen)):
        page = await body(await client.get("/trash", params={"cursor": cursor, "limit": "10"}))
        assert [n["id"] for n in page["trash"]] == found, cursor


async def test_the_trash_empties_itself_after_trash_days(timed) -> None:
    client, clock = await timed(trash_days=30)
    old, recent = await create(client), await create(client)
    await client.delete(f"/notes/{old['id']}")
    clock.now += timedelta(days=20)
    await client.delete(f"/notes/{recent['id']}")
    clock.now += timedelta(days=11)
    while await client.app[NOTES].prune():
        pass
    assert [n["id"] for n in (await body(await client.get("/trash")))["trash"]] == [recent["id"]]


async def test_the_changes_feed_gives_every_change_in_order_from_any_token(client: TestClient) -> None:
    note = await history_of(client)
    other = await create(client)
    await client.delete(f"/notes/{other['id']}")
    await client.post(f"/trash/{other['id']}/restore")
    whole = await body(await client.get("/changes"))
    assert [(c["op"], c["id"], c["version"]) for c in whole["changes"]] == [
        ("put", note["id"], 1), ("put", note["id"], 2), ("put", note["id"], 3),
        ("put", other["id"], 1), ("delete", other["id"], 1), ("put", other["id"], 2)]
    assert whole["changes"][2]["note"] == note and whole["changes"][4]["note"] is None
    followed, since = [], None
    while True:
        page = await body(await client.get("/changes", params={"limit": "2", **({"since": since} if since else {})}))
        if not page["changes"]:
            break
        followed += page["changes"]
        since = page["next"]
    assert followed == whole["changes"]
    assert (await body(await client.get("/changes", params={"since": whole["next"]})))["changes"] == []


@pytest.mark.parametrize("token", ["abc", "-1", "1.2.3", "01", "9" * 30, ""])
async def test_a_malformed_token_is_400(client: TestClient, token: str) -> None:
    await problem(await client.get("/changes", params={"since": token}), 400)


async def test_a_token_older_than_the_kept_log_is_410(timed) -> None:
    client, clock = await timed(keep_changes_days=30)
    await create(client)
    early = (await body(await client.get("/changes", params={"limit": "1"})))["next"]
    clock.now += timedelta(days=40)
    await create(client)
    while await client.app[NOTES].prune():
        pass
    await problem(await client.get("/changes", params={"since": "0"}), 410)
    await problem(await client.get("/changes", params={"since": "0"}, headers=SSE), 410)
    assert len((await body(await client.get("/changes", params={"since": early})))["changes"]) == 1
    assert len((await body(await client.get("/changes")))["changes"]) == 1  # the start of the kept log


async def test_a_token_beyond_the_log_is_410_too(client: TestClient) -> None:
    """Another store's token, or one from before a memory store restarted: the follower starts
    again rather than skip the changes up to it."""
    await create(client)
    beyond = "4611686018427387904.1"  # a key past PostgreSQL's next transaction id, and set at all
    for headers in ({}, SSE, {**SSE, "Last-Event-ID": beyond}):
        params = {} if "Last-Event-ID" in headers else {"since": beyond}
        document = await problem(await client.get("/changes", params=params, headers=headers), 410)
        assert "beyond this store's log" in document["detail"]


async def test_wait_holds_the_request_until_a_change_arrives(client: TestClient) -> None:
    start = (await body(await client.get("/changes")))["next"]
    waiting = asyncio.ensure_future(client.get("/changes", params={"since": start, "wait": "60"}))
    note = await create(client)  # the long poll may or may not have started yet: either way it sees it
    page = await body(await asyncio.wait_for(waiting, 30))
    assert [c["note"] for c in page["changes"]] == [note]


async def test_wait_answers_empty_when_the_time_is_up(client: TestClient) -> None:
    page = await body(await client.get("/changes", params={"wait": "1"}))
    assert page["changes"] == []
    await problem(await client.get("/changes", params={"wait": "61"}), 400)


async def read_events(response: ClientResponse, count: int) -> list[dict[str, Any]]:
    """The next `count` events of a stream: each its id and its data."""
    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    while len(events) < count:
        line = (await asyncio.wait_for(response.content.readline(), 30)).decode().rstrip("\n")
        if line.startswith("id: "):
            event["id"] = line[4:]
        elif line.startswith("data: "):
            event["data"] = orjson.loads(line[6:])
        elif line == "" and "data" in event:
            events.append(event)
            event = {}
    return events


async def test_server_sent_events_stream_the_changes_and_resume_from_last_event_id(client: TestClient) -> None:
    first = await create(client, title="one")
    async with client.get("/changes", headers=SSE) as response:  # the client accepts gzip
        assert response.status == 200 and response.content_type == "text/event-stream"
        assert "Content-Encoding" not in response.headers  # a compressor would hold events back
        [event] = await read_events(response, 1)
        assert event["data"]["note"] == first
        second = await create(client, title="two")
        [event] = await read_events(response, 1)
        assert event["data"]["note"] == second
        resume_from = event["id"]
    third = await create(client, title="three")
    async with client.get("/changes", headers={**SSE, "Last-Event-ID": resume_from}) as response:
        [event] = await read_events(response, 1)
        assert event["data"]["note"] == third
    await problem(await client.get("/changes", headers={**SSE, "Last-Event-ID": "nope"}), 400)


async def test_json_is_the_answer_unless_the_stream_is_asked_for(client: TestClient) -> None:
    for accept in ("*/*", "application/json", "application/json, text/event-stream", "*/*;q=0.5, text/plain"):
        response = await client.get("/changes", headers={"Accept": accept})
        assert response.content_type == "application/json", accept
    async with client.get("/changes", headers={"Accept": "text/*"}) as response:  # only the stream is acceptable
        assert response.content_type == "text/event-stream"
    await problem(await client.get("/changes", headers={"Accept": "image/png"}), 406)


async def test_another_owners_token_shows_nothing_of_theirs(make_client, database_url: str) -> None:
    client = await make_client(database_url, auth="required")
    tokens = {}
    for owner in ("alice", "bob"):
        await client.app[ACCOUNTS].add_owner(owner)
        tokens[owner] = {"Authorization": f"Bearer {(await client.app[ACCOUNTS].issue_token(owner)).secret}"}
    secret = await body(await client.post("/notes", json={"title": "alice's"}, headers=tokens["alice"]), 201)
    alice_next = (await body(await client.get("/changes", headers=tokens["alice"])))["next"]
    await client.delete(f"/notes/{secret['id']}", headers=tokens["alice"])
    for params in ({}, {"since": alice_next}, {"since": "0"}):
        assert (await body(await client.get("/changes", params=params, headers=tokens["bob"])))["changes"] == []
    assert (await body(await client.get("/trash", headers=tokens["bob"])))["trash"] == []
    await problem(await client.post(f"/trash/{secret['id']}/restore", headers=tokens["bob"]), 404)
    await problem(await client.get(f"/notes/{secret['id']}/revisions", headers=tokens["bob"]), 404)


async def test_a_revoked_token_gets_nothing_more_from_an_open_stream_or_a_long_poll(
    aiohttp_client, database_url: str
) -> None:
    """Revoked while its stream is open and while it waits on a long poll: the next change that
    would reach it, once the token is trusted no longer (VERIFIED_FOR), ends the stream unsent and
    answers the poll with 401, as a new request would be."""
    clock = Clock()
    container = build_container(settings_for(database_url, auth="required"))
    container.clock.override(providers.Object(clock))
    client = await aiohttp_client(http_app(container))
    store = await container.storage()  # type: ignore[misc]  # the application's, opened already
    watches, watching = 0, asyncio.Event()
    watch = store.watch

    @contextlib.asynccontextmanager
    async def counted(owner: str) -> AsyncIterator[Any]:  # the stream's and the poll's waits
        nonlocal watches
        async with watch(owner) as opened:
            watches += 1
            if watches == 2:
                watching.set()
            yield opened

    store.watch = counted
    accounts = client.app[ACCOUNTS]
    await accounts.add_owner("alice")
    revoked = await accounts.issue_token("alice")
    writer = {"Authorization": f"Bearer {(await accounts.issue_token('alice')).secret}"}
    reader = {"Authorization": f"Bearer {revoked.secret}"}
    first = await body(await client.post("/notes", json={"title": "seen"}, headers=writer), 201)
    start = (await body(await client.get("/changes", headers=reader)))["next"]
    async with client.get("/changes", headers={**SSE, **reader}) as stream:
        [event] = await read_events(stream, 1)
        assert event["data"]["note"] == first
        polling = asyncio.ensure_future(client.get("/changes", params={"since": start, "wait": "60"}, headers=reader))
        await asyncio.wait_for(watching.wait(), 10)  # both wait: the token was good when they began
        await store.accounts.revoke_token(revoked.token.id)  # in the store only: as another process would
        clock.now += VERIFIED_FOR
        await client.post("/notes", json={"title": "written after the revocation"}, headers=writer)
        rest = await asyncio.wait_for(stream.content.read(), 10)  # the stream ends
    assert b"after the revocation" not in rest
    answer = await asyncio.wait_for(polling, 10)
    await problem(answer, 401)
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


async def test_a_stopping_server_answers_its_long_polls_at_once(client: TestClient) -> None:
    start = (await body(await client.get("/changes")))["next"]
    polling = asyncio.ensure_future(client.get("/changes", params={"since": start, "wait": "60"}))
    client.app[NOTES].stop_following()  # what the application does on shutdown (SIGTERM)
    page = await body(await asyncio.wait_for(polling, 10))
    assert page["changes"] == []
