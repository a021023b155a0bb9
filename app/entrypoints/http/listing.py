"""The listing's query string and its cursors.

A cursor is the sort key of the last note of a page, bound to the owner, filters and sort it was
made with, behind a keyed BLAKE2b tag. Any change to it, or its replay with other filters or another
sort, is a 400. The key is a random secret kept in the store (or `--cursor-secret`), so every
process of a deployment accepts the cursors of the others and no one outside can make one. The
tag makes cursors tamper-evident, not secret: a cursor only names a position in a listing the
client may read anyway; and whatever a cursor says, a content that cannot be a position is a 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from app.domain.query import ListQuery, NoteFilter, Sort, SortField, SortKey
from app.domain.rules import FIELDS, TAG, Integer, Rule, Text, Timestamp
from app.domain.rules import TAGS as TAGS_RULE
from app.domain.timestamps import from_microseconds, to_microseconds
from app.entrypoints.http.problems import ProblemError, bad_request

LIMIT_DEFAULT = 50
SORTS = {str(s): s for f in SortField for s in (Sort(f), Sort(f, descending=True))}
_TIME_FIELDS = (SortField.CREATED_AT, SortField.UPDATED_AT)


@dataclass(frozen=True, slots=True)
class Choice:
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Parameter:
    """One query parameter: its rule both parses it here and describes it in the OpenAPI spec."""

    name: str
    rule: Rule | Choice
    description: str
    times: int = 1  # how often it may be given; more than once makes it an array (of maxItems `times`)


_PRIORITY = FIELDS["priority"]
_TAGS = TAGS_RULE
PARAMETERS = (
    Parameter("limit", Integer(1, 500), f"notes per page; default {LIMIT_DEFAULT}"),
    Parameter("cursor", Text(1, 2000), "the next_cursor of the previous page, unchanged"),
    Parameter("sort", Choice(tuple(SORTS)), "order of the notes, `-` for descending; ties by id; default id"),
    Parameter(
        "q", Text(0, 500), "whitespace-separated terms; each must occur, ignoring case, in the title or the description"
    ),
    Parameter("tag", TAG, f"the note must carry every tag given (at most {_TAGS.max_items}: a note carries no more)",
              times=_TAGS.max_items),
    Parameter("created_by", Text(1, 100), "exact match"),
    Parameter("priority", _PRIORITY, "exact match"),
    Parameter("min_priority", _PRIORITY, "inclusive"),
    Parameter("max_priority", _PRIORITY, "inclusive"),
    Parameter("created_after", Timestamp(), "inclusive"),
    Parameter("created_before", Timestamp(), "exclusive"),
    Parameter("updated_after", Timestamp(), "inclusive"),
    Parameter("updated_before", Timestamp(), "exclusive"),
)
_FILTERS = (
    "created_by",
    "priority",
    "min_priority",
    "max_priority",
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
)


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


def _parse(parameter: Parameter, text: str, problems: QueryProblems) -> Any:
    """A query value by its parameter's rule; the rule's own checks name what is wrong."""
    failed: list[str] = []
    rule = parameter.rule
    if isinstance(rule, Choice):
        if text not in rule.values:
            failed.append(f"must be one of {', '.join(rule.values)}")
        value: Any = text
    elif isinstance(rule, Integer):
        value = _integer(text, rule)
        rule.check(value, lambda detail, *_: failed.append(detail))
    else:
        value = rule.check(text, lambda detail, *_: failed.append(detail))
    for detail in failed:
        problems.add(parameter.name, detail)
    return None if failed else value


def _integer(text: str, rule: Integer) -> int | str:
    """A decimal integer as the rule reads it: one too long to parse is out of its range (Python
    refuses to convert a string of over 4,300 digits), and anything else stays text."""
    digits = text[1:] if text[:1] == "-" else text
    if not (digits.isascii() and digits.isdigit()):
        return text
    if len(digits) > 18:
        return rule.minimum - 1 if text[:1] == "-" else rule.maximum + 1
    return int(text)


def parse_parameters(params: MultiMapping[str], parameters: Sequence[Parameter]) -> dict[str, Any]:
    """The values of `parameters` in a query string, by name (those given only); a 400 naming
    every unknown, repeated or bad parameter otherwise."""
    problems = QueryProblems()
    values: dict[str, Any] = {}
    known = [p.name for p in parameters]
    for name in params.keys() - set(known):
        problems.add(name, f"is not a parameter of this resource; known: {', '.join(known) or 'none'}")
    for parameter in parameters:
        given = params.getall(parameter.name, [])
        if len(given) > parameter.times:
            times = "only once" if parameter.times == 1 else f"at most {parameter.times} times"
            problems.add(parameter.name, f"may be given {times}")
        elif given:
            parsed = [_parse(parameter, text, problems) for text in given]
            values[parameter.name] = parsed if parameter.times > 1 else parsed[0]
    problems.raise_if_any()
    return values


def no_parameters(request: web.Request) -> None:
    """For a resource that takes no query parameter: a 400 naming any that came, rather than an
    answer that ignores what the client asked for (`POST /import?on_conflict=replace`)."""
    if request.query_string:  # most requests carry none: one cached property read
        parse_parameters(request.query, ())


def parse_list_query(params: MultiMapping[str], cursors: CursorCodec, owner: str) -> ListQuery:
    """The ListQuery a query string of `owner` asks for; a 400 naming every bad parameter otherwise."""
    values = parse_parameters(params, PARAMETERS)
    tags = set(values.get("tag", ()))
    query = ListQuery(
        filter=NoteFilter(
            tags=frozenset(tags),
            terms=tuple(dict.fromkeys(t.casefold() for t in values.get("q", "").split())),
            **{name: values[name] for name in _FILTERS if name in values},
        ),
        sort=SORTS[values.get("sort", "id")],
        limit=values.get("limit", LIMIT_DEFAULT),
    )
    if "cursor" in values:
        return replace(query, after=cursors.decode(owner, values["cursor"], query))
    return query


class CursorCodec:
    """Encodes and checks keyset cursors (see the module's docstring)."""

    VERSION = 1

    def __init__(self, secret: str) -> None:
        self._key = hashlib.blake2b(secret.encode()).digest()[:32]

    def encode(self, owner: str, query: ListQuery, after: SortKey) -> str:
        value, note_id = after
        if isinstance(value, datetime):
            value = to_microseconds(value)
        payload = orjson.dumps([self.VERSION, value, note_id])
        return base64.urlsafe_b64encode(payload + self._tag(owner, query, payload)).rstrip(b"=").decode()

    def decode(self, owner: str, cursor: str, query: ListQuery) -> SortKey:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        payload, tag = raw[:-16], raw[-16:]
        if len(raw) <= 16 or not hmac.compare_digest(tag, self._tag(owner, query, payload)):
            raise _invalid_cursor()
        try:
            return _position(orjson.loads(payload), query.sort.field)
        except (ValueError, TypeError, OverflowError):  # signed, yet impossible: still only a 400
            raise _invalid_cursor() from None

    def _tag(self, owner: str, query: ListQuery, payload: bytes) -> bytes:
        mac = hashlib.blake2b(key=self._key, digest_size=16)
        mac.update(orjson.dumps(owner))  # another owner's cursor is no cursor of this listing
        mac.update(_fingerprint(query))
        mac.update(payload)
        return mac.digest()


def _invalid_cursor() -> ProblemError:
    return bad_request(
        "invalid-cursor",
        "cursor: not a cursor of this listing (changed, or made with other filters or sort)",
        errors=[{"parameter": "cursor", "detail": "is not valid for this listing"}],
    )


_ID_MAX = 2**63 - 1


def _position(content: Any, field: SortField) -> SortKey:
    """The sort key a cursor's content names; ValueError or TypeError when it cannot be one."""
    version, value, note_id = content
    if version != CursorCodec.VERSION or type(note_id) is not int or not 0 < note_id <= _ID_MAX:
        raise ValueError("not a position")
    if field is SortField.TITLE:
        if type(value) is not str:
            raise TypeError("a title key is text")
        return (value, note_id)
    if type(value) is not int or abs(value) > _ID_MAX:
        raise TypeError("an integer key")
    return (from_microseconds(value) if field in _TIME_FIELDS else value, note_id)


def _fingerprint(query: ListQuery) -> bytes:
    """The filters and sort of a listing, canonically: a cursor is valid only for these."""
    f = query.filter

    def moment(value: datetime | None) -> int | None:
        return None if value is None else to_microseconds(value)

    return orjson.dumps(
        [
            str(query.sort),
            sorted(f.tags),
            f.created_by,
            f.priority,
            f.min_priority,
            f.max_priority,
            moment(f.created_after),
            moment(f.created_before),
            moment(f.updated_after),
            moment(f.updated_before),
            list(f.terms),
        ]
    )
