"""The one place where the service is wired: settings in, an application's dependencies out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from dependency_injector import containers, providers

from app.adapters import Followers, PoolUsage, Storage, memory, postgres, sqlite
from app.domain.accounts import AccountService
from app.domain.history import Retention
from app.domain.services import NoteService
from app.entrypoints.http.wiring import Dependencies, HttpSettings
from app.settings import Settings, backend_of

if TYPE_CHECKING:
    from aiohttp import web

    from app.entrypoints.http.listing import CursorCodec


def utc_now() -> datetime:
    return datetime.now(UTC)


def _cursor_codec(given: str | None, storage: Storage) -> CursorCodec:
    # The HTTP adapter, and aiohttp with it, loads only to serve: not for the account and transfer
    # commands, which use this container too.
    from app.entrypoints.http.listing import CursorCodec

    return CursorCodec(given or storage.cursor_secret)  # --cursor-secret, else the store's own


def _pool_usage(storage: Storage) -> PoolUsage | None:
    return storage.pool_usage


def _followers(storage: Storage) -> Followers:
    return storage.followers


class Container(containers.DeclarativeContainer):
    """The dependency graph. Only the storage selected by DATABASE_URL is ever built."""

    config = providers.Configuration()
    clock = providers.Object(utc_now)
    storage = providers.Selector(
        providers.Callable(backend_of, config.database_url),
        memory=providers.Resource(memory.open_storage),
        sqlite=providers.Resource(
            sqlite.open_storage, config.database_url, timeout=config.db_timeout
        ),
        postgresql=providers.Resource(
            postgres.open_storage,
            config.database_url,
            pool_size=config.pool_size,
            timeout=config.db_timeout,
        ),
    )
    retention = providers.Factory(
        Retention,
        keep_revisions=config.keep_revisions,
        trash_days=config.trash_days,
        keep_changes_days=config.keep_changes_days,
    )
    notes = providers.Factory(NoteService, store=storage, clock=clock, retention=retention)
    accounts = providers.Factory(AccountService, store=storage, clock=clock)
    cursors = providers.Factory(_cursor_codec, config.cursor_secret, storage)
    http_dependencies = providers.Factory(
        Dependencies,
        notes=notes,
        accounts=accounts,
        cursors=cursors,
        pool_usage=providers.Callable(_pool_usage, storage),
        followers=providers.Callable(_followers, storage),
    )
    http_settings = providers.Factory(
        HttpSettings,
        max_body_bytes=config.max_body_bytes,
        max_import_bytes=config.max_import_bytes,
        require_if_match=config.require_if_match,
        body_timeout=config.body_timeout,
        cors_origins=config.cors_origins,
        auth=config.auth,
        rate_limit=config.rate_limit,
    )


def build_container(settings: Settings) -> Container:
    """A container for these settings; an unsupported DATABASE_URL fails here, before any I/O."""
    backend_of(settings.database_url)
    container = Container()
    container.config.from_dict(asdict(settings))
    return container


def http_app(container: Container) -> web.Application:
    """The HTTP application of this graph: its storage opens when the application starts and
    closes when it stops."""

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Dependencies]:
        # a future, since the storage is an async resource (dependency-injector's types cannot say)
        opening = cast("asyncio.Future[Dependencies]", container.http_dependencies())
        try:
            try:
                dependencies = await asyncio.shield(opening)
            except asyncio.CancelledError:
                # A stop while the storage opens. dependency-injector cannot stop the opening
                # midway, and would then set the result of the cancelled future it gave, which
                # asyncio reports with a traceback: the opening ends first (within --db-timeout),
                # and what it opened is closed below.
                with suppress(Exception):
                    await opening
                raise
            yield dependencies
        finally:
            shutdown = container.shutdown_resources()  # the storage is an async resource
            if shutdown is not None:
                await shutdown

    from app.entrypoints.http.app import create_app  # only to serve (see _cursor_codec)

    return create_app(container.http_settings(), lifespan)
