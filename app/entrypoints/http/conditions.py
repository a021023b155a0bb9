"""Entity tags and conditional requests (RFC 9110, sections 8.8.3 and 13).

A note's ETag is its version in quotes: `"3"`. A tag in a header matches it only when it is
that text exactly (strong comparison, section 8.8.3.2): `"03"` or `"3 "` name no version.
If-Match and If-None-Match follow the RFC's grammar, or the request is a 400: a condition the
server cannot read is never guessed at (`3` for `"3"` would otherwise fail as a mismatch, or let
a write through that was meant to be conditional).
"""

from __future__ import annotations

import base64
import hashlib
import re

from app.domain.model import Note
from app.domain.services import Precondition, Versions
from app.entrypoints.http.problems import ProblemError

IF_MATCH, IF_NONE_MATCH = "If-Match", "If-None-Match"

# If-Match and If-None-Match = "*" / #entity-tag (sections 13.1.1 and 13.1.2), where
# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE and etagc = %x21 / %x23-7E / obs-text (8.8.3), and
# a list may hold empty elements (5.6.1.2): an empty field value is an empty list, which matches
# nothing. obs-text is a byte over 0x7F: aiohttp decodes it to some code point over 0x7F.
_OPAQUE_BYTES = r"\x21\x23-\x7e\x80-\xff"
_LIST = r'(?:(?:W/)?"[{c}]*")?(?:[ \t]*,[ \t]*(?:(?:W/)?"[{c}]*")?)*'
CONDITION_PATTERN = "^(?:\\*|" + _LIST.format(c=_OPAQUE_BYTES) + ")$"  # for the OpenAPI description
_CONDITION = re.compile(_LIST.format(c=r"\x21\x23-\x7e\x80-\U0010ffff"))
_ENTITY_TAG = re.compile(r'(W/)?"([^"]*)"')  # in a list that matched _CONDITION
_VERSION_DIGITS = 19  # a version is a 64-bit integer at most


def etag(note: Note) -> str:
    """A strong entity tag: it changes exactly when the note changes."""
    return f'"{note.version}"'


def _tags(name: str, header: str) -> list[tuple[bool, str]] | None:
    """The (weak, opaque-tag) pairs of a condition, or None for `*`; a 400 when it is neither."""
    value = header.strip(" \t")
    if value == "*":
        return None
    if _CONDITION.fullmatch(value) is None:
        # Not echoed: a client may put anything there.
        detail = 'is not * or a list of entity tags in double quotes, such as "3" or W/"3"'
        raise ProblemError(
            400, f"{name} {detail} (RFC 9110, section 8.8.3)", slug="invalid-precondition",
            errors=[{"parameter": name, "detail": detail}],
        )
    return [(bool(m.group(1)), m.group(2)) for m in _ENTITY_TAG.finditer(value)]


def _version(tag: str) -> int | None:
    """The version an opaque tag names, if it is one this server makes: decimal digits without
    a leading zero (the canonical form, so the comparison is character for character)."""
    if tag.isascii() and tag.isdigit() and len(tag) <= _VERSION_DIGITS and (tag == "0" or tag[0] != "0"):
        return int(tag)
    return None


def _versions(name: str, header: str, *, strong_only: bool) -> Versions:
    tags = _tags(name, header)
    if tags is None:
        return Versions(any=True)
    found = (_version(tag) for weak, tag in tags if not (weak and strong_only))
    return Versions(frozenset(v for v in found if v is not None))


def precondition(if_match: str | None, if_none_match: str | None) -> Precondition:
    """The precondition of a write: If-Match compares strongly (a weak tag never matches),
    If-None-Match weakly (section 13.1.2)."""
    return Precondition(
        match=None if if_match is None else _versions(IF_MATCH, if_match, strong_only=True),
        none_match=None if if_none_match is None else _versions(IF_NONE_MATCH, if_none_match, strong_only=False),
    )


def if_none_match(header: str) -> Versions:
    """The versions If-None-Match names, by weak comparison: when the note is at one of them,
    the client's copy is current."""
    return _versions(IF_NONE_MATCH, header, strong_only=False)


def if_match_holds(header: str, tag: str | None) -> bool:
    """If-Match (section 13.1.1) against the current representation's tag (None: it has none):
    `*` holds for any, a list when one of its tags matches by strong comparison (a weak tag
    never does); a 400 when the header is neither."""
    tags = _tags(IF_MATCH, header)
    if tags is None:
        return True
    if tag is None or tag.startswith("W/"):
        return False
    return any(not weak and opaque == tag[1:-1] for weak, opaque in tags)


IF_MATCH_FAILED = ProblemError(
    412, "If-Match names no current ETag of this resource: GET it, then decide again", slug="precondition-failed"
)


def weak_etag(body: bytes) -> str:
    """A weak tag of a representation that is the same byte for byte whenever this tag is: a
    page of notes, the API's description."""
    return f'W/"{base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:15]).decode()}"'


def not_modified(header: str | None, tag: str) -> bool:
    """True when If-None-Match names `tag` (or is `*`), by weak comparison (section 13.1.2):
    the client's copy is current."""
    if header is None:
        return False
    tags = _tags(IF_NONE_MATCH, header)
    if tags is None:
        return True
    opaque = tag.removeprefix("W/")[1:-1]
    return any(given == opaque for _weak, given in tags)
