"""A walk through all pages, while other notes change, sees each untouched note exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import pytest

from tests.http.support import create, send

SORTS = [f"{sign}{field}" for field in ("id", "created_at", "updated_at", "priority", "title") for sign in ("", "-")]


async def churn(client, volatile: list[dict], stop: asyncio.Event, changed: asyncio.Event) -> int:
    """Create, edit (moving sort keys) and delete notes other than the stable ones."""
    changes = 0
    while not stop.is_set():
        target = volatile[changes % len(volatile)]
        if changes % 3 == 0:
            await send(client, "DELETE", f"/notes/{target['id']}")
            volatile[changes % len(volatile)] = await create(client, title=f"new{changes}", priority=changes % 11)
        else:
            await send(client, "PATCH", f"/notes/{target['id']}",
                       {"title": f"{'zZaA'[changes % 4]}moved{changes}", "priority": (changes * 7) % 11,
                        "created_at": f"20{10 + changes % 20}-01-01T00:00:00Z"})
        changes += 1
        changed.set()
        await asyncio.sleep(0)
    return changes


@pytest.mark.parametrize("sort", SORTS)
async def test_a_walk_under_concurrent_changes_sees_every_untouched_note_once(client, sort: str) -> None:
    stable = [await create(client, title=f"{'bBaAéE'[i % 6]}stable{i}", priority=i % 11,
                           created_at=f"20{10 + i % 20}-06-01T00:00:00Z") for i in range(60)]
    volatile = [await create(client, title=f"volatile{i}", priority=i % 11) for i in range(20)]
    stop, changed = asyncio.Event(), asyncio.Event()
    churner = asyncio.create_task(churn(client, volatile, stop, changed))
    walked: list[dict] = []
    params = {"limit": "7", "sort": sort}
    pages = 0
    while True:
        page = orjson.loads(await (await client.get("/notes", params=params)).read())
        walked += page["notes"]
        pages += 1
        changed.clear()
        await changed.wait()  # at least one change lands between every two pages
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    stop.set()
    changes = await churner
    assert changes >= pages >= 9, (changes, pages)
    counts = Counter(note["id"] for note in walked)
    seen = {note["id"]: note for note in walked}
    for note in stable:
        assert counts[note["id"]] == 1, note
        assert seen[note["id"]] == note
