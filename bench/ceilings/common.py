"""What the ceilings share: their command line, the service's event loop, and the JSON of a note.

The routes and the JSON are the service's: GET/PUT /notes/{id}, POST /notes, GET /notes (with
`limit`, and `after=<id>` in place of the service's signed cursor), GET /healthz.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from app.domain.model import search_text, title_sort_key


def serve(make_app: Callable[[str], web.Application]) -> None:
    """Serve `make_app(--database-url)` on `--port`, on uvloop like the service."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    app = make_app(args.database_url)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def document(row: Any, tags: list[str], created_at: datetime, updated_at: datetime) -> dict:
    """A note row (id, title, description, priority, tags, created_by, ..., version) as JSON."""
    return {
        "id": row[0], "title": row[1], "description": row[2], "priority": row[3], "tags": tags,
        "created_by": row[5], "created_at": timestamp(created_at),
        "updated_at": timestamp(updated_at), "version": row[8],
    }


def content(raw: bytes) -> tuple:
    """title, description, priority, tags, created_by of a body, unchecked; and its two keys."""
    body = orjson.loads(raw)
    title, description = body["title"], body.get("description", "")
    return (
        title, description, body.get("priority", 0), sorted(set(body.get("tags", ()))),
        body.get("created_by"), title_sort_key(title), search_text(title, description),
    )


def note_response(doc: dict, status: int = 200, location: bool = False) -> web.Response:
    headers = {"ETag": f'"{doc["version"]}"'}
    if location:
        headers["Location"] = f"/notes/{doc['id']}"
    return web.Response(
        status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers
    )


def page_query(request: web.Request) -> tuple[int, int | None]:
    """`limit` and `after` of a listing request."""
    after = request.query.get("after")
    return int(request.query.get("limit", "50")), (int(after) if after else None)


def page_response(docs: list[dict], limit: int) -> web.Response:
    """A page fetched with LIMIT limit + 1, as the service fetches it: the extra row means more."""
    more = len(docs) > limit
    page = {"notes": docs[:limit], "next_cursor": str(docs[limit - 1]["id"]) if more else None}
    return web.Response(body=orjson.dumps(page), content_type="application/json")


def routes(app: web.Application, handlers: dict[str, Callable]) -> web.Application:
    app.router.add_get("/notes/{id}", handlers["get"])
    app.router.add_put("/notes/{id}", handlers["put"])
    app.router.add_post("/notes", handlers["post"])
    app.router.add_get("/notes", handlers["list"])
    return app
