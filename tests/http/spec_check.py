"""A test hook: every response the HTTP tests receive is checked against /openapi.json.

It is a middleware of the test's HTTP client, not of the application: the application under test
is exactly the one production runs. It sees each response as the client gets it (problems
included) and records whatever the description does not allow; the `client` fixture fails the
test on any.
"""

from __future__ import annotations

import functools
import gzip
import re
from typing import Any

import jsonschema_rs
import orjson
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from multidict import CIMultiDictProxy

from app.entrypoints.http.openapi import build_openapi
from app.entrypoints.http.wiring import HttpSettings


class _Description:
    """The description for one set of settings, with a validator for each schema of a response,
    made when first needed: a test process checks thousands of responses against a few dozen."""

    def __init__(self, settings: HttpSettings) -> None:
        self.spec = build_openapi(settings)
        self.paths = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"), item)
            for template, item in self.spec["paths"].items()
        ]
        self._validators: dict[int, jsonschema_rs.Draft202012Validator] = {}

    def validator(self, schema: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
        found = self._validators.get(id(schema))  # the schema lives as long as the description
        if found is None:
            found = jsonschema_rs.Draft202012Validator({**schema, "components": self.spec["components"]})
            self._validators[id(schema)] = found
        return found


@functools.cache
def _description(settings: HttpSettings) -> _Description:
    return _Description(settings)


class SpecChecker:
    def __init__(self, settings: HttpSettings) -> None:
        self._description = _description(settings)
        self.spec = self._description.spec
        self.paths = self._description.paths
        self.violations: list[str] = []
        self.checked = 0

    async def middleware(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        response = await handler(request)
        # An event stream never ends by itself: its status and headers are checked, not its body.
        streamed = response.content_type == "text/event-stream"
        body = b"" if request.method == "HEAD" or streamed else await response.read()  # kept for the test
        if response.headers.get("Content-Encoding") == "gzip" and body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)  # a test that asked for the body as sent
        self.check(request.method, request.url.path, response.status, response.headers, body)
        return response

    def check(self, method: str, path: str, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        where = f"{method} {path} -> {status}"
        if path.startswith("/docs/assets/"):
            return  # the docs page's static files are not part of the API
        item = next((item for pattern, item in self.paths if pattern.match(path)), None)
        if item is None:
            if status not in (404, 501):
                self.violations.append(f"{where}: path not described")
            return
        operation = item.get(method.lower())
        if operation is None:
            if status not in (405, 501):  # not allowed here, or no such method
                self.violations.append(f"{where}: method not described")
            return
        self.checked += 1
        documented = operation["responses"].get(str(status)) or operation["responses"].get("default")
        if documented is None:
            self.violations.append(f"{where}: status not described")
            return
        documented = self._resolve(documented)
        for name, header in documented.get("headers", {}).items():
            if header.get("required") and name not in headers:
                self.violations.append(f"{where}: required header {name} missing")
        self._check_body(where, status, headers, body, documented.get("content"))

    def _check_body(
        self, where: str, status: int, headers: CIMultiDictProxy[str], body: bytes, content: Any
    ) -> None:
        if status in (204, 304) or not body:
            return
        media_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not content or media_type not in content:
            self.violations.append(f"{where}: content type {media_type} not described")
            return
        schema = content[media_type].get("schema")
        if schema and (media_type == "application/json" or media_type.endswith("+json")):
            for error in self._description.validator(schema).iter_errors(orjson.loads(body)):
                self.violations.append(f"{where}: {error.message} at {list(error.instance_path)}")

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node
