"""schemathesis hooks (SCHEMATHESIS_HOOKS=this file): the two values no client makes up.

- A listing `cursor` is issued by the server, signed, and bound to the listing's filters and sort,
  so a generated string that the schema allows is still not a cursor (400, as API.md wants). Such
  a cursor is replaced by a real one for that very query (and owner: `local`, as the requests
  carry no token): the other parameters are read by the service's own listing code, and the
  cursor is signed with the secret the test gave the server (NOTES_CURSOR_SECRET, its
  --cursor-secret). A cursor the schema forbids, or a real one already, is sent as it is.
- An `Idempotency-Key` reused with another body is 422 (the IETF idempotency-key draft), and
  schemathesis draws keys from a small space: each request gets a key of its own, the generated
  one with a unique suffix. A key the schema forbids is sent as generated.
- A long poll (`GET /changes?wait=`) answers when a change comes or its wait is up, which may be
  a minute, past schemathesis's 10-second limit on a response: a valid wait is cut to 1 second
  (what it waits for is tested in tests/http/test_history.py). An invalid one is sent as it is.

`before_call` is the one hook that every phase runs (examples, coverage, fuzzing, stateful), just
before the request; schemathesis then re-reads whether the case is still valid for the schema.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests
import schemathesis
from multidict import MultiDict
from schemathesis.transport.requests import prepare_query
from yarl import URL

from app.domain.owners import LOCAL
from app.domain.query import SortField, SortKey
from app.entrypoints.http.listing import PARAMETERS, CursorCodec, parse_list_query
from app.entrypoints.http.problems import ProblemError

CURSORS = CursorCodec(os.environ["NOTES_CURSOR_SECRET"])
# Whom the requests act for: the owner of the test's token, or `local` when they carry none.
OWNER = os.environ.get("NOTES_TEST_OWNER", LOCAL)
# The test's own token: a generated DELETE /tokens/{id} must not revoke it mid-run.
OWN_TOKEN_ID = os.environ.get("NOTES_TEST_TOKEN_ID")
CURSOR_RULE = next(p.rule for p in PARAMETERS if p.name == "cursor")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # the schema's pattern
MAX_WAIT = 60  # the schema's maximum of `wait`: above it, a 400 the check expects
_KEYS = itertools.count(1)
_RUN = os.urandom(4).hex()  # keys stay unique across runs against one store, too


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    path_parameters = case.path_parameters
    if (OWN_TOKEN_ID is not None and case.path.startswith("/tokens/") and case.method == "DELETE"
            and isinstance(path_parameters, MutableMapping) and str(path_parameters.get("id")) == OWN_TOKEN_ID):
        path_parameters["id"] = int(OWN_TOKEN_ID) + 1_000_000  # another id nobody has
    if case.path == "/notes" and isinstance(case.query, MutableMapping) and "cursor" in case.query:
        real = _real_cursor(case)
        if real is not None:
            case.query["cursor"] = real
    if case.path == "/changes" and isinstance(case.query, MutableMapping):
        wait = case.query.get("wait")
        if isinstance(wait, int) and not isinstance(wait, bool) and 1 < wait <= MAX_WAIT:
            case.query["wait"] = 1
    if isinstance(case.headers, MutableMapping):  # case-insensitive
        key = case.headers.get("Idempotency-Key")
        if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
            suffix = f"-{_RUN}-{next(_KEYS)}"
            case.headers["Idempotency-Key"] = key[: 255 - len(suffix)] + suffix


def _real_cursor(case: Any) -> str | None:
    """A cursor the server issues for this query, or None to send the generated one."""
    generated = case.query["cursor"]
    if not isinstance(generated, str) or not _allowed(generated):
        return None
    params = _sent_query(case)
    if params is None or len(params.getall("cursor", [])) != 1:
        return None
    del params["cursor"]
    try:
        query = parse_list_query(params, CURSORS, OWNER)
    except ProblemError:  # another parameter is wrong: the answer is 400 whatever the cursor
        return None
    try:
        CURSORS.decode(OWNER, generated, query)
    except ProblemError:
        return CURSORS.encode(OWNER, query, _position(query.sort.field, generated))
    return None  # a real cursor already, as a stateful link passes on a page's next_cursor


def _allowed(cursor: str) -> bool:
    problems: list[str] = []
    CURSOR_RULE.check(cursor, lambda detail, *_: problems.append(detail))
    return not problems


def _sent_query(case: Any) -> MultiDict[str] | None:
    """The query string as the transport sends it, read as the server reads it."""
    try:
        url = requests.Request("GET", "http://notes.invalid/notes", params=prepare_query(case)).prepare().url
    except (ValueError, TypeError, requests.RequestException):
        return None
    return MultiDict(URL(str(url)).query)


def _position(field: SortField, seed: str) -> SortKey:
    """A position in the listing, varied by the generated text: any sort key is a valid one."""
    number = int.from_bytes(hashlib.blake2b(seed.encode(errors="surrogatepass")).digest()[:4], "big")
    note_id = number % 1000 + 1
    match field:
        case SortField.ID:
            return (note_id, note_id)
        case SortField.PRIORITY:
            return (number % 11, note_id)
        case SortField.TITLE:
            return (seed, note_id)
    return (datetime(2017, 8, 23, tzinfo=UTC) + timedelta(microseconds=number * 997), note_id)


@schemathesis.serializer("application/x-ndjson")
def notes_file(ctx: Any, value: Any) -> bytes:
    """The body of POST /import is a notes file, which the schema gives as one string: its text
    goes as it is (anything else generated, as JSON), and the server checks it line by line."""
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


@schemathesis.deserializer("application/x-ndjson")
def notes_file_answer(ctx: Any, response: Any) -> str:
    """GET /export's notes file, checked against its schema (a string) as the text it is."""
    return response.content.decode()
