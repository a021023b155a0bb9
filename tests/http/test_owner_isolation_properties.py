"""A property: whatever several owners do, in any order, no answer to one owner ever shows a note,
an id or a count of another. Random owners, notes and requests, through the whole HTTP API."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.entrypoints.http.keys import ACCOUNTS

OWNERS = ("alice", "bob", "carol")
WORDS = st.sampled_from(["plan", "shared", "same", "x", "note"])
NOTE = st.fixed_dictionaries({
    "title": WORDS, "description": WORDS, "priority": st.integers(0, 3),
    "tags": st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True),
})
QUERIES = st.sampled_from(["", "?q=same", "?tag=a", "?sort=-priority&limit=2", "?priority=1", "?sort=title"])
STEP = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(OWNERS), NOTE),
    st.tuples(st.just("get"), st.sampled_from(OWNERS), st.integers(1, 12)),
    st.tuples(st.just("patch"), st.sampled_from(OWNERS), st.integers(1, 12)),
    st.tuples(st.just("delete"), st.sampled_from(OWNERS), st.integers(1, 12)),
    st.tuples(st.just("list"), st.sampled_from(OWNERS), QUERIES),
    st.tuples(st.just("revisions"), st.sampled_from(OWNERS), st.integers(1, 12)),
    st.tuples(st.just("restore"), st.sampled_from(OWNERS), st.integers(1, 12)),
    st.tuples(st.just("purge"), st.sampled_from(OWNERS), st.integers(1, 12)),
    st.tuples(st.just("trash"), st.sampled_from(OWNERS), st.just("")),
    st.tuples(st.just("changes"), st.sampled_from(OWNERS), st.just("")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=25))
async def test_no_answer_to_one_owner_shows_anything_of_another(make_client, steps: list[tuple]) -> None:
    client = await make_client("memory://", auth="required")
    accounts = client.app[ACCOUNTS]
    tokens: dict[str, dict[str, str]] = {}
    for owner in OWNERS:
        await accounts.add_owner(owner)
        tokens[owner] = {"Authorization": f"Bearer {(await accounts.issue_token(owner)).secret}"}
    mine: dict[str, set[int]] = {owner: set() for owner in OWNERS}  # ids each owner made, alive
    trashed: dict[str, set[int]] = {owner: set() for owner in OWNERS}  # and in the trash
    made: dict[str, set[int]] = {owner: set() for owner in OWNERS}  # and ever
    for action, owner, arg in steps:
        headers = tokens[owner]
        if action == "create":
            response = await client.post("/notes", json=arg, headers=headers)
            assert response.status == 201
            mine[owner].add((await response.json())["id"])
            made[owner] |= mine[owner]
            continue
        if action in ("trash", "changes"):
            response = await client.get(f"/{action}", headers=headers)
            assert response.status == 200
            document = await response.json()
            if action == "trash":
                assert {note["id"] for note in document["trash"]} == trashed[owner]
            else:
                assert {change["id"] for change in document["changes"]} <= made[owner]
            continue
        if action == "revisions":
            response = await client.get(f"/notes/{arg}/revisions", headers=headers)
            assert response.status == (200 if arg in mine[owner] else 404)
            if response.status == 200:
                assert {note["id"] for note in (await response.json())["revisions"]} == {arg}
            continue
        if action in ("restore", "purge"):
            if action == "restore":
                response = await client.post(f"/trash/{arg}/restore", headers=headers)
            else:
                response = await client.delete(f"/trash/{arg}", headers=headers)
            assert response.status == ((200 if action == "restore" else 204) if arg in trashed[owner] else 404)
            if arg in trashed[owner]:
                trashed[owner].discard(arg)
                if action == "restore":
                    mine[owner].add(arg)
            continue
        if action == "list":
            response = await client.get(f"/notes{arg}", headers=headers)
            assert response.status == 200
            seen = {note["id"] for note in (await response.json())["notes"]}
            assert seen <= mine[owner], (owner, seen, mine)
            if arg == "":  # the whole first page: every note of the owner, and no other
                assert seen == set(sorted(mine[owner])[:50])
            continue
        path = f"/notes/{arg}"
        if action == "get":
            response = await client.get(path, headers=headers)
        elif action == "patch":
            response = await client.patch(path, data=b'{"priority": 2}', headers={
                **headers, "Content-Type": "application/merge-patch+json"})
        else:
            response = await client.delete(path, headers=headers)
        expected = 404 if arg not in mine[owner] else {"get": 200, "patch": 200, "delete": 204}[action]
        assert response.status == expected, (action, owner, arg, mine)
        if action == "delete" and expected == 204:
            mine[owner].discard(arg)
            trashed[owner].add(arg)
        body: Any = await response.read()
        if expected != 204 and response.status == 200:
            assert orjson.loads(body)["id"] in mine[owner]
