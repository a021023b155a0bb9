"""/openapi.json and /docs: the description, and a page that renders it with no network at all.

The page's scripts and styles are Swagger UI's, served from the installed `swagger-ui-py` package
(never a CDN), so the docs work on a machine without internet access.
"""

from __future__ import annotations

from importlib.resources import files

import orjson
from aiohttp import web

from app.entrypoints.http.keys import SETTINGS
from app.entrypoints.http.negotiation import not_json
from app.entrypoints.http.openapi import build_openapi

ASSETS = files("swagger_ui") / "static"
ASSET_TYPES = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
               "favicon-32x32.png": "image/png"}
OPENAPI_BYTES = web.AppKey("openapi_bytes", bytes)

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


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_BYTES], content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


@not_json
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-cache"})


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
    """The description, rendered once for `openapi_json` (the routes are app.py's)."""
    app[OPENAPI_BYTES] = orjson.dumps(build_openapi(app[SETTINGS]))
