"""Routes, each observed (observability.py), with what HTTP asks of every resource: OPTIONS with
`Allow`, 405 with `Allow` for any other method, and 404 for a path no resource matches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import HttpVersion11, hdrs, web
from yarl import URL

from app.entrypoints.http.keys import SETTINGS
from app.entrypoints.http.metrics import UNMATCHED
from app.entrypoints.http.observability import Handler, RequestObserver
from app.entrypoints.http.problems import ProblemError
from app.entrypoints.http.representation import MERGE_PATCH_JSON


def add_resource(
    router: web.UrlDispatcher,
    observer: RequestObserver,
    path: str,
    name: str,
    methods: Mapping[str, Handler],
    *,
    json_only: bool = True,
) -> None:
    """The resource at `path`, answering each of `methods` with its handler. `json_only`: its
    answers are JSON, so an Accept that admits no JSON is a 406."""
    resource = router.add_resource(path, name=name)
    allow = ", ".join(sorted({*methods, hdrs.METH_OPTIONS}))
    for method, handler in methods.items():
        observed = observer.observe(handler, path, method, json_only=json_only)
        resource.add_route(method, observed, expect_handler=expect_continue)
    headers: dict[str, str] = {hdrs.ALLOW: allow}
    if hdrs.METH_PATCH in methods:
        headers["Accept-Patch"] = MERGE_PATCH_JSON
    options = observer.observe(_options(headers), path, hdrs.METH_OPTIONS, json_only=False)
    resource.add_route(hdrs.METH_OPTIONS, options, expect_handler=expect_continue)
    # METH_ANY answers only the methods not routed above
    not_allowed = observer.observe(_not_allowed(allow), UNMATCHED, None, json_only=False)
    resource.add_route(hdrs.METH_ANY, not_allowed, expect_handler=expect_continue)


def add_fallback(router: web.UrlDispatcher, observer: RequestObserver) -> None:
    """404 for every path no resource matches (an encoded newline included), and for the `*` of
    `OPTIONS *`.

    What aiohttp answers before any route is asked stays its own plain text (README): CONNECT,
    whose target is not a path (404); an `Expect` other than 100-continue (417); and what the
    HTTP parser refuses (400).
    """
    not_found = observer.observe(_not_found, UNMATCHED, None, json_only=False)
    router.add_route(
        hdrs.METH_ANY, "/{path:(?s:.*)}", not_found, name="unmatched", expect_handler=expect_continue
    )
    asterisk = _Asterisk()
    router.register_resource(asterisk)
    asterisk.add_route(hdrs.METH_ANY, not_found, expect_handler=expect_continue)


class _Asterisk(web.Resource):
    """The request target `*` (RFC 9110, section 7.1), which is not a path."""

    @property
    def canonical(self) -> str:
        return "*"

    def _match(self, path: str) -> dict[str, str] | None:
        return {} if path == "*" else None

    def raw_match(self, path: str) -> bool:
        return path == "*"

    def get_info(self) -> dict[str, str]:  # type: ignore[override]
        return {"path": "*"}

    def url_for(self) -> URL:  # type: ignore[override]
        return URL("*")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("`*` is not a path: it takes no prefix")


def _options(headers: Mapping[str, str]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=204, headers=headers)

    return answer


# The methods of RFC 9110 (section 9) and PATCH (RFC 5789): any other is not implemented (501).
KNOWN_METHODS = frozenset({
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
})


def _not_implemented(request: web.Request) -> ProblemError | None:
    if request.method in KNOWN_METHODS:
        return None
    # The method is not echoed: a client may put anything there.
    return ProblemError(501, "this request method is not implemented by this server")


def _not_allowed(allow: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        raise _not_implemented(request) or ProblemError(
            405, f"{request.method} is not allowed here; see the Allow header",
            headers={hdrs.ALLOW: allow},
        )

    return answer


async def _not_found(request: web.Request) -> web.Response:
    raise _not_implemented(request) or ProblemError(404, "no resource at this path")


async def expect_continue(request: web.Request) -> None:
    """Send `100 Continue` only to a request whose body will be read: `Expect: 100-continue` on
    HTTP/1.1 with a declared length within the limit. Otherwise send nothing here: the request's
    own answer follows (417 for another expectation, 413 for a body over the limit), and the
    client never sends a body it would be refused."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != HttpVersion11 or expect.lower() != "100-continue":
        return None
    length = request.content_length
    if length is not None and length > request.app[SETTINGS].max_body_bytes:
        return None
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim answer is not part of the response's size
    return None
