"""Every `web.AppKey` of the application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from app.domain.accounts import AccountService
from app.domain.owners import Identity
from app.domain.services import NoteService
from app.entrypoints.http.wiring import HttpSettings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from app.entrypoints.http.auth import Authentication
    from app.entrypoints.http.listing import CursorCodec
    from app.entrypoints.http.metrics import RequestMetrics

SETTINGS = web.AppKey("settings", HttpSettings)
NOTES = web.AppKey("notes", NoteService)
ACCOUNTS = web.AppKey("accounts", AccountService)
AUTHENTICATION: web.AppKey[Authentication] = web.AppKey("authentication")
IDENTITY = web.RequestKey("identity", Identity)  # whom the request acts for (auth.py)
CURSORS: web.AppKey[CursorCodec] = web.AppKey("cursors")
METRICS: web.AppKey[RequestMetrics] = web.AppKey("metrics")
METRICS_REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry")
