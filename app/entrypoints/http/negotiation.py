"""Content negotiation (RFC 9110, section 12.5.1): does an Accept header admit JSON?"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

H = TypeVar("H", bound=Callable[..., object])

# What the JSON routes can send: their documents, and problem details when something fails.
PRODUCED = (("application", "json"), ("application", "problem+json"))


@lru_cache(maxsize=256)
def accepts_json(accept: str) -> bool:
    """True when some media range with q > 0 covers application/json or application/problem+json.

    The most specific range decides for each type, so `*/*, application/json;q=0` refuses JSON.
    """
    return accepts(accept, PRODUCED)


def accepts(accept: str, produced: tuple[tuple[str, str], ...]) -> bool:
    """True when some media range with q > 0 covers one of the `produced` (type, subtype)."""
    ranges: list[tuple[str, str, float]] = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if "/" not in media:
            continue
        kind, _, subtype = media.lower().partition("/")
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((kind, subtype, quality))
    return any(_quality(ranges, kind, subtype) > 0 for kind, subtype in produced)


def _quality(ranges: list[tuple[str, str, float]], kind: str, subtype: str) -> float:
    best, specificity = 0.0, -1
    for k, s, q in ranges:
        if (k, s) == (kind, subtype):
            rank = 2
        elif (k, s) == (kind, "*"):
            rank = 1
        elif (k, s) == ("*", "*"):
            rank = 0
        else:
            continue
        if rank > specificity:
            best, specificity = q, rank
    return best


@lru_cache(maxsize=64)
def accepts_gzip(accept_encoding: str) -> bool:
    """True when Accept-Encoding admits gzip with q > 0, by name or as `*`."""
    best: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best[coding] = quality
    return best.get("gzip", best.get("x-gzip", best.get("*", 0.0))) > 0


def not_json(handler: H) -> H:
    """Mark a handler whose answers are not JSON (a page, a script, metrics): no 406 for it."""
    handler.not_json = True  # type: ignore[attr-defined]
    return handler
