"""C0: aiohttp answering prebuilt JSON, no storage at all: the ceiling for memory://.

Writes still read and decode their body; every answer is a note (or a page of 50) built once.

    python -m bench.ceilings.nostore --port 8080
"""

from __future__ import annotations

import orjson
from aiohttp import web

from bench.ceilings.common import routes, serve

_NOTE = {
    "id": 1, "title": "Lorem ipsum dolor", "description": "sed do eiusmod tempor incididunt",
    "priority": 4, "tags": ["home", "work"], "created_by": "user1",
    "created_at": "2024-05-01T10:00:00.000000Z", "updated_at": "2024-05-02T11:30:00.000000Z",
    "version": 1,
}
NOTE = orjson.dumps(_NOTE)
PAGE = orjson.dumps({"notes": [{**_NOTE, "id": n} for n in range(1, 51)], "next_cursor": "50"})
HEADERS = {"ETag": '"1"'}


def _json(body: bytes, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


async def get_note(request: web.Request) -> web.Response:
    return _json(NOTE, headers=HEADERS)


async def create_note(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return _json(NOTE, status=201, headers={**HEADERS, "Location": "/notes/1"})


async def replace_note(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return _json(NOTE, headers=HEADERS)


async def list_notes(request: web.Request) -> web.Response:
    return _json(PAGE)


def make_app(database_url: str) -> web.Application:
    handlers = {"get": get_note, "post": create_note, "put": replace_note, "list": list_notes}
    return routes(web.Application(), handlers)


if __name__ == "__main__":
    serve(make_app)
