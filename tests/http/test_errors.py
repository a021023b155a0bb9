"""Every error is problem+json with the right status, and a failed request writes nothing."""

from __future__ import annotations

import asyncio
import io
import re

import orjson
import pytest

from app.entrypoints.http.problem_types import TYPES
from tests.factories import tutorial_body
from tests.http.support import all_notes, create, problem, send


async def test_malformed_json_is_400_and_writes_nothing(client) -> None:
    response = await client.post("/notes", data=b'{"title": "x",', headers={"Content-Type": "application/json"})
    assert "not valid JSON" in (await problem(response, 400))["detail"]
    assert await all_notes(client) == []


@pytest.mark.parametrize("body", [b"[1, 2]", b'"a string"', b"42", b"null", b"", b"   "])
async def test_a_body_that_is_not_a_json_object_is_400(client, body: bytes) -> None:
    await problem(await client.post("/notes", data=body, skip_auto_headers={"Content-Type"}), 400)
    assert await all_notes(client) == []


async def test_a_malformed_body_on_put_leaves_the_note_unchanged(client) -> None:
    note = await create(client)
    await problem(
        await client.put(f"/notes/{note['id']}", data=b"{nope", headers={"Content-Type": "application/json"}), 400
    )
    assert await all_notes(client) == [note]


async def test_a_missing_note_is_404_on_every_method(client) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await send(client, method, "/notes/12345", None if method in ("GET", "DELETE") else {"title": "t"})
        await problem(response, 404)
    assert await all_notes(client) == []


@pytest.mark.parametrize(
    "note_id", ["abc", "0", "-1", "1.5", "01", "%201", "9223372036854775808", "99999999999999999999999"]
)
async def test_an_id_that_cannot_exist_is_404_not_500(client, note_id: str) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        await problem(await send(client, method, f"/notes/{note_id}", {"title": "t"}), 404)


async def test_the_largest_possible_id_is_simply_not_found(client) -> None:
    await problem(await client.get("/notes/9223372036854775807"), 404)


async def test_an_unknown_path_is_404(client) -> None:
    await problem(await client.get("/nowhere"), 404)


@pytest.fixture
async def memory_client(make_client):
    return await make_client("memory://")


async def raw_request(client, request_line: str) -> tuple[str, dict[str, str], bytes]:
    """Send one request line as it is (targets an HTTP client would rewrite), and read the answer."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"{request_line}\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *fields = head.decode().split("\r\n")
    headers = {name.lower(): value for name, _, value in (f.partition(": ") for f in fields)}
    return status_line, headers, body


@pytest.mark.parametrize("target", ["*", "//notes", "/notes/1/extra", "/nowhere", "http://x/nowhere", "/a%0Ab"])
async def test_a_target_no_resource_matches_is_404_problem_json(memory_client, target: str) -> None:
    status_line, headers, body = await raw_request(memory_client, f"OPTIONS {target} HTTP/1.1")
    assert status_line.startswith("HTTP/1.1 404")
    assert headers["content-type"] == "application/problem+json" and "x-request-id" in headers
    assert orjson.loads(body)["status"] == 404


async def test_connect_is_a_404_problem_json(memory_client) -> None:
    """CONNECT's target is not a path, so no route matches it: this is no proxy."""
    status_line, headers, body = await raw_request(memory_client, "CONNECT example.com:443 HTTP/1.1")
    assert status_line.startswith("HTTP/1.1 404") and headers["content-type"] == "application/problem+json"
    assert b"Traceback" not in body


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/notes/1", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
        ("DELETE", "/notes", {"GET", "HEAD", "POST"}),
        ("PUT", "/notes", {"GET", "HEAD", "POST"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
    ],
)
async def test_a_method_not_allowed_is_405_with_a_correct_allow_header(client, method, path, allow) -> None:
    note = await create(client)  # /notes/1: OPTIONS on a note that does not exist is 404, as GET
    response = await send(client, method, path, {"title": "t"})
    await problem(response, 405)
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert allowed == allow | {"OPTIONS"}
    assert response.headers["Allow"] == (await client.options(path)).headers["Allow"]
    assert await all_notes(client) == [note]


async def test_a_body_over_one_mebibyte_is_413_and_writes_nothing(client) -> None:
    body = orjson.dumps({"title": "big", "description": "x" * (1024 * 1024)})
    response = await client.post("/notes", data=io.BytesIO(body), headers={"Content-Type": "application/json"})
    await problem(response, 413)
    assert await all_notes(client) == []


async def test_a_chunked_body_over_the_limit_is_413_too(client) -> None:
    async def chunks():
        yield b'{"title": "big", "description": "'
        for _ in range(65):
            yield b"y" * 16384
        yield b'"}'

    await problem(await client.post("/notes", data=chunks(), headers={"Content-Type": "application/json"}), 413)
    assert await all_notes(client) == []


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "application/json; charset=latin-1"],
)
async def test_a_declared_content_type_that_is_not_json_is_415(client, content_type: str) -> None:
    note = await create(client)
    body = orjson.dumps(tutorial_body())
    await problem(await client.post("/notes", data=body, headers={"Content-Type": content_type}), 415)
    await problem(await client.put(f"/notes/{note['id']}", data=body, headers={"Content-Type": content_type}), 415)
    response = await client.patch(f"/notes/{note['id']}", data=body, headers={"Content-Type": content_type})
    await problem(response, 415)
    assert response.headers["Accept-Patch"] == "application/merge-patch+json"
    assert await all_notes(client) == [note]


async def test_validation_reports_every_problem_at_once_with_pointers(client) -> None:
    body = {"title": "", "priority": True, "tags": ["ok", "has space", 3], "created_at": "yesterday", "colour": "red"}
    document = await problem(await send(client, "POST", "/notes", body), 422)
    assert sorted(e["pointer"] for e in document["errors"]) == [
        "/colour",
        "/created_at",
        "/priority",
        "/tags/1",
        "/tags/2",
        "/title",
    ]
    assert all(e["detail"] for e in document["errors"])
    assert await all_notes(client) == []


async def test_three_bad_fields_give_three_errors(client) -> None:
    document = await problem(
        await send(client, "POST", "/notes", {"title": "x" * 201, "priority": 11, "description": 5}), 422
    )
    assert [e["pointer"] for e in document["errors"]] == ["/title", "/description", "/priority"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, "/title"),
        ({"title": "   "}, "/title"),
        ({"title": "a\u0000b"}, "/title"),
        ({"title": "t", "priority": 4.5}, "/priority"),
        ({"title": "t", "priority": -1}, "/priority"),
        ({"title": "t", "tags": "a,b"}, "/tags"),
        ({"title": "t", "tags": ["a,b"]}, "/tags/0"),
        ({"title": "t", "tags": [f"t{i}" for i in range(21)]}, "/tags"),
        ({"title": "t", "tags": ["t"] * 21}, "/tags"),
        ({"title": "t", "tags": ["x" * 51]}, "/tags/0"),
        ({"title": "t", "created_by": ""}, "/created_by"),
        ({"title": "t", "created_by": "x" * 101}, "/created_by"),
        ({"title": "t", "description": "x" * 10_001}, "/description"),
        ({"title": "t", "created_at": "2017-02-30 00:00"}, "/created_at"),
        ({"title": "t", "created_at": "2017-08-23T00:00:00.1234567Z"}, "/created_at"),
        ({"title": "t", "created_at": "0001-01-01T00:00:00+01:00"}, "/created_at"),
        ({"title": "t", "id": {}}, "/id"),
        ({"title": "t", "created_at": 1503446400}, "/created_at"),
        ({"title": "t", "a/b~c": 1}, "/a~1b~0c"),
    ],
)
async def test_each_rule_of_the_note_is_enforced_with_a_pointer(client, body, pointer) -> None:
    document = await problem(await send(client, "POST", "/notes", body), 422)
    assert [e["pointer"] for e in document["errors"]] == [pointer]
    assert await all_notes(client) == []


async def test_an_id_in_a_new_note_is_ignored_if_it_is_an_integer_and_422_otherwise(memory_client) -> None:
    """A note sent back as it was received creates a new note; an id no note could have is no echo."""
    first = await create(memory_client)
    for number, sent in enumerate([first["id"], 0, -7, 2**63, 4.0], start=1):
        response = await send(memory_client, "POST", "/notes", {"title": "t", "id": sent})
        assert response.status == 201, await response.text()
        assert orjson.loads(await response.read())["id"] == first["id"] + number
    for sent in ({}, [], "1", True, None, 1.5):
        document = await problem(await send(memory_client, "POST", "/notes", {"title": "t", "id": sent}), 422)
        assert [e["pointer"] for e in document["errors"]] == ["/id"], sent


async def test_an_id_in_the_body_that_differs_from_the_url_is_422(client) -> None:
    note = await create(client)
    document = await problem(
        await send(client, "PUT", f"/notes/{note['id']}", {"id": note["id"] + 1, "title": "t"}), 422
    )
    assert [e["pointer"] for e in document["errors"]] == ["/id"]
    assert await all_notes(client) == [note]


@pytest.mark.parametrize("field", ["title", "created_at"])
async def test_patch_with_null_for_a_field_without_default_is_422(client, field: str) -> None:
    note = await create(client)
    document = await problem(await send(client, "PATCH", f"/notes/{note['id']}", {field: None}), 422)
    assert [e["pointer"] for e in document["errors"]] == [f"/{field}"]
    assert await all_notes(client) == [note]


@pytest.mark.parametrize(
    "accept", ["text/html", "application/xml, text/*", "application/json;q=0, text/html", "image/*"]
)
async def test_an_accept_header_that_admits_no_json_is_406(client, accept: str) -> None:
    note = await create(client)
    await problem(await client.get(f"/notes/{note['id']}", headers={"Accept": accept}), 406)
    await problem(await send(client, "POST", "/notes", {"title": "t"}, headers={"Accept": accept}), 406)
    assert await all_notes(client) == [note]


@pytest.mark.parametrize(
    "accept",
    [
        "*/*",
        "application/*",
        "application/json",
        "application/problem+json",
        "text/html, application/json;q=0.1",
        "*/*;q=0.5, text/html",
    ],
)
async def test_an_accept_header_that_admits_json_is_served(client, accept: str) -> None:
    note = await create(client)
    assert (await client.get(f"/notes/{note['id']}", headers={"Accept": accept})).status == 200


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/notes", "GET, HEAD, OPTIONS, POST"),
        ("/notes/1", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"),
        ("/healthz", "GET, HEAD, OPTIONS"),
    ],
)
async def test_options_lists_the_allowed_methods(client, path: str, allow: str) -> None:
    await create(client)  # /notes/1: OPTIONS on a note that does not exist is 404, as GET
    response = await client.options(path)
    assert response.status == 204 and response.headers["Allow"] == allow


async def test_every_problem_type_is_an_absolute_uri_whose_page_explains_it(memory_client) -> None:
    document = await problem(await memory_client.get("/notes/999"), 404)
    assert document["type"] == f"http://{memory_client.host}:{memory_client.port}/problems/note-not-found"
    for slug in TYPES:
        page = await memory_client.get(f"/problems/{slug}", headers={"Accept": "text/html"})
        assert page.status == 200 and page.content_type == "text/html"
        assert slug in await page.text()
    await problem(await memory_client.get("/problems/no-such-problem"), 404)


@pytest.mark.parametrize(
    "head",
    [
        "CONNECT /notes HTTP/1.1\r\nHost: localhost",  # aiohttp takes the target for the host
        "GET /nowhere HTTP/1.1\r\nHost: a b/c",  # no host[:port] at all
        "GET /nowhere HTTP/1.0",  # no Host field
    ],
)
async def test_a_problem_type_is_a_uri_of_the_service_whatever_the_host_field_says(memory_client, head) -> None:
    reader, writer = await asyncio.open_connection(memory_client.host, memory_client.port)
    writer.write(f"{head}\r\nConnection: close\r\n\r\n".encode())
    body = (await reader.read()).partition(b"\r\n\r\n")[2]
    writer.close()
    here = re.escape(f"{memory_client.host}:{memory_client.port}")
    assert re.fullmatch(rf"http://(localhost|{here})/problems/not-found", orjson.loads(body)["type"]), body


@pytest.mark.parametrize(("status", "phrase"), [(413, "Content Too Large"), (422, "Unprocessable Content")])
async def test_problem_titles_and_status_lines_use_rfc_9110_reason_phrases(memory_client, status, phrase) -> None:
    body = {"title": ""} if status == 422 else {"title": "x" * 2_000_000}
    response = await memory_client.post(
        "/notes", data=io.BytesIO(orjson.dumps(body)), headers={"Content-Type": "application/json"}
    )
    assert response.status == status and response.reason == phrase
    assert (await problem(response, status))["title"] == phrase


async def test_a_query_parameter_where_a_resource_takes_none_is_400_naming_it(client) -> None:
    """Not an answer that ignores what was asked: `POST /import?on_conflict=replace` would
    otherwise import copies, and `PUT /notes/1?if_match=3` write without the condition."""
    note = await create(client)
    version = f"/notes/{note['id']}/revisions/1"
    deleted = await create(client, title="to the trash")
    assert (await client.delete(f"/notes/{deleted['id']}")).status == 204
    for method, path, kwargs in (
        ("GET", f"/notes/{note['id']}", {}), ("PUT", f"/notes/{note['id']}", {"json": {"title": "t"}}),
        ("PATCH", f"/notes/{note['id']}", {"json": {"title": "t"}}), ("POST", "/notes", {"json": {"title": "t"}}),
        ("GET", version, {}), ("POST", f"{version}/restore", {}), ("GET", f"/trash/{deleted['id']}", {}),
        ("POST", f"/trash/{deleted['id']}/restore", {}), ("DELETE", f"/trash/{deleted['id']}", {}),
        ("GET", "/me", {}), ("GET", "/tokens", {}), ("GET", "/export", {}),
        ("POST", "/import", {"data": b"", "headers": {"Content-Type": "application/x-ndjson"}}),
    ):
        response = await client.request(method, path, params={"on_conflict": "replace"}, **kwargs)
        document = await problem(response, 400)
        assert document["type"].endswith("/problems/invalid-query"), (method, path)
        assert "on_conflict" in document["detail"] or "on_conflict" in str(document.get("errors")), document
    assert [n["id"] for n in await all_notes(client)] == [note["id"]]  # nothing was written
    assert (await client.get(f"/notes/{note['id']}")).status == 200 and (await client.get("/me")).status == 200
