"""The one place where the service is wired: settings in, an application's dependencies out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web
from dependency_injector import containers, providers

from app.adapters import PoolUsage, Storage, memory, postgres, sqlite
from app.domain.accounts import AccountService
from app.domain.history import DEFAULT_RETENTION, Retention
from app.domain.services import NoteService
from app.entrypoints.http import create_app
from app.entrypoints.http.app import Dependencies
from app.entrypoints.http.keys import HttpSettings
from app.entrypoints.http.listing import CursorCodec

# DATABASE_URL scheme -> the storage that serves it
BACKENDS = {"memory": "memory", "sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}
SUPPORTED_URLS = "memory://, sqlite:///relative.db, sqlite:////absolute.db, postgresql://user@host/db"


class UnsupportedDatabaseError(ValueError):
    """DATABASE_URL names a store this service cannot use."""


def backend_of(database_url: str) -> str:
    """The storage for a DATABASE_URL; raises with the supported forms when there is none."""
    scheme = urlsplit(database_url).scheme.lower()
    try:
        return BACKENDS[scheme]
    except KeyError:
        raise UnsupportedDatabaseError(
            f"unsupported DATABASE_URL {database_url!r}: use one of {SUPPORTED_URLS}"
        ) from None


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything an operator can set (see `app/entrypoints/cli.py` for the flags)."""

    database_url: str = "memory://"
    db_timeout: float = 5.0  # seconds a request may wait on the database before a 503
    pool_size: int = 10
    max_body_bytes: int = 1024 * 1024
    max_import_bytes: int = 64 * 1024 * 1024  # the body of POST /import
    require_if_match: bool = False
    cursor_secret: str | None = None  # None: the store's own random secret
    body_timeout: float = 30.0  # seconds a request body may take to arrive
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser
    auth: str = "auto"  # required, local, or auto: local on loopback only, else required
    rate_limit: int | None = None  # requests a second per owner and process; None: no limit
    keep_revisions: int = DEFAULT_RETENTION.keep_revisions  # of each note
    trash_days: int = DEFAULT_RETENTION.trash_days  # before a deleted note is purged
    keep_changes_days: int = DEFAULT_RETENTION.keep_changes_days  # how far back GET /changes goes


def _cursor_secret(given: str | None, storage: Storage) -> str:
    return given or storage.cursor_secret  # --cursor-secret, else the store's own random one


def _pool_usage(storage: Storage) -> PoolUsage | None:
    return storage.pool_usage


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
    cursors = providers.Factory(
        CursorCodec, providers.Callable(_cursor_secret, config.cursor_secret, storage)
    )
    http_dependencies = providers.Factory(
        Dependencies,
        notes=notes,
        accounts=accounts,
        cursors=cursors,
        pool_usage=providers.Callable(_pool_usage, storage),
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
        try:
            yield await container.http_dependencies()  # type: ignore[misc]  # async: the storage is
        finally:
            shutdown = container.shutdown_resources()  # the storage is an async resource
            if shutdown is not None:
                await shutdown

    return create_app(container.http_settings(), lifespan)
