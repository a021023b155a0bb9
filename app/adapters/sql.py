"""SQL that both SQL adapters share: the columns of a note and the listing's keyset query.

The listing is assembled from fixed fragments, one per filter in use; each dialect supplies its
placeholders and the forms where the two stores differ (tags, search terms, timestamps). Values
always travel as parameters, and the drivers' statement caches prepare each shape once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from app.domain.errors import IdempotencyKeyReusedError
from app.domain.query import ListQuery, SortField

NOTE_COLUMNS = "id, title, description, priority, tags, created_by, created_at, updated_at, version"
SELECT_NOTES = f"SELECT {NOTE_COLUMNS} FROM notes"
SORT_COLUMNS = {
    SortField.ID: "id",
    SortField.CREATED_AT: "created_at",
    SortField.UPDATED_AT: "updated_at",
    SortField.PRIORITY: "priority",
    SortField.TITLE: "title_key",  # the domain's collation key, compared as bytes
}

Arg = Callable[[Any], str]  # adds a parameter, returns its placeholder


class Dialect(Protocol):
    def placeholder(self, position: int) -> str: ...

    def timestamp(self, moment: datetime) -> Any: ...

    def all_tags(self, owner: str, tags: Sequence[str], arg: Arg) -> str: ...

    def all_terms(self, terms: Sequence[str], arg: Arg) -> list[str]: ...


Statement = tuple[str, list[Any]]  # SQL, and its parameters with the LIMIT last


def list_statement(owner: str, query: ListQuery, dialect: Dialect) -> Statement:
    """One listing page of `owner` as one statement: a row-value keyset, `(key, id) > (:key, :id)`."""
    if query.after is None or query.sort.field is SortField.ID:
        return _statement(owner, query, dialect, "after")
    return _statement(owner, query, dialect, "row")


def split_list_statements(owner: str, query: ListQuery, dialect: Dialect) -> list[Statement]:
    """The same page as two statements to run in order, in one snapshot: the notes that tie with
    the last key (by id), then those beyond it. SQLite seeks its (key, id) index on a row value
    by the key alone, so a page after a key with many ties (a priority) would step over all of
    them; each half here is a direct seek."""
    if query.after is None or query.sort.field is SortField.ID:
        return [_statement(owner, query, dialect, "after")]
    return [_statement(owner, query, dialect, "tie"), _statement(owner, query, dialect, "beyond")]


def _statement(owner: str, query: ListQuery, dialect: Dialect, keyset: str) -> Statement:
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return dialect.placeholder(len(args))

    where = [f"owner = {arg(owner)}", *_filters(owner, query, dialect, arg)]  # the owner first, always
    column = SORT_COLUMNS[query.sort.field]
    direction, beyond = ("DESC", "<") if query.sort.descending else ("ASC", ">")
    if query.after is not None:
        key, note_id = query.after
        bound = dialect.timestamp(key) if isinstance(key, datetime) else key
        where.append({
            "after": lambda: f"id {beyond} {arg(note_id)}",
            "row": lambda: f"({column}, id) {beyond} ({arg(bound)}, {arg(note_id)})",
            "tie": lambda: f"{column} = {arg(bound)} AND id {beyond} {arg(note_id)}",
            "beyond": lambda: f"{column} {beyond} {arg(bound)}",
        }[keyset]())
    order = f"{column} {direction}" if column == "id" else f"{column} {direction}, id {direction}"
    return f"{SELECT_NOTES} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {arg(query.limit)}", args


def _filters(owner: str, query: ListQuery, dialect: Dialect, arg: Arg) -> list[str]:
    f = query.filter
    where: list[str] = []
    if f.tags:
        where.append(dialect.all_tags(owner, sorted(f.tags), arg))
    for column, operator, value in (
        ("created_by", "=", f.created_by),
        ("priority", "=", f.priority),
        ("priority", ">=", f.min_priority),
        ("priority", "<=", f.max_priority),
    ):
        if value is not None:
            where.append(f"{column} {operator} {arg(value)}")
    for column, operator, moment in (
        ("created_at", ">=", f.created_after),
        ("created_at", "<", f.created_before),
        ("updated_at", ">=", f.updated_after),
        ("updated_at", "<", f.updated_before),
    ):
        if moment is not None:
            where.append(f"{column} {operator} {arg(dialect.timestamp(moment))}")
    if f.terms:
        where.extend(dialect.all_terms(f.terms, arg))
    return where


def recorded_outcome(key: str, fingerprint: str, row: Sequence[Any] | None) -> bytes | None:
    """The outcome of a (fingerprint, outcome) row of `idempotency_records`, for a claim of `key`
    with `fingerprint`: None for no row, and a refusal for a row of another request body."""
    if row is None:
        return None
    if row[0] != fingerprint:
        raise IdempotencyKeyReusedError(key)
    return bytes(row[1])
