"""GET /export and POST /import: the caller's notes as a notes file (API.md, "Export, import and
copy"), and a notes file's notes as new notes of the caller.

The export streams: aiohttp writes the body from the store's export a chunk at a time, with the
client's pace as backpressure, so memory stays flat whatever the number of notes. A failure
half-way ends the connection before the file's `end` line, and the file reads as cut short.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import hdrs, web

from app.domain.transfer import NoteRecord
from app.entrypoints.http.keys import IDENTITY, NOTES, SETTINGS
from app.entrypoints.http.listing import no_parameters
from app.entrypoints.http.negotiation import accepts, not_json
from app.entrypoints.http.problems import ProblemError
from app.entrypoints.http.representation import dumps, is_utf8, read_body
from app.entrypoints.http.wiring import HttpSettings
from app.entrypoints.notes_file import MEDIA_TYPE, NotesFileError, read_all, write_notes_file

SOURCE = "api"  # the header's `source`: an owner's export over HTTP


NOTES_FILE = (("application", "x-ndjson"),)  # MEDIA_TYPE: what GET /export answers with


def import_bytes(settings: HttpSettings) -> int:
    return settings.max_import_bytes


@not_json
async def export_notes(request: web.Request) -> web.Response:
    no_parameters(request)
    accept = request.headers.get(hdrs.ACCEPT)
    if accept is not None and not accepts(accept, NOTES_FILE):
        return ProblemError(406, f"this resource is only available as {MEDIA_TYPE}").response(request)
    owner = request[IDENTITY].owner
    now = datetime.now(UTC)
    body = write_notes_file(request.app[NOTES].export(owner), SOURCE, now)
    filename = f"notes-{owner}-{now:%Y%m%d-%H%M%S}.ndjson"
    return web.Response(body=body, headers={
        hdrs.CONTENT_TYPE: MEDIA_TYPE,
        hdrs.CONTENT_DISPOSITION: f'attachment; filename="{filename}"',
        hdrs.CACHE_CONTROL: "no-store",
    })


async def import_notes(request: web.Request) -> web.Response:
    no_parameters(request)
    media_type, charset = request.content_type, request.charset
    if hdrs.CONTENT_TYPE in request.headers and (
        media_type != MEDIA_TYPE or not is_utf8(charset)
    ):
        raise ProblemError(415, f"the body must be a notes file: send Content-Type: {MEDIA_TYPE}",
                           slug="unsupported-media-type")
    raw = await read_body(request, import_bytes(request.app[SETTINGS]))
    try:
        records = await asyncio.to_thread(read_all, raw.splitlines(keepends=True))  # the loop goes on
    except NotesFileError as error:
        listed = "" if error.count == len(error.problems) else f"; the first {len(error.problems)} are listed"
        raise ProblemError(
            422, f"the notes file has {error.count:,} problem{'s' if error.count > 1 else ''}{listed};"
            " nothing was imported", slug="invalid-notes-file",
            errors=[{"line": p.line, "detail": p.detail} for p in error.problems],
        ) from None
    notes = [record for record in records if isinstance(record, NoteRecord)]
    made = await request.app[NOTES].import_notes(request[IDENTITY].owner, notes)
    ids = {str(old.note.id): new.id for old, new in zip(notes, made, strict=True)}
    return web.Response(body=dumps({"imported": len(made), "ids": ids}),
                        headers={hdrs.CONTENT_TYPE: "application/json", hdrs.CACHE_CONTROL: "no-store"})
