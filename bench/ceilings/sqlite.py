"""C2: aiohttp + one sqlite3 connection on the event loop, running the SQLite adapter's SQL.

Same connection settings as the service (WAL, synchronous=NORMAL, autocommit, statement cache,
checkpoints in a thread with the service's `Checkpoints`, writes in turns with them). Unlike the
service, listings run on the event loop too: no thread pool.

    python -m bench.ceilings.sqlite --port 8082 --database-url sqlite:////tmp/notes.db
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
from aiohttp import web

from app.adapters.sqlite_link import Checkpoints
from bench.ceilings.common import (
    content,
    document,
    note_response,
    page_query,
    page_response,
    routes,
    serve,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SELECT = (
    "SELECT id, title, description, priority, tags, created_by, created_at, updated_at, version"
    " FROM notes"
)
GET = f"{SELECT} WHERE id = ?"
FIRST_PAGE = f"{SELECT} ORDER BY id ASC LIMIT ?"
PAGE_AFTER = f"{SELECT} WHERE id > ? ORDER BY id ASC LIMIT ?"
INSERT = (
    "INSERT INTO notes (title, description, priority, tags, created_by, created_at, updated_at,"
    " version, title_key, search_text) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
)
UPDATE = (
    "UPDATE notes SET title = ?, description = ?, priority = ?, tags = ?, created_by = ?,"
    " created_at = ?, updated_at = ?, version = ?, title_key = ?, search_text = ?"
    " WHERE id = ? AND version = ?"
)
DB = web.AppKey("db", sqlite3.Connection)
CHECKPOINTS = web.AppKey("checkpoints", Checkpoints)
TURN = web.AppKey("turn", asyncio.Lock)  # the writes', which a checkpoint that restarts the WAL takes


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _doc(row: tuple) -> dict:
    return document(row, orjson.loads(row[4]), _moment(row[6]), _moment(row[7]))


async def get_note(request: web.Request) -> web.Response:
    row = request.app[DB].execute(GET, (int(request.match_info["id"]),)).fetchone()
    if row is None:
        raise web.HTTPNotFound()
    return note_response(_doc(row))


async def create_note(request: web.Request) -> web.Response:
    title, description, priority, tags, created_by, key, text = content(await request.read())
    now = datetime.now(UTC)
    stamp = _micros(now)
    tags_json = orjson.dumps(tags).decode()
    values = (title, description, priority, tags_json, created_by, stamp, stamp, key, text)
    async with request.app[TURN]:
        cursor = request.app[DB].execute(INSERT, values)
    request.app[CHECKPOINTS].wrote(request.app[DB].total_changes)
    row = (cursor.lastrowid, title, description, priority, tags, created_by, now, now, 1)
    return note_response(document(row, tags, now, now), status=201, location=True)


async def replace_note(request: web.Request) -> web.Response:
    note_id, db = int(request.match_info["id"]), request.app[DB]
    title, description, priority, tags, created_by, key, text = content(await request.read())
    async with request.app[TURN]:  # the read too: waiting for a checkpoint lets other writes in
        current = db.execute(GET, (note_id,)).fetchone()
        if current is None:
            raise web.HTTPNotFound()
        now, version = datetime.now(UTC), current[8] + 1
        values = (
            title, description, priority, orjson.dumps(tags).decode(), created_by, current[6],
            _micros(now), version, key, text, note_id, current[8],
        )
        updated = db.execute(UPDATE, values).rowcount
    if not updated:
        raise web.HTTPConflict()
    request.app[CHECKPOINTS].wrote(db.total_changes)
    row = (note_id, title, description, priority, tags, created_by, None, None, version)
    return note_response(document(row, tags, _moment(current[6]), now))


async def list_notes(request: web.Request) -> web.Response:
    limit, after = page_query(request)
    db = request.app[DB]
    if after is None:
        rows = db.execute(FIRST_PAGE, (limit + 1,)).fetchall()
    else:
        rows = db.execute(PAGE_AFTER, (after, limit + 1)).fetchall()
    return page_response([_doc(row) for row in rows], limit)


def make_app(database_url: str) -> web.Application:
    async def connection(app: web.Application) -> AsyncIterator[None]:
        path = database_url.removeprefix("sqlite:///")
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        app[DB], app[TURN] = db, asyncio.Lock()
        app[CHECKPOINTS] = Checkpoints(path, app[TURN])
        yield
        app[CHECKPOINTS].close()
        db.close()

    app = web.Application()
    app.cleanup_ctx.append(connection)
    handlers = {"get": get_note, "post": create_note, "put": replace_note, "list": list_notes}
    return routes(app, handlers)


if __name__ == "__main__":
    serve(make_app)
