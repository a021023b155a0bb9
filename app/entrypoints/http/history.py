"""Revisions, the trash and the changes feed (API.md, "History: revisions, trash and changes").

`GET /changes` answers JSON, or, to `Accept: text/event-stream`, server-sent events: the body is
an async iterable, so the pipeline adds its headers as to any answer, aiohttp writes each event
as it comes, and a client that goes away ends the iteration. The stream ends when the server
stops (the store's watches close on shutdown).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web

from app.domain.errors import InvalidChangeTokenError
from app.domain.history import Change, ChangesPage, ChangeToken, Trashed
from app.domain.rules import Integer, Text
from app.domain.timestamps import format_timestamp, from_microseconds, to_microseconds
from app.entrypoints.http.auth import invalid_token, still_authorized
from app.entrypoints.http.conditions import etag, if_match_holds, if_none_match, precondition
from app.entrypoints.http.handlers import note_id, owner, page_response, write_precondition
from app.entrypoints.http.keys import NOTES
from app.entrypoints.http.listing import Parameter, no_parameters, parse_parameters
from app.entrypoints.http.negotiation import PRODUCED, accepts, not_json
from app.entrypoints.http.problems import ProblemError, bad_request
from app.entrypoints.http.representation import PRIVATE, dumps, json_response, note_document, note_response
from app.entrypoints.note_json import moment_document

EVENT_STREAM = "text/event-stream"
PAGE_DEFAULT, CHANGES_DEFAULT = 50, 100
KEEP_ALIVE_SECONDS = 15.0  # a comment line on an idle stream, so that proxies keep it open
RETRY_MILLISECONDS = 1000  # how soon an EventSource reconnects

# What each parameter that the server made reads as (the description states them): a change
# token (ChangeToken.parse), a revisions cursor (a version), a trash cursor (`micros.id`).
PATTERNS = {
    "since": r"^(0|[1-9][0-9]{0,17})(\.(0|[1-9][0-9]{0,17}))?$",
    "revisions cursor": r"^[1-9][0-9]{0,8}$",
    "trash cursor": r"^-?[0-9]{1,18}\.[1-9][0-9]{0,17}$",
}
REVISION_PARAMETERS = (
    Parameter("limit", Integer(1, 500), f"revisions per page; default {PAGE_DEFAULT}"),
    Parameter("cursor", Text(1, 40), "the next_cursor of the previous page, unchanged"),
)
TRASH_PARAMETERS = (
    Parameter("limit", Integer(1, 500), f"notes per page; default {PAGE_DEFAULT}"),
    Parameter("cursor", Text(1, 60), "the next_cursor of the previous page, unchanged"),
)
CHANGES_PARAMETERS = (
    Parameter("since", Text(1, 39), "the `next` of the previous answer (or an event's id); absent: the start of"
              " the kept log"),
    Parameter("limit", Integer(1, 1000), f"changes per answer; default {CHANGES_DEFAULT}"),
    Parameter("wait", Integer(1, 60), "seconds to hold the request until a change arrives; absent: answer at once"),
)
def _invalid_cursor() -> ProblemError:
    return bad_request(
        "invalid-cursor", "cursor: not a cursor of this listing",
        errors=[{"parameter": "cursor", "detail": "is not valid for this listing"}],
    )


def _positive(text: str) -> int | None:
    """A version as written in a path or a cursor: 1 to 999,999,999, no sign, no leading zero."""
    return int(text) if text.isascii() and text.isdigit() and text[0] != "0" and len(text) <= 9 else None


def _version(request: web.Request) -> int:
    """The version in the path; anything but a positive integer is a revision that is not there."""
    text = request.match_info["version"]
    version = _positive(text)
    if version is not None:
        return version
    raise ProblemError(404, f"there is no revision {text!r}: versions are positive integers", slug="revision-not-found")


async def list_revisions(request: web.Request) -> web.Response:
    note_id_ = note_id(request)
    values = parse_parameters(request.query, REVISION_PARAMETERS)
    before = None
    if "cursor" in values:
        before = _positive(values["cursor"])
        if before is None:
            raise _invalid_cursor()
    page = await request.app[NOTES].revisions(owner(request), note_id_, values.get("limit", PAGE_DEFAULT), before)
    next_cursor = None if page.next_before is None else str(page.next_before)
    document = {"revisions": [note_document(n) for n in page.revisions], "next_cursor": next_cursor}
    return page_response(request, document, next_cursor)


async def get_revision(request: web.Request) -> web.Response:
    no_parameters(request)
    note_id_, version = note_id(request), _version(request)
    header = request.headers.get("If-None-Match")
    current = None if header is None else if_none_match(header)
    revision = await request.app[NOTES].revision(owner(request), note_id_, version)
    if current is not None and revision in current:
        return web.Response(status=304, headers={"ETag": etag(revision), "Cache-Control": PRIVATE})
    return note_response(revision)


async def restore_revision(request: web.Request) -> web.Response:
    no_parameters(request)
    note_id_, version = note_id(request), _version(request)
    condition = write_precondition(request)
    return note_response(await request.app[NOTES].restore_revision(owner(request), note_id_, version, condition))


def trashed_document(trashed: Trashed) -> dict[str, Any]:
    return {**note_document(trashed.note), "deleted_at": format_timestamp(trashed.deleted_at)}


_EARLIEST = to_microseconds(datetime.min.replace(tzinfo=UTC))
_LATEST = to_microseconds(datetime.max.replace(tzinfo=UTC))


_TRASH_CURSOR = re.compile(PATTERNS["trash cursor"])


def _trash_cursor(text: str) -> tuple[datetime, int]:
    if _TRASH_CURSOR.fullmatch(text) is None:  # the id below 10**18: it fits every store's integer
        raise _invalid_cursor()
    micros, _, note_id_ = text.partition(".")
    # Any (moment, id) is a place in the trash's order, as the description's pattern allows: a
    # moment beyond the years a timestamp holds (1 to 9999) is before or after every note.
    return from_microseconds(min(max(int(micros), _EARLIEST), _LATEST)), int(note_id_)


async def list_trash(request: web.Request) -> web.Response:
    values = parse_parameters(request.query, TRASH_PARAMETERS)
    after = _trash_cursor(values["cursor"]) if "cursor" in values else None
    page = await request.app[NOTES].trash(owner(request), values.get("limit", PAGE_DEFAULT), after)
    next_cursor = None
    if page.next_after is not None:
        next_cursor = f"{to_microseconds(page.next_after[0])}.{page.next_after[1]}"
    document = {"trash": [trashed_document(t) for t in page.notes], "next_cursor": next_cursor}
    return page_response(request, document, next_cursor)


async def get_trashed(request: web.Request) -> web.Response:
    no_parameters(request)
    note_id_ = note_id(request)
    header = request.headers.get("If-None-Match")
    current = None if header is None else if_none_match(header)
    trashed = await request.app[NOTES].in_trash(owner(request), note_id_)
    # It stays as it was deleted until it leaves the trash: the version it was deleted at is its tag.
    headers = {"Cache-Control": PRIVATE, "ETag": etag(trashed.note)}
    if current is not None and trashed.note in current:
        return web.Response(status=304, headers=headers)
    return json_response(trashed_document(trashed), headers=headers)


async def restore_from_trash(request: web.Request) -> web.Response:
    """If-Match names the version the note was deleted at (its ETag in the trash), as on a purge;
    not required by --require-if-match, which is for PUT, PATCH and DELETE: a restore loses no
    one's change."""
    no_parameters(request)
    note_id_ = note_id(request)
    headers = request.headers
    condition = precondition(headers.get(hdrs.IF_MATCH), headers.get(hdrs.IF_NONE_MATCH))
    return note_response(await request.app[NOTES].restore(owner(request), note_id_, condition))


async def purge_from_trash(request: web.Request) -> web.Response:
    no_parameters(request)
    await request.app[NOTES].purge(owner(request), note_id(request), write_precondition(request))
    return web.Response(status=204)


def change_document(change: Change) -> dict[str, Any]:
    return {
        "op": change.op.value, "id": change.note_id, "version": change.version,
        "note": None if change.note is None else note_document(change.note), "at": moment_document(change.at),
    }


def page_document(page: ChangesPage) -> dict[str, Any]:
    return {"changes": [change_document(c) for c in page.changes], "next": str(page.next)}


def _token(text: str) -> ChangeToken:
    try:
        return ChangeToken.parse(text)
    except InvalidChangeTokenError as error:
        raise bad_request("invalid-change-token", str(error)) from None


@not_json  # JSON or an event stream: negotiated here
async def changes(request: web.Request) -> web.Response:
    values = parse_parameters(request.query, CHANGES_PARAMETERS)
    accept = request.headers.get(hdrs.ACCEPT)
    stream = False
    if accept is not None:
        json_ok, stream_ok = accepts(accept, PRODUCED), accepts(accept, ((("text", "event-stream"),)))
        if not (json_ok or stream_ok):
            return ProblemError(406, "this resource is available as application/json or as text/event-stream",
                                ).response(request)
        stream = stream_ok and (not json_ok or _wants_stream(accept))
    last_event = request.headers.get("Last-Event-ID") if stream else None
    since_text = last_event or values.get("since")
    since = None if since_text is None else _token(since_text)
    limit = values.get("limit", CHANGES_DEFAULT)
    notes, who = request.app[NOTES], owner(request)
    if not stream:
        wait = values.get("wait", 0)
        condition = request.headers.get(hdrs.IF_MATCH)
        if wait and condition is not None and not if_match_holds(condition, None):
            wait = 0  # the pipeline answers 412 (this answer has no ETag): at once, not after the wait
        page = await notes.changes(who, since, limit, wait)
        if wait and page.changes and not await still_authorized(request):  # revoked while it waited
            raise invalid_token()
        return web.Response(body=dumps(page_document(page)), headers={
            hdrs.CONTENT_TYPE: "application/json", hdrs.CACHE_CONTROL: "no-store", hdrs.VARY: "Accept",
        })
    first = await notes.changes(who, since, limit)  # an expired or foreign token fails here, as a problem
    return web.Response(body=_events(request, first, limit), headers={
        hdrs.CONTENT_TYPE: EVENT_STREAM, hdrs.CACHE_CONTROL: "no-store", hdrs.VARY: "Accept",
        "X-Accel-Buffering": "no",  # a proxy that buffers would hold every event back
    })


def _wants_stream(accept: str) -> bool:
    """Where both are acceptable, events only for an Accept that names text/event-stream (with
    q > 0) before it names JSON: `*/*` and the like get JSON, the form every client can read."""
    for part in accept.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if media == EVENT_STREAM:
            return True
        if media in ("application/json", "application/problem+json"):
            return False
    return False


async def _events(request: web.Request, first: ChangesPage, limit: int) -> AsyncIterator[bytes]:
    """The stream: a retry hint, then each change as an event whose id is its token, and a
    comment line after each idle spell; it ends before anything more is sent once its token is
    revoked or expired (a reconnecting client then gets the 401)."""
    yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
    page = first
    follow = request.app[NOTES].follow(owner(request), first.next, limit, KEEP_ALIVE_SECONDS)
    try:
        while True:
            if page is not first and not await still_authorized(request):
                return
            if page.changes:
                yield b"".join(
                    b"id: %s\ndata: %s\n\n" % (str(c.token).encode(), dumps(change_document(c))) for c in page.changes
                )
            elif page is not first:
                yield b": keep-alive\n\n"
            page = await anext(follow, None)  # type: ignore[arg-type]
            if page is None:
                return  # the server is stopping
    finally:
        await follow.aclose()
