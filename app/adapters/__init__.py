"""Persistence adapters: one module per store, each satisfying the domain's ports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.domain.ports import IdempotencyStore, NoteRepository


@dataclass(frozen=True, slots=True)
class Storage:
    """What one open store provides: the notes and the idempotency keys, in the same database."""

    notes: NoteRepository
    idempotency: IdempotencyStore
    # (connections open, connections idle) of a connection pool, for /metrics; None without one
    pool_usage: Callable[[], tuple[int, int]] | None = None
