"""Entity tags and conditional requests (RFC 9110, sections 8.8.3 and 13).

A note's ETag is its version in quotes: `"3"`. A tag in a header matches it only when it is
that text exactly (strong comparison, section 8.8.3.2): `"03"` or `"3 "` name no version.
"""

from __future__ import annotations

import re

from app.domain.model import Note
from app.domain.services import Precondition, Versions

_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')
_VERSION_DIGITS = 19  # a version is a 64-bit integer at most


def etag(note: Note) -> str:
    """A strong entity tag: it changes exactly when the note changes."""
    return f'"{note.version}"'


def _tags(header: str) -> list[tuple[bool, str]]:
    """(weak, opaque-tag) pairs of an entity-tag list; what does not parse matches nothing."""
    return [(bool(m.group(1)), m.group(2)) for m in _ENTITY_TAG.finditer(header)]


def _version(tag: str) -> int | None:
    """The version an opaque tag names, if it is one this server makes: decimal digits without
    a leading zero (the canonical form, so the comparison is character for character)."""
    if tag.isascii() and tag.isdigit() and len(tag) <= _VERSION_DIGITS and (tag == "0" or tag[0] != "0"):
        return int(tag)
    return None


def _versions(header: str, *, strong_only: bool) -> Versions:
    if header.strip() == "*":
        return Versions(any=True)
    found = (_version(tag) for weak, tag in _tags(header) if not (weak and strong_only))
    return Versions(frozenset(v for v in found if v is not None))


def precondition(if_match: str | None, if_none_match: str | None) -> Precondition:
    """The precondition of a write: If-Match compares strongly (a weak tag never matches),
    If-None-Match weakly (section 13.1.2)."""
    return Precondition(
        match=None if if_match is None else _versions(if_match, strong_only=True),
        none_match=None if if_none_match is None else _versions(if_none_match, strong_only=False),
    )


def none_match(header: str | None, note: Note) -> bool:
    """True when If-None-Match matches the note (weak comparison): the client's copy is current."""
    if header is None:
        return False
    return note in _versions(header, strong_only=False)


def page_not_modified(header: str | None, page_etag: str) -> bool:
    """True when If-None-Match names this page's weak tag (or `*`): weak comparison."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    tag = page_etag[3:-1]  # W/"...": the opaque part
    return any(opaque == tag for _weak, opaque in _tags(header))
