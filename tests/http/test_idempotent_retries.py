"""Idempotency-Key on POST: a retry gets the first answer again, never a second note."""

from __future__ import annotations

import asyncio

import orjson

from tests.factories import tutorial_body
from tests.http.support import all_notes, problem, send


async def test_a_retry_with_the_same_key_and_body_replays_the_first_response(client) -> None:
    headers = {"Idempotency-Key": "retry-1"}
    first = await send(client, "POST", "/notes", tutorial_body(), headers=headers)
    again = await send(client, "POST", "/notes", tutorial_body(), headers=headers)
    assert first.status == again.status == 201
    assert await first.read() == await again.read()
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    for name in ("Location", "ETag", "Content-Type"):
        assert first.headers[name] == again.headers[name]
    assert len(await all_notes(client)) == 1


async def test_the_same_json_with_other_spacing_or_key_order_is_the_same_body(client) -> None:
    headers = {"Idempotency-Key": "k", "Content-Type": "application/json"}
    await client.post("/notes", data=b'{"title": "a", "priority": 1}', headers=headers)
    again = await client.post("/notes", data=b'{"priority":1,"title":"a"}', headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    as_float = await client.post("/notes", data=b'{"priority":1.0,"title":"a"}', headers=headers)  # 1.0 is 1
    assert as_float.status == 201 and as_float.headers["Idempotent-Replayed"] == "true"
    assert len(await all_notes(client)) == 1
    for huge in (b"1e20", b"-1e300", b"9223372036854775808.0"):  # integral, past any integer a key is made of
        refused = await client.post("/notes", data=b'{"title":"a","priority":' + huge + b"}", headers=headers)
        await problem(refused, 422)


async def test_the_same_key_with_another_body_is_422(client) -> None:
    headers = {"Idempotency-Key": "k2"}
    await send(client, "POST", "/notes", tutorial_body(), headers=headers)
    await problem(await send(client, "POST", "/notes", tutorial_body(title="other"), headers=headers), 422)
    assert len(await all_notes(client)) == 1


async def test_a_failed_first_attempt_does_not_pin_the_key(client) -> None:
    headers = {"Idempotency-Key": "k3"}
    await problem(await send(client, "POST", "/notes", {"title": ""}, headers=headers), 422)
    await problem(await send(client, "POST", "/notes", {"title": ""}, headers=headers), 422)
    fixed = await send(client, "POST", "/notes", {"title": "fixed"}, headers=headers)
    assert fixed.status == 201


async def test_two_concurrent_posts_with_one_key_create_exactly_one_note(client) -> None:
    headers = {"Idempotency-Key": "race"}
    responses = await asyncio.gather(
        *(send(client, "POST", "/notes", tutorial_body(), headers=headers) for _ in range(5))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert len(await all_notes(client)) == 1
    for response in responses:
        if response.status == 409:
            await problem(response, 409)
            assert response.headers["Retry-After"]


async def test_keys_are_separate(client) -> None:
    for key in ("a", "b"):
        await send(client, "POST", "/notes", tutorial_body(), headers={"Idempotency-Key": key})
    assert len(await all_notes(client)) == 2


async def test_an_unusable_key_is_400(client) -> None:
    for key in ("", "x" * 256, "spaces are not allowed"):
        await problem(await send(client, "POST", "/notes", tutorial_body(), headers={"Idempotency-Key": key}), 400)
    assert await all_notes(client) == []


async def test_a_replay_has_the_body_of_the_first_answer_even_after_the_note_changed(client) -> None:
    headers = {"Idempotency-Key": "then-edited"}
    first = orjson.loads(await (await send(client, "POST", "/notes", tutorial_body(), headers=headers)).read())
    await send(client, "PATCH", f"/notes/{first['id']}", {"priority": 1})
    replay = orjson.loads(await (await send(client, "POST", "/notes", tutorial_body(), headers=headers)).read())
    assert replay == first
