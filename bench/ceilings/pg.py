"""C1: aiohttp + an asyncpg pool of 10, running the PostgreSQL adapter's SQL, nothing else.

    python -m bench.ceilings.pg --port 8081 --database-url postgresql://postgres@127.0.0.1/db
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from bench.ceilings.common import (
    content,
    document,
    note_response,
    page_query,
    page_response,
    routes,
    serve,
)

POOL_SIZE = 10  # the service's default --pool-size
SELECT = (
    "SELECT id, title, description, priority, tags, created_by, created_at, updated_at, version"
    " FROM notes"
)
GET = f"{SELECT} WHERE id = $1"
FIRST_PAGE = f"{SELECT} ORDER BY id ASC LIMIT $1"
PAGE_AFTER = f"{SELECT} WHERE id > $1 ORDER BY id ASC LIMIT $2"
INSERT = (
    "INSERT INTO notes (title, description, priority, tags, created_by, created_at, updated_at,"
    " version, title_key, search_text) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9) RETURNING id"
)
UPDATE = (
    "UPDATE notes SET title = $1, description = $2, priority = $3, tags = $4, created_by = $5,"
    " created_at = $6, updated_at = $7, version = $8, title_key = $9, search_text = $10"
    " WHERE id = $11 AND version = $12"
)
POOL = web.AppKey("pool", asyncpg.Pool)


def _doc(row: asyncpg.Record) -> dict:
    return document(row, row[4], row[6], row[7])


async def get_note(request: web.Request) -> web.Response:
    row = await request.app[POOL].fetchrow(GET, int(request.match_info["id"]))
    if row is None:
        raise web.HTTPNotFound()
    return note_response(_doc(row))


MAX_ATTEMPTS = 64  # NoteService.MAX_ATTEMPTS


async def create_note(request: web.Request) -> web.Response:
    title, description, priority, tags, created_by, key, text = content(await request.read())
    now = datetime.now(UTC)
    note_id = await request.app[POOL].fetchval(
        INSERT, title, description, priority, tags, created_by, now, now, key, text
    )
    row = (note_id, title, description, priority, tags, created_by, now, now, 1)
    return note_response(document(row, tags, now, now), status=201, location=True)


async def replace_note(request: web.Request) -> web.Response:
    note_id, pool = int(request.match_info["id"]), request.app[POOL]
    title, description, priority, tags, created_by, key, text = content(await request.read())
    for _ in range(MAX_ATTEMPTS):  # a lost race is read again and retried, as the service does
        current = await pool.fetchrow(GET, note_id)
        if current is None:
            raise web.HTTPNotFound()
        now, version = datetime.now(UTC), current[8] + 1
        status = await pool.execute(
            UPDATE, title, description, priority, tags, created_by, current[6], now, version, key,
            text, note_id, current[8],
        )
        if status != "UPDATE 0":
            break
    else:
        raise web.HTTPConflict()
    row = (note_id, title, description, priority, tags, created_by, current[6], now, version)
    return note_response(document(row, tags, current[6], now))


async def list_notes(request: web.Request) -> web.Response:
    limit, after = page_query(request)
    pool = request.app[POOL]
    if after is None:
        rows = await pool.fetch(FIRST_PAGE, limit + 1)
    else:
        rows = await pool.fetch(PAGE_AFTER, after, limit + 1)
    return page_response([_doc(row) for row in rows], limit)


def make_app(database_url: str) -> web.Application:
    async def pool(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await asyncpg.create_pool(database_url, min_size=1, max_size=POOL_SIZE)
        yield
        await app[POOL].close()

    app = web.Application()
    app.cleanup_ctx.append(pool)
    handlers = {"get": get_note, "post": create_note, "put": replace_note, "list": list_notes}
    return routes(app, handlers)


if __name__ == "__main__":
    serve(make_app)
