"""Helpers for talking to the application through aiohttp's test client."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

PROBLEM = "application/problem+json"


async def problem(response: ClientResponse, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem document with this status, and return it."""
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    document = orjson.loads(await response.read())
    assert document["status"] == status
    assert document["title"] and document["detail"] and document["type"]
    assert "Traceback" not in document["detail"]
    return document


async def send(client: TestClient, method: str, path: str, body: Any = None, **kw: Any) -> ClientResponse:
    """Send `body` as JSON bytes with no Content-Type at all, as the tutorial's clients do."""
    data = None if body is None else orjson.dumps(body)
    return await client.request(method, path, data=data, skip_auto_headers={"Content-Type"}, **kw)


async def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = await send(client, "POST", "/notes", {"title": "a note", **fields})
    assert response.status == 201, await response.text()
    return orjson.loads(await response.read())


async def all_notes(client: TestClient) -> list[dict[str, Any]]:
    """Every stored note, by walking the listing."""
    notes: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "500"}
    while True:
        response = await client.get("/notes", params=params)
        assert response.status == 200
        page = orjson.loads(await response.read())
        notes += page["notes"]
        if page["next_cursor"] is None:
            return notes
        params["cursor"] = page["next_cursor"]


async def after_100_continue(client: TestClient, head: bytes, body: bytes) -> bytes:
    """Send `head` (with `Expect: 100-continue` and `Connection: close`), wait for the interim
    `100 Continue`, then send `body`: the answer that follows it."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head)
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 100 ")
        writer.write(body)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
