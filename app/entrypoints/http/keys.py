"""Every `web.AppKey` of the application, and the HTTP settings they carry."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from app.domain.ports import IdempotencyStore
from app.domain.services import Clock, NoteService

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    max_body_bytes: int = MIB
    require_if_match: bool = False
    cursor_secret: str = "notes-cursor"  # cursors are tamper-evident, not secret: see listing.py
    cors_origins: tuple[str, ...] = ()  # empty: no CORS headers at all


CONTAINER = web.AppKey("container", "Container")
SETTINGS = web.AppKey("settings", HttpSettings)
NOTES = web.AppKey("notes", NoteService)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyStore)
CLOCK = web.AppKey("clock", Clock)
CURSORS = web.AppKey("cursors", "CursorCodec")
METRICS = web.AppKey("metrics", "RequestMetrics")
METRICS_REGISTRY = web.AppKey("metrics_registry", "CollectorRegistry")
