"""JSON Schemas rendered from the domain's rule objects: the same rules that check requests."""

from __future__ import annotations

from typing import Any

from app.domain.rules import (
    DEFAULTS,
    FIELDS,
    REQUIRED,
    WHITESPACE,
    Integer,
    Rule,
    Tags,
    Text,
    Timestamp,
)
from app.domain.timestamps import TIMESTAMP_PATTERN
from app.entrypoints.http.listing import Choice
from app.entrypoints.http.problem_types import TYPES

WRITTEN_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"


def _escape(characters: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in characters)


def rule_schema(rule: Rule | Choice, *, nullable: bool | None = None) -> dict[str, Any]:
    """The JSON Schema (2020-12, as OpenAPI 3.1 uses) of values that pass `rule`."""
    match rule:
        case Text():
            schema: dict[str, Any] = {"type": "string", "minLength": rule.min_length, "maxLength": rule.max_length}
            allowed = f"[^{_escape(rule.forbidden)}]"
            if rule.not_blank:
                some = f"[^{_escape(rule.forbidden + WHITESPACE)}]"
                schema["pattern"] = f"^{allowed}*{some}{allowed}*$"
            else:
                schema["pattern"] = f"^{allowed}*$"
            if rule.nullable if nullable is None else nullable:
                schema["type"] = ["string", "null"]
        case Integer():
            schema = {"type": "integer", "minimum": rule.minimum, "maximum": rule.maximum}
        case Timestamp():
            schema = {
                "type": "string",
                "pattern": f"^{TIMESTAMP_PATTERN}$",
                "examples": ["2017-08-23T00:00:00.000000Z", "2017-08-23 00:00"],
            }
        case Tags():
            schema = {"type": "array", "items": rule_schema(rule.item), "maxItems": rule.max_items}
        case Choice():
            schema = {"type": "string", "enum": list(rule.values)}
    if description := getattr(rule, "description", ""):
        schema["description"] = description
    return schema


def note_input(*, patch: bool = False) -> dict[str, Any]:
    """The body of POST and PUT (`patch=False`) or of a merge patch."""
    properties: dict[str, Any] = {}
    for name, rule in FIELDS.items():
        schema = rule_schema(rule)
        if patch and name in DEFAULTS:  # null resets the field to its default
            schema = schema if _allows_null(schema) else {"anyOf": [schema, {"type": "null"}]}
        if name in DEFAULTS and DEFAULTS[name] is not None:
            schema["default"] = list(DEFAULTS[name]) if isinstance(DEFAULTS[name], tuple) else DEFAULTS[name]
        properties[name] = schema
    # Server-owned (readOnly): a client may send back a note as it received it, and they are then
    # ignored, but an id that is not an integer, or on PUT and PATCH not the URL's, is 422.
    properties |= {
        "id": {
            "type": "integer",
            "readOnly": True,
            "description": "server-owned: ignored on POST; on PUT and PATCH it must equal the URL's id",
        },
        "updated_at": {"readOnly": True, "description": "server-owned: ignored"},
        "version": {"readOnly": True, "description": "server-owned: ignored"},
    }
    document: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if not patch:
        document["required"] = list(REQUIRED)
    return document


def note_output() -> dict[str, Any]:
    written = {"type": "string", "pattern": WRITTEN_TIMESTAMP, "examples": ["2017-08-23T00:00:00.000000Z"]}
    tags = rule_schema(FIELDS["tags"])
    tags["uniqueItems"] = True
    properties = {
        "id": {"type": "integer", "minimum": 1},
        **{name: rule_schema(rule) for name, rule in FIELDS.items() if name != "created_at"},
        "tags": tags,
        "created_at": written,
        "updated_at": written,
        "version": {"type": "integer", "minimum": 1, "description": "also the note's ETag"},
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        "examples": [
            {
                "id": 1,
                "title": "note two",
                "description": "sample notes",
                "priority": 4,
                "tags": ["home", "work"],
                "created_by": "apcelent",
                "created_at": "2017-08-23T00:00:00.000000Z",
                "updated_at": "2026-11-23T22:30:23.602139Z",
                "version": 1,
            }
        ],
    }


def problem() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "pattern": f"^https?://[^/]+/problems/({'|'.join(TYPES)})$",
                "description": "a page on this service that explains the problem: "
                + ", ".join(f"`{slug}` ({t.status})" for slug, t in TYPES.items()),
            },
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "pointer": {"type": "string"},
                        "parameter": {"type": "string"},
                        "line": {"type": "integer", "minimum": 1, "description": "of a notes file (POST /import)"},
                        "detail": {"type": "string"},
                    },
                    "required": ["detail"],
                },
                "description": "422: one entry per broken rule (`pointer`); 400: per bad parameter",
            },
        },
    }


def _allows_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind)
