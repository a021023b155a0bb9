"""The aiohttp application factory: its pipeline, its routes and the storage's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from app.entrypoints.http import docs, handlers, routing
from app.entrypoints.http.keys import CONTAINER, CURSORS, NOTES, SETTINGS
from app.entrypoints.http.listing import CursorCodec
from app.entrypoints.http.metrics import RequestMetrics, add_metrics, metrics_page
from app.entrypoints.http.pipeline import Handler, Pipeline
from app.entrypoints.http.problem_types import problem_page

if TYPE_CHECKING:
    from app.container import Container


def create_app(container: Container) -> web.Application:
    """Build the application. Does no I/O: the storage opens in `cleanup_ctx` on start-up."""
    settings = container.http_settings()
    metrics = RequestMetrics()
    pipeline = Pipeline(settings, metrics)  # problem+json, X-Request-ID, metrics, CORS
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[pipeline.middleware()])
    app[CONTAINER] = container
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_storage)
    add_metrics(app, metrics)
    docs.setup(app)
    _add_routes(app.router)
    return app


async def _storage(app: web.Application) -> AsyncIterator[None]:
    container = app[CONTAINER]
    storage = await container.storage()
    app[NOTES] = container.notes(store=storage)
    app[CURSORS] = CursorCodec(app[SETTINGS].cursor_secret or storage.cursor_secret)
    yield
    shutdown = container.shutdown_resources()  # the storage is an async resource: awaitable
    if shutdown is not None:
        await shutdown


def _add_routes(router: web.UrlDispatcher) -> None:
    add = partial(routing.add_resource, router)
    add("/", "index", _get(handlers.index))
    add("/notes", "notes", {"GET": handlers.list_notes, "HEAD": handlers.list_notes,
                            "POST": handlers.create_note})
    add("/notes/{id}", "note", {"GET": handlers.get_note, "HEAD": handlers.get_note,
                                "PUT": handlers.replace_note, "PATCH": handlers.patch_note,
                                "DELETE": handlers.delete_note})
    add("/healthz", "healthz", _get(handlers.healthz))
    add("/readyz", "readyz", _get(handlers.readyz))
    add("/openapi.json", "openapi", _get(docs.openapi_json))
    add("/docs", "docs", _get(docs.docs_page))
    add("/docs/assets/{name}", "docs-assets", _get(docs.docs_asset))
    add("/metrics", "metrics", _get(metrics_page))
    add("/problems/{slug}", "problems", _get(problem_page))


def _get(handler: Handler) -> dict[str, Handler]:
    return {"GET": handler, "HEAD": handler}
