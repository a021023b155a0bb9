"""Request handlers: parse the request, call one use case, write the answer."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from app.domain.errors import NoteError
from app.domain.model import Note
from app.domain.ports import IdempotencyStore, RecordedResponse
from app.domain.services import Clock, IfMatch, NoteService
from app.entrypoints.http.conditions import none_match, parse_if_match
from app.entrypoints.http.keys import HttpSettings
from app.entrypoints.http.listing import CursorCodec, parse_list_query
from app.entrypoints.http.problems import ProblemError, bad_request
from app.entrypoints.http.representation import (
    MERGE_PATCH_JSON,
    json_response,
    note_document,
    note_response,
    read_json_object,
)

_ID_MAX = 2**63 - 1  # the largest id a 64-bit database column holds
_ID_DIGITS = len(str(_ID_MAX))
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def note_id(request: web.Request) -> int:
    """The id in the path; an id that is not a positive integer, or too large to exist, is 404."""
    text = request.match_info["id"]
    # string methods rather than a regular expression: this runs on every request for a note
    if text.isascii() and text.isdigit() and text[0] != "0" and len(text) <= _ID_DIGITS:
        value = int(text)
        if value <= _ID_MAX:
            return value
    raise ProblemError(
        404, f"there is no note {text!r}: ids are positive integers", slug="note-not-found"
    )


class NoteHandlers:
    """The handlers of /notes, /notes/{id} and the health checks, holding what they use.

    Each handler is a bound method that reaches its use cases as attributes, not through the
    application's mapping on every request. The storage opens after routing is set up, so the
    application's start-up calls `open` (app.py).
    """

    notes: NoteService
    idempotency: IdempotencyStore

    def __init__(self, settings: HttpSettings, clock: Clock, cursors: CursorCodec) -> None:
        self.settings = settings
        self.clock = clock
        self.cursors = cursors

    def open(self, notes: NoteService, idempotency: IdempotencyStore) -> None:
        self.notes = notes
        self.idempotency = idempotency

    def if_match(self, request: web.Request) -> IfMatch | None:
        header = request.headers.get("If-Match")
        if header is None and self.settings.require_if_match:
            raise ProblemError(
                428,
                f"{request.method} needs an If-Match header with the note's ETag",
                slug="precondition-required",
            )
        return parse_if_match(header)

    async def body(self, request: web.Request) -> dict[str, Any]:
        return await read_json_object(request, self.settings.max_body_bytes)

    async def get_note(self, request: web.Request) -> web.Response:
        note = await self.notes.get(note_id(request))
        condition = request.headers.get("If-None-Match")
        if condition is not None and none_match(condition, note):
            return web.Response(status=304, headers={"ETag": note.etag})
        return note_response(note)

    async def create_note(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return _created(await self.notes.create(body))
        if _IDEMPOTENCY_KEY.fullmatch(key) is None:
            raise bad_request(
                "invalid-idempotency-key", "Idempotency-Key must be 1 to 255 visible ASCII characters"
            )
        store = self.idempotency
        fingerprint = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        recorded = await store.claim(key, fingerprint, self.clock())
        if recorded is not None:
            return web.Response(
                status=recorded.status,
                body=recorded.body,
                headers={**dict(recorded.headers), "Idempotent-Replayed": "true"},
            )
        try:
            response = _created(await self.notes.create(body))
        except (NoteError, ProblemError):
            await store.release(key)
            raise
        headers = tuple((name, response.headers[name]) for name in ("Content-Type", "Location", "ETag"))
        await store.finish(key, RecordedResponse(201, headers, response.body), self.clock())
        return response

    async def replace_note(self, request: web.Request) -> web.Response:
        note_id_ = note_id(request)
        condition = self.if_match(request)
        body = await self.body(request)
        return note_response(await self.notes.replace(note_id_, body, condition))

    async def patch_note(self, request: web.Request) -> web.Response:
        note_id_ = note_id(request)
        condition = self.if_match(request)
        patch = await self.body(request)
        return note_response(await self.notes.patch(note_id_, patch, condition))

    async def delete_note(self, request: web.Request) -> web.Response:
        note_id_ = note_id(request)
        await self.notes.delete(note_id_, self.if_match(request))
        return web.Response(status=204)

    async def list_notes(self, request: web.Request) -> web.Response:
        cursors = self.cursors
        query = parse_list_query(request.query, cursors)
        page = await self.notes.list(query)
        next_cursor = None if page.next_after is None else cursors.encode(query, page.next_after)
        headers = {}
        if next_cursor is not None:
            params = [(k, v) for k, v in request.query.items() if k != "cursor"]
            params.append(("cursor", next_cursor))
            headers["Link"] = f'<{request.rel_url.with_query(params)}>; rel="next"'
        document = {"notes": [note_document(n) for n in page.notes], "next_cursor": next_cursor}
        return json_response(document, headers=headers)

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        await self.notes.check_storage()
        return json_response({"status": "ready"})


def _created(note: Note) -> web.Response:
    return note_response(note, status=201, location=f"/notes/{note.id}")


def options(allow: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler for OPTIONS on a resource that allows the methods in `allow`."""

    async def answer(request: web.Request) -> web.Response:
        headers = {"Allow": allow}
        if "PATCH" in allow:
            headers["Accept-Patch"] = MERGE_PATCH_JSON
        return web.Response(status=204, headers=headers)

    return answer
