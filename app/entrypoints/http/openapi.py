"""The OpenAPI 3.1 description, built from the objects that handle requests.

Bodies come from the domain's rule objects (via schemas.py), the listing's parameters from
listing.PARAMETERS, limits from the running settings: the description cannot drift from what the
service does, and tests/http validate every response they receive against it.
"""

from __future__ import annotations

from typing import Any

from app.domain.accounts import LABEL_MAX, LABEL_PATTERN, MAX_DAYS
from app.entrypoints.http import schemas
from app.entrypoints.http.conditions import CONDITION_PATTERN
from app.entrypoints.http.handlers import DELETE_PARAMETERS
from app.entrypoints.http.history import CHANGES_PARAMETERS, PATTERNS, REVISION_PARAMETERS, TRASH_PARAMETERS
from app.entrypoints.http.listing import PARAMETERS
from app.entrypoints.http.problem_types import TYPES, reason
from app.entrypoints.http.problems import PROBLEM_JSON
from app.entrypoints.http.representation import JSON, MERGE_PATCH_JSON
from app.entrypoints.http.wiring import HttpSettings

REF = "#/components"
NOTE_ID = {"name": "id", "in": "path", "required": True, "description": "the note's id",
           "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
# RFC 9110's grammar of both headers (sections 13.1.1, 13.1.2 and 8.8.3); a value outside it is 400.
CONDITION = {"type": "string", "pattern": CONDITION_PATTERN}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": CONDITION,
            "description": 'the ETag the write is meant for (e.g. `"3"`), a list of them, or `*`; 412 when'
                           " none matches (strong comparison: a weak tag never does; an empty list matches"
                           " nothing)"}
IF_MATCH_READ = {"name": "If-Match", "in": "header", "required": False, "schema": CONDITION,
                 "description": "412 unless it is `*` or names the current ETag (strong comparison: a weak"
                                " tag never matches, and an answer without an ETag matches only `*`)"}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": CONDITION,
                 "description": "304 when it matches the current ETag (weak comparison), or is `*`"}
# The index, this description and the docs page change only with the code that serves them.
UNCHANGING_ETAG = {"required": True, "schema": {"type": "string", "pattern": '^W/"[^"]*"$'},
                   "description": "a weak entity tag: the same while the representation is"}
UNCHANGED = {"304": {"description": "If-None-Match names the ETag: the client's copy is current",
                     "headers": {"ETag": UNCHANGING_ETAG}}}
IF_NONE_MATCH_WRITE = {
    "name": "If-None-Match", "in": "header", "required": False, "schema": CONDITION,
    "description": "412 when it matches the current ETag (weak comparison), or is `*`",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    "description": "a retry with the same key and body within 24 hours gets the first response again",
}
ETAG = {"description": "strong entity tag: the note's version", "required": True, "schema": {"type": "string"}}
PROBLEMS = {
    401: "no token where one is required, or a token that is malformed, unknown, expired or revoked",
    403: "a token of scope read on a write",
    400: "malformed JSON, a body that is not an object or cannot be decoded, a bad query parameter, cursor"
         " or Idempotency-Key, an If-Match or If-None-Match outside RFC 9110's grammar, or Authorization"
         " sent twice",
    404: "no such note, or an id that cannot exist (revisions: no such revision kept; trash: no such note"
         " in the trash)",
    410: "GET /changes: the changes after `since` are no longer kept; read /notes again",
    406: "the Accept header admits neither application/json nor application/problem+json",
    408: "the body did not arrive within the body timeout; the connection is closed",
    409: "a request with the same Idempotency-Key is still being processed",
    412: "If-Match does not match the note's current ETag (strong comparison), or If-None-Match"
         " matches it",
    413: "the body is over the limit (POST /import: --max-import-bytes)",
    417: "an Expect header other than 100-continue",
    415: "the declared Content-Type is not JSON (PATCH: not a JSON merge patch; see Accept-Patch;"
         " POST /import: not application/x-ndjson), or the Content-Encoding is neither gzip nor deflate"
         " (see Accept-Encoding)",
    422: "the body breaks the rules of the note (`errors` lists the first 100 problems, each with its"
         " JSON pointer, and `detail` says how many there were),"
         " or an Idempotency-Key is reused with another body; POST /import: a notes file cut short, altered,"
         " or with lines that break its rules (`errors` gives each `line`)",
    428: "the server requires If-Match on writes (--require-if-match)",
    429: "over this owner's --rate-limit; retry after `Retry-After` seconds",
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
    if parameter.times > 1:
        return {"name": parameter.name, "in": "query", "required": False, "description": parameter.description,
                "schema": {"type": "array", "items": schema, "maxItems": parameter.times},
                "style": "form", "explode": True}
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
                        **_problems(400, 404, 406, 503)}},
            "head": {"operationId": "headNote", "summary": "GET without the body", "parameters": [IF_NONE_MATCH],
                     "responses": {"200": {"description": "as GET", "headers": {"ETag": ETAG}},
                                   "304": {"description": "the client's copy is current"},
                                   **_problems(400, 404, 406, 503)}},
            "put": {"operationId": "replaceNote", "summary": "Replace a note (omitted fields take their defaults)",
                    "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE], "requestBody": _body(JSON),
                    "responses": {**_note(200, "the replaced note"), **_problems(*write)}},
            "patch": {"operationId": "patchNote", "summary": "Change a note with a JSON merge patch (RFC 7396)",
                      "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE],
                      "requestBody": _body(MERGE_PATCH_JSON, JSON, patch=True),
                      "responses": {**_note(200, "the changed note"), **_problems(*write)}},
            "delete": {"operationId": "deleteNote",
                       "summary": "Move a note to the trash (`?purge=true`: delete it for good)",
                       "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE,
                                      *(_query_parameter(p) for p in DELETE_PARAMETERS)],
                       "responses": {"204": {"description": "in the trash (or, with purge, gone for good)",
                                             "links": IN_THE_TRASH},
                                     **_problems(400, 404, 406, 412, 428, 503)}},
        },
        "/": {"get": {"operationId": "index", "summary": "Where to start: links to the docs, the"
                             " description and the notes", "parameters": [IF_NONE_MATCH],
                      "responses": {"200": {
            "description": "links", "headers": {"ETag": UNCHANGING_ETAG}, "content": {JSON: {"schema": {
                "type": "object", "required": ["name", "links"],
                "properties": {"name": {"type": "string"}, "links": {"type": "object"}}}}}},
            **UNCHANGED, **_problems(400, 406)}}},
        "/healthz": {"get": _status("health", "the process is up")},
        "/readyz": {"get": _status("readiness", "the database takes a write", 503)},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This description",
                                  "parameters": [IF_NONE_MATCH],
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "headers": {"ETag": UNCHANGING_ETAG},
                                                        "content": {JSON: {"schema": {"type": "object"}}}},
                                                **UNCHANGED, **_problems(400, 406)}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics of this process",
                             "responses": {"200": {"description": "text exposition format 0.0.4",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/docs": {"get": {"operationId": "docs", "summary": "A human-readable page of this description",
                          "parameters": [IF_NONE_MATCH],
                          "responses": {"200": {"description": "HTML", "headers": {"ETag": UNCHANGING_ETAG},
                                                "content": {"text/html": {}}},
                                        **UNCHANGED, **_problems(400)}}},
        "/problems/{slug}": {
            "parameters": [{"name": "slug", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": list(TYPES)}}],
            "get": {"operationId": "problemType", "summary": "The page explaining a problem type",
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}},
                          **_problems(404)}}},
    }


METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/problems/{slug}"})  # auth.OPEN_ROUTES
PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"},
                               "example": 'Bearer realm="notes", error="invalid_token"'}},
    403: {"WWW-Authenticate": {"required": False, "schema": {"type": "string"},
                               "example": 'Bearer realm="notes", error="insufficient_scope", scope="write"'}},
    409: {"Retry-After": {"required": True, "schema": {"type": "string"}}},
    429: {name: {"required": True, "schema": {"type": "string"}}
          for name in ("Retry-After", "RateLimit-Policy", "RateLimit")},
    503: {"Retry-After": {"required": True, "schema": {"type": "string"}}},
}


def _account_paths() -> dict[str, Any]:
    token_id = {"name": "id", "in": "path", "required": True, "description": "the token's id",
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
    ref = {"$ref": f"{REF}/schemas/Token"}
    return {
        "/me": {"get": {"operationId": "me", "summary": "Whom this request acts for", "responses": {
            "200": {"description": "the owner, and the token (null: `local` without one)",
                    "content": {JSON: {"schema": {"$ref": f"{REF}/schemas/Me"}, "example": {
                        "owner": "alice", "token": {"id": 7, "label": "laptop", "scope": "write",
                                                    "expires_at": None}}}}},
            **_problems(406)}}},
        "/tokens": {
            "get": {"operationId": "listTokens", "summary": "The caller's tokens (never a secret)", "responses": {
                "200": {"description": "the tokens of the caller's owner", "content": {JSON: {"schema": {
                    "type": "object", "required": ["tokens"], "additionalProperties": False,
                    "properties": {"tokens": {"type": "array", "items": ref}}}}}},
                **_problems(406, 503)}},
            "post": {"operationId": "issueToken",
                     "summary": "Issue a token for the caller's owner; its secret is shown this once",
                     "requestBody": {"required": True, "content": {JSON: {
                         "schema": {"$ref": f"{REF}/schemas/TokenRequest"},
                         "example": {"label": "phone", "scope": "read", "expires_in_days": 30}}}},
                     "responses": {"201": {
                         "description": "the token, with `token`: its secret, shown only now",
                         "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
                         "content": {JSON: {"schema": {"$ref": f"{REF}/schemas/IssuedToken"}}}},
                         **_problems(400, 406, 408, 413, 415, 422, 503)}},
        },
        "/tokens/{id}": {
            "parameters": [token_id],
            "get": {"operationId": "getToken", "summary": "One of the caller's tokens (never its secret)",
                    "responses": {"200": {"description": "the token", "content": {JSON: {"schema": ref}}},
                                  **_problems(404, 406, 503)}},
            "delete": {"operationId": "revokeToken", "summary": "Revoke one of the caller's tokens",
                       "responses": {"204": {"description": "revoked: every server refuses it within 5 seconds"},
                                     **_problems(404, 406, 503)}},
        },
    }


NDJSON = "application/x-ndjson"
NOTES_FILE_EXAMPLE = "\n".join((
    '{"kind":"header","format":"notes","version":1,"exported_at":"2026-12-01T10:00:00.000000Z","source":"api"}',
    '{"kind":"owner","name":"alice","created_at":"2026-11-30T09:00:00.000000Z"}',
    '{"kind":"note","owner":"alice","id":7,"title":"note two","description":"sample notes","priority":4,'
    '"tags":["home","work"],"created_by":"apcelent","created_at":"2017-08-23T00:00:00.000000Z",'
    '"updated_at":"2026-11-30T09:05:00.000000Z","version":2}',
    '{"kind":"end","counts":{"owner":1,"token":0,"note":1},"sha256":"<SHA-256 of the lines above>"}',
)) + "\n"


def _transfer_paths() -> dict[str, Any]:
    notes_file = {"schema": {"type": "string"}, "example": NOTES_FILE_EXAMPLE}
    return {
        "/export": {"get": {
            "operationId": "exportNotes", "summary": "The caller's notes as a notes file (JSON Lines), streamed",
            "description": "A header line, the caller's owner line, one line a note (by id), and an end line with"
                           " the counts and the SHA-256 of every line before it: a file without it was cut short.",
            "responses": {"200": {
                "description": "the notes file",
                "headers": {"Content-Disposition": {"required": True, "schema": {"type": "string"},
                                                    "example": 'attachment; filename="notes-alice-20261201.ndjson"'}},
                "content": {NDJSON: notes_file}},
                **_problems(406, 503)}}},
        "/import": {"post": {
            "operationId": "importNotes",
            "summary": "A notes file's notes as new notes of the caller, all of them or none",
            "description": "Each note line becomes a new note of the caller, with a new id, at version 1, its"
                           " content, tags and created_at kept; owner and token lines are read but not"
                           " imported. A file cut short, altered (its end line's SHA-256), or with a line that"
                           " breaks a rule imports nothing: 422 lists every problem (the first 100) by line.",
            "requestBody": {"required": True, "content": {NDJSON: notes_file}},
            "responses": {"200": {"description": "what was imported: each old id with its new one", "content": {
                JSON: {"schema": {
                    "type": "object", "required": ["imported", "ids"], "additionalProperties": False,
                    "properties": {"imported": {"type": "integer", "minimum": 0},
                                   "ids": {"type": "object", "additionalProperties": {"type": "integer"}}}},
                    "example": {"imported": 1, "ids": {"7": 42}}}}},
                **_problems(400, 406, 408, 413, 415, 422, 503)}}},
    }


CHANGES_EXAMPLE = {"changes": [
    {"op": "put", "id": 7, "version": 3, "at": "2026-12-01T10:00:00.000000Z", "note": {
        "id": 7, "title": "note two", "description": "sample notes", "priority": 4, "tags": ["home"],
        "created_by": "apcelent", "created_at": "2017-08-23T00:00:00.000000Z",
        "updated_at": "2026-12-01T10:00:00.000000Z", "version": 3}},
    {"op": "delete", "id": 8, "version": 1, "note": None, "at": "2026-12-01T10:00:01.000000Z"}],
    "next": "1234.57"}
_NOTE_EXAMPLE = CHANGES_EXAMPLE["changes"][0]["note"]  # type: ignore[index]
REVISIONS_EXAMPLE = {"revisions": [_NOTE_EXAMPLE, {**_NOTE_EXAMPLE, "title": "note one", "priority": 2, "version": 2,
                                                   "updated_at": "2026-11-30T09:00:00.000000Z"}],
                     "next_cursor": "2"}
TRASH_EXAMPLE = {"trash": [{**_NOTE_EXAMPLE, "deleted_at": "2026-12-01T11:00:00.000000Z"}], "next_cursor": None}
EVENTS_EXAMPLE = (
    "retry: 1000\n\n"
    'id: 1234.56\ndata: {"op":"put","id":7,"version":3,"note":{...},"at":"2026-12-01T10:00:00.000000Z"}\n\n'
    'id: 1234.57\ndata: {"op":"delete","id":8,"version":1,"note":null,"at":"2026-12-01T10:00:01.000000Z"}\n\n'
    ": keep-alive\n\n"
)


def _patterned(parameter: Any, pattern: str) -> dict[str, Any]:
    """A query parameter; a cursor or token is described by the pattern of what the server makes."""
    described = _query_parameter(parameter)
    if parameter.name in ("cursor", "since"):
        described["schema"] = {"type": "string", "pattern": PATTERNS[pattern]}
    return described


# Where a deleted note went: the trash's operations on it (OpenAPI links, which clients and
# schemathesis's stateful phase follow: a 204 has no body to name them).
IN_THE_TRASH = {
    name: {"operationId": operation, "parameters": {"id": "$request.path.id"}}
    for name, operation in (("GetTrashed", "getTrashed"), ("RestoreFromTrash", "restoreNote"),
                            ("PurgeFromTrash", "purgeNote"))
}


def _history_paths() -> dict[str, Any]:
    version = {"name": "version", "in": "path", "required": True, "description": "the revision's version",
               "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999}}
    page_etag = {"required": True, "schema": {"type": "string", "pattern": '^W/"[^"]*"$'},
                 "description": "a weak entity tag of the page"}
    link = {"description": 'the next page: `<...>; rel="next"`', "schema": {"type": "string"}}

    def page(schema: str, what: str, example: dict[str, Any]) -> dict[str, Any]:
        return {"description": what, "headers": {"ETag": page_etag, "Link": link},
                "content": {JSON: {"schema": {"$ref": f"{REF}/schemas/{schema}"}, "example": example}}}

    unchanged = {"description": "If-None-Match names the page's ETag", "headers": {"ETag": page_etag}}
    restored = _note(200, "the note, at its new version")
    return {
        "/notes/{id}/revisions": {"parameters": [NOTE_ID], "get": {
            "operationId": "listRevisions",
            "summary": "The note's kept revisions (the last --keep-revisions), newest first, a keyset page at a time",
            "parameters": [*(_patterned(p, "revisions cursor") for p in REVISION_PARAMETERS), IF_NONE_MATCH],
            "responses": {"200": page("RevisionPage", "each revision: the note as that version was", REVISIONS_EXAMPLE),
                          "304": unchanged, **_problems(400, 404, 406, 503)}}},
        "/notes/{id}/revisions/{version}": {"parameters": [NOTE_ID, version], "get": {
            "operationId": "getRevision", "summary": "The note as its version `version` was",
            "parameters": [IF_NONE_MATCH],
            "responses": {**_note(200, "the revision"), "304": {
                "description": "the client's copy is current", "headers": {"ETag": ETAG}},
                **_problems(400, 404, 406, 503)}}},
        "/notes/{id}/revisions/{version}/restore": {"parameters": [NOTE_ID, version], "post": {
            "operationId": "restoreRevision",
            "summary": "A new version of the note whose content is this revision's",
            "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE],
            "responses": {**restored, **_problems(400, 404, 406, 412, 428, 503)}}},
        "/trash": {"get": {
            "operationId": "listTrash",
            "summary": "The caller's deleted notes, most recently deleted first, a keyset page at a time;"
                       " each stays --trash-days",
            "parameters": [*(_patterned(p, "trash cursor") for p in TRASH_PARAMETERS), IF_NONE_MATCH],
            "responses": {"200": page("TrashPage", "each note as it was deleted, with `deleted_at`", TRASH_EXAMPLE),
                          "304": unchanged, **_problems(400, 406, 503)}}},
        "/trash/{id}": {"parameters": [NOTE_ID], "get": {
            "operationId": "getTrashed", "summary": "A note in the trash, as it was deleted",
            "parameters": [IF_NONE_MATCH],
            "responses": {"200": {"description": "the note, with `deleted_at`", "headers": {"ETag": ETAG}, "content": {
                JSON: {"schema": {"$ref": f"{REF}/schemas/TrashedNote"}}}},
                "304": {"description": "the client's copy is current", "headers": {"ETag": ETAG}},
                **_problems(400, 404, 406, 503)}},
            "delete": {
            "operationId": "purgeNote", "summary": "Delete a note in the trash for good, with its revisions",
            "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE],
            "responses": {"204": {"description": "gone for good"}, **_problems(400, 404, 406, 412, 428, 503)}}},
        "/trash/{id}/restore": {"parameters": [NOTE_ID], "post": {
            "operationId": "restoreNote",
            "summary": "Bring a note back from the trash under its id, one version on",
            "parameters": [IF_MATCH, IF_NONE_MATCH_WRITE],
            "responses": {**restored, **_problems(400, 404, 406, 412, 503)}}},
        "/changes": {"get": {
            "operationId": "listChanges",
            "summary": "The caller's changes in commit order: JSON, or server-sent events",
            "description": "Every change to a note, each exactly once, in an order a follower can rely on:"
                           " a change never appears before one made before it. Follow with `since` set to"
                           " the `next` of the previous answer. With `Accept: text/event-stream` the changes"
                           " stream as events whose `id` is the token to resume from (Last-Event-ID).",
            "parameters": [*(_patterned(p, "since") for p in CHANGES_PARAMETERS),
                           {"name": "Last-Event-ID", "in": "header", "required": False,
                            "schema": {"type": "string"}, "description": "an event stream's: where to resume"}],
            "responses": {"200": {"description": "changes after `since`, and the token to continue from",
                                  "content": {
                                      JSON: {"schema": {"$ref": f"{REF}/schemas/ChangesPage"},
                                             "example": CHANGES_EXAMPLE},
                                      "text/event-stream": {"schema": {"type": "string"},
                                                            "example": EVENTS_EXAMPLE}}},
                          **_problems(400, 406, 410, 503)}}},
    }


def _history_schemas() -> dict[str, Any]:
    note = {"$ref": f"{REF}/schemas/Note"}
    cursor = {"type": ["string", "null"], "description": "pass as `cursor` for the next page"}
    trashed = schemas.note_output()
    trashed["properties"]["deleted_at"] = {"type": "string", "pattern": schemas.WRITTEN_TIMESTAMP}
    trashed["required"] = [*trashed["required"], "deleted_at"]
    change = {"type": "object", "required": ["op", "id", "version", "note", "at"], "additionalProperties": False,
              "properties": {"op": {"type": "string", "enum": ["put", "delete"]},
                             "id": {"type": "integer", "minimum": 1}, "version": {"type": "integer", "minimum": 1},
                             "note": {"oneOf": [{"type": "null"}, note]},
                             "at": {"type": "string", "pattern": schemas.WRITTEN_TIMESTAMP}}}
    return {
        "RevisionPage": {"type": "object", "required": ["revisions", "next_cursor"], "additionalProperties": False,
                         "properties": {"revisions": {"type": "array", "items": note}, "next_cursor": cursor}},
        "TrashedNote": trashed,
        "TrashPage": {"type": "object", "required": ["trash", "next_cursor"], "additionalProperties": False,
                      "properties": {"trash": {"type": "array", "items": {"$ref": f"{REF}/schemas/TrashedNote"}},
                                     "next_cursor": cursor}},
        "Change": change,
        "ChangesPage": {"type": "object", "required": ["changes", "next"], "additionalProperties": False,
                        "properties": {"changes": {"type": "array", "items": {"$ref": f"{REF}/schemas/Change"}},
                                       "next": {"type": "string", "description": "pass as `since` to continue"}}},
    }


def _token_schemas() -> dict[str, Any]:
    moment = {"type": "string", "pattern": schemas.WRITTEN_TIMESTAMP}
    maybe = {"type": ["string", "null"], "pattern": schemas.WRITTEN_TIMESTAMP}
    scope = {"type": "string", "enum": ["read", "write"]}
    token = {"id": {"type": "integer", "minimum": 1}, "label": {"type": "string", "maxLength": LABEL_MAX},
             "scope": scope, "created_at": moment, "last_used_at": maybe, "expires_at": maybe}
    secret = {"type": "string", "pattern": "^notes_[A-Za-z0-9_-]{43}$"}
    return {
        "Token": {"type": "object", "required": list(token), "additionalProperties": False, "properties": token},
        "IssuedToken": {"type": "object", "required": [*token, "token"], "additionalProperties": False,
                        "properties": {**token, "token": secret}},
        "TokenRequest": {"type": "object", "additionalProperties": False, "properties": {
            "label": {"type": "string", "maxLength": LABEL_MAX, "pattern": LABEL_PATTERN, "default": ""},
            "scope": {**scope, "description": "default: the scope of the caller's token"},
            "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_DAYS,
                                "description": "null or left out: never expires"}}},
        "Me": {"type": "object", "required": ["owner", "token"], "additionalProperties": False, "properties": {
            "owner": {"type": "string"},
            "token": {"oneOf": [{"type": "null"}, {
                "type": "object", "required": ["id", "label", "scope", "expires_at"], "additionalProperties": False,
                "properties": {k: token[k] for k in ("id", "label", "scope", "expires_at")}}]}}},
    }


def _complete(paths: dict[str, Any]) -> dict[str, Any]:
    """HEAD wherever there is GET, and OPTIONS everywhere, as the router adds them."""
    for path, item in paths.items():
        if "get" in item and "head" not in item:
            get = item["get"]
            item["head"] = {"operationId": f"{get['operationId']}Head", "summary": "GET without the body",
                            "responses": {status: {k: v for k, v in answer.items() if k != "content"}
                                          for status, answer in get["responses"].items()}}
            headers = [p for p in get.get("parameters", ()) if p["in"] == "header"]
            if headers:  # If-None-Match: a 304 to HEAD as to GET
                item["head"]["parameters"] = headers
        allowed = [*(m.upper() for m in METHODS if m in item), "OPTIONS"]
        item["options"] = _options(", ".join(sorted(set(allowed))), templated="{" in path)
        open_route = path in OPEN_PATHS
        for method in METHODS:  # every route answers an unknown expectation alike
            if method not in item:
                continue
            operation = item[method]
            operation["responses"].update(_problems(417))
            if method in ("get", "head"):  # the pipeline judges If-Match on every read alike
                operation["parameters"] = [*operation.get("parameters", ()), IF_MATCH_READ]  # lists are shared
                operation["responses"].update(_problems(400, 412))
            if open_route or (method == "options" and not templated_get(item, path, paths)):
                operation["security"] = []  # no token needed
            else:  # what authentication answers (auth.py)
                operation["responses"].update(_problems(400, 401, 429))
                if method not in ("get", "head", "options"):
                    operation["responses"].update(_problems(403))
    return paths


def templated_get(item: dict[str, Any], path: str, paths: dict[str, Any]) -> bool:
    """OPTIONS on a path with parameters stands for GET (a 404 when it finds nothing), and on an
    action (`.../restore`) for the GET of the resource it acts on: it needs a token as GET does.
    Elsewhere it only lists the methods (routing.get_behind_options)."""
    if "get" not in item and path.endswith("/restore"):
        item = paths.get(path.removesuffix("/restore"), {})
    return "get" in item and any(p.get("in") == "path" for p in item.get("parameters", []))


def _options(allow: str, *, templated: bool) -> dict[str, Any]:
    """OPTIONS, as the pipeline answers it; on a path with parameters, what GET answers there when
    nothing is found (a CORS preflight excepted: it is always 204)."""
    answers = {"204": {"description": "no content", "headers": {
        "Allow": {"required": True, "schema": {"type": "string"}, "example": allow}}}}
    if templated:
        return {"summary": "The methods this resource allows; 404, as GET, when there is none",
                "responses": {**answers, **_problems(404)}}
    return {"summary": "The methods this resource allows", "responses": answers}


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
        headers = dict(PROBLEM_HEADERS.get(status, {}))
        responses[f"Problem{status}"] = {
            "description": f"{reason(status)}: {detail}", "headers": headers,
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"{REF}/schemas/Problem"}}}}
    return {
        "schemas": {"NoteInput": schemas.note_input(), "NotePatch": schemas.note_input(patch=True),
                    "Note": schemas.note_output(), "NotePage": page, "Problem": schemas.problem(),
                    **_token_schemas(), **_history_schemas()},
        "responses": responses,
        "securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer", "bearerFormat": "notes_ and 43 base64url characters",
            "description": "a token from `notes-api tokens issue OWNER` or POST /tokens. With --auth local (or"
                           " auto while the server listens on loopback only), a request without one acts"
                           " for the owner `local`."}},
    }


def build_openapi(settings: HttpSettings, *, token_optional: bool = False) -> dict[str, Any]:
    """The description; with `token_optional` (auth local) a request may also come without a token."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Notes API", "version": "1.0.0",
                 "description": "Notes: create, read, list, search, replace, patch and delete. "
                                "Every error is application/problem+json (RFC 9457)."},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "security": [{"bearerAuth": []}, {}] if token_optional else [{"bearerAuth": []}],
        "paths": _complete({**_paths(), **_history_paths(), **_account_paths(), **_transfer_paths()}),
        "components": _components(settings),
    }
