"""The listing's query string and its cursors.

A cursor is the sort key of the last note of a page, bound to the filters and sort it was made
with, behind a keyed BLAKE2b tag. Any change to it, or its replay with other filters or another
sort, is a 400. The tag makes cursors tamper-evident; it does not make them secret, and a cursor
only ever names a position in a listing the client may read anyway. Processes that share a
database should share `--cursor-secret` so that a cursor from one works on all of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from multidict import MultiDictProxy

from app.domain.query import ListQuery, NoteFilter, Sort, SortField, SortKey
from app.domain.rules import CREATED_BY_MAX, PRIORITY_MAX, PRIORITY_MIN, TAG_MAX, TAGS_MAX
from app.domain.timestamps import from_microseconds, parse_timestamp, to_microseconds
from app.entrypoints.http.problems import bad_request

LIMIT_MAX, LIMIT_DEFAULT, Q_MAX = 500, 50, 500
_SORTS = {str(s): s for f in SortField for s in (Sort(f), Sort(f, descending=True))}
_TIME_FIELDS = (SortField.CREATED_AT, SortField.UPDATED_AT)


class QueryProblems:
    """Collects every bad parameter, then reports them together, each by name."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, parameter: str, detail: str) -> None:
        self.errors.append({"parameter": parameter, "detail": detail})

    def raise_if_any(self) -> None:
        if self.errors:
            names = ", ".join(sorted({e["parameter"] for e in self.errors}))
            raise bad_request("invalid-query", f"bad query parameter: {names}", errors=self.errors)


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise ValueError(f"must be an integer from {low} to {high}")
        return int(text)

    return parse


def _text(high: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not 1 <= len(text) <= high or "\x00" in text:
            raise ValueError(f"must be 1 to {high} characters long")
        return text

    return parse


def _tag(text: str) -> str:
    if not 1 <= len(text) <= TAG_MAX or "," in text or any(c.isspace() or c == "\x00" for c in text):
        raise ValueError(f"must be a tag: 1 to {TAG_MAX} characters, no whitespace or commas")
    return text


def _sort(text: str) -> Sort:
    try:
        return _SORTS[text]
    except KeyError:
        raise ValueError(f"must be one of {', '.join(_SORTS)}") from None


def _terms(text: str) -> tuple[str, ...]:
    if len(text) > Q_MAX or "\x00" in text:
        raise ValueError(f"must be at most {Q_MAX} characters")
    return tuple(dict.fromkeys(term.casefold() for term in text.split()))


_priority = _integer(PRIORITY_MIN, PRIORITY_MAX)
_SINGLE: dict[str, Callable[[str], Any]] = {
    "limit": _integer(1, LIMIT_MAX),
    "cursor": str,
    "sort": _sort,
    "q": _terms,
    "created_by": _text(CREATED_BY_MAX),
    "priority": _priority,
    "min_priority": _priority,
    "max_priority": _priority,
    "created_after": parse_timestamp,
    "created_before": parse_timestamp,
    "updated_after": parse_timestamp,
    "updated_before": parse_timestamp,
}
PARAMETERS = (*_SINGLE, "tag")
_FILTERS = tuple(name for name in _SINGLE if name not in ("limit", "cursor", "sort", "q"))


def parse_list_query(params: MultiDictProxy[str], cursors: CursorCodec) -> ListQuery:
    """The ListQuery a query string asks for; a 400 naming every bad parameter otherwise."""
    problems = QueryProblems()
    values: dict[str, Any] = {}
    for name in params.keys() - set(PARAMETERS):
        problems.add(name, f"is not a parameter of this listing; known: {', '.join(PARAMETERS)}")
    for name, parse in _SINGLE.items():
        given = params.getall(name, [])
        if len(given) > 1:
            problems.add(name, "may be given only once")
        elif given:
            try:
                values[name] = parse(given[0])
            except ValueError as error:
                problems.add(name, str(error))
    tags = params.getall("tag", [])
    for tag in tags:
        try:
            _tag(tag)
        except ValueError as error:
            problems.add("tag", str(error))
    if len(set(tags)) > TAGS_MAX:
        problems.add("tag", f"may name at most {TAGS_MAX} tags (a note carries no more)")
    problems.raise_if_any()
    query = ListQuery(
        filter=NoteFilter(
            tags=frozenset(tags),
            terms=values.get("q", ()),
            **{name: values[name] for name in _FILTERS if name in values},
        ),
        sort=values.get("sort", Sort()),
        limit=values.get("limit", LIMIT_DEFAULT),
    )
    if "cursor" in values:
        return ListQuery(
            filter=query.filter, sort=query.sort, limit=query.limit,
            after=cursors.decode(values["cursor"], query),
        )
    return query


class CursorCodec:
    """Encodes and checks keyset cursors (see the module's docstring)."""

    VERSION = 1

    def __init__(self, secret: str) -> None:
        self._key = hashlib.blake2b(secret.encode()).digest()[:32]

    def encode(self, query: ListQuery, after: SortKey) -> str:
        value, note_id = after
        if isinstance(value, datetime):
            value = to_microseconds(value)
        payload = orjson.dumps([self.VERSION, value, note_id])
        return base64.urlsafe_b64encode(payload + self._tag(query, payload)).rstrip(b"=").decode()

    def decode(self, cursor: str, query: ListQuery) -> SortKey:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        payload, tag = raw[:-16], raw[-16:]
        if len(raw) <= 16 or not hmac.compare_digest(tag, self._tag(query, payload)):
            raise bad_request(
                "invalid-cursor",
                "cursor: not a cursor of this listing (changed, or made with other filters or sort)",
                errors=[{"parameter": "cursor", "detail": "is not valid for this listing"}],
            )
        version, value, note_id = orjson.loads(payload)
        if query.sort.field in _TIME_FIELDS:
            value = from_microseconds(value)
        return (value, note_id)

    def _tag(self, query: ListQuery, payload: bytes) -> bytes:
        mac = hashlib.blake2b(key=self._key, digest_size=16)
        mac.update(_fingerprint(query))
        mac.update(payload)
        return mac.digest()


def _fingerprint(query: ListQuery) -> bytes:
    """The filters and sort of a listing, canonically: a cursor is valid only for these."""
    f = query.filter

    def moment(value: datetime | None) -> int | None:
        return None if value is None else to_microseconds(value)

    return orjson.dumps([
        str(query.sort), sorted(f.tags), f.created_by, f.priority, f.min_priority, f.max_priority,
        moment(f.created_after), moment(f.created_before),
        moment(f.updated_after), moment(f.updated_before), list(f.terms),
    ])
