"""Routes, and the expectation handler they share.

Routes are plain aiohttp routes: what every request needs comes from the pipeline (pipeline.py),
whatever way a route is added. One thing aiohttp does before any middleware runs is answer
`Expect`: a route added here sends `100 Continue` only for a body it will read; one added without
`expect_continue` gets aiohttp's own behaviour (100 Continue whatever the size; a plain-text 417
for another expectation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from aiohttp import HttpVersion11, hdrs, web

from app.entrypoints.http.keys import SETTINGS
from app.entrypoints.http.wiring import HttpSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BodyLimit = Callable[[HttpSettings], int]  # the largest body a route reads, from the settings


def body_bytes(settings: HttpSettings) -> int:
    return settings.max_body_bytes


def add_resource(
    router: web.UrlDispatcher, path: str, name: str, methods: Mapping[str, Handler], limit: BodyLimit = body_bytes
) -> None:
    """The resource at `path`, answering each of `methods` with its handler; its bodies may be
    up to `limit` bytes (by default --max-body-bytes)."""
    resource = router.add_resource(path, name=name)
    for method, handler in methods.items():
        resource.add_route(method, handler, expect_handler=partial(expect_continue, limit=limit))


async def expect_continue(request: web.Request, limit: BodyLimit = body_bytes) -> None:
    """Send `100 Continue` only to a request whose body will be read: `Expect: 100-continue` on
    HTTP/1.1 with a declared length within the route's limit. Otherwise send nothing here: the
    request's own answer follows (417 for another expectation, 413 for a body over the limit), and
    the client never sends a body it would be refused."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != HttpVersion11 or expect.lower() != "100-continue":
        return None
    length = request.content_length
    if length is not None and length > limit(request.app[SETTINGS]):
        return None
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim answer is not part of the response's size
    return None


async def get_behind_options(request: web.Request) -> tuple[web.Request, web.UrlMappingMatchInfo] | None:
    """The GET that OPTIONS on this path stands for, as a request and its match: the path's own,
    or, for an action (`.../restore`), the GET of the resource it acts on. None where there is no
    such GET, or the path has no parameters (nothing there can be missing)."""
    urls = [request.rel_url]
    if request.rel_url.path.endswith("/restore"):
        urls.append(request.rel_url.parent)
    for url in urls:
        probe = request.clone(method=hdrs.METH_GET, rel_url=url)
        found = await request.app.router.resolve(probe)
        if found.http_exception is None and found:
            return probe, found  # type: ignore[return-value]
    return None
