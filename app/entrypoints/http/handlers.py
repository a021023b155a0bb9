"""Request handlers: parse the request, call one use case, write the answer."""

from __future__ import annotations

import hashlib
import re

import orjson
from aiohttp import hdrs, web

from app.domain.model import Note
from app.domain.services import Precondition
from app.entrypoints.http.conditions import etag, if_none_match, not_modified, precondition, weak_etag
from app.entrypoints.http.keys import CURSORS, IDENTITY, NOTES, SETTINGS
from app.entrypoints.http.listing import Choice, Parameter, no_parameters, parse_list_query, parse_parameters
from app.entrypoints.http.problems import ProblemError, bad_request
from app.entrypoints.http.representation import (
    JSON,
    PRIVATE,
    dumps,
    json_response,
    note_bytes,
    note_document,
    note_response,
    read_json_object,
    recorded_note_response,
    unchanging_response,
)

_ID_MAX = 2**63 - 1  # the largest id a 64-bit database column holds
_ID_DIGITS = len(str(_ID_MAX))
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def owner(request: web.Request) -> str:
    """Whom the request acts for: set by authentication (auth.py) before any handler runs."""
    return request[IDENTITY].owner


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


def write_precondition(request: web.Request) -> Precondition:
    """If-Match and If-None-Match of a PUT, PATCH or DELETE; 428 when If-Match is required."""
    headers = request.headers
    if_match = headers.get("If-Match")
    if if_match is None and request.app[SETTINGS].require_if_match:
        raise ProblemError(
            428,
            f"{request.method} needs an If-Match header with the note's ETag",
            slug="precondition-required",
        )
    return precondition(if_match, headers.get("If-None-Match"))


async def get_note(request: web.Request) -> web.Response:
    if request.query_string:  # no_parameters' own test, inline: a call costs more, per request
        no_parameters(request)
    note_id_ = note_id(request)
    header = request.headers.get("If-None-Match")
    current = None if header is None else if_none_match(header)  # a malformed one is 400, as on a write
    note = await request.app[NOTES].get(request[IDENTITY].owner, note_id_)  # owner() inline: per request
    if current is not None and note in current:
        return web.Response(status=304, headers={"ETag": etag(note), "Cache-Control": PRIVATE})
    return note_response(note)


async def create_note(request: web.Request) -> web.Response:
    no_parameters(request)
    body = await read_json_object(request)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return _created(await request.app[NOTES].create(owner(request), body))
    if _IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise bad_request(
            "invalid-idempotency-key", "Idempotency-Key must be 1 to 255 visible ASCII characters"
        )
    # The body as the rules read it: 4.0 is the integer 4 (API.md), so a retry that writes it
    # either way is the same request.
    canonical = {name: int(value) if type(value) is float and value.is_integer() and abs(value) < 2**63 else value
                 for name, value in body.items()}
    fingerprint = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    created = await request.app[NOTES].create_once(owner(request), body, key, fingerprint, note_bytes)
    if created.note is None:
        return recorded_note_response(created.outcome)
    return _created(created.note, created.outcome)


def _created(note: Note, body: bytes | None = None) -> web.Response:
    return note_response(note, status=201, location=f"/notes/{note.id}", body=body)


async def replace_note(request: web.Request) -> web.Response:
    no_parameters(request)
    note_id_ = note_id(request)
    condition = write_precondition(request)
    body = await read_json_object(request)
    return note_response(await request.app[NOTES].replace(owner(request), note_id_, body, condition))


async def patch_note(request: web.Request) -> web.Response:
    no_parameters(request)
    note_id_ = note_id(request)
    condition = write_precondition(request)
    patch = await read_json_object(request)
    return note_response(await request.app[NOTES].patch(owner(request), note_id_, patch, condition))


async def delete_note(request: web.Request) -> web.Response:
    """To the trash; `?purge=true`: for good."""
    note_id_ = note_id(request)
    purge = purge_requested(request)
    await request.app[NOTES].delete(owner(request), note_id_, write_precondition(request), purge=purge)
    return web.Response(status=204)


DELETE_PARAMETERS = (
    Parameter("purge", Choice(("true", "false")), "`true`: delete the note for good, not to the trash"),
)


def purge_requested(request: web.Request) -> bool:
    """`?purge=true` on DELETE /notes/{id}; no other parameter."""
    if not request.query:
        return False
    return parse_parameters(request.query, DELETE_PARAMETERS).get("purge") == "true"


async def list_notes(request: web.Request) -> web.Response:
    cursors = request.app[CURSORS]
    query = parse_list_query(request.query, cursors, owner(request))
    page = await request.app[NOTES].list(owner(request), query)
    next_cursor = None if page.next_after is None else cursors.encode(owner(request), query, page.next_after)
    return page_response(request, {"notes": [note_document(n) for n in page.notes], "next_cursor": next_cursor},
                         next_cursor)


def page_response(request: web.Request, document: dict, next_cursor: str | None) -> web.Response:
    """One page of a listing: a `Link` to the next one, and a weak ETag (304 on a match)."""
    # Vary on the 304 too: it carries what the 200 would (RFC 9110, section 15.4.5).
    headers = {"Cache-Control": PRIVATE, "Vary": "Accept-Encoding"}
    if next_cursor is not None:
        params = [(k, v) for k, v in request.query.items() if k != "cursor"]
        params.append(("cursor", next_cursor))
        headers["Link"] = f'<{request.rel_url.with_query(params)}>; rel="next"'
    body = dumps(document)
    # A weak tag: the page's items and where it continues are the same, byte for byte.
    headers["ETag"] = weak_etag(body)
    if not_modified(request.headers.get("If-None-Match"), headers["ETag"]):
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = JSON
    return web.Response(body=body, headers=headers)


INDEX = dumps({"name": "Notes API", "links": {"docs": "/docs", "openapi": "/openapi.json", "notes": "/notes"}})
INDEX_ETAG = weak_etag(INDEX)


async def index(request: web.Request) -> web.Response:
    """Where to go from here: the docs, the description and the notes."""
    return unchanging_response(request, INDEX, JSON, INDEX_ETAG)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    await request.app[NOTES].check_storage()
    return json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})
