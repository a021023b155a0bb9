"""The one request pipeline: an aiohttp middleware that every request passes through, on every
route, whether it was added here or the plain aiohttp way, and the requests no route matches.

It gives each request its X-Request-ID, times and counts it (metrics), refuses what no route of
the service can answer (501 for a method no one implements, 417 for an expectation, 406 for an
Accept that admits no JSON on a JSON route), authenticates it (auth.py: whom it acts for, or 401,
403 or 429), turns whatever the handler or aiohttp's router raises into problem+json (404, 405
with `Allow`), answers OPTIONS for every resource from the router's own knowledge of its methods
(and with GET's 404 where GET finds nothing), and adds the CORS headers. The access log line is
written later, by aiohttp's access-log hook (http/access_log.py), from what is noted here.
"""

from __future__ import annotations

import itertools
import os
import re
from asyncio import AbstractEventLoop, current_task, get_running_loop
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from multidict import istr

from app.domain.errors import StorageUnavailableError
from app.entrypoints.http.auth import Authentication
from app.entrypoints.http.conditions import IF_MATCH_FAILED, if_match_holds
from app.entrypoints.http.cors import Cors
from app.entrypoints.http.metrics import BUCKETS, UNMATCHED, RequestMetrics, new_buckets
from app.entrypoints.http.negotiation import accepts_gzip, accepts_json, not_json
from app.entrypoints.http.problems import (
    EXPECTATION_FAILED,
    NOT_ACCEPTABLE,
    ProblemError,
    problem_response,
)
from app.entrypoints.http.representation import COMPRESS_OVER, compressible
from app.entrypoints.http.routing import get_behind_options
from app.entrypoints.http.wiring import HttpSettings
from app.entrypoints.logs import CURRENT_REQUEST

X_REQUEST_ID = istr("X-Request-ID")
SERVER = "notes"
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: safe in a header and a log line
MERGE_PATCH_JSON = "application/merge-patch+json"
# The methods of RFC 9110 (section 9), PATCH (RFC 5789) and QUERY (the IETF's safe method with a
# body): a resource that lacks one of them answers 405 with Allow; any other method is not
# implemented by this server (501).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                           "PATCH", "QUERY"})

READS = frozenset({"GET", "HEAD"})
# The codings of a request body that aiohttp decodes (it reads any other as if there were none).
DECODED = frozenset({"identity", "gzip", "deflate"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Pipeline:
    """What every request goes through; `middleware` is the aiohttp middleware that runs it."""

    def __init__(self, settings: HttpSettings, metrics: RequestMetrics, authentication: Authentication) -> None:
        self._metrics = metrics
        self._authentication = authentication
        self._cors = Cors(settings.cors_origins) if settings.cors_origins else None
        # Request ids: this process's random prefix and a counter. Unique across processes and
        # restarts, and far cheaper per request than a uuid4.
        self._id_prefix = f"{os.urandom(6).hex()}-"
        self._ids = itertools.count(1)
        # The loop the application runs in (aiohttp runs one application in one loop), set when it
        # starts: `current_task(loop)` then asks no `get_running_loop()`, which costs a system call
        # (getpid) per request.
        self._loop: list[AbstractEventLoop | None] = [None]

    async def on_startup(self, _app: web.Application) -> None:
        """For `app.on_startup`: note the loop the application runs in."""
        self._loop[0] = get_running_loop()

    def middleware(self) -> Middleware:
        metrics, cors, id_prefix, ids, loop = self._metrics, self._cors, self._id_prefix, self._ids, self._loop
        by_route = metrics.by_route
        identify = self._authentication.identify

        @web.middleware
        async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
            # Inline rather than in functions, metrics included: this runs for every request,
            # and each call would cost about as much as the work it does. For the same reason
            # each of aiohttp's properties (request.method, .headers, .match_info.route,
            # response.status) is read once, here, and handed on.
            headers = request.headers
            request_id = headers.get(X_REQUEST_ID)
            if request_id is None or _CLIENT_ID.fullmatch(request_id) is None:
                request_id = f"{id_prefix}{next(ids)}"
            # [id, seconds taken, the request's task, its owner]: for the access log line, and
            # for the log records of this task meanwhile (not of tasks it starts, which inherit
            # the context)
            noted: list = [request_id, None, current_task(loop[0]), None]
            CURRENT_REQUEST.set(noted)
            started = perf_counter()
            method = request.method
            route = request.match_info.route
            redirect = None  # an HTTPException below 400 stays raised, as aiohttp wants it
            limited = None  # the rate limit's headers
            encoded = False  # a body in a Content-Encoding
            try:
                # `_refusal` only for what it could refuse: most requests are none of it
                accept = headers.get(hdrs.ACCEPT)
                if (
                    method in KNOWN_METHODS
                    and hdrs.EXPECT not in headers
                    and hdrs.CONTENT_ENCODING not in headers
                    and (accept is None or accepts_json(accept))  # lru_cache: no call on a hit
                ):
                    refusal = None
                else:
                    refusal = _refusal(request, route)
                    encoded = hdrs.CONTENT_ENCODING in headers
                if refusal is None:
                    pending = identify(request, headers, route, noted)  # whom it acts for; with I/O: also 401, 403, 429
                    if pending is not None:
                        limited = await pending
                    response = await handler(request)
                else:
                    response = refusal
            except web.HTTPMethodNotAllowed as refused:
                response = await _options(request, refused)
            except web.HTTPException as raised:
                if raised.status < 400:
                    response = redirect = raised
                else:
                    response = problem_response(raised, request)
            except Exception as error:
                response = problem_response(error, request)
            if hdrs.IF_MATCH in headers and method in READS and redirect is None:  # a raised 3xx stays raised
                response = _if_match(request, response)
            if encoded:  # (on the answer as it leaves: after If-Match may have made it a 412)
                _end_encoded_body(request, response)
            noted[1] = elapsed = perf_counter() - started
            answer = response.headers
            answer[X_REQUEST_ID] = request_id
            answer[hdrs.SERVER] = SERVER  # no versions for anyone to look up
            if hdrs.CACHE_CONTROL not in answer:
                answer[hdrs.CACHE_CONTROL] = "no-store"
            # a strong ETag (a note's) names these very bytes: never compressed, and no body to read
            if type(response) is web.Response and ((tag := answer.get(hdrs.ETAG)) is None or tag[:2] == "W/"):
                body = response.body
                if isinstance(body, (bytes, bytearray)):
                    if len(body) > COMPRESS_OVER:
                        _compress(request, response)
                elif body is not None:  # a streamed body (the export): of no length known, and large
                    _compress(request, response)
            status = response.status
            statuses = by_route.get(route)  # holds only routes of one method: this request's
            if statuses is None:
                statuses = metrics.statuses(route, method)
            counts = statuses.get(status)
            if counts is None:
                counts = statuses[status] = new_buckets()
            counts[bisect_left(BUCKETS, elapsed)] += 1
            counts[-1] += elapsed
            if cors is not None:
                cors.add_headers(request, response)
            if limited is not None:
                answer.update(limited)
            # The task's context holds `noted`, which held the task: a reference cycle that kept
            # every request's task, coroutine and response alive until the garbage collector
            # ran. Nothing the task logs from here on is the request's (aiohttp only sends the
            # response, and the access line takes its id from `noted`), so the cycle ends here.
            noted[2] = None
            if redirect is not None:
                raise redirect
            return response

        return pipeline


def _refusal(request: web.Request, route: web.AbstractRoute) -> web.Response | None:
    """What no route of the service can answer: a method no one implements (501), an
    expectation (417), a body in a coding aiohttp does not decode (415), an Accept that admits
    no JSON on a JSON route (406); else None."""
    if request.method not in KNOWN_METHODS:
        # Not echoed: a client may put anything there.
        return ProblemError(501, "this request method is not implemented by this server").response(request)
    headers = request.headers
    expect = headers.get(hdrs.EXPECT)
    if expect is not None and expect.lower() != "100-continue":
        return EXPECTATION_FAILED.response(request)
    coding = headers.get(hdrs.CONTENT_ENCODING)
    if coding is not None and coding.strip().lower() not in DECODED and request.body_exists:
        # aiohttp would read such a body as it is (RFC 9110, sections 8.4.1 and 15.5.16). Not echoed.
        return ProblemError(415, "the body's Content-Encoding is not one this server decodes: send it as it is,"
                            " or in gzip or deflate", headers={hdrs.ACCEPT_ENCODING: "gzip, deflate"}).response(request)
    accept = headers.get(hdrs.ACCEPT)
    if accept is not None and not accepts_json(accept) and _answers_json(request, route):
        return NOT_ACCEPTABLE.response(request)
    return None


def _end_encoded_body(request: web.Request, response: web.StreamResponse) -> None:
    """A compressed body that was not read to its end (a 401, a 404, a handler that reads no
    body, or one that met damage): aiohttp would read the rest once the answer is sent, meet any
    damage in it and log it as an unhandled exception, with a traceback, as often as any client
    liked. It is not read: the body ends here, and so does the connection, since what is left of
    it cannot be told from a next request."""
    if not request.content.is_eof():
        request.content.feed_eof()
        response.force_close()


def _if_match(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """If-Match on a GET or HEAD, judged here for every route alike (RFC 9110, section 13.1.1):
    the answer stands when the condition holds for its ETag, else it is a 412 (a read has done
    nothing a 412 would have to undo, and a streamed body has not begun). Only an answer that
    would have been a 2xx without conditions is judged (section 13.2.1): a 404 stays a 404, and
    a 304 was a 200 but for If-None-Match, which If-Match comes before (section 13.2.2)."""
    status = response.status
    if not (200 <= status < 300 or status == 304):
        return response
    try:
        if if_match_holds(request.headers[hdrs.IF_MATCH], response.headers.get(hdrs.ETAG)):
            return response
        return IF_MATCH_FAILED.response(request)
    except ProblemError as malformed:
        return problem_response(malformed, request)


def _compress(request: web.Request, response: web.Response) -> None:
    """gzip a large or streamed body when the client accepts it (RFC 9110, section 12.5.3);
    small bodies, every note of an ordinary size included, are sent as they are, at no cost. A
    body with a strong ETag (a note) never comes here: a strong tag names one representation,
    byte for byte, and a note's tag is also what If-Match compares (RFC 9110, section 8.8.3). Nor
    is a body in a compressed format (an image) compressed."""
    headers = response.headers
    if not compressible(headers.get(hdrs.CONTENT_TYPE, "")):
        return
    vary = headers.get(hdrs.VARY)
    if vary is None:
        headers[hdrs.VARY] = "Accept-Encoding"
    elif "accept-encoding" not in vary.lower():
        headers[hdrs.VARY] = f"{vary}, Accept-Encoding"
    if accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
        response.enable_compression(web.ContentCoding.gzip)


def _answers_json(request: web.Request, route: web.AbstractRoute) -> bool:
    """A route whose answers are JSON; not what the router answers itself (404, 405, OPTIONS),
    which says more than a 406 would."""
    return route.resource is not None and not getattr(request.match_info.handler, "not_json", False)


async def _options(request: web.Request, refused: web.HTTPMethodNotAllowed) -> web.StreamResponse:
    """aiohttp's router knows the methods of every resource: OPTIONS is answered from them (204
    with `Allow`), and any other method they lack is a 405 with the same `Allow`."""
    allowed = {*refused.allowed_methods, hdrs.METH_OPTIONS}
    headers: dict[str, str] = {hdrs.ALLOW: ", ".join(sorted(allowed))}
    if hdrs.METH_PATCH in allowed:
        headers["Accept-Patch"] = MERGE_PATCH_JSON
    if request.method == hdrs.METH_OPTIONS:
        missing = await _missing(request)
        return web.Response(status=204, headers=headers) if missing is None else missing
    detail = f"{request.method} is not allowed here; see the Allow header"
    return ProblemError(405, detail, headers=headers).response(request)


async def _missing(request: web.Request) -> web.Response | None:
    """For OPTIONS on a path with parameters (`/notes/{id}`, or an action on one such as
    `/trash/{id}/restore`), what GET answers there when it finds nothing (404 or 410): a resource
    that does not exist allows no method. None otherwise, and
    always for a CORS preflight, which a browser needs answered with a 2xx before it sends the
    request itself (that one gets the 404)."""
    if hdrs.ORIGIN in request.headers and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        return None
    behind = await get_behind_options(request)
    if behind is None:
        return None
    probe, found = behind
    # The router's answer to OPTIONS is an empty match, which the probe shares: it holds the
    # parameters of GET's match while GET's handler runs.
    parameters = probe.match_info
    parameters.update(found)
    try:
        await found.handler(probe)
    except StorageUnavailableError:
        return None  # the methods allowed are known without the database: no 503 to log
    except Exception as raised:
        answer = problem_response(raised, request)
        return answer if answer.status in (404, 410) else None
    finally:
        parameters.clear()
    return None


__all__ = ["UNMATCHED", "Pipeline", "not_json"]
