"""Every `web.AppKey` of the application, and the HTTP settings they carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from app.domain.services import NoteService

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from app.container import Container
    from app.entrypoints.http.listing import CursorCodec
    from app.entrypoints.http.metrics import RequestMetrics

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    max_body_bytes: int = MIB
    require_if_match: bool = False
    cursor_secret: str | None = None  # None: the store's own random secret (listing.py)
    body_timeout: float = 30.0  # seconds a request body may take to arrive
    cors_origins: tuple[str, ...] = ()  # empty: no CORS headers at all


CONTAINER: web.AppKey[Container] = web.AppKey("container")
SETTINGS = web.AppKey("settings", HttpSettings)
NOTES = web.AppKey("notes", NoteService)
CURSORS: web.AppKey[CursorCodec] = web.AppKey("cursors")
METRICS: web.AppKey[RequestMetrics] = web.AppKey("metrics")
METRICS_REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry")
