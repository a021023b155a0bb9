"""Conditional request headers (RFC 9110, section 13): If-Match and If-None-Match."""

from __future__ import annotations

import re

from app.domain.model import Note
from app.domain.services import IfMatch

_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')


def _tags(header: str) -> list[tuple[bool, str]]:
    """(weak, opaque-tag) pairs of an entity-tag list; what does not parse matches nothing."""
    return [(bool(m.group(1)), m.group(2)) for m in _ENTITY_TAG.finditer(header)]


def parse_if_match(header: str | None) -> IfMatch | None:
    """If-Match uses the strong comparison: a weak tag never matches."""
    if header is None:
        return None
    if header.strip() == "*":
        return IfMatch(any=True)
    versions = {int(tag) for weak, tag in _tags(header) if not weak and tag.isascii() and tag.isdigit()}
    return IfMatch(frozenset(versions))


def none_match(header: str | None, note: Note) -> bool:
    """True when If-None-Match matches the note (weak comparison): the client's copy is current."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    current = note.etag[1:-1]
    return any(tag == current for _weak, tag in _tags(header))
