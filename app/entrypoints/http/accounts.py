"""/me and /tokens: whom a request acts for, and the tokens of that owner.

Every route here acts for `request[IDENTITY]` (auth.py) and reaches that owner's tokens only: a
token id of another owner answers exactly as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from app.domain.accounts import LABEL_RULE, MAX_DAYS, label_is_valid
from app.domain.errors import IssuerRevokedError, TokenNotFoundError
from app.domain.owners import Scope, Token
from app.domain.timestamps import format_timestamp
from app.entrypoints.http.auth import invalid_token
from app.entrypoints.http.keys import ACCOUNTS, IDENTITY
from app.entrypoints.http.listing import no_parameters
from app.entrypoints.http.problems import ProblemError
from app.entrypoints.http.representation import JSON, read_json_object

NO_STORE = {"Cache-Control": "no-store"}


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def token_document(token: Token) -> dict[str, Any]:
    return {
        "id": token.id, "label": token.label, "scope": str(token.scope),
        "created_at": format_timestamp(token.created_at), "last_used_at": _moment(token.last_used_at),
        "expires_at": _moment(token.expires_at),
    }


def _json(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(document), content_type=JSON,
                        headers={**NO_STORE, **(headers or {})})


async def me(request: web.Request) -> web.Response:
    no_parameters(request)
    identity = request[IDENTITY]
    token = identity.token
    described = None if token is None else {
        "id": token.id, "label": token.label, "scope": str(token.scope), "expires_at": _moment(token.expires_at)
    }
    return _json({"owner": identity.owner, "token": described})


async def list_tokens(request: web.Request) -> web.Response:
    no_parameters(request)
    tokens = await request.app[ACCOUNTS].tokens(request[IDENTITY].owner)
    return _json({"tokens": [token_document(token) for token in tokens]})


def _invalid(errors: list[dict[str, str]]) -> ProblemError:
    return ProblemError(422, f"the token request breaks {len(errors)} rule{'s' if len(errors) > 1 else ''}",
                        slug="validation-error", errors=errors)


def _token_request(body: dict[str, Any], default_scope: Scope) -> tuple[str, Scope, int | None]:
    errors = [{"pointer": f"/{name}", "detail": "is not a field of a token request; known: label, scope,"
               " expires_in_days"} for name in body if name not in ("label", "scope", "expires_in_days")]
    label = body.get("label", "")
    if not label_is_valid(label):
        errors.append({"pointer": "/label", "detail": f"must be {LABEL_RULE}"})
    scope = body.get("scope", str(default_scope))
    if scope not in ("read", "write"):
        errors.append({"pointer": "/scope", "detail": "must be read or write"})
    days = body.get("expires_in_days")
    if type(days) is float and days.is_integer():  # 30.0 is the JSON number 30
        days = int(days)
    if days is not None and (type(days) is not int or not 1 <= days <= MAX_DAYS):
        errors.append({"pointer": "/expires_in_days", "detail": f"must be a whole number of days, 1 to {MAX_DAYS},"
                       " or null for a token that does not expire"})
    if errors:
        raise _invalid(errors)
    return label, Scope(scope), days


async def issue_token(request: web.Request) -> web.Response:
    no_parameters(request)
    identity = request[IDENTITY]
    label, scope, days = _token_request(await read_json_object(request), identity.scope)
    if not identity.scope.allows(scope):
        raise ProblemError(403, "a read token cannot issue a token of scope write", slug="insufficient-scope")
    try:
        issued = await request.app[ACCOUNTS].issue_token(
            identity.owner, label=label, scope=scope, expires_in_days=days, issuer=identity.token
        )
    except IssuerRevokedError:  # trusted moments ago by this process, revoked since
        raise invalid_token() from None
    document = {**token_document(issued.token), "token": issued.secret}  # the only time it is shown
    return _json(document, 201, {"Location": f"/tokens/{issued.token.id}"})


def _missing() -> ProblemError:  # new each time: a raised exception keeps its traceback
    return ProblemError(404, "there is no token of yours with this id", slug="token-not-found")


def _token_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise _missing()
    return int(text)


async def get_token(request: web.Request) -> web.Response:
    no_parameters(request)
    token_id = _token_id(request)
    for token in await request.app[ACCOUNTS].tokens(request[IDENTITY].owner):
        if token.id == token_id:
            return _json(token_document(token))
    raise _missing()


async def revoke_token(request: web.Request) -> web.Response:
    no_parameters(request)
    try:
        await request.app[ACCOUNTS].revoke_token(_token_id(request), request[IDENTITY].owner)
    except TokenNotFoundError:
        raise _missing() from None
    return web.Response(status=204, headers=NO_STORE)
