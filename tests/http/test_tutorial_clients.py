"""The tutorial's client calls keep working, bodies without Content-Type included."""

from __future__ import annotations

import orjson

from tests.factories import tutorial_body
from tests.http.support import all_notes, send


async def test_the_tutorials_post_put_delete_and_list_work_unchanged(client) -> None:
    created = await send(client, "POST", "/notes", tutorial_body())
    assert created.status == 201
    note = orjson.loads(await created.read())
    assert created.headers["Location"] == f"/notes/{note['id']}"
    assert created.headers["ETag"] == '"1"'
    assert note["created_at"] == "2017-08-23T00:00:00.000000Z"
    assert note | {"updated_at": None, "id": None} == {
        "id": None, "title": "note two", "description": "sample notes", "priority": 4, "tags": [],
        "created_by": "apcelent", "created_at": "2017-08-23T00:00:00.000000Z", "updated_at": None,
        "version": 1,
    }

    edited = await send(client, "PUT", f"/notes/{note['id']}", tutorial_body(title="note two, edited"))
    assert edited.status == 200
    assert orjson.loads(await edited.read())["title"] == "note two, edited"

    listing = await client.get("/notes")
    assert [n["title"] for n in orjson.loads(await listing.read())["notes"]] == ["note two, edited"]

    deleted = await client.delete(f"/notes/{note['id']}")
    assert deleted.status == 204
    assert await all_notes(client) == []


async def test_a_note_reads_back_exactly_as_it_was_written(client) -> None:
    body = {"title": "Ünïcödé 📝 שלום", "description": "d", "priority": 10, "tags": ["b", "a", "b"],
            "created_by": None, "created_at": "2020-02-29T23:59:59.999999+01:00"}
    created = orjson.loads(await (await send(client, "POST", "/notes", body)).read())
    assert created["tags"] == ["a", "b"]
    assert created["created_at"] == "2020-02-29T22:59:59.999999Z"
    fetched = await client.get(f"/notes/{created['id']}")
    assert fetched.headers["ETag"] == '"1"'
    assert orjson.loads(await fetched.read()) == created


async def test_json_media_types_and_a_utf8_charset_are_accepted(client) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.notes+json"):
        response = await client.post(
            "/notes", data=orjson.dumps({"title": content_type}), headers={"Content-Type": content_type}
        )
        assert response.status == 201, content_type


async def test_patch_merges_and_null_resets_a_field_to_its_default(client) -> None:
    note = orjson.loads(await (await send(client, "POST", "/notes", tutorial_body(tags=["x"]))).read())
    response = await client.patch(
        f"/notes/{note['id']}",
        data=orjson.dumps({"tags": None, "priority": 9, "created_by": None}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status == 200
    patched = orjson.loads(await response.read())
    assert (patched["tags"], patched["priority"], patched["created_by"]) == ([], 9, None)
    assert (patched["title"], patched["description"], patched["version"]) == ("note two", "sample notes", 2)
    assert patched["created_at"] == note["created_at"]


async def test_put_resets_omitted_fields_but_keeps_created_at(client) -> None:
    note = orjson.loads(await (await send(client, "POST", "/notes", tutorial_body(tags=["x"]))).read())
    replaced = orjson.loads(await (await send(client, "PUT", f"/notes/{note['id']}", {"title": "t"})).read())
    assert replaced["description"] == "" and replaced["priority"] == 0 and replaced["tags"] == []
    assert replaced["created_by"] is None and replaced["created_at"] == note["created_at"]
    assert replaced["updated_at"] > note["updated_at"] and replaced["version"] == 2


async def test_server_owned_fields_sent_back_are_ignored(client) -> None:
    note = orjson.loads(await (await send(client, "POST", "/notes", tutorial_body())).read())
    echoed = note | {"title": "echoed", "version": 99, "updated_at": "2000-01-01T00:00:00Z"}
    response = await send(client, "PUT", f"/notes/{note['id']}", echoed)
    assert response.status == 200
    stored = orjson.loads(await response.read())
    assert stored["version"] == 2 and stored["title"] == "echoed"


async def test_head_answers_like_get_without_a_body(client) -> None:
    note = orjson.loads(await (await send(client, "POST", "/notes", tutorial_body())).read())
    response = await client.head(f"/notes/{note['id']}")
    assert response.status == 200 and response.headers["ETag"] == '"1"'
    assert await response.read() == b""


async def test_health_and_readiness_answer(client) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and orjson.loads(await ready.read()) == {"status": "ready"}
