"""What answers say about caching, compression and the server, on every adapter."""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib

import orjson
import pytest

from tests.http.support import create, problem, send


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/notes", "private, no-cache"), ("/notes/1", "private, no-cache"), ("/readyz", "no-store"),
     ("/metrics", "no-store"), ("/healthz", "no-store"), ("/notes/999", "no-store"),
     ("/openapi.json", "no-cache"), ("/", "no-cache")],
)
async def test_every_answer_says_how_long_it_may_be_cached(client, path: str, expected: str) -> None:
    await create(client)
    response = await client.get(path)
    assert response.headers["Cache-Control"] == expected


async def test_a_page_carries_a_weak_etag_and_if_none_match_gives_304(client) -> None:
    await create(client, title="one")
    first = await client.get("/notes")
    tag = first.headers["ETag"]
    assert tag.startswith('W/"')
    again = await client.get("/notes", headers={"If-None-Match": tag})
    assert again.status == 304 and again.headers["ETag"] == tag and await again.read() == b""
    assert again.headers["Vary"] == first.headers["Vary"] == "Accept-Encoding"
    assert again.headers["Cache-Control"] == first.headers["Cache-Control"]
    await create(client, title="two")
    changed = await client.get("/notes", headers={"If-None-Match": tag})
    assert changed.status == 200 and changed.headers["ETag"] != tag
    other_page = await client.get("/notes", params={"limit": "1"}, headers={"If-None-Match": tag})
    assert other_page.status == 200


async def test_large_bodies_are_gzipped_when_the_client_accepts_it(client) -> None:
    for i in range(10):
        await create(client, title=f"note {i}", description="words " * 100)
    response = await client.get("/notes", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in response.headers["Vary"]
    assert len(orjson.loads(gzip.decompress(await response.read()))["notes"]) == 10
    refused = await client.get("/notes", headers={"Accept-Encoding": "gzip;q=0, br"}, auto_decompress=False)
    assert "Content-Encoding" not in refused.headers and orjson.loads(await refused.read())["notes"]


async def test_small_bodies_are_sent_as_they_are(client) -> None:
    note = await create(client)
    response = await client.get(f"/notes/{note['id']}", headers={"Accept-Encoding": "gzip"},
                                auto_decompress=False)
    assert "Content-Encoding" not in response.headers and "Vary" not in response.headers


async def test_the_server_header_names_no_versions(client) -> None:
    for response in (await client.get("/healthz"), await client.get("/nowhere")):
        assert response.headers["Server"] == "notes"


async def test_the_root_links_to_the_docs_the_description_and_the_notes(client) -> None:
    links = orjson.loads(await (await client.get("/")).read())["links"]
    assert links == {"docs": "/docs", "openapi": "/openapi.json", "notes": "/notes"}
    for path in links.values():
        assert (await client.get(path)).status == 200


async def test_a_note_304_says_how_to_cache_it_too(client) -> None:
    note = await create(client)
    response = await send(client, "GET", f"/notes/{note['id']}", headers={"If-None-Match": '"1"'})
    assert response.status == 304 and response.headers["Cache-Control"] == "private, no-cache"


async def test_a_large_note_is_never_compressed_since_its_strong_etag_names_one_representation(client) -> None:
    note = await create(client, description="words " * 1000)
    response = await client.get(f"/notes/{note['id']}", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert "Content-Encoding" not in response.headers and response.headers["ETag"] == '"1"'
    assert orjson.loads(await response.read()) == note


@pytest.mark.parametrize("path", ["/", "/openapi.json", "/docs"])
async def test_what_changes_only_with_the_code_has_a_validator_so_no_cache_can_revalidate(client, path: str) -> None:
    first = await client.get(path)
    tag = first.headers["ETag"]
    assert first.status == 200 and tag.startswith('W/"') and first.headers["Cache-Control"] == "no-cache"
    again = await client.get(path, headers={"If-None-Match": f'"other", {tag}'})
    assert again.status == 304 and await again.read() == b""
    assert again.headers["ETag"] == tag and again.headers["Cache-Control"] == "no-cache"
    assert again.headers.get("Vary") == first.headers.get("Vary")  # what the 200 says (RFC 9110, 15.4.5)
    assert (await client.get(path, headers={"If-None-Match": '"other"'})).status == 200
    malformed = await client.get(path, headers={"If-None-Match": "other"})
    assert malformed.status == 400 and malformed.content_type == "application/problem+json"


async def test_a_large_description_is_gzipped_and_says_it_varies_with_accept_encoding(client) -> None:
    response = await client.get("/openapi.json", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip" and response.headers["Vary"] == "Accept-Encoding"
    assert orjson.loads(gzip.decompress(await response.read()))["openapi"].startswith("3.1")


async def test_an_image_is_never_gzipped_since_it_is_compressed_already(client) -> None:
    image = await client.get("/docs/assets/favicon-32x32.png", headers={"Accept-Encoding": "gzip"},
                             auto_decompress=False)
    assert image.status == 200 and "Content-Encoding" not in image.headers and "Vary" not in image.headers
    assert (await image.read())[:8] == b"\x89PNG\r\n\x1a\n"
    styles = await client.get("/docs/assets/swagger-ui.css", headers={"Accept-Encoding": "gzip"},
                              auto_decompress=False)
    assert styles.headers["Content-Encoding"] == "gzip"


async def test_the_export_is_gzipped_as_it_streams_when_the_client_accepts_it(client) -> None:
    for i in range(5):
        await create(client, title=f"note {i}")
    plain = await client.get("/export", headers={"Accept-Encoding": "identity"})
    squeezed = await client.get("/export", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert squeezed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in squeezed.headers["Vary"]
    assert "Content-Encoding" not in plain.headers and plain.headers["Vary"] == "Accept-Encoding"
    lines = gzip.decompress(await squeezed.read()).splitlines()
    assert len(lines) == len((await plain.read()).splitlines()) == 8  # header, owner, 5 notes, end
    assert orjson.loads(lines[-1])["counts"]["note"] == 5


async def test_a_request_body_in_gzip_or_deflate_is_read_and_a_damaged_one_is_400(client) -> None:
    body = orjson.dumps({"title": "packed"})
    packings = (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)), ("GZIP", gzip.compress(body)))
    for coding, packed in packings:
        made = await client.post("/notes", data=packed, headers={"Content-Type": "application/json",
                                                                 "Content-Encoding": coding})
        assert made.status == 201 and (await made.json())["title"] == "packed"
    for coding in ("gzip", "deflate"):
        damaged = await client.post("/notes", data=b"xx", headers={"Content-Type": "application/json",
                                                                   "Content-Encoding": coding})
        document = await problem(damaged, 400)
        assert document["type"].endswith("/problems/malformed-body")
        assert document["detail"].startswith("the request body cannot be read")
        assert damaged.headers["Connection"] == "close"


@pytest.mark.parametrize(("target", "host", "status"), [
    ("/notes", "localhost", 400),  # read by the handler, which meets the damage
    ("/nowhere", "localhost", 404),  # never read: the answers below come before any handler reads it
    ("/notes/1", "localhost", 405),
    ("/notes", "elsewhere.example", 401),  # another host's name: no local access without a token
])
async def test_a_damaged_body_is_logged_as_no_error_of_the_server(
    client, caplog: pytest.LogCaptureFixture, target: str, host: str, status: int
) -> None:
    """aiohttp reads what a handler left of a body once the answer is sent: that read met the
    damage and logged it as an unhandled exception, with a traceback, for any client that liked,
    whatever the answer. The body ends with the answer; the connection closes after it (waited
    for here, so that whatever the server logs for the request is logged by then)."""
    packed = bytearray(gzip.compress(orjson.dumps({"title": "t"}) + b" " * 5000))
    packed[-8] ^= 0xFF  # its CRC
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (target.encode(), host.encode(), len(packed), packed))
    answer = await reader.read()  # to the end: the server closed the connection
    writer.close()
    head, _, document = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status) and b"application/problem+json" in head, head
    assert orjson.loads(document)["status"] == status
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("coding", ["foo", "gzip, gzip", "x-gzip", "compress"])
async def test_a_request_body_in_a_coding_the_server_does_not_decode_is_415(client, coding: str) -> None:
    """Read as if it had no coding, it would be taken for what it is not (RFC 9110, 8.4.1)."""
    refused = await client.post("/notes", data=orjson.dumps({"title": "t"}), headers={
        "Content-Type": "application/json", "Content-Encoding": coding})
    document = await problem(refused, 415)
    assert refused.headers["Accept-Encoding"] == "gzip, deflate" and coding not in document["detail"]
    assert (await client.get("/notes", headers={"Content-Encoding": coding})).status == 200  # no body to decode

