"""/openapi.json describes exactly what the router serves; /docs renders it with no network."""

from __future__ import annotations

import re

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from openapi_spec_validator import validate

from app.container import build_container, http_app
from app.entrypoints.http.conditions import CONDITION_PATTERN
from app.entrypoints.http.openapi import build_openapi
from app.entrypoints.http.wiring import HttpSettings
from app.settings import Settings
from tests.http.spec_check import SpecChecker


def http_settings(**overrides: object) -> HttpSettings:
    return build_container(Settings(**overrides)).http_settings()  # type: ignore[arg-type]


@pytest.fixture
async def memory_client(make_client):
    return await make_client("memory://")


async def test_the_description_is_valid_openapi_3_1(memory_client) -> None:
    response = await memory_client.get("/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    spec = orjson.loads(await response.read())
    validate(spec)
    assert spec["openapi"] == "3.1.0"


def test_every_route_is_described_and_every_description_is_routed() -> None:
    app = http_app(build_container(Settings()))
    spec = build_openapi(http_settings())
    routed = set()
    for resource in app.router.resources():
        path = resource.canonical
        if path.startswith("/docs/assets"):
            continue  # the page's static files, not part of the API
        # OPTIONS: every resource answers it, from the pipeline
        routed |= {(path, route.method.lower()) for route in resource} | {(path, "options")}
    described = {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    assert routed == described


def test_every_operation_documents_its_problems_and_has_examples() -> None:
    spec = build_openapi(http_settings())
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("parameters", "options") or path in (
                "/docs",
                "/openapi.json",
                "/metrics",
                "/export",  # a notes file, whatever the Accept: not a JSON route (not_json)
                "/problems/{slug}",
            ):
                continue
            assert "406" in operation["responses"], (path, method)
    bodies = [
        op["requestBody"]
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "requestBody" in op
    ]
    assert bodies and all(m.get("example") for body in bodies for m in body["content"].values())
    assert spec["components"]["schemas"]["Note"]["examples"]


def test_the_body_schemas_come_from_the_rules_that_validate_requests() -> None:
    note = build_openapi(http_settings(max_body_bytes=4096))["components"]
    title = note["schemas"]["NoteInput"]["properties"]["title"]
    assert (title["minLength"], title["maxLength"]) == (1, 200)
    priority = note["schemas"]["NoteInput"]["properties"]["priority"]
    assert (priority["type"], priority["minimum"], priority["maximum"], priority["default"]) == ("integer", 0, 10, 0)
    assert "4,096 bytes" in note["responses"]["Problem413"]["description"]
    tag_pattern = note["schemas"]["NoteInput"]["properties"]["tags"]["items"]["pattern"]
    assert re.search(tag_pattern, "work") and not re.search(tag_pattern, "a b") and not re.search(tag_pattern, "a,b")


def test_server_owned_fields_are_read_only_so_generated_requests_leave_them_out() -> None:
    schemas = build_openapi(http_settings())["components"]["schemas"]
    for name in ("NoteInput", "NotePatch"):
        properties = schemas[name]["properties"]
        assert [f for f, schema in properties.items() if schema.get("readOnly")] == ["id", "updated_at", "version"]
        assert properties["id"]["type"] == "integer"


def test_conditions_are_described_by_the_pattern_the_server_reads_them_with() -> None:
    paths = build_openapi(http_settings())["paths"]
    for method in ("get", "head", "put", "patch", "delete"):
        for parameter in paths["/notes/{id}"][method]["parameters"]:
            if parameter["in"] == "header":
                assert parameter["schema"]["pattern"] == CONDITION_PATTERN, (method, parameter["name"])


def test_options_on_a_path_with_parameters_may_be_a_404() -> None:
    paths = build_openapi(http_settings())["paths"]
    assert "404" in paths["/notes/{id}"]["options"]["responses"]
    assert "404" in paths["/problems/{slug}"]["options"]["responses"]
    assert "404" not in paths["/notes"]["options"]["responses"]


def test_the_spec_hook_reports_a_response_that_breaks_the_description() -> None:
    checker = SpecChecker(http_settings())
    json = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json", "ETag": '"1"'}))
    checker.check("GET", "/notes/1", 200, json, b'{"id": "one"}')
    checker.check("GET", "/notes/1", 418, CIMultiDictProxy(CIMultiDict()), b"")
    assert 'GET /notes/1 -> 200: "one" is not of type "integer" at [\'id\']' in checker.violations
    assert checker.violations[-1] == "GET /notes/1 -> 418: status not described"


async def test_the_docs_page_uses_only_assets_the_service_serves_itself(memory_client) -> None:
    page = await memory_client.get("/docs")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert "//" not in re.sub(r"<!--.*?-->", "", html).replace("</", "")  # no absolute or CDN URLs
    for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', html):
        response = await memory_client.get(asset)
        assert response.status == 200 and len(await response.read()) > 1000, asset


async def test_an_unknown_docs_asset_is_404(memory_client) -> None:
    assert (await memory_client.get("/docs/assets/..%2f..%2fsecret")).status == 404
    assert (await memory_client.get("/docs/assets/index.html")).status == 404


def test_a_head_declares_the_headers_of_its_get() -> None:
    """If-None-Match gives HEAD a 304 as it gives GET one: a HEAD that declares the 304 declares
    the header too."""
    paths = build_openapi(http_settings())["paths"]
    for path, item in paths.items():
        if "get" in item:
            headers = [p["name"] for p in item["get"].get("parameters", ()) if p["in"] == "header"]
            assert [p["name"] for p in item["head"].get("parameters", ()) if p["in"] == "header"] == headers, path
