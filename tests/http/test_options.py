"""OPTIONS, answered by the pipeline from the router: 204 with `Allow` where there is a resource,
and on a path with parameters GET's own 404 where GET finds nothing; a CORS preflight is always
a 204, which browsers need before they send the request itself."""

from __future__ import annotations

import orjson
import pytest
from aiohttp import web

from app.container import build_container, http_app
from tests.conftest import settings_for
from tests.http.support import create, problem, send

NOTE_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"


@pytest.fixture
async def memory_client(make_client):
    return await make_client("memory://")


async def test_options_on_a_note_lists_its_methods_until_it_is_deleted_then_is_404(client) -> None:
    note = await create(client)
    response = await client.options(f"/notes/{note['id']}")
    assert response.status == 204 and response.headers["Allow"] == NOTE_METHODS
    assert response.headers["Accept-Patch"] == "application/merge-patch+json"
    assert orjson.loads(await (await client.get(f"/notes/{note['id']}")).read()) == note  # nothing changed
    assert (await send(client, "DELETE", f"/notes/{note['id']}")).status == 204
    response = await client.options(f"/notes/{note['id']}")
    await problem(response, 404)
    assert "Allow" not in response.headers


async def test_options_where_get_finds_no_note_answers_gets_404(memory_client) -> None:
    await create(memory_client)
    for path in ("/notes/404", "/notes/9223372036854775808", "/notes/0", "/notes/abc"):
        answer = await problem(await memory_client.options(path), 404)
        assert answer == await problem(await memory_client.get(path), 404), path


async def test_options_on_a_problem_page_that_does_not_exist_is_404(memory_client) -> None:
    assert (await memory_client.options("/problems/not-found")).status == 204
    await problem(await memory_client.options("/problems/AAA"), 404)


async def test_options_on_a_path_without_parameters_needs_no_lookup(memory_client) -> None:
    response = await memory_client.options("/notes")
    assert response.status == 204 and response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


@pytest.mark.parametrize("cors", [True, False])
async def test_a_cors_preflight_for_a_missing_note_is_still_204(make_client, cors: bool) -> None:
    origin = "https://notes.example"
    client = await make_client("memory://", cors_origins=(origin,) if cors else ())
    response = await client.options(
        "/notes/404", headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"}
    )
    assert response.status == 204 and response.headers["Allow"] == NOTE_METHODS
    assert ("Access-Control-Allow-Methods" in response.headers) is cors


async def test_a_route_added_the_plain_aiohttp_way_gets_the_same_options(aiohttp_client) -> None:
    async def thing(request: web.Request) -> web.Response:
        if request.match_info["name"] != "known":
            raise web.HTTPNotFound()
        return web.json_response({"name": "known"})

    app = http_app(build_container(settings_for("memory://")))
    app.router.add_get("/things/{name}", thing)
    client = await aiohttp_client(app)
    known = await client.options("/things/known")
    assert known.status == 204 and known.headers["Allow"] == "GET, HEAD, OPTIONS"
    await problem(await client.options("/things/unknown"), 404)
