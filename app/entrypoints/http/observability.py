"""What every request passes through once: its X-Request-ID, its timing and metrics, and CORS.

One outermost middleware does all of it, measured as the cheapest correct place (see README's
Operations): an `on_response_prepare` receiver costs more per request than a middleware, and only
a middleware sees a request start, which uvloop's millisecond clock cannot time. The access log
line is written later, by aiohttp's access-log hook (logs.py), from what is noted here.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from time import perf_counter

from aiohttp import web
from multidict import istr

from app.entrypoints.http.cors import Cors
from app.entrypoints.http.keys import HttpSettings
from app.entrypoints.http.logs import CURRENT_REQUEST
from app.entrypoints.http.metrics import RequestMetrics, add_metrics

X_REQUEST_ID = istr("X-Request-ID")
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: safe in a header and a log line

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_ids() -> Iterator[str]:
    """New request ids: a random prefix for this process and a counter.

    Unique across processes and restarts, and far cheaper per request than a uuid4.
    """
    return map(f"{os.urandom(6).hex()}-".__add__, map(hex, itertools.count(1)))


class RequestObserver:
    """The middleware of one application (`middleware`), and its GET /metrics (`install`)."""

    def __init__(self, settings: HttpSettings) -> None:
        self.metrics = RequestMetrics()
        cors = Cors(settings.cors_origins) if settings.cors_origins else None
        self.middleware = _middleware(request_ids(), self.metrics, cors)

    def install(self, app: web.Application) -> None:
        add_metrics(app, self.metrics)


def _middleware(ids: Iterator[str], metrics: RequestMetrics, cors: Cors | None) -> Handler:
    record = metrics.record

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        """X-Request-ID on every response (the client's if acceptable), metrics, CORS."""
        request_id = request.headers.get(X_REQUEST_ID)
        if request_id is None or _CLIENT_ID.fullmatch(request_id) is None:
            request_id = next(ids)
        # [id, seconds taken]: for the access log line, and for app log records meanwhile
        noted = [request_id, None]
        CURRENT_REQUEST.set(noted)
        started = perf_counter()
        response = None
        try:
            response = await handler(request)
            return response
        except web.HTTPException as raised:  # only below 400: problem_middleware answers the rest
            response = raised
            raise
        finally:  # inline rather than a function: this runs for every request
            if response is not None:
                noted[1] = elapsed = perf_counter() - started
                response.headers[X_REQUEST_ID] = request_id
                record(request.match_info.route.resource, request.method, response.status, elapsed)
                if cors is not None:
                    cors.add_headers(request, response)

    return observe
