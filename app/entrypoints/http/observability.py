"""How every request is answered and observed: problem+json for whatever its handler raised, its
X-Request-ID, its timing and metrics, and CORS.

Each route's handler is wrapped (`RequestObserver.observe`, called for every route by routing.py)
instead of the application having a middleware. With any middleware at all, aiohttp puts a layer
of its own around every request, which cost more than everything done here (README's
Operations); a catch-all route answers the paths no resource matches (routing.py).
The access log line is written later, by aiohttp's access-log hook (logs.py), from what is
noted here.
"""

from __future__ import annotations

import itertools
from asyncio import current_task
import os
import re
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import hdrs, web
from multidict import istr

from app.entrypoints.http.cors import Cors
from app.entrypoints.http.keys import HttpSettings
from app.entrypoints.http.logs import CURRENT_REQUEST
from app.entrypoints.http.metrics import BUCKETS, RequestMetrics, add_metrics, new_buckets
from app.entrypoints.http.negotiation import accepts_json
from app.entrypoints.http.problems import EXPECTATION_FAILED, NOT_ACCEPTABLE, problem_response

X_REQUEST_ID = istr("X-Request-ID")
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: safe in a header and a log line

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestObserver:
    """Wraps the handlers of an application (`observe`) and serves their metrics (`install`)."""

    def __init__(self, settings: HttpSettings) -> None:
        self.metrics = RequestMetrics()
        self._cors = Cors(settings.cors_origins) if settings.cors_origins else None
        # Request ids: this process's random prefix and a counter. Unique across processes and
        # restarts, and far cheaper per request than a uuid4.
        self._id_prefix = f"{os.urandom(6).hex()}-"
        self._ids = itertools.count(1)

    def install(self, app: web.Application) -> None:
        add_metrics(app, self.metrics)

    def observe(
        self, handler: Handler, route: str, method: str | None, *, json_only: bool
    ) -> Handler:
        """`handler`, answering a problem+json for whatever it raises, X-Request-ID (the client's,
        if acceptable) on every response, counted in the metrics under `route` and `method`
        (None: the request's own, for the answers to unmatched methods and paths), with CORS.
        `json_only`: an Accept that admits no JSON is a 406, and the handler is not called."""
        metrics, cors, id_prefix, ids = self.metrics, self._cors, self._id_prefix, self._ids
        by_status = None if method is None else metrics.statuses(route, method)

        async def answer(request: web.Request) -> web.StreamResponse:
            # Inline rather than in functions, metrics included: this runs for every request, and
            # each call would cost about as much as the work it does.
            request_id = request.headers.get(X_REQUEST_ID)
            if request_id is None or _CLIENT_ID.fullmatch(request_id) is None:
                request_id = f"{id_prefix}{next(ids)}"
            # [id, seconds taken, the request's task]: for the access log line, and for the log
            # records of this task meanwhile (not of tasks it starts, which inherit the context)
            noted: list = [request_id, None, current_task()]
            CURRENT_REQUEST.set(noted)
            started = perf_counter()
            response: web.StreamResponse
            redirect = None  # an HTTPException below 400 stays raised, as aiohttp wants it
            try:
                headers = request.headers
                accept = headers.get(hdrs.ACCEPT) if json_only else None
                expect = headers.get(hdrs.EXPECT)
                if expect is not None and expect.lower() != "100-continue":
                    response = EXPECTATION_FAILED.response()
                elif accept is not None and not accepts_json(accept):
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
            noted[1] = elapsed = perf_counter() - started
            response.headers[X_REQUEST_ID] = request_id
            status = response.status
            statuses = by_status
            if statuses is None:  # an unmatched method or path: counted under the request's
                statuses = metrics.statuses(route, request.method)
            counts = statuses.get(status)
            if counts is None:
                counts = statuses[status] = new_buckets()
            counts[bisect_left(BUCKETS, elapsed)] += 1
            counts[-1] += elapsed
            if cors is not None:
                cors.add_headers(request, response)
            if redirect is not None:
                raise redirect
            return response

        return answer
