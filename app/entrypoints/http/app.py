"""The aiohttp application factory: routes, middleware and the storage's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from app.entrypoints.http import docs
from app.entrypoints.http.handlers import NoteHandlers, options
from app.entrypoints.http.keys import CONTAINER, SETTINGS
from app.entrypoints.http.listing import CursorCodec
from app.entrypoints.http.observability import RequestObserver

if TYPE_CHECKING:
    from app.container import Container


def create_app(container: Container) -> web.Application:
    """Build the application. Does no I/O: the storage opens in `cleanup_ctx` on start-up."""
    settings = container.http_settings()
    observer = RequestObserver(settings)  # problem+json, X-Request-ID, metrics, CORS
    app = web.Application(
        middlewares=[observer.middleware], client_max_size=settings.max_body_bytes
    )
    app[CONTAINER] = container
    app[SETTINGS] = settings
    handlers = NoteHandlers(settings, container.clock(), CursorCodec(settings.cursor_secret))
    app.cleanup_ctx.append(partial(_storage, handlers=handlers))
    _add_routes(app.router, handlers)
    docs.setup(app)
    observer.install(app)  # GET /metrics
    _add_options(app.router)
    return app


async def _storage(app: web.Application, handlers: NoteHandlers) -> AsyncIterator[None]:
    container = app[CONTAINER]
    storage = await container.storage()
    handlers.open(container.notes(repository=storage.notes), storage.idempotency)
    yield
    await container.shutdown_resources()


def _add_routes(router: web.UrlDispatcher, handlers: NoteHandlers) -> None:
    notes = router.add_resource("/notes", name="notes")
    notes.add_route("GET", handlers.list_notes)
    notes.add_route("HEAD", handlers.list_notes)
    notes.add_route("POST", handlers.create_note)
    note = router.add_resource("/notes/{id}", name="note")
    note.add_route("GET", handlers.get_note)
    note.add_route("HEAD", handlers.get_note)
    note.add_route("PUT", handlers.replace_note)
    note.add_route("PATCH", handlers.patch_note)
    note.add_route("DELETE", handlers.delete_note)
    router.add_get("/healthz", handlers.healthz, name="healthz")
    router.add_get("/readyz", handlers.readyz, name="readyz")


def _add_options(router: web.UrlDispatcher) -> None:
    """OPTIONS on every resource, answering with the methods it allows."""
    for resource in list(router.resources()):
        methods = sorted({route.method for route in resource} | {"OPTIONS"})
        resource.add_route("OPTIONS", options(", ".join(methods)))
