"""Every problem type the service answers with, and the page that explains each one.

A problem's `type` is an absolute URI on the service, `http://host/problems/<slug>`; GET on it
answers a short page saying what went wrong and what to do. Titles are RFC 9110's reason phrases
(Python's `HTTPStatus` still says "Request Entity Too Large" and "Unprocessable Entity").
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web

from app.entrypoints.http.negotiation import not_json

RFC_9110_PHRASES = {413: "Content Too Large", 416: "Range Not Satisfiable", 422: "Unprocessable Content"}


def reason(status: int) -> str:
    return RFC_9110_PHRASES.get(status) or HTTPStatus(status).phrase


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    explanation: str


TYPES = {
    "malformed-body": ProblemType(400, "The body is not a JSON object: it is empty, not JSON, or"
                                  " another kind of JSON value, or holds a number too long to read;"
                                  " or it cannot be read at all (its gzip or deflate coding is damaged)."),
    "invalid-query": ProblemType(400, "A query parameter is unknown, repeated, of the wrong type or"
                                 " out of range; `errors` names each one."),
    "invalid-cursor": ProblemType(400, "The cursor was changed, made by another deployment, or is"
                                  " replayed with other filters or another sort. Start the listing"
                                  " again from its first page."),
    "invalid-idempotency-key": ProblemType(400, "An Idempotency-Key is 1 to 255 visible ASCII"
                                           " characters."),
    "invalid-precondition": ProblemType(400, "If-Match or If-None-Match is neither `*` nor a list of"
                                        " entity tags in double quotes, such as `\"3\"` (RFC 9110,"
                                        " section 8.8.3): send the note's ETag as it came."),
    "invalid-change-token": ProblemType(400, "`since` or Last-Event-ID is not a change token: send back"
                                        " the `next` of an answer of GET /changes, or an event's id, as it"
                                        " came."),
    "invalid-authorization": ProblemType(400, "Authorization was sent more than once: a request"
                                         " carries one token, in one Authorization header."),
    "unauthorized": ProblemType(401, "This request needs a valid token: send Authorization: Bearer"
                                " <token>. Without one the answer's WWW-Authenticate says so; with a"
                                " malformed, unknown, expired or revoked one it says error=\"invalid_token\"."
                                " `notes-api tokens issue OWNER` makes a token."),
    "insufficient-scope": ProblemType(403, "The token's scope is read: a write (or issuing a write"
                                      " token) needs a token of scope write."),
    "not-found": ProblemType(404, "No resource answers at this path."),
    "token-not-found": ProblemType(404, "There is no token of yours with this id."),
    "note-not-found": ProblemType(404, "There is no note with this id: it never existed, was"
                                  " deleted, or the id is not a positive integer."),
    "revision-not-found": ProblemType(404, "The note has no such revision: the version was never made,"
                                      " or is older than the last --keep-revisions kept; or the note"
                                      " itself is not there."),
    "not-in-trash": ProblemType(404, "There is no note with this id in the trash: it was never deleted,"
                                " was restored, or was purged (for good, or after --trash-days)."),
    "method-not-allowed": ProblemType(405, "This resource does not answer this method; the Allow"
                                      " header lists those it does."),
    "not-acceptable": ProblemType(406, "The Accept header admits neither application/json nor"
                                  " application/problem+json, the only forms of this answer."),
    "request-timeout": ProblemType(408, "The request body did not arrive within the server's body"
                                   " timeout; the connection was closed. Send it again, faster."),
    "idempotency-key-in-use": ProblemType(409, "The first request with this Idempotency-Key is"
                                          " still running. Retry after Retry-After seconds with"
                                          " the same key and body."),
    "change-token-expired": ProblemType(410, "The changes after this token are no longer kept"
                                        " (--keep-changes-days), or the token lies beyond the end of"
                                        " the log, which this store never gave. Read the notes again"
                                        " from /notes, then follow GET /changes from its `next`"
                                        " without `since`."),
    "precondition-failed": ProblemType(412, "If-Match names a version the note (on a GET, the"
                                       " resource) no longer has, or If-None-Match names the one"
                                       " it has. GET it, then decide again."),
    "content-too-large": ProblemType(413, "The request body is over the server's limit."),
    "unsupported-media-type": ProblemType(415, "The body must be JSON (application/json or"
                                          " another application/*+json type, or no Content-Type);"
                                          " a PATCH must be a JSON merge patch (Accept-Patch); a"
                                          " Content-Encoding must be gzip or deflate (Accept-Encoding)."),
    "expectation-failed": ProblemType(417, "The only expectation this server meets is"
                                      " 100-continue."),
    "validation-error": ProblemType(422, "The note breaks its rules; `errors` lists the problems"
                                    " (the first 100), each with a JSON pointer into the body."),
    "invalid-notes-file": ProblemType(422, "The body of POST /import is not a whole, intact notes file"
                                      " (as GET /export writes it; /openapi.json describes its lines), or"
                                      " some of its lines break the"
                                      " rules; `errors` lists each problem (the first 100) with its line."
                                      " Nothing was imported."),
    "idempotency-key-reused": ProblemType(422, "This Idempotency-Key was first used with another"
                                          " body. Use a new key for a new request."),
    "rate-limited": ProblemType(429, "This owner made more requests than --rate-limit allows;"
                                " retry after Retry-After seconds (RateLimit says how many remain)."),
    "precondition-required": ProblemType(428, "This server requires If-Match on PUT, PATCH and"
                                         " DELETE: send the note's ETag."),
    "internal-error": ProblemType(500, "The server failed; this is a bug, and it was logged."),
    "not-implemented": ProblemType(501, "This server does not implement the request's method."),
    "database-unavailable": ProblemType(503, "The database could not be reached or did not answer"
                                        " in time. The outcome of a write is unknown: retry after"
                                        " Retry-After seconds, with the same Idempotency-Key or"
                                        " If-Match, which makes the retry safe."),
}
# The type of a problem raised without one of its own, by status.
BY_STATUS = {400: "malformed-body", 404: "not-found", 405: "method-not-allowed",
             406: "not-acceptable", 413: "content-too-large", 415: "unsupported-media-type",
             417: "expectation-failed", 500: "internal-error", 501: "not-implemented"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{status} {title}: {slug}</h1><p>{explanation}</p>
<p>Every error of this API is <code>application/problem+json</code> (RFC 9457);
see <a href="/docs">/docs</a>.</p></body></html>
"""


@not_json
async def problem_page(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    known = TYPES.get(slug)
    if known is None:
        raise web.HTTPNotFound()
    page = PAGE.format(status=known.status, title=reason(known.status), slug=slug,
                       explanation=html.escape(known.explanation))
    return web.Response(text=page, content_type="text/html",
                        headers={"Cache-Control": "public, max-age=86400"})
