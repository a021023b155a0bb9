"""The one place where the service is wired: settings in, an application's dependencies out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from dependency_injector import containers, providers

from app.adapters import memory, postgres, sqlite
from app.domain.services import NoteService
from app.entrypoints.http.keys import MIB, HttpSettings

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
    max_body_bytes: int = MIB
    require_if_match: bool = False
    cursor_secret: str | None = None  # None: the store's own random secret
    body_timeout: float = 30.0  # seconds a request body may take to arrive
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser


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
    notes = providers.Factory(NoteService, clock=clock)
    http_settings = providers.Factory(
        HttpSettings,
        max_body_bytes=config.max_body_bytes,
        require_if_match=config.require_if_match,
        cursor_secret=config.cursor_secret,
        body_timeout=config.body_timeout,
        cors_origins=config.cors_origins,
    )


def build_container(settings: Settings) -> Container:
    """A container for these settings; an unsupported DATABASE_URL fails here, before any I/O."""
    backend_of(settings.database_url)
    container = Container()
    container.config.from_dict(asdict(settings))
    return container
