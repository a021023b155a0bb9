"""/openapi.json and /docs: the description, and a page that renders it with no network at all.

The page's scripts and styles are Swagger UI's, served from the installed `swagger-ui-py` package
(never a CDN), so the docs work on a machine without internet access.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import orjson
from aiohttp import web

from app.entrypoints.http.auth import AuthMode
from app.entrypoints.http.conditions import weak_etag
from app.entrypoints.http.keys import AUTHENTICATION, SETTINGS
from app.entrypoints.http.negotiation import not_json
from app.entrypoints.http.openapi import build_openapi
from app.entrypoints.http.representation import JSON, unchanging_response


def _swagger_ui_assets() -> Path:
    """Swagger UI's static files, found without importing its package: that would load Jinja2 and
    PyYAML for templates this server does not use (some 60 ms of every start)."""
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("swagger-ui-py is not installed: `make run` installs it")
    return Path(spec.submodule_search_locations[0]) / "static"


ASSETS = _swagger_ui_assets()
ASSET_TYPES = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
               "favicon-32x32.png": "image/png"}
# The description as each auth mode answers (a token is optional in local mode), rendered once
# each, with its weak ETag.
OPENAPI_BYTES: web.AppKey[dict[bool, tuple[bytes, str]]] = web.AppKey("openapi_bytes")

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Notes API</title>
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", deepLinking: true,
                                 defaultModelsExpandDepth: 0, docExpansion: "list"});
  </script>
</body>
</html>
"""
PAGE_BYTES = PAGE.encode()
PAGE_ETAG = weak_etag(PAGE_BYTES)


async def openapi_json(request: web.Request) -> web.Response:
    token_optional = request.app[AUTHENTICATION].in_force is AuthMode.LOCAL  # decided once listening
    rendered = request.app[OPENAPI_BYTES]
    if token_optional not in rendered:
        made = orjson.dumps(build_openapi(request.app[SETTINGS], token_optional=token_optional))
        rendered[token_optional] = made, weak_etag(made)
    body, tag = rendered[token_optional]
    return unchanging_response(request, body, JSON, tag)


@not_json
async def docs_page(request: web.Request) -> web.Response:
    return unchanging_response(request, PAGE_BYTES, "text/html; charset=utf-8", PAGE_ETAG)


@not_json
async def docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSET_TYPES:
        raise web.HTTPNotFound()
    return web.Response(
        body=(ASSETS / name).read_bytes(),
        content_type=ASSET_TYPES[name],
        headers={"Cache-Control": "public, max-age=86400"},
    )


def setup(app: web.Application) -> None:
    """Where `openapi_json` keeps the description it renders (the routes are app.py's)."""
    app[OPENAPI_BYTES] = {}
