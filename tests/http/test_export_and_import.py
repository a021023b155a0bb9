"""GET /export and POST /import, on every store: an owner's notes leave as a notes file and come
back as new notes; nothing of another owner leaves, and a bad file imports nothing."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import threading
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from app.adapters import sqlite as sqlite_adapter
from app.domain.model import Note
from app.domain.owners import Scope
from app.domain.transfer import NoteRecord, OwnerRecord, RevisionRecord, TokenRecord
from app.entrypoints.notes_file import NotesFileWriter, read_all
from tests.factories import T0
from tests.http import support
from tests.http.test_hostile_requests import raw_exchange
from tests.http.test_owners_and_tokens import issue, required_client

NDJSON = {"Content-Type": "application/x-ndjson"}


async def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    document = await support.problem(response, status)
    assert document["type"].endswith(f"/problems/{slug}"), document
    return document


async def notes_of(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/notes?limit=500", headers=headers)
    assert response.status == 200
    return orjson.loads(await response.read())["notes"]


def notes_file(count: int, broken_line: int | None = None) -> bytes:
    writer = NotesFileWriter()
    lines = [writer.header("test", T0), writer.line(OwnerRecord("someone", T0))]
    for note_id in range(1, count + 1):
        note = Note(id=note_id, title=f"imported {note_id}", description="d", priority=note_id % 11,
                    tags=("x",), created_by=None, created_at=T0, updated_at=T0, version=2)
        lines.append(writer.line(NoteRecord("someone", note)))
    if broken_line is not None:
        lines[broken_line - 1] = re.sub(rb'"priority":\d+', b'"priority":99', lines[broken_line - 1])
    lines.append(orjson.dumps({"kind": "end", "counts": writer.counts,
                               "sha256": hashlib.sha256(b"".join(lines)).hexdigest()}) + b"\n")
    return b"".join(lines)


async def test_an_owners_export_holds_their_notes_and_nothing_of_anyone_else(make_client, database_url: str) -> None:
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    for i in range(3):
        assert (await client.post("/notes", json={"title": f"alice {i}"}, headers=alice)).status == 201
        assert (await client.post("/notes", json={"title": f"bob {i}"}, headers=bob)).status == 201
    response = await client.get("/export", headers=alice)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="notes-alice-')
    body = await response.read()
    records = read_all(body.splitlines(keepends=True))  # a whole, intact notes file
    assert [r for r in records if not isinstance(r, NoteRecord)] == [OwnerRecord("alice", records[0].created_at)]
    assert not any(isinstance(r, TokenRecord) for r in records)
    exported = [r for r in records if isinstance(r, NoteRecord)]
    assert {r.owner for r in exported} == {"alice"}
    assert [r.note.id for r in exported] == sorted(n["id"] for n in await notes_of(client, alice))
    assert b"bob" not in body


async def test_an_export_holds_the_revisions_the_server_keeps_on_every_store(make_client, database_url: str) -> None:
    client = await make_client(database_url, keep_revisions=3)
    note = await (await client.post("/notes", json={"title": "v1"})).json()
    for version in range(2, 7):
        patched = await client.patch(f"/notes/{note['id']}", json={"title": f"v{version}"},
                                     headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status == 200
    shown = await (await client.get(f"/notes/{note['id']}/revisions")).json()
    records = read_all((await (await client.get("/export")).read()).splitlines(keepends=True))
    exported = [r.note.version for r in records if isinstance(r, RevisionRecord)]
    assert exported == [4, 5] and [r["version"] for r in shown["revisions"]] == [6, 5, 4]


async def test_an_export_imported_by_another_owner_becomes_new_notes_with_the_same_content(
    make_client, database_url: str
) -> None:
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    sent = {"title": "Ünïcødé", "description": "words", "priority": 7, "tags": ["b", "a"],
            "created_by": "me", "created_at": "2017-08-23T00:00:00.123456Z"}
    original = orjson.loads(await (await client.post("/notes", json=sent, headers=alice)).read())
    await client.put(f"/notes/{original['id']}", json={**sent, "priority": 8}, headers=alice)  # version 2
    exported = await (await client.get("/export", headers=alice)).read()

    response = await client.post("/import", data=exported, headers={**bob, **NDJSON})
    assert response.status == 200, await response.text()
    answer = orjson.loads(await response.read())
    assert answer["imported"] == 1 and list(answer["ids"]) == [str(original["id"])]
    copy = orjson.loads(await (await client.get(f"/notes/{answer['ids'][str(original['id'])]}", headers=bob)).read())
    assert copy["id"] != original["id"] and copy["version"] == 1
    assert {k: copy[k] for k in sent} == {**sent, "priority": 8, "tags": ["a", "b"]}
    assert [n["id"] for n in await notes_of(client, alice)] == [original["id"]]  # alice's own is untouched


async def test_a_note_from_the_trash_is_imported_into_the_trash_not_brought_back(
    make_client, database_url: str
) -> None:
    client = await required_client(make_client, database_url)
    alice, bob = await issue(client, "alice"), await issue(client, "bob")
    kept, binned = [orjson.loads(await (await client.post("/notes", json={"title": t}, headers=alice)).read())
                    for t in ("kept", "binned")]
    assert (await client.delete(f"/notes/{binned['id']}", headers=alice)).status == 204
    exported = await (await client.get("/export", headers=alice)).read()

    response = await client.post("/import", data=exported, headers={**bob, **NDJSON})
    assert response.status == 200, await response.text()
    ids = orjson.loads(await response.read())["ids"]
    assert [n["id"] for n in await notes_of(client, bob)] == [ids[str(kept["id"])]]
    [trashed] = orjson.loads(await (await client.get("/trash", headers=bob)).read())["trash"]
    assert (trashed["id"], trashed["title"]) == (ids[str(binned["id"])], "binned")
    changes = orjson.loads(await (await client.get("/changes", headers=bob)).read())["changes"]
    assert [(c["op"], c["id"]) for c in changes] == [("put", ids[str(kept["id"])]), ("put", trashed["id"]),
                                                      ("delete", trashed["id"])]
    assert [c["at"] for c in changes] == sorted(c["at"] for c in changes)  # times in the log's order
    assert trashed["deleted_at"] == changes[-1]["at"]
    restored = await client.post(f"/trash/{trashed['id']}/restore", headers=bob)
    assert restored.status == 200 and orjson.loads(await restored.read())["title"] == "binned"


async def test_a_bad_line_at_line_5000_imports_nothing_and_names_the_line(make_client, database_url: str) -> None:
    client = await make_client(database_url)
    response = await client.post("/import", data=io.BytesIO(notes_file(6000, broken_line=5000)), headers=NDJSON)
    found = await problem(response, 422, "invalid-notes-file")
    assert [e["line"] for e in found["errors"]] == [5000]
    assert found["errors"][0]["detail"] == "priority must be between 0 and 10"
    assert await notes_of(client, {}) == []
    good = await client.post("/import", data=io.BytesIO(notes_file(6000)), headers=NDJSON)
    assert good.status == 200 and orjson.loads(await good.read())["imported"] == 6000


async def test_a_file_cut_short_or_too_large_or_not_a_notes_file_is_refused(make_client, database_url: str) -> None:
    client = await make_client(database_url, max_import_bytes=20_000)
    whole = notes_file(20)
    cut = await problem(await client.post("/import", data=whole[: whole.rindex(b'{"kind":"end"')], headers=NDJSON),
                        422, "invalid-notes-file")
    assert cut["errors"][0]["detail"].endswith("it was cut short")
    too_large = await client.post("/import", data=io.BytesIO(notes_file(200)), headers=NDJSON)
    await problem(too_large, 413, "content-too-large")
    await problem(await client.post("/import", json={"title": "x"}), 415, "unsupported-media-type")
    assert await notes_of(client, {}) == []


async def test_a_read_token_may_export_but_not_import(make_client, database_url: str) -> None:
    client = await required_client(make_client, database_url)
    reader = await issue(client, "carol", Scope.READ)
    assert (await client.get("/export", headers=reader)).status == 200
    await problem(await client.post("/import", data=notes_file(1), headers={**reader, **NDJSON}),
                  403, "insufficient-scope")
    await problem(await client.get("/export"), 401, "unauthorized")


async def test_expect_100_continue_follows_the_import_limit_not_the_body_limit(make_client, database_url: str) -> None:
    client = await make_client(database_url, max_body_bytes=1000, max_import_bytes=3_000_000)
    body = notes_file(2000)  # about 400 KB: over the body limit, within the import limit
    assert 1000 < len(body) < 3_000_000
    head = (b"POST /import HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nConnection: close\r\n"
            b"Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % len(body))
    assert (await support.after_100_continue(client, head, body)).startswith(b"HTTP/1.1 200 ")
    too_large = head.replace(b"Content-Length: %d" % len(body), b"Content-Length: 3000001")
    answer = await raw_exchange(client, too_large, read_until_closed=False)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer


async def test_export_honours_accept_and_import_takes_only_utf8(make_client, database_url: str) -> None:
    client = await make_client(database_url)
    for accept in ("application/x-ndjson", "*/*", "application/*", "text/html, */*;q=0.1"):
        assert (await client.get("/export", headers={"Accept": accept})).status == 200, accept
    for accept in ("text/html", "application/json", "application/x-ndjson;q=0"):
        response = await client.get("/export", headers={"Accept": accept})
        document = await problem(response, 406, "not-acceptable")
        assert document["detail"] == "this resource is only available as application/x-ndjson"
    exported = await (await client.get("/export")).read()
    for charset in ("latin-1", "utf-16"):
        refused = await client.post("/import", data=exported,
                                    headers={"Content-Type": f"application/x-ndjson; charset={charset}"})
        await problem(refused, 415, "unsupported-media-type")
    taken = await client.post("/import", data=exported, headers={"Content-Type": "application/x-ndjson; charset=UTF-8"})
    assert taken.status == 200


NDJSON_TYPE = "application/x-ndjson"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_large_import_takes_the_time_its_rows_need_beyond_the_db_timeout(
    make_client, database_url: str
) -> None:
    """30,000 notes take longer than a request's --db-timeout (here half a second): the
    import's transaction gets the time its rows need (it was a 503)."""
    client = await make_client(database_url, db_timeout=0.5)
    response = await client.post("/import", data=io.BytesIO(notes_file(30_000)), headers={"Content-Type": NDJSON_TYPE})
    assert response.status == 200, await response.text()
    assert (await response.json())["imported"] == 30_000
    assert len((await (await client.get("/notes?limit=500")).json())["notes"]) == 500


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_server_answers_others_while_sqlite_writes_an_imports_rows(
    make_client, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows are written on a thread: held there until a health check has been answered,
    which could not happen if they were written on the event loop."""
    writing, answered = threading.Event(), threading.Event()
    seen: list[bool] = []
    insert_rows = sqlite_adapter.insert_rows

    def held(*args: object) -> None:
        writing.set()
        seen.append(answered.wait(10))
        insert_rows(*args)

    monkeypatch.setattr(sqlite_adapter, "insert_rows", held)
    client = await make_client(database_url)
    importing = asyncio.ensure_future(
        client.post("/import", data=io.BytesIO(notes_file(1_000)), headers={"Content-Type": NDJSON_TYPE}))
    assert await asyncio.to_thread(writing.wait, 10)
    assert (await client.get("/healthz")).status == 200
    answered.set()
    response = await importing
    assert response.status == 200 and (await response.json())["imported"] == 1_000
    assert seen == [True]  # the rows went in after the answer, from the thread that held them
