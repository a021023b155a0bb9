"""Small builders of test data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.adapters import Storage
from app.domain.model import NoteDraft

T0 = datetime(2017, 8, 23, 0, 0, 0, 123456, tzinfo=UTC)


def draft(**overrides: Any) -> NoteDraft:
    values: dict[str, Any] = {
        "title": "note two",
        "description": "sample notes",
        "priority": 4,
        "tags": ("home", "work"),
        "created_by": "apcelent",
        "created_at": T0,
        "updated_at": T0 + timedelta(microseconds=1),
    }
    values.update(overrides)
    return NoteDraft(**values)


async def owner(storage: Storage, name: str) -> str:
    """An owner of the store (added unless there is one): a store makes notes only of its owners."""
    if name not in {summary.name for summary in await storage.accounts.owners()}:
        await storage.accounts.add_owner(name, T0)
    return name


def tutorial_body(**overrides: Any) -> dict[str, Any]:
    """The body the tutorial's client sends."""
    body: dict[str, Any] = {
        "title": "note two",
        "created_at": "2017-08-23 00:00",
        "created_by": "apcelent",
        "description": "sample notes",
        "priority": 4,
    }
    body.update(overrides)
    return body
