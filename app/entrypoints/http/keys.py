"""Every `web.AppKey` of the application, and the HTTP settings they carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from app.domain.accounts import AccountService
from app.domain.owners import Identity
from app.domain.services import NoteService

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from app.entrypoints.http.auth import Authentication
    from app.entrypoints.http.listing import CursorCodec
    from app.entrypoints.http.metrics import RequestMetrics

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


SETTINGS = web.AppKey("settings", HttpSettings)
NOTES = web.AppKey("notes", NoteService)
ACCOUNTS = web.AppKey("accounts", AccountService)
AUTHENTICATION: web.AppKey[Authentication] = web.AppKey("authentication")
IDENTITY = web.RequestKey("identity", Identity)  # whom the request acts for (auth.py)
CURSORS: web.AppKey[CursorCodec] = web.AppKey("cursors")
METRICS: web.AppKey[RequestMetrics] = web.AppKey("metrics")
METRICS_REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry")
