"""SQLite: a listing that runs past the deadline is stopped by SQLite itself and answered 503."""

from __future__ import annotations

from pathlib import Path

from app.adapters.migrate import migrate
from app.container import build_container
from app.domain.owners import LOCAL
from app.settings import Settings
from tests.databases import in_thread
from tests.factories import draft
from tests.http.support import problem


async def test_a_listing_past_its_deadline_is_interrupted_and_answered_503(make_client, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    in_thread(migrate, url, "sqlite")
    container = build_container(Settings(database_url=url))
    storage = await container.storage()
    for i in range(3000):
        await storage.notes_of(LOCAL).add(draft(title=f"note {i}", description="x" * 200))
    await container.shutdown_resources()

    client = await make_client(url, db_timeout=0.000_001)
    response = await client.get("/notes", params={"q": "zz"})  # a short term: a scan of every row
    await problem(response, 503)
    assert response.headers["Retry-After"]
    relaxed = await make_client(url, db_timeout=5)
    assert (await relaxed.get("/notes", params={"q": "zz"})).status == 200
