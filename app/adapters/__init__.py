"""Persistence adapters: one module per store, each satisfying the domain's ports."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.ports import IdempotencyStore, NoteRepository


@dataclass(frozen=True, slots=True)
class Storage:
    """What one open store provides: the notes and the idempotency keys, in the same database."""

    notes: NoteRepository
    idempotency: IdempotencyStore
