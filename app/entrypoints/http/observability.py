"""The application's one middleware, which every request passes through once: problem+json for
every error, its X-Request-ID, its timing and metrics, and CORS.

One middleware does all of it, measured as the cheapest correct place (see README's Operations):
each further middleware costs a coroutine per request, an `on_response_prepare` receiver costs
more than a middleware, and only a middleware sees a request start, which uvloop's millisecond
clock cannot time. The access log line is written later, by aiohttp's access-log hook
(logs.py), from what is noted here.
"""

from __future__ import annotations

import itertools
import os
import re
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from time import perf_counter

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from multidict import istr

from app.entrypoints.http.cors import Cors
from app.entrypoints.http.keys import HttpSettings
from app.entrypoints.http.logs import CURRENT_REQUEST
from app.entrypoints.http.metrics import BUCKETS, RequestMetrics, add_metrics
from app.entrypoints.http.negotiation import accepts_json
from app.entrypoints.http.problems import NOT_ACCEPTABLE, answers_only_json, problem_response

X_REQUEST_ID = istr("X-Request-ID")
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: safe in a header and a log line

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_ids() -> Iterator[str]:
    """New request ids: a random prefix for this process and a counter.

    Unique across processes and restarts, and far cheaper per request than a uuid4.
    """
    return map(f"{os.urandom(6).hex()}-".__add__, map(str, itertools.count(1)))


class RequestObserver:
    """The one middleware of an application (`middleware`), and its GET /metrics (`install`)."""

    def __init__(self, settings: HttpSettings) -> None:
        self.metrics = RequestMetrics()
        cors = Cors(settings.cors_origins) if settings.cors_origins else None
        self.middleware = _middleware(request_ids(), self.metrics, cors)

    def install(self, app: web.Application) -> None:
        add_metrics(app, self.metrics)


def _middleware(ids: Iterator[str], metrics: RequestMetrics, cors: Cors | None) -> Middleware:
    series, new_series = metrics.series, metrics.new_series

    @web.middleware
    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer a request: a problem+json for whatever its handler raised, X-Request-ID (the
        client's, if acceptable) on every response, the metrics, and CORS."""
        request_id = request.headers.get(X_REQUEST_ID)
        if request_id is None or _CLIENT_ID.fullmatch(request_id) is None:
            request_id = next(ids)
        # [id, seconds taken]: for the access log line, and for app log records meanwhile
        noted: list = [request_id, None]
        CURRENT_REQUEST.set(noted)
        started = perf_counter()
        redirect = None  # an HTTPException below 400 stays raised, as aiohttp wants it
        try:
            accept = request.headers.get(hdrs.ACCEPT)
            if accept is not None and not accepts_json(accept) and answers_only_json(request):
                response = NOT_ACCEPTABLE.response()
            else:
                response = await handler(request)
        except web.HTTPException as raised:
            if raised.status < 400:
                response = redirect = raised
            else:
                response = problem_response(raised, request)
        except Exception as error:
            response = problem_response(error, request)
        # Inline rather than in functions, metrics included: this runs for every request, and
        # each call would cost about as much as the work it does.
        noted[1] = elapsed = perf_counter() - started
        response.headers[X_REQUEST_ID] = request_id
        route, status = request.match_info.route, response.status
        counts = series.get((route, status)) or new_series(route, request.method, status)
        counts[bisect_left(BUCKETS, elapsed)] += 1
        counts[-1] += elapsed
        if cors is not None:
            cors.add_headers(request, response)
        if redirect is not None:
            raise redirect
        return response

    return answer
