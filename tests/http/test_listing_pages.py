"""Paging through GET /notes with keyset cursors."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.http.support import create, problem


async def walk(client, params: dict[str, str]) -> tuple[list[int], int]:
    ids: list[int] = []
    pages = 0
    query = dict(params)
    while True:
        response = await client.get("/notes", params=query)
        assert response.status == 200
        page = orjson.loads(await response.read())
        pages += 1
        ids += [n["id"] for n in page["notes"]]
        if page["next_cursor"] is None:
            assert "Link" not in response.headers
            return ids, pages
        assert response.headers["Link"].endswith('>; rel="next"')
        query["cursor"] = page["next_cursor"]


async def test_a_walk_of_1000_notes_seven_at_a_time_returns_each_once_in_id_order(client) -> None:
    created = [(await create(client, title=f"n{i}"))["id"] for i in range(1000)]
    ids, pages = await walk(client, {"limit": "7"})
    assert ids == created
    assert pages == 143


async def test_the_link_header_continues_with_the_same_filters(client) -> None:
    for i in range(5):
        await create(client, title=f"n{i}", tags=["t"])
    response = await client.get("/notes", params=[("limit", "2"), ("tag", "t"), ("sort", "-id")])
    link = response.headers["Link"]
    target = link[1 : link.index(">")]
    assert target.startswith("/notes?") and "tag=t" in target and "sort=-id" in target
    following = orjson.loads(await (await client.get(target)).read())
    assert [n["title"] for n in following["notes"]] == ["n2", "n1"]


async def test_the_default_page_holds_fifty_notes(client) -> None:
    for i in range(51):
        await create(client, title=f"n{i}")
    page = orjson.loads(await (await client.get("/notes")).read())
    assert len(page["notes"]) == 50 and page["next_cursor"]


@pytest.mark.parametrize("how", ["flip a byte", "truncate", "garbage", "empty", "forged"])
async def test_a_tampered_cursor_is_400_not_500(client, how: str) -> None:
    for i in range(3):
        await create(client, title=f"n{i}")
    cursor = orjson.loads(await (await client.get("/notes", params={"limit": "1"})).read())["next_cursor"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    tampered = {
        "flip a byte": base64.urlsafe_b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode(),
        "truncate": cursor[:-3],
        "garbage": "!!not-a-cursor!!",
        "empty": "",
        "forged": base64.urlsafe_b64encode(b'[1,"x",1]' + b"0" * 16).decode(),
    }[how]
    document = await problem(await client.get("/notes", params={"cursor": tampered}), 400)
    assert document["errors"][0]["parameter"] == "cursor"


async def test_a_cursor_replayed_with_other_filters_or_sort_is_400(client) -> None:
    for i in range(3):
        await create(client, title=f"n{i}", priority=1)
    cursor = orjson.loads(await (await client.get("/notes", params={"limit": "1"})).read())["next_cursor"]
    assert (await client.get("/notes", params={"limit": "2", "cursor": cursor})).status == 200
    for other in ({"sort": "-id"}, {"priority": "1"}, {"q": "n"}, {"tag": "x"}):
        await problem(await client.get("/notes", params={"cursor": cursor, **other}), 400)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"), ("limit=1&limit=2", "limit"),
     ("sort=colour", "sort"), ("colour=red", "colour"), ("priority=11", "priority"), ("priority=", "priority"),
     ("min_priority=-1", "min_priority"), ("created_after=yesterday", "created_after"),
     ("tag=a%20b", "tag"), ("created_by=", "created_by"), ("updated_before=2020-13-01T00:00:00Z", "updated_before"),
     ("tag=a&" * 21, "tag")],
)
async def test_a_bad_query_parameter_is_400_naming_it(client, query: str, parameter: str) -> None:
    document = await problem(await client.get(f"/notes?{query}"), 400)
    assert [e["parameter"] for e in document["errors"]] == [parameter]
    assert parameter in document["detail"]


async def test_a_walk_by_title_works_for_titles_whose_collation_key_is_very_long(client) -> None:
    # U+FDFA decomposes into 18 characters: 200 of them would make a 3,600-character key.
    created = [(await create(client, title="\ufdfa" * 199 + chr(0x41 + i)))["id"] for i in range(5)]
    ids, pages = await walk(client, {"limit": "2", "sort": "title"})
    assert sorted(ids) == created and pages == 3
