"""CORS (the Fetch standard's protocol) for an allowlist of origins; off when the list is empty.

Every resource already answers OPTIONS with 204 and `Allow` (routing.py), so a preflight needs no
route of its own: for an allowed origin its answer gains the CORS headers here, on the way out.
A disallowed origin gets no CORS headers, so the browser refuses the call; the request itself is
answered as usual (CORS protects the browser's user, not the server).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

# What a page may read of an answer, beyond the safelisted ones: every header the API gives a
# client to act on (a 401's challenge and the rate limit's included).
EXPOSED_HEADERS = ("ETag, Location, Link, X-Request-ID, Idempotent-Replayed, Retry-After, WWW-Authenticate,"
                   " RateLimit, RateLimit-Policy")
# What a page may send: every request header the API reads (a token, a condition, a key, the
# event a reconnecting EventSource resumes from).
ALLOWED_HEADERS = ("Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-ID,"
                   " Last-Event-ID")
MAX_AGE_SECONDS = "600"  # how long a browser may reuse a preflight's answer
class Cors:
    """Adds the CORS headers to the responses of an application."""

    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(origins)

    def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        # The answer depends on Origin even when it is refused: caches must keep them apart.
        vary = headers.get("Vary")
        if vary is None:
            headers["Vary"] = "Origin"
        elif "origin" not in vary.lower():
            headers["Vary"] = f"{vary}, Origin"
        origin = request.headers.get("Origin")
        if origin is None or origin not in self._origins:
            return
        headers["Access-Control-Allow-Origin"] = origin
        if _is_preflight(request, response):
            headers["Access-Control-Allow-Methods"] = response.headers["Allow"]
            headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            headers["Access-Control-Max-Age"] = MAX_AGE_SECONDS
        else:
            headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


def _is_preflight(request: web.Request, response: web.StreamResponse) -> bool:
    """A preflight that a resource's OPTIONS route answered (204 with Allow)."""
    return (
        request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
        and response.status == 204
        and "Allow" in response.headers
    )
