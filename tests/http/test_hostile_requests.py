"""What an attacker or a careless client sends: each gets a clear 4xx, never a 500, and no
answer echoes what they sent."""

from __future__ import annotations

import asyncio
import base64
import time

import orjson
import pytest

from app.domain.owners import LOCAL
from app.domain.query import ListQuery, Sort, SortField
from app.entrypoints.http.listing import CursorCodec
from tests.http.support import after_100_continue, all_notes, create, problem, send

HUGE = "1" + "0" * 4300  # over Python's int-string conversion limit


@pytest.mark.parametrize("name", ["limit", "priority", "min_priority", "max_priority"])
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "99999999999999999999"])
async def test_an_integer_too_long_to_parse_in_the_query_is_400_naming_it(client, name, value) -> None:
    document = await problem(await client.get("/notes", params={name: value}), 400)
    assert [e["parameter"] for e in document["errors"]] == [name]
    assert HUGE not in document["detail"]


async def test_a_body_with_half_a_million_bad_tags_lists_the_first_100_problems(client) -> None:
    body = orjson.dumps({"title": "t", "tags": [1] * 520_000})
    assert len(body) < 1024 * 1024
    started = time.monotonic()
    response = await client.post("/notes", data=body, skip_auto_headers={"Content-Type"})
    document = await problem(response, 422)
    assert len(document["errors"]) == 100 and document["errors"][0]["pointer"] == "/tags/0"
    assert "520,001" in document["detail"]  # each tag, and their number
    assert len(await response.read()) < 20_000
    assert time.monotonic() - started < 2.0
    assert await all_notes(client) == []


@pytest.mark.parametrize("media_type", ["application/json-patch+json", "text/plain"])
async def test_a_patch_in_another_format_than_a_merge_patch_is_415_with_accept_patch(client, media_type) -> None:
    note = await create(client)
    response = await client.patch(
        f"/notes/{note['id']}", data=b'[{"op": "remove", "path": "/title"}]',
        headers={"Content-Type": media_type},
    )
    await problem(response, 415)
    assert response.headers["Accept-Patch"] == "application/merge-patch+json"
    assert await all_notes(client) == [note]


async def test_a_method_this_server_does_not_implement_is_501(client) -> None:
    for path in ("/notes", "/notes/1", "/nowhere"):
        document = await problem(await client.request("PROPFIND", path), 501)
        assert "PROPFIND" not in orjson.dumps(document).decode()


async def test_an_unknown_expectation_is_417_without_echoing_it(client) -> None:
    response = await send(client, "POST", "/notes", {"title": "t"}, headers={"Expect": "<evil>"})
    document = await problem(response, 417)
    assert "evil" not in orjson.dumps(document).decode()
    assert await all_notes(client) == []


async def raw_exchange(client, request: bytes, *, read_until_closed: bool = True) -> bytes:
    """Send raw bytes to the test server and read what comes back (until it closes)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        await writer.drain()
        if read_until_closed:
            return await asyncio.wait_for(reader.read(), 10)
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_expect_100_continue_with_a_body_over_the_limit_is_413_without_100_continue(client) -> None:
    head = (
        b"POST /notes HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
        b"Content-Length: 2000000\r\n\r\n"
    )
    answer = await raw_exchange(client, head, read_until_closed=False)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer
    assert b"application/problem+json" in answer


async def test_expect_100_continue_within_the_limit_gets_100_continue_then_the_answer(client) -> None:
    body = orjson.dumps({"title": "t"})
    head = (
        b"POST /notes HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    assert (await after_100_continue(client, head, body)).startswith(b"HTTP/1.1 201 ")


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed(
    make_client, database_url
) -> None:
    client = await make_client(database_url, body_timeout=0.3)
    head = b"POST /notes HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"title\":"
    answer = await raw_exchange(client, head)  # returns once the server has closed
    assert answer.startswith(b"HTTP/1.1 408 ") and b"application/problem+json" in answer
    assert await all_notes(client) == []


def forged(secret: str, content: object, sort: Sort = Sort()) -> str:  # noqa: B008 (a frozen value)
    """A cursor with any content, signed with `secret`."""
    codec = CursorCodec(secret)
    payload = orjson.dumps(content)
    tag = codec._tag(LOCAL, ListQuery(sort=sort), payload)
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()


async def test_a_cursor_signed_with_the_old_public_secret_is_400(client) -> None:
    for i in range(3):
        await create(client, title=f"n{i}")
    response = await client.get("/notes", params={"cursor": forged("notes-cursor", [1, 1, 1])})
    await problem(response, 400)


@pytest.mark.parametrize(
    ("content", "sort"),
    [
        ([1, 1], "id"), ([1, 1, 1, 1], "id"), ({"a": 1}, "id"), ("x", "id"), ([2, 1, 1], "id"),
        ([1, 1, 0], "id"), ([1, 1, -5], "id"), ([1, 1, 2**63], "id"), ([1, 1, "1"], "id"),
        ([1, 1.5, 1], "priority"), ([1, "high", 1], "priority"), ([1, 2**62, 1], "created_at"),
        ([1, -(2**62), 1], "-updated_at"), ([1, 7, 1], "title"), ([1, None, 1], "title"),
        ([1, True, 1], "priority"),
    ],
)
async def test_a_signed_cursor_whose_content_is_impossible_is_400(make_client, database_url, content, sort) -> None:
    client = await make_client(database_url, cursor_secret="known to the attacker")
    cursor = forged("known to the attacker", content, Sort(SortField(sort.lstrip("-")), sort[0] == "-"))
    await problem(await client.get("/notes", params={"cursor": cursor, "sort": sort}), 400)


async def test_a_method_this_server_knows_but_the_resource_lacks_is_405(client) -> None:
    response = await client.request("QUERY", "/notes")
    await problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
