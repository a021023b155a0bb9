"""CORS for an allowlist of origins, and none at all without one."""

from __future__ import annotations

import pytest

from app.domain.owners import Scope
from app.entrypoints.http.keys import ACCOUNTS
from app.settings import InvalidOriginError, normalized_origins
from tests.http.support import create, problem

ALLOWED = "https://notes.example"
PREFLIGHT = {"Origin": ALLOWED, "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "content-type,if-match"}


@pytest.fixture
async def cors_client(make_client):
    return await make_client("memory://", cors_origins=(ALLOWED, "http://localhost:3000"))


def cors_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


async def test_without_an_allowlist_no_response_carries_cors_headers(make_client) -> None:
    client = await make_client("memory://")
    note = await create(client)
    answers = [
        await client.get(f"/notes/{note['id']}", headers={"Origin": ALLOWED}),
        await client.options(f"/notes/{note['id']}", headers=PREFLIGHT),
    ]
    for response in answers:
        assert cors_headers(response) == {} and "Vary" not in response.headers


async def test_an_allowed_origin_may_read_the_answer_and_its_headers(cors_client) -> None:
    note = await create(cors_client)
    response = await cors_client.get(f"/notes/{note['id']}", headers={"Origin": ALLOWED})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in response.headers["Vary"]
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"ETag", "Location", "Link", "X-Request-ID", "Idempotent-Replayed", "Retry-After",
                       "WWW-Authenticate", "RateLimit", "RateLimit-Policy"}
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_an_allowed_origin_may_read_errors_too(cors_client) -> None:
    response = await cors_client.get("/notes/404", headers={"Origin": "http://localhost:3000"})
    await problem(response, 404)
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


@pytest.mark.parametrize("origin", ["https://evil.example", "https://notes.example.evil", "null", "HTTPS://NOTES.EXAMPLE"])
async def test_another_origin_gets_no_cors_headers(cors_client, origin: str) -> None:
    response = await cors_client.get("/healthz", headers={"Origin": origin})
    assert response.status == 200 and cors_headers(response) == {}
    assert response.headers["Vary"] == "Origin"  # the answer depends on Origin: caches keep them apart


async def test_a_preflight_from_an_allowed_origin_lists_the_resources_methods_and_headers(cors_client) -> None:
    response = await cors_client.options("/notes/1", headers=PREFLIGHT)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Methods"] == response.headers["Allow"]
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {
        "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "PUT"}
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "if-match", "if-none-match", "idempotency-key", "x-request-id", "authorization",
            "last-event-id"} <= allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0


async def test_a_preflight_is_answered_whatever_its_accept_header_says(cors_client) -> None:
    response = await cors_client.options("/notes/1", headers={**PREFLIGHT, "Accept": "text/html"})
    assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_a_preflight_of_the_collection_allows_only_its_methods(cors_client) -> None:
    response = await cors_client.options("/notes", headers={**PREFLIGHT, "Access-Control-Request-Method": "POST"})
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}


async def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_client) -> None:
    response = await cors_client.options("/notes/1", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert response.status == 204 and "Allow" in response.headers
    assert cors_headers(response) == {}


async def test_an_options_request_that_is_no_preflight_is_a_plain_cors_answer(cors_client) -> None:
    response = await cors_client.options("/notes/1", headers={"Origin": ALLOWED})
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Access-Control-Allow-Methods" not in response.headers
    assert "Access-Control-Expose-Headers" in response.headers


def test_configured_origins_are_compared_as_browsers_send_them() -> None:
    assert normalized_origins([" HTTPS://Notes.Example/ ", "", "http://localhost:3000", "https://notes.example"]) == (
        "https://notes.example", "http://localhost:3000")


@pytest.mark.parametrize("origin", ["notes.example", "https://notes.example/app", "*", "https://"])
def test_an_origin_that_is_not_scheme_host_and_port_is_refused(origin: str) -> None:
    with pytest.raises(InvalidOriginError):
        normalized_origins([origin])


async def test_a_page_of_an_allowed_origin_may_call_a_server_that_requires_tokens(make_client) -> None:
    """What a browser does for a cross-origin call with a token: a preflight with no token
    (browsers never send one there), which must allow Authorization, then the call itself;
    and a page must be able to read a 401's challenge and the rate limit's headers."""
    client = await make_client("memory://", auth="required", cors_origins=(ALLOWED,), rate_limit=100)
    accounts = client.app[ACCOUNTS]
    await accounts.add_owner("ann")
    issued = await accounts.issue_token("ann", scope=Scope.WRITE)
    preflight = await client.options("/notes", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == ALLOWED
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    made = await client.post("/notes", json={"title": "from a page"}, headers={
        "Origin": ALLOWED, "Authorization": f"Bearer {issued.secret}"})
    assert made.status == 201 and made.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {h.strip().lower() for h in made.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ratelimit", "ratelimit-policy"} <= {name.lower() for name in made.headers} and {
        "ratelimit", "ratelimit-policy"} <= exposed
    refused = await client.get("/notes", headers={"Origin": ALLOWED})
    await problem(refused, 401)
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED and "www-authenticate" in exposed
