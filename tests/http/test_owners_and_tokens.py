"""Owners and tokens over HTTP, on every store: who may call, and that one owner's notes are
invisible and untouchable to another, answered exactly as notes that do not exist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from dependency_injector import providers
from multidict import CIMultiDict

from app.container import build_container, http_app
from app.domain.accounts import VERIFIED_FOR
from app.domain.owners import Scope
from app.entrypoints.http.keys import ACCOUNTS, AUTHENTICATION
from tests.conftest import settings_for
from tests.http.support import problem

VOLATILE = {"Date", "X-Request-ID", "Content-Length", "RateLimit"}
REALM = 'Bearer realm="notes"'


async def required_client(make_client, database_url: str, **settings: Any) -> TestClient:
    return await make_client(database_url, auth="required", **settings)


async def issue(client: TestClient, owner: str, scope: Scope = Scope.WRITE, **kw: Any) -> dict[str, str]:
    accounts = client.app[ACCOUNTS]
    if owner not in {o.name for o in await accounts.owners()}:
        await accounts.add_owner(owner)
    issued = await accounts.issue_token(owner, scope=scope, **kw)
    return {"Authorization": f"Bearer {issued.secret}"}


async def answer(client: TestClient, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    response = await client.request(method, path, **kw)
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    return response.status, headers, await response.read()


NOTE = {"title": "same", "description": "identical words", "priority": 3, "tags": ["t"], "created_by": "x"}


def requests_on(note_id: int, etag: str) -> list[tuple[str, str, dict[str, Any]]]:
    path = f"/notes/{note_id}"
    return [
        ("GET", path, {}),
        ("HEAD", path, {}),
        ("GET", path, {"headers": {"If-None-Match": etag}}),
        ("PUT", path, {"json": {**NOTE, "title": "taken"}}),
        ("PUT", path, {"json": NOTE, "headers": {"If-Match": etag}}),
        ("PATCH", path, {"data": b'{"title": "taken"}', "headers": {"Content-Type": "application/merge-patch+json"}}),
        ("PATCH", path, {"json": {"title": "t"}, "headers": {"If-Match": "*"}}),
        ("DELETE", path, {}),
        ("DELETE", path, {"headers": {"If-Match": etag}}),
        ("OPTIONS", path, {}),
    ]


async def test_another_owners_note_answers_byte_for_byte_as_one_that_does_not_exist(
    make_client, database_url: str
) -> None:
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    mine = await client.post("/notes", json=NOTE, headers=bob)
    theirs = await client.post("/notes", json=NOTE, headers=alice)
    note, etag = orjson.loads(await theirs.read()), theirs.headers["ETag"]
    seen = [await answer(client, method, path, headers={**bob, **kw.pop("headers", {})}, **kw)
            for method, path, kw in requests_on(note["id"], etag)]
    assert all(status in (404, 412) or (method == "OPTIONS" and status == 404)
               for (status, _, _), (method, _, _) in zip(seen, requests_on(0, ""), strict=True)), seen
    assert (await client.get(f"/notes/{note['id']}", headers=alice)).status == 200  # untouched
    assert orjson.loads(await (await client.get(f"/notes/{note['id']}", headers=alice)).read()) == note
    await client.delete(f"/notes/{note['id']}", headers=alice)
    gone = [await answer(client, method, path, headers={**bob, **kw.pop("headers", {})}, **kw)
            for method, path, kw in requests_on(note["id"], etag)]
    assert seen == gone
    assert (await client.get(f"/notes/{(await mine.json())['id']}", headers=bob)).status == 200


@pytest.mark.parametrize("query", [
    "", "?sort=-id", "?sort=title", "?sort=-priority", "?sort=created_at", "?sort=-updated_at", "?q=identical",
    "?q=sa", "?tag=t", "?created_by=x", "?priority=3", "?min_priority=1&max_priority=5", "?limit=1",
    "?created_after=2000-01-01T00:00:00Z&updated_before=2999-01-01T00:00:00Z",
])
async def test_a_listing_shows_and_counts_only_the_callers_notes(make_client, database_url: str, query: str) -> None:
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    for _ in range(3):
        await client.post("/notes", json=NOTE, headers=alice)
    mine = {(await (await client.post("/notes", json=NOTE, headers=bob)).json())["id"] for _ in range(2)}
    seen: set[int] = set()
    path = f"/notes{query}"
    while path:
        page = await (await client.get(path, headers=bob)).json()
        seen |= {n["id"] for n in page["notes"]}
        cursor = page["next_cursor"]
        path = f"/notes{query}{'&' if query else '?'}cursor={cursor}" if cursor else ""
    assert seen == mine


async def test_a_cursor_is_bound_to_its_owner(make_client, database_url: str) -> None:
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    for headers in (alice, alice, bob, bob):
        await client.post("/notes", json=NOTE, headers=headers)
    cursor = (await (await client.get("/notes?limit=1", headers=alice)).json())["next_cursor"]
    assert (await client.get(f"/notes?limit=1&cursor={cursor}", headers=alice)).status == 200
    await problem(await client.get(f"/notes?limit=1&cursor={cursor}", headers=bob), 400)


async def test_one_idempotency_key_of_two_owners_makes_two_notes(make_client, database_url: str) -> None:
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    made = []
    for headers in (alice, bob, alice):
        response = await client.post("/notes", json=NOTE, headers={**headers, "Idempotency-Key": "k-1"})
        made.append((response.status, (await response.json())["id"]))
    assert made[0][0] == made[1][0] == 201 and made[0][1] != made[1][1] and made[2][1] == made[0][1]


async def test_a_request_without_a_token_is_401_with_the_bearer_challenge(make_client, database_url: str) -> None:
    client = await required_client(make_client, database_url)
    for method, path in (("GET", "/notes"), ("POST", "/notes"), ("GET", "/notes/1"), ("GET", "/me"),
                         ("GET", "/tokens"), ("GET", "/metrics"), ("GET", "/")):
        response = await client.request(method, path)
        await problem(response, 401)
        assert response.headers["WWW-Authenticate"] == REALM


@pytest.mark.parametrize("authorization", [
    "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", "Bearer notes_short", "bearer notes_" + "A" * 43,
    "Bearer notes_" + "A" * 43 + " extra", "Token notes_" + "A" * 43,
])
async def test_a_malformed_or_unknown_token_is_401_invalid_token(
    make_client, database_url: str, authorization: str
) -> None:
    client = await required_client(make_client, database_url)
    response = await client.get("/notes", headers={"Authorization": authorization})
    document = await problem(response, 401)
    assert response.headers["WWW-Authenticate"] == f'{REALM}, error="invalid_token"'
    secret = authorization.partition(" ")[2].strip()
    assert not secret or secret not in document["detail"]


async def test_open_routes_need_no_token(make_client, database_url: str) -> None:
    client = await required_client(make_client, database_url)
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/problems/unauthorized"):
        assert (await client.get(path)).status == 200, path


async def test_a_read_token_reads_and_is_refused_a_write_with_insufficient_scope(
    make_client, database_url: str
) -> None:
    client = await required_client(make_client, database_url)
    writer = await issue(client, "alice")
    reader = await issue(client, "alice", Scope.READ)
    note = await (await client.post("/notes", json=NOTE, headers=writer)).json()
    assert (await client.get(f"/notes/{note['id']}", headers=reader)).status == 200
    for method, path in (("POST", "/notes"), ("PUT", f"/notes/{note['id']}"), ("PATCH", f"/notes/{note['id']}"),
                         ("DELETE", f"/notes/{note['id']}"), ("POST", "/tokens")):
        response = await client.request(method, path, json=NOTE, headers=reader)
        await problem(response, 403)
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_expired_and_revoked_tokens_are_refused(aiohttp_client, database_url: str) -> None:
    clock = Clock()
    container = build_container(settings_for(database_url, auth="required"))
    container.clock.override(providers.Object(clock))
    client = await aiohttp_client(http_app(container))
    expiring = await issue(client, "alice", expires_in_days=1)
    revoked = await issue(client, "alice")
    assert (await client.get("/me", headers=revoked)).status == 200
    token_id = (await (await client.get("/me", headers=revoked)).json())["token"]["id"]
    await client.app[ACCOUNTS].revoke_token(token_id)
    clock.now += VERIFIED_FOR  # the verified token is trusted no longer than this
    response = await client.get("/notes", headers=revoked)
    await problem(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert (await client.get("/notes", headers=expiring)).status == 200
    clock.now += timedelta(days=1)
    await problem(await client.get("/notes", headers=expiring), 401)


async def test_a_token_revoked_in_another_process_cannot_issue_one_while_still_trusted_here(
    aiohttp_client, database_url: str
) -> None:
    clock = Clock()
    container = build_container(settings_for(database_url, auth="required"))
    container.clock.override(providers.Object(clock))
    client = await aiohttp_client(http_app(container))
    revoked = await issue(client, "alice")
    token_id = (await (await client.get("/me", headers=revoked)).json())["token"]["id"]
    store = await container.storage()  # type: ignore[misc]  # the application's, opened already
    await store.accounts.revoke_token(token_id)  # in the store only: as another process would
    assert (await client.get("/me", headers=revoked)).status == 200  # trusted here for VERIFIED_FOR yet
    response = await client.post("/tokens", json={"label": "child"}, headers=revoked)
    await problem(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert await client.app[ACCOUNTS].tokens("alice") == []
    expiring = await issue(client, "alice", expires_in_days=3)
    refused = await client.post("/tokens", json={"label": "forever"}, headers=expiring)
    assert (await problem(refused, 403))["detail"] == (
        "a token cannot outlive the one that issues it: ask for expires_in_days of at most 3")


async def test_two_authorization_headers_are_400_whichever_comes_first(make_client, database_url: str) -> None:
    """A proxy that reads the last and a server that reads the first would act for two owners."""
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    assert (await client.get("/me", headers=alice)).status == 200  # verified: the next look is cached
    for first, second in ((alice, bob), (bob, alice), (alice, alice)):
        headers = CIMultiDict([("Authorization", first["Authorization"]), ("Authorization", second["Authorization"])])
        response = await client.get("/notes", headers=headers)
        document = await problem(response, 400)
        assert document["type"].endswith("/problems/invalid-authorization")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="notes", error="invalid_request"'


async def test_me_and_the_tokens_of_the_caller(make_client, database_url: str) -> None:
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    me = await (await client.get("/me", headers=alice)).json()
    assert me["owner"] == "alice" and me["token"]["scope"] == "write" and me["token"]["expires_at"] is None
    made = await client.post("/tokens", json={"label": "phone", "scope": "read", "expires_in_days": 30},
                             headers=alice)
    assert made.status == 201 and made.headers["Cache-Control"] == "no-store"
    token = await made.json()
    assert token["token"].startswith("notes_") and token["label"] == "phone" and token["scope"] == "read"
    assert made.headers["Location"] == f"/tokens/{token['id']}"
    listed = (await (await client.get("/tokens", headers=alice)).json())["tokens"]
    assert [t["label"] for t in listed] == ["", "phone"] and all("token" not in t for t in listed)
    assert token["token"] not in (await (await client.get("/tokens", headers=alice)).text())
    phone = {"Authorization": f"Bearer {token['token']}"}
    assert (await (await client.get("/me", headers=phone)).json())["owner"] == "alice"
    await problem(await client.delete(f"/tokens/{token['id']}", headers=bob), 404)  # not bob's
    assert (await client.delete(f"/tokens/{token['id']}", headers=alice)).status == 204
    await problem(await client.delete(f"/tokens/{token['id']}", headers=alice), 404)
    for bad in ({"scope": "admin"}, {"label": 7}, {"expires_in_days": 0}, {"expires_in_days": 1.5}, {"x": 1},
                {"label": "phone\n7  alice  admin"}, {"label": "a\tb"}):  # (a forged row of `tokens list`)
        await problem(await client.post("/tokens", json=bad, headers=alice), 422)


async def test_local_without_a_token_acts_for_local(make_client, database_url: str) -> None:
    client = await make_client(database_url, auth="local")
    assert await (await client.get("/me")).json() == {"owner": "local", "token": None}
    note = await (await client.post("/notes", json=NOTE)).json()
    alice = await issue(client, "alice")
    await problem(await client.get(f"/notes/{note['id']}", headers=alice), 404)  # a token acts for its owner


async def test_a_route_added_the_plain_aiohttp_way_needs_a_token(aiohttp_client, database_url: str) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = http_app(build_container(settings_for(database_url, auth="required")))
    app.router.add_get("/hello", hello)
    client = await aiohttp_client(app)
    await problem(await client.get("/hello"), 401)
    assert (await client.get("/hello", headers=await issue(client, "alice"))).status == 200


async def test_over_the_rate_limit_is_429_with_the_headers_and_under_it_none(make_client, database_url: str) -> None:
    client = await required_client(make_client, database_url, rate_limit=5)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    statuses = [(await client.get("/notes", headers=alice)).status for _ in range(10)]
    assert statuses == [200] * 10  # a burst of twice the rate
    over = await client.get("/notes", headers=alice)
    await problem(over, 429)
    assert int(over.headers["Retry-After"]) >= 1
    assert over.headers["RateLimit-Policy"] == '"owner";q=10;w=2'
    assert over.headers["RateLimit"].startswith('"owner";r=0;')
    assert (await client.get("/notes", headers=bob)).status == 200  # per owner


ANOTHER_SITE = [
    {"Origin": "https://evil.example"},  # a page of another site: it would write as the user
    {"Origin": "null"},  # a sandboxed page, or a file
    {"Sec-Fetch-Site": "cross-site"},  # a request a browser sends without Origin: <img>, <script>
    {"Sec-Fetch-Site": "same-site"},  # another port of localhost, say
    {"Host": "rebound.evil.example:8080"},  # a name made to point at this server (DNS rebinding)
    {"Host": "rebound.evil.example:8080", "Origin": "http://rebound.evil.example:8080"},
    {"Host": "127.0.0.1.evil.example"},
]


@pytest.mark.parametrize("listening", [["127.0.0.1"], ["0.0.0.0"]])  # --auth local on a network too
@pytest.mark.parametrize("headers", ANOTHER_SITE)
async def test_local_mode_asks_a_web_page_of_another_site_for_a_token(
    make_client, headers: dict[str, str], listening: list[str]
) -> None:
    client = await make_client("memory://", cors_origins=("http://localhost:3000",))
    client.app[AUTHENTICATION].listening(listening)
    refused = await client.post("/notes", json={"title": "planted"}, headers=headers)
    await problem(refused, 401)
    assert refused.headers["WWW-Authenticate"] == REALM
    await problem(await client.get("/notes", headers=headers), 401)
    assert (await (await client.get("/notes")).json())["notes"] == []  # nothing was written
    token = await issue(client, "alice")  # a token is the page's own credential: it may
    assert (await client.post("/notes", json={"title": "mine"}, headers={**headers, **token})).status == 201


async def test_local_mode_trusts_this_machines_clients_its_own_pages_and_the_cors_origins(make_client) -> None:
    client = await make_client("memory://", cors_origins=("http://localhost:3000",))
    own_page = f"http://{client.host}:{client.port}"  # /docs, sending Origin on its writes
    for headers in ({}, {"Host": "localhost:8080"}, {"Host": "LOCALHOST."}, {"Host": "[::1]:8080"},
                    {"Host": "notes.localhost"}, {"Host": "127.0.0.2"}, {"Host": "192.168.1.5:8080"},
                    {"Origin": own_page, "Sec-Fetch-Site": "same-origin"},
                    {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # Referrer-Policy: no-referrer
                    {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},  # the address bar
                    {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}):
        made = await client.post("/notes", json={"title": "mine"}, headers=headers)
        assert made.status == 201, (headers, await made.text())


async def test_a_removed_owners_token_that_a_process_still_trusts_makes_no_note(make_client, database_url: str) -> None:
    """The process trusts a verified token for VERIFIED_FOR; its owner removed meanwhile (by
    `notes-api users remove` in another process), a write is refused as the token now is."""
    client = await required_client(make_client, database_url)
    dave = await issue(client, "dave")
    assert (await client.get("/me", headers=dave)).status == 200  # verified: trusted a while
    await client.app[ACCOUNTS].remove_owner("dave")
    refused = await client.post("/notes", json={"title": "orphan"}, headers=dave)
    await problem(refused, 401)
    assert refused.headers["WWW-Authenticate"] == f'{REALM}, error="invalid_token"'
    assert [o.name for o in await client.app[ACCOUNTS].owners()] == ["local"]
