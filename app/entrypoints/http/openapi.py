"""The OpenAPI 3.1 description, built from the objects that handle requests.

Bodies come from the domain's rule objects (via schemas.py), the listing's parameters from
listing.PARAMETERS, limits from the running settings: the description cannot drift from what the
service does, and tests/http validate every response they receive against it.
"""

from __future__ import annotations

from typing import Any

from app.entrypoints.http import schemas
from app.entrypoints.http.keys import HttpSettings
from app.entrypoints.http.listing import PARAMETERS
from app.entrypoints.http.problem_types import TYPES, reason
from app.entrypoints.http.problems import PROBLEM_JSON
from app.entrypoints.http.representation import JSON, MERGE_PATCH_JSON

REF = "#/components"
NOTE_ID = {"name": "id", "in": "path", "required": True, "description": "the note's id",
           "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
            "description": 'the ETag the write is meant for (e.g. `"3"`), or `*`; 412 when it does not match'}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "304 when it matches the current ETag (weak comparison), or is `*`"}
IF_NONE_MATCH_WRITE = {
    "name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
    "description": "412 when it matches the current ETag (weak comparison), or is `*`",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    "description": "a retry with the same key and body within 24 hours gets the first response again",
}
ETAG = {"description": "strong entity tag: the note's version", "required": True, "schema": {"type": "string"}}
PROBLEMS = {
    400: "malformed JSON, a body that is not an object, a bad query parameter, cursor or Idempotency-Key",
    404: "no such note, or an id that cannot exist",
    406: "the Accept header admits neither application/json nor application/problem+json",
    408: "the body did not arrive within the body timeout; the connection is closed",
    409: "a request with the same Idempotency-Key is still being processed",
    412: "If-Match does not match the note's current ETag (strong comparison), or If-None-Match"
         " matches it",
    413: "the body is over the limit",
    417: "an Expect header other than 100-continue",
    415: "the declared Content-Type is not JSON (PATCH: not a JSON merge patch; see Accept-Patch)",
    422: "the body breaks the rules of the note (`errors` lists the first 100 problems, each with its"
         " JSON pointer, and `detail` says how many there were),"
         " or an Idempotency-Key is reused with another body",
    428: "the server requires If-Match on writes (--require-if-match)",
    503: "the database cannot be reached; retry after `Retry-After` seconds",
}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": f"{REF}/responses/Problem{status}"} for status in statuses}


def _note(status: int, description: str, **headers: Any) -> dict[str, Any]:
    return {str(status): {"description": description, "headers": {"ETag": ETAG, **headers},
                          "content": {JSON: {"schema": {"$ref": f"{REF}/schemas/Note"}}}}}


def _body(*media_types: str, patch: bool = False) -> dict[str, Any]:
    schema = {"$ref": f"{REF}/schemas/{'NotePatch' if patch else 'NoteInput'}"}
    example = {"priority": 7, "tags": None} if patch else {
        "title": "note two", "created_at": "2017-08-23 00:00", "created_by": "apcelent",
        "description": "sample notes", "priority": 4, "tags": ["home", "work"]}
    return {"required": True, "description": "JSON; a body without Content-Type is read as JSON too",
            "content": {m: {"schema": schema, "example": example} for m in media_types}}


def _query_parameter(parameter: Any) -> dict[str, Any]:
    schema = schemas.rule_schema(parameter.rule, nullable=False)
    if parameter.repeatable:
        return {"name": parameter.name, "in": "query", "required": False, "description": parameter.description,
                "schema": {"type": "array", "items": schema}, "style": "form", "explode": True}
    return {"name": parameter.name, "in": "query", "required": False, "description": parameter.description,
            "schema": schema}


def _paths() -> dict[str, Any]:
    write = (400, 404, 406, 408, 412, 413, 415, 422, 428, 503)
    page_etag = {"required": True, "schema": {"type": "string", "pattern": '^W/"[^"]*"$'},
                 "description": "a weak entity tag of the page"}
    page = {"description": "one page of notes", "headers": {"ETag": page_etag, "Link": {
        "description": 'the next page: `<...>; rel="next"`', "schema": {"type": "string"}}},
        "content": {JSON: {"schema": {"$ref": f"{REF}/schemas/NotePage"}}}}
    unchanged = {"description": "If-None-Match names the page's ETag: the client's copy is current",
                 "headers": {"ETag": page_etag}}
    page_parameters = [*(_query_parameter(p) for p in PARAMETERS), IF_NONE_MATCH]
    return {
        "/notes": {
            "get": {"operationId": "listNotes", "summary": "List and search notes, one keyset page at a time",
                    "parameters": page_parameters,
                    "responses": {"200": page, "304": unchanged, **_problems(400, 406, 503)}},
            "head": {"operationId": "headNotes", "summary": "GET /notes without the body",
                     "parameters": page_parameters,
                     "responses": {"200": {"description": "as GET"}, "304": unchanged,
                                   **_problems(400, 406, 503)}},
            "post": {"operationId": "createNote", "summary": "Create a note",
                     "parameters": [IDEMPOTENCY_KEY], "requestBody": _body(JSON),
                     "responses": {**_note(201, "created", Location={
                         "required": True, "schema": {"type": "string"}, "description": "/notes/{id}"}),
                         **_problems(400, 406, 408, 409, 413, 415, 422, 503)}},
        },
        "/notes/{id}": {
            "parameters": [NOTE_ID],
            "get": {"operationId": "getNote", "summary": "Read a note", "parameters": [IF_NONE_MATCH],
                    "responses": {**_note(200, "the note"), "304": {
                        "description": "the client's copy is current", "headers": {"ETag": ETAG}},
                        **_problems(404, 406, 503)}},
            "head": {"operationId": "headNote", "summary": "GET without the body", "parameters": [IF_NONE_MATCH],
                     "responses": {"200": {"description": "as GET", "headers": {"ETag": ETAG}},
                                   "304": {"description": "the client's copy is current"},
                                   **_problems(404, 406, 503)}},
            "put": {"operationId": "replaceNote", "summary": "Replace a note (omitted fields take their defaults)",
                    "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE], "requestBody": _body(JSON),
                    "responses": {**_note(200, "the replaced note"), **_problems(*write)}},
            "patch": {"operationId": "patchNote", "summary": "Change a note with a JSON merge patch (RFC 7396)",
                      "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE],
                      "requestBody": _body(MERGE_PATCH_JSON, JSON, patch=True),
                      "responses": {**_note(200, "the changed note"), **_problems(*write)}},
            "delete": {"operationId": "deleteNote", "summary": "Delete a note",
                       "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE],
                       "responses": {"204": {"description": "deleted"},
                                     **_problems(404, 406, 412, 428, 503)}},
        },
        "/": {"get": {"operationId": "index", "summary": "Where to start: links to the docs, the"
                             " description and the notes", "responses": {"200": {
            "description": "links", "content": {JSON: {"schema": {
                "type": "object", "required": ["name", "links"],
                "properties": {"name": {"type": "string"}, "links": {"type": "object"}}}}}},
            **_problems(406)}}},
        "/healthz": {"get": _status("health", "the process is up")},
        "/readyz": {"get": _status("readiness", "the database answers", 503)},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This description",
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "content": {JSON: {"schema": {"type": "object"}}}}}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics of this process",
                             "responses": {"200": {"description": "text exposition format 0.0.4",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/docs": {"get": {"operationId": "docs", "summary": "A human-readable page of this description",
                          "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
        "/problems/{slug}": {
            "parameters": [{"name": "slug", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": list(TYPES)}}],
            "get": {"operationId": "problemType", "summary": "The page explaining a problem type",
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}},
                          **_problems(404)}}},
    }


METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


def _complete(paths: dict[str, Any]) -> dict[str, Any]:
    """HEAD wherever there is GET, and OPTIONS everywhere, as the router adds them."""
    for item in paths.values():
        if "get" in item and "head" not in item:
            get = item["get"]
            item["head"] = {"operationId": f"{get['operationId']}Head", "summary": "GET without the body",
                            "responses": {status: {k: v for k, v in answer.items() if k != "content"}
                                          for status, answer in get["responses"].items()}}
        allowed = [*(m.upper() for m in METHODS if m in item), "OPTIONS"]
        item["options"] = _options(", ".join(sorted(set(allowed))))
        for method in METHODS:  # every route answers an unknown expectation alike
            if method in item:
                item[method]["responses"].update(_problems(417))
    return paths


def _options(allow: str) -> dict[str, Any]:
    return {"summary": "The methods this resource allows", "responses": {"204": {
        "description": "no content", "headers": {"Allow": {"required": True, "schema": {"type": "string"},
                                                           "example": allow}}}}}


def _status(name: str, description: str, *problems: int) -> dict[str, Any]:
    return {"operationId": name, "summary": description, "responses": {
        "200": {"description": description, "content": {JSON: {"schema": {
            "type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}}}},
        **_problems(406, *problems)}}


def _components(settings: HttpSettings) -> dict[str, Any]:
    page = {"type": "object", "required": ["notes", "next_cursor"], "additionalProperties": False,
            "properties": {"notes": {"type": "array", "items": {"$ref": f"{REF}/schemas/Note"}},
                           "next_cursor": {"type": ["string", "null"],
                                           "description": "pass as `cursor` for the next page"}}}
    responses = {}
    for status, when in PROBLEMS.items():
        detail = when.replace("over the limit", f"over {settings.max_body_bytes:,} bytes")
        headers = {"Retry-After": {"required": True, "schema": {"type": "string"}}} if status in (409, 503) else {}
        responses[f"Problem{status}"] = {
            "description": f"{reason(status)}: {detail}", "headers": headers,
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"{REF}/schemas/Problem"}}}}
    return {
        "schemas": {"NoteInput": schemas.note_input(), "NotePatch": schemas.note_input(patch=True),
                    "Note": schemas.note_output(), "NotePage": page, "Problem": schemas.problem()},
        "responses": responses,
    }


def build_openapi(settings: HttpSettings) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Notes API", "version": "1.0.0",
                 "description": "Notes: create, read, list, search, replace, patch and delete. "
                                "Every error is application/problem+json (RFC 9457)."},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": _complete(_paths()),
        "components": _components(settings),
    }
