"""The aiohttp application factory: its pipeline, its routes and the lifetime of what they use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from app.domain.errors import StorageUnavailableError
from app.domain.services import NoteService
from app.entrypoints.http import accounts, docs, handlers, history, routing, transfer
from app.entrypoints.http.auth import Authentication, AuthMode
from app.entrypoints.http.keys import ACCOUNTS, AUTHENTICATION, CURSORS, NOTES, SETTINGS
from app.entrypoints.http.metrics import RequestMetrics, add_metrics, metrics_page
from app.entrypoints.http.pipeline import Handler, Pipeline
from app.entrypoints.http.problem_types import problem_page
from app.entrypoints.http.wiring import HttpSettings, Lifespan

log = logging.getLogger("app.http")
PRUNE_EVERY_SECONDS = 60.0


def create_app(settings: HttpSettings, lifespan: Lifespan) -> web.Application:
    """Build the application. Does no I/O: `lifespan` is entered on start-up, left on clean-up."""
    metrics = RequestMetrics()
    authentication = Authentication(AuthMode(settings.auth), settings.rate_limit, settings.cors_origins)
    pipeline = Pipeline(settings, metrics, authentication)  # problem+json, ids, metrics, auth, CORS
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[pipeline.middleware()])
    app.on_startup.append(pipeline.on_startup)
    app[SETTINGS] = settings
    app[AUTHENTICATION] = authentication
    register_storage = add_metrics(app, metrics)

    async def running(app: web.Application) -> AsyncIterator[None]:
        async with lifespan() as dependencies:
            app[NOTES] = dependencies.notes
            app[ACCOUNTS] = dependencies.accounts
            app[CURSORS] = dependencies.cursors
            register_storage(dependencies.pool_usage, dependencies.followers)
            pruning = asyncio.get_running_loop().create_task(prune_history(dependencies.notes), name="prune")
            try:
                yield
            finally:
                pruning.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pruning

    async def stopping(app: web.Application) -> None:
        if NOTES in app:
            app[NOTES].stop_following()  # open streams and long polls answer now, and end

    app.cleanup_ctx.append(running)
    app.on_shutdown.append(stopping)
    docs.setup(app)
    _add_routes(app.router)
    return app


async def prune_history(notes: NoteService) -> None:
    """Retention, in the background: a pause, then small rounds while there is work. Each round
    is a short transaction, so requests never wait long behind it."""
    while True:
        await asyncio.sleep(PRUNE_EVERY_SECONDS)
        try:
            while await notes.prune():
                await asyncio.sleep(0)
        except StorageUnavailableError as error:
            log.warning("could not prune the history now: %s", error)


def _add_routes(router: web.UrlDispatcher) -> None:
    add = partial(routing.add_resource, router)
    add("/", "index", _get(handlers.index))
    add("/notes", "notes", {"GET": handlers.list_notes, "HEAD": handlers.list_notes,
                            "POST": handlers.create_note})
    add("/notes/{id}", "note", {"GET": handlers.get_note, "HEAD": handlers.get_note,
                                "PUT": handlers.replace_note, "PATCH": handlers.patch_note,
                                "DELETE": handlers.delete_note})
    add("/notes/{id}/revisions", "revisions", _get(history.list_revisions))
    add("/notes/{id}/revisions/{version}", "revision", _get(history.get_revision))
    add("/notes/{id}/revisions/{version}/restore", "restore_revision", {"POST": history.restore_revision})
    add("/trash", "trash", _get(history.list_trash))
    add("/trash/{id}", "trashed", {"GET": history.get_trashed, "HEAD": history.get_trashed,
                                   "DELETE": history.purge_from_trash})
    add("/trash/{id}/restore", "restore_from_trash", {"POST": history.restore_from_trash})
    add("/changes", "changes", _get(history.changes))
    add("/me", "me", _get(accounts.me))
    add("/tokens", "tokens", {"GET": accounts.list_tokens, "HEAD": accounts.list_tokens,
                              "POST": accounts.issue_token})
    add("/tokens/{id}", "token", {"GET": accounts.get_token, "HEAD": accounts.get_token,
                                  "DELETE": accounts.revoke_token})
    add("/export", "export_notes", _get(transfer.export_notes))
    add("/import", "import_notes", {"POST": transfer.import_notes}, transfer.import_bytes)
    add("/healthz", "healthz", _get(handlers.healthz))
    add("/readyz", "readyz", _get(handlers.readyz))
    add("/openapi.json", "openapi", _get(docs.openapi_json))
    add("/docs", "docs", _get(docs.docs_page))
    add("/docs/assets/{name}", "docs-assets", _get(docs.docs_asset))
    add("/metrics", "metrics", _get(metrics_page))
    add("/problems/{slug}", "problems", _get(problem_page))


def _get(handler: Handler) -> dict[str, Handler]:
    return {"GET": handler, "HEAD": handler}
