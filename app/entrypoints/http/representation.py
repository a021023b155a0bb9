"""Reading request bodies and writing notes: JSON in, JSON out, by API.md's rules."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import hdrs, web

from app.domain.model import Note
from app.entrypoints.http.conditions import not_modified
from app.entrypoints.http.keys import SETTINGS
from app.entrypoints.http.problems import ProblemError, bad_request
from app.entrypoints.note_json import note_document

__all__ = ["note_document"]  # the note as API.md writes it, for the handlers (note_json.py)

JSON = "application/json"
PRIVATE = "private, no-cache"  # a note or a page: the client's own, revalidated on every use
MERGE_PATCH_JSON = "application/merge-patch+json"
COMPRESS_OVER = 1024  # bytes: smaller bodies gain less than compressing them costs (pipeline.py)


# Patch formats that are not a merge patch: a PATCH in one of them would be misread (RFC 5789).
OTHER_PATCH_FORMATS = frozenset({"application/json-patch+json", "application/json-patch-query+json"})


def is_json_media_type(media_type: str) -> bool:
    """application/json or any application/*+json."""
    return media_type == JSON or (media_type.startswith("application/") and media_type.endswith("+json"))


def is_utf8(charset: str | None) -> bool:
    """A declared charset that is UTF-8, or none (JSON and a notes file are UTF-8 either way)."""
    return not charset or charset.lower() in ("utf-8", "utf8")


def _check_media_type(request: web.Request) -> None:
    """A body without Content-Type is read as JSON (the tutorial's clients send none); another
    declared type is 415, and so is a PATCH in a patch format other than a merge patch."""
    if hdrs.CONTENT_TYPE not in request.headers:
        return
    charset, media_type, patching = request.charset, request.content_type, request.method == "PATCH"
    if (
        not is_json_media_type(media_type)
        or not is_utf8(charset)
        or (patching and media_type in OTHER_PATCH_FORMATS)
    ):
        wanted = (
            f"Content-Type: {MERGE_PATCH_JSON} (a JSON merge patch, RFC 7396)" if patching else
            "Content-Type: application/json (or another application/*+json type)"
        )
        raise ProblemError(
            415,
            f"the body must be JSON: send {wanted}, or none at all;"
            f" not {request.headers[hdrs.CONTENT_TYPE][:100]!r}",
            slug="unsupported-media-type",
            headers={"Accept-Patch": MERGE_PATCH_JSON} if patching else None,
        )


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The whole body, refused at once when its declared length is over the limit (by default
    --max-body-bytes), and within the body timeout: a client that sends too slowly loses its
    connection (408, then closed)."""
    settings = request.app[SETTINGS]
    if limit is None:
        limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        async with asyncio.timeout(settings.body_timeout):
            if limit == settings.max_body_bytes:
                return await request.read()  # aiohttp's own limit is this one
            return await _read_up_to(request, limit)
    except TimeoutError:
        # The rest of the body is not waited for: without this, aiohttp would read it for its
        # lingering time before closing, which is what a slow client wants.
        request.content.feed_eof()
        raise ProblemError(
            408,
            f"the request body did not arrive within {settings.body_timeout:g} seconds",
            slug="request-timeout",
            close=True,
        ) from None


def _too_large(limit: int) -> ProblemError:
    return ProblemError(413, f"the request body is over the limit of {limit:,} bytes", slug="content-too-large")


async def _read_up_to(request: web.Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object: 415 for a type that is not JSON, 413 over the limit, 408 when
    it comes too slowly, 400 for anything but a JSON object."""
    _check_media_type(request)
    raw = await read_body(request)
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


def dumps(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)


def json_response(
    document: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    headers = {hdrs.CONTENT_TYPE: JSON} if headers is None else {hdrs.CONTENT_TYPE: JSON, **headers}
    return web.Response(status=status, body=dumps(document), headers=headers)


def note_bytes(note: Note) -> bytes:
    """The body of a note's answer."""
    return dumps(note_document(note))


def note_response(
    note: Note, *, status: int = 200, location: str | None = None, body: bytes | None = None
) -> web.Response:
    """A note with its ETag (and Location when it was created); `body` when made already."""
    # `etag(note)` and `note_bytes(note)` written out: every note served comes here, and each
    # call would cost more than the expression it makes
    headers = {hdrs.CONTENT_TYPE: JSON, hdrs.ETAG: f'"{note.version}"', hdrs.CACHE_CONTROL: PRIVATE}
    if location is not None:
        headers[hdrs.LOCATION] = location
    if body is None:
        body = orjson.dumps(note_document(note), option=orjson.OPT_UTC_Z)
    return web.Response(status=status, body=body, headers=headers)


def recorded_note_response(body: bytes) -> web.Response:
    """The first answer to an idempotent create, given again to a retry: the same status and
    body; its Location and ETag are those of the note as the body describes it."""
    note = orjson.loads(body)
    headers = {
        hdrs.CONTENT_TYPE: JSON,
        hdrs.CACHE_CONTROL: PRIVATE,
        hdrs.ETAG: f'"{note["version"]}"',
        hdrs.LOCATION: f"/notes/{note['id']}",
        "Idempotent-Replayed": "true",
    }
    return web.Response(status=201, body=body, headers=headers)


def compressible(content_type: str) -> bool:
    """Text, JSON and scripts; not images and the like, which are compressed already (gzip
    makes a PNG larger), nor server-sent events, each of which must leave as it happens (a
    compressor would hold it back)."""
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "text/event-stream":
        return False
    return media_type.startswith("text/") or media_type.endswith(("json", "javascript", "xml"))


def unchanging_response(request: web.Request, body: bytes, content_type: str, tag: str) -> web.Response:
    """A representation that changes only with the code serving it (the index, the API's
    description, the docs page), with `tag`, its `weak_etag`: caches may keep it, and ask with
    If-None-Match whether it still holds (304) before each use."""
    headers = {hdrs.CACHE_CONTROL: "no-cache", hdrs.ETAG: tag}
    # a 304 carries the Vary its 200 would (RFC 9110, section 15.4.5)
    if len(body) > COMPRESS_OVER and compressible(content_type):
        headers[hdrs.VARY] = "Accept-Encoding"
    if not_modified(request.headers.get(hdrs.IF_NONE_MATCH), tag):
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = content_type
    return web.Response(body=body, headers=headers)
