"""ETags, If-None-Match, If-Match and --require-if-match, on every adapter."""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.entrypoints.http.conditions import CONDITION_PATTERN, precondition
from app.entrypoints.http.problems import ProblemError
from tests.http.support import all_notes, create, problem, send


async def test_every_note_response_carries_a_strong_etag_that_changes_with_the_note(client) -> None:
    note = await create(client)
    first = await client.get(f"/notes/{note['id']}")
    changed = await send(client, "PATCH", f"/notes/{note['id']}", {"priority": 3})
    assert first.headers["ETag"] == '"1"' and changed.headers["ETag"] == '"2"'
    assert (await client.get(f"/notes/{note['id']}")).headers["ETag"] == '"2"'


@pytest.mark.parametrize("header", ['"1"', 'W/"1"', '"7", "1"', "*"])
async def test_if_none_match_that_matches_is_304_on_get_and_head(client, header: str) -> None:
    note = await create(client)
    for method in ("GET", "HEAD"):
        response = await client.request(method, f"/notes/{note['id']}", headers={"If-None-Match": header})
        assert response.status == 304 and response.headers["ETag"] == '"1"'
        assert await response.read() == b""


async def test_if_none_match_with_a_stale_tag_gets_the_note(client) -> None:
    note = await create(client)
    await send(client, "PATCH", f"/notes/{note['id']}", {"priority": 3})
    response = await client.get(f"/notes/{note['id']}", headers={"If-None-Match": '"1"'})
    assert response.status == 200 and orjson.loads(await response.read())["priority"] == 3


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_a_stale_if_match_is_412_and_writes_nothing(client, method: str) -> None:
    note = await create(client)
    edited = orjson.loads(await (await send(client, "PATCH", f"/notes/{note['id']}", {"priority": 3})).read())
    for stale in ('"1"', 'W/"2"', '"banana"'):
        response = await send(client, method, f"/notes/{note['id']}", {"title": "lost"}, headers={"If-Match": stale})
        await problem(response, 412)
    assert await all_notes(client) == [edited]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_a_current_if_match_or_a_star_lets_the_write_through(client, method: str) -> None:
    for header in ('"1"', '"9", "1"', "*"):
        note = await create(client)
        response = await send(client, method, f"/notes/{note['id']}", {"title": "won"}, headers={"If-Match": header})
        assert response.status in (200, 204), await response.text()


async def test_if_match_star_on_a_missing_note_is_404(client) -> None:
    await problem(await send(client, "PUT", "/notes/77", {"title": "t"}, headers={"If-Match": "*"}), 404)


async def test_of_two_concurrent_puts_with_one_if_match_exactly_one_wins(client) -> None:
    note = await create(client)
    responses = await asyncio.gather(*(
        send(client, "PUT", f"/notes/{note['id']}", {"title": f"writer {i}"}, headers={"If-Match": '"1"'})
        for i in range(2)
    ))
    assert sorted(r.status for r in responses) == [200, 412]
    stored = (await all_notes(client))[0]
    assert stored["version"] == 2
    winner = next(r for r in responses if r.status == 200)
    assert orjson.loads(await winner.read())["title"] == stored["title"]


async def test_concurrent_writes_without_if_match_all_apply(client) -> None:
    note = await create(client)
    await asyncio.gather(*(send(client, "PATCH", f"/notes/{note['id']}", {"priority": i % 11}) for i in range(20)))
    assert (await all_notes(client))[0]["version"] == 21


@pytest.fixture
async def strict_client(make_client, database_url: str):
    return await make_client(database_url, require_if_match=True)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_with_require_if_match_a_write_without_it_is_428(strict_client, method: str) -> None:
    note = await create(strict_client)
    await problem(await send(strict_client, method, f"/notes/{note['id']}", {"title": "t"}), 428)
    assert await all_notes(strict_client) == [note]
    response = await send(strict_client, method, f"/notes/{note['id']}", {"title": "t"}, headers={"If-Match": '"1"'})
    assert response.status in (200, 204)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("tag", ['"01"', '"1.0"', '"+1"', '"1' + "0" * 4300 + '"'])
async def test_if_match_compares_character_for_character(client, method: str, tag: str) -> None:
    note = await create(client)
    body = {"title": "changed"} if method != "DELETE" else None
    response = await send(client, method, f"/notes/{note['id']}", body, headers={"If-Match": tag})
    await problem(response, 412)
    assert await all_notes(client) == [note]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("header", ['"1"', 'W/"1"', '"5", "1"', "*"])
async def test_a_write_whose_if_none_match_matches_is_412_and_writes_nothing(
    client, method: str, header: str
) -> None:
    note = await create(client)
    body = {"title": "changed"} if method != "DELETE" else None
    response = await send(client, method, f"/notes/{note['id']}", body, headers={"If-None-Match": header})
    await problem(response, 412)
    assert await all_notes(client) == [note]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_a_write_whose_if_none_match_names_another_version_goes_ahead(client, method: str) -> None:
    note = await create(client)
    body = {"title": "changed"} if method != "DELETE" else None
    response = await send(client, method, f"/notes/{note['id']}", body, headers={"If-None-Match": '"2"'})
    assert response.status in (200, 204), await response.text()


# Outside RFC 9110's grammar ("*" / #entity-tag): unquoted, unterminated, "*" in a list, a weak
# prefix in lower case or without its tag, two tags without a comma, a space inside the quotes.
MALFORMED = ["3", '"3', '*, "3"', 'w/"3"', "W/", '"1" "2"', '"1 "', '" 1"', "<evil>"]
WRITES = ("PUT", "PATCH", "DELETE")


def _body(method: str) -> dict[str, str] | None:
    return None if method == "DELETE" else {"title": "changed"}


@pytest.fixture
async def memory_client(make_client):
    """The conditions are read in the HTTP adapter, before any store is asked: one store is enough."""
    return await make_client("memory://")


async def test_a_malformed_condition_is_400_naming_it_and_writes_nothing(memory_client) -> None:
    note = await create(memory_client)
    for method, name, header in ((m, n, h) for m in WRITES for n in ("If-Match", "If-None-Match") for h in MALFORMED):
        response = await send(memory_client, method, f"/notes/{note['id']}", _body(method), headers={name: header})
        document = await problem(response, 400)
        assert document["type"].endswith("/problems/invalid-precondition") and name in document["detail"]
        assert "evil" not in await response.text()  # a client may put anything there: never echoed
    for method, path, header in ((m, p, h) for m in ("GET", "HEAD") for p in ("/notes/1", "/notes") for h in MALFORMED):
        response = await memory_client.request(method, path, headers={"If-None-Match": header})
        assert response.status == 400, (method, path, header)
    assert await all_notes(memory_client) == [note]


async def test_a_malformed_condition_on_a_missing_note_is_still_400(memory_client) -> None:
    """The header is read before the note is looked for, on reads and writes alike."""
    for method in ("GET", *WRITES):
        name = "If-None-Match" if method == "GET" else "If-Match"
        await problem(await send(memory_client, method, "/notes/77", _body(method), headers={name: "3"}), 400)


async def test_an_empty_if_match_is_an_empty_list_that_matches_nothing(memory_client) -> None:
    """RFC 9110, sections 5.6.1 and 13.1.1: 412, not 400."""
    note = await create(memory_client)
    for method in WRITES:
        response = await send(memory_client, method, f"/notes/{note['id']}", _body(method), headers={"If-Match": ""})
        await problem(response, 412)
    assert await all_notes(memory_client) == [note]
    assert (await memory_client.get(f"/notes/{note['id']}", headers={"If-None-Match": ""})).status == 200
    assert (await memory_client.get("/notes", headers={"If-None-Match": ""})).status == 200


async def test_a_list_with_empty_elements_and_spaces_matches_its_tags(memory_client) -> None:
    note = await create(memory_client)
    for version, header in enumerate(['"1", "2"', ', "2" ,', '"2",,\t"3"', 'W/"3", "4"', '"x,y", "5"'], start=1):
        response = await send(memory_client, "PATCH", f"/notes/{note['id']}", {"priority": version},
                              headers={"If-Match": header})
        assert response.status == 200, await response.text()

def _accepted(header: str) -> bool:
    try:
        precondition(header, None)
    except ProblemError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='"W/w*, \t3a!#~\x7f\x80\xff', max_size=12).filter(lambda t: t == t.strip(" \t")))
def test_the_openapi_pattern_of_conditions_matches_exactly_what_the_server_accepts(header: str) -> None:
    """Field values have no whitespace at either end (RFC 9110, section 5.5): those are not drawn."""
    assert bool(re.fullmatch(CONDITION_PATTERN, header)) == _accepted(header), header


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_if_match_on_a_read_answers_only_when_it_holds(client, method: str) -> None:
    """RFC 9110, 13.1.1: an origin server evaluates If-Match before any method; on a read the
    answer stands or is a 412, on every route alike (the pipeline judges it)."""
    note = await create(client)
    path = f"/notes/{note['id']}"
    for holds in ('"1"', '"7", "1"', "*"):
        assert (await send(client, method, path, headers={"If-Match": holds})).status == 200, holds
    for fails in ('"2"', 'W/"1"'):  # strong comparison: a weak tag never matches
        assert (await send(client, method, path, headers={"If-Match": fails})).status == 412, fails
    # before If-None-Match (13.2.2): a 304 that If-Match rules out is a 412
    both = await send(client, method, path, headers={"If-Match": '"2"', "If-None-Match": '"1"'})
    assert both.status == 412
    # a page's ETag is weak, and /me has none: only * holds
    assert (await send(client, method, "/notes", headers={"If-Match": "*"})).status == 200
    assert (await send(client, method, "/notes", headers={"If-Match": '"x"'})).status == 412
    assert (await send(client, method, "/me", headers={"If-Match": '"x"'})).status == 412
    # what would not be a 2xx ignores the condition (13.2.1)
    assert (await send(client, method, "/notes/999", headers={"If-Match": "*"})).status == 404
    assert (await send(client, method, path, headers={"If-Match": "1"})).status == 400
    if method == "GET":
        await problem(await client.get(path, headers={"If-Match": '"2"'}), 412)


async def test_a_long_poll_that_if_match_rules_out_is_a_412_at_once(client) -> None:
    """The feed's answers carry no ETag, so only `*` holds: a 412 without waiting (and `wait`
    still waits when the condition holds)."""
    assert (await send(client, "GET", "/changes", headers={"If-Match": '"1"'})).status == 412
    started = asyncio.get_running_loop().time()
    ruled_out = await client.get("/changes", params={"wait": "30"}, headers={"If-Match": '"1"'})
    assert ruled_out.status == 412 and asyncio.get_running_loop().time() - started < 5
    await problem(await client.get("/changes", params={"wait": "30"}, headers={"If-Match": "x"}), 400)
