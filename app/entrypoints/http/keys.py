"""Every `web.AppKey` of the application, and the HTTP settings they carry."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from app.domain.services import NoteService

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    max_body_bytes: int = MIB
    require_if_match: bool = False
    cursor_secret: str | None = None  # None: the store's own random secret (listing.py)
    body_timeout: float = 30.0  # seconds a request body may take to arrive
    cors_origins: tuple[str, ...] = ()  # empty: no CORS headers at all


CONTAINER = web.AppKey("container", "Container")
SETTINGS = web.AppKey("settings", HttpSettings)
NOTES = web.AppKey("notes", NoteService)
CURSORS = web.AppKey("cursors", "CursorCodec")
METRICS = web.AppKey("metrics", "RequestMetrics")
METRICS_REGISTRY = web.AppKey("metrics_registry", "CollectorRegistry")
