"""What the HTTP adapter takes from the wiring (`app/container.py`): its settings, and the finished
dependencies of its routes. Nothing here imports aiohttp, so the container names them without
loading the server: the account and transfer commands, which use the container too, start a
third sooner."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.domain.accounts import AccountService
from app.domain.services import NoteService

if TYPE_CHECKING:
    from app.adapters import Followers, PoolUsage
    from app.entrypoints.http.listing import CursorCodec


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """What the HTTP adapter needs of the settings (`app.settings.Settings` has their defaults)."""

    max_body_bytes: int
    max_import_bytes: int  # the body of POST /import
    require_if_match: bool
    body_timeout: float  # seconds a request body may take to arrive
    cors_origins: tuple[str, ...]  # empty: no CORS headers at all
    auth: str  # required, local or auto (auth.py)
    rate_limit: int | None  # requests a second per owner and process; None: no limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependencies:
    """What the routes use, finished: built by the container once the storage is open."""

    notes: NoteService
    accounts: AccountService
    cursors: CursorCodec
    pool_usage: PoolUsage | None  # None: a store without a connection pool
    followers: Followers


# Opens the storage and gives the routes' dependencies; leaving it closes the storage.
Lifespan = Callable[[], AbstractAsyncContextManager[Dependencies]]
