"""A test hook: every response the HTTP tests receive is checked against /openapi.json.

It sits outermost in the application under test, sees each final response (problems included)
and records whatever the description does not allow; the `client` fixture fails the test on any.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from jsonschema import Draft202012Validator

from app.entrypoints.http.keys import HttpSettings
from app.entrypoints.http.openapi import build_openapi


class SpecChecker:
    def __init__(self, settings: HttpSettings) -> None:
        self.spec = build_openapi(settings)
        self.paths = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"), item)
            for template, item in self.spec["paths"].items()
        ]
        self.violations: list[str] = []
        self.checked = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        self.check(request, response)
        return response

    def check(self, request: web.Request, response: web.StreamResponse) -> None:
        where = f"{request.method} {request.path} -> {response.status}"
        if request.path.startswith("/docs/assets/"):
            return  # the docs page's static files are not part of the API
        item = next((item for pattern, item in self.paths if pattern.match(request.path)), None)
        if item is None:
            if response.status not in (404, 501):
                self.violations.append(f"{where}: path not described")
            return
        operation = item.get(request.method.lower())
        if operation is None:
            if response.status not in (405, 501):  # not allowed here, or no such method
                self.violations.append(f"{where}: method not described")
            return
        self.checked += 1
        documented = operation["responses"].get(str(response.status)) or operation["responses"].get("default")
        if documented is None:
            self.violations.append(f"{where}: status not described")
            return
        documented = self._resolve(documented)
        for name, header in documented.get("headers", {}).items():
            if header.get("required") and name not in response.headers:
                self.violations.append(f"{where}: required header {name} missing")
        self._check_body(where, request, response, documented.get("content"))

    def _check_body(self, where: str, request: web.Request, response: web.StreamResponse, content: Any) -> None:
        body = getattr(response, "body", None)
        if request.method == "HEAD" or response.status in (204, 304) or not body:
            return
        media_type = response.content_type
        if not content or media_type not in content:
            self.violations.append(f"{where}: content type {media_type} not described")
            return
        schema = content[media_type].get("schema")
        if schema and media_type.endswith("json"):
            root = {**schema, "components": self.spec["components"]}
            for error in Draft202012Validator(root).iter_errors(orjson.loads(bytes(body))):
                self.violations.append(f"{where}: {error.message} at {list(error.absolute_path)}")

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node
