"""Reading request bodies and writing notes: JSON in, JSON out, by API.md's rules."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import hdrs, web

from app.domain.model import Note
from app.domain.timestamps import UTC, format_timestamp
from app.entrypoints.http.keys import SETTINGS
from app.entrypoints.http.problems import ProblemError, bad_request

JSON = "application/json"
MERGE_PATCH_JSON = "application/merge-patch+json"


def is_json_media_type(media_type: str) -> bool:
    """application/json or any application/*+json."""
    return media_type == JSON or (media_type.startswith("application/") and media_type.endswith("+json"))


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object. A body without Content-Type is read as JSON (the tutorial's
    clients send none); another declared type is 415, over the limit 413, anything else 400."""
    if hdrs.CONTENT_TYPE in request.headers:
        charset = request.charset
        if not is_json_media_type(request.content_type) or (
            charset and charset.lower() not in ("utf-8", "utf8")
        ):
            raise ProblemError(
                415,
                "the body must be JSON: send Content-Type: application/json (or another"
                f" application/*+json type), or none at all; not {request.headers[hdrs.CONTENT_TYPE]!r}",
                headers={"Accept-Patch": MERGE_PATCH_JSON} if request.method == "PATCH" else None,
            )
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    raw = await request.read()
    if not raw.strip():
        raise bad_request("malformed-body", "the body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise bad_request("malformed-body", f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise bad_request("malformed-body", f"the body must be a JSON object, not {_json_kind(body)}")
    return body


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def note_document(note: Note) -> dict[str, Any]:
    """The note as API.md writes it, for orjson (`dumps`).

    orjson writes a UTC datetime exactly as API.md does, in C, except when its microseconds are
    zero: then it leaves out the fraction, so those few are formatted here. A dict is faster for
    orjson than the slotted dataclass itself, whose fields it reads one getattr at a time.
    """
    created, updated = note.created_at, note.updated_at
    return {
        "id": note.id,
        "title": note.title,
        "description": note.description,
        "priority": note.priority,
        "tags": note.tags,
        "created_by": note.created_by,
        "created_at": created
        if created.microsecond and created.tzinfo is UTC
        else format_timestamp(created),
        "updated_at": updated
        if updated.microsecond and updated.tzinfo is UTC
        else format_timestamp(updated),
        "version": note.version,
    }


def dumps(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)


def json_response(
    document: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    headers = {hdrs.CONTENT_TYPE: JSON} if headers is None else {hdrs.CONTENT_TYPE: JSON, **headers}
    return web.Response(status=status, body=dumps(document), headers=headers)


def note_response(note: Note, *, status: int = 200, location: str | None = None) -> web.Response:
    """A note with its ETag (and Location when it was created)."""
    headers = {hdrs.CONTENT_TYPE: JSON, hdrs.ETAG: note.etag}
    if location is not None:
        headers[hdrs.LOCATION] = location
    return web.Response(status=status, body=dumps(note_document(note)), headers=headers)
