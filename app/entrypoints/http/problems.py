"""Problem details (RFC 9457): every error leaves the service as application/problem+json.

Handlers only raise; `problem_response` maps what they raise to its problem, once, where every
request is answered (pipeline.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import hdrs, web

from app.domain import errors
from app.entrypoints.http.keys import SETTINGS
from app.entrypoints.http.problem_types import BY_STATUS, reason

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "1"
log = logging.getLogger("app.http")


_AUTHORITY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?")


def _authority(request: web.BaseRequest) -> str:
    """The host and port the client asked for (its Host field), if that is one; else the address
    and port the request arrived on (HTTP/1.0 may send no Host, and aiohttp takes the target of a
    CONNECT for the host), so that a problem's type is always a URI of a page of the service."""
    host = request.headers.get("Host")
    if host is not None and _AUTHORITY.fullmatch(host):
        return host
    address = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not isinstance(address, tuple):
        return "localhost"
    return f"[{address[0]}]:{address[1]}" if len(address) == 4 else f"{address[0]}:{address[1]}"


class ProblemError(Exception):
    """An error answered with one problem document. `slug` names its type, under /problems/."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.headers = dict(headers or {})
        self.close = close  # end the connection after this answer
        self.extensions = extensions

    def response(self, request: web.BaseRequest) -> web.Response:
        """The problem document; its type is a page on the host the client asked."""
        slug = self.slug or BY_STATUS.get(self.status, "internal-error")
        document: dict[str, Any] = {
            "type": f"{request.scheme}://{_authority(request)}/problems/{slug}",
            "title": reason(self.status),
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }
        response = web.Response(
            status=self.status,
            reason=reason(self.status),
            body=orjson.dumps(document),
            content_type=PROBLEM_JSON,
            headers={"Cache-Control": "no-store", **self.headers},
        )
        if self.close:
            response.force_close()
        return response


REALM = 'Bearer realm="notes"'


def unauthorized(detail: str, *, invalid: bool) -> ProblemError:
    challenge = f'{REALM}, error="invalid_token"' if invalid else REALM
    return ProblemError(401, detail, slug="unauthorized", headers={"WWW-Authenticate": challenge})


def invalid_token() -> ProblemError:
    """The 401 for a token that is malformed, unknown, expired or revoked (nothing of it said)."""
    return unauthorized("the token is malformed, unknown, expired or revoked", invalid=True)


def bad_request(slug: str, detail: str, **extensions: Any) -> ProblemError:
    return ProblemError(400, detail, slug=slug, **extensions)


def _from_domain(error: errors.NoteError, request: web.Request) -> ProblemError:
    match error:
        case errors.NoteNotFoundError():
            return ProblemError(404, str(error), slug="note-not-found")
        case errors.RevisionNotFoundError():
            return ProblemError(404, str(error), slug="revision-not-found")
        case errors.NotInTrashError():
            return ProblemError(404, str(error), slug="not-in-trash")
        case errors.InvalidChangeTokenError():
            return ProblemError(400, str(error), slug="invalid-change-token")
        case errors.ChangeTokenExpiredError():
            return ProblemError(410, str(error), slug="change-token-expired")
        case errors.NoteValidationError(problems=problems, count=count):
            listed = "" if count == len(problems) else f"; the first {len(problems)} are listed"
            return ProblemError(
                422,
                f"the note breaks {count:,} rule{'s' if count > 1 else ''}{listed}",
                slug="validation-error",
                errors=[{"pointer": p.pointer, "detail": p.detail} for p in problems],
            )
        case errors.PreconditionFailedError() | errors.VersionConflictError():
            return ProblemError(412, _failed_precondition(request, error.note_id), slug="precondition-failed")
        case errors.IdempotencyKeyInUseError():
            return ProblemError(
                409,
                "a request with this Idempotency-Key is still being processed",
                slug="idempotency-key-in-use",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        case errors.IdempotencyKeyReusedError():
            return ProblemError(
                422,
                "this Idempotency-Key was used with another request body",
                slug="idempotency-key-reused",
            )
        case errors.StorageUnavailableError():
            return ProblemError(
                503,
                "the database cannot be reached now; retry shortly",
                slug="database-unavailable",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        case errors.InsufficientScopeError():
            return ProblemError(403, str(error), slug="insufficient-scope")
        case errors.OwnerRemovedError():  # its token, trusted a moment longer than the owner lived
            return invalid_token()
        case errors.TokenNotFoundError():
            return ProblemError(404, "there is no token with this id", slug="token-not-found")
        case errors.AccountError():
            return ProblemError(422, str(error), slug="validation-error")
    return ProblemError(500, "an unexpected error occurred")


def _from_http(exc: web.HTTPException, request: web.Request) -> ProblemError:
    if exc.status == 413:
        detail = f"the request body is over the limit of {request.app[SETTINGS].max_body_bytes:,} bytes"
    else:
        detail = "no resource at this path" if exc.status == 404 else exc.reason
    return ProblemError(exc.status, detail)


NOT_ACCEPTABLE = ProblemError(406, "this resource is only available as application/json")
# The expectation is not echoed: a client may put anything there.
EXPECTATION_FAILED = ProblemError(417, "the only expectation this server meets is 100-continue")


def _failed_precondition(request: web.Request, note_id: int) -> str:
    """412's detail, naming the header that failed by the headers sent."""
    sent = [name for name in (hdrs.IF_MATCH, hdrs.IF_NONE_MATCH) if name in request.headers]
    if sent == [hdrs.IF_MATCH]:
        return f"If-Match does not hold for note {note_id}: its ETag is none of those If-Match names"
    if sent == [hdrs.IF_NONE_MATCH]:
        return f"If-None-Match does not hold for note {note_id}: its ETag is one If-None-Match names"
    return f"If-Match or If-None-Match does not hold for note {note_id}: GET it for its ETag"


def problem_response(error: Exception, request: web.Request) -> web.Response:
    """The problem+json answer to what a handler raised (an HTTPException of 400 or more, or any
    other exception); a 5xx other than 503 is logged as the bug it is, a 503 with its cause."""
    match error:
        case ProblemError():
            return error.response(request)
        case errors.StorageUnavailableError():  # the client is told to retry; the operator, why
            log.warning("%s %s answered 503: %s", request.method, request.path, error)
            return _from_domain(error, request).response(request)
        case errors.NoteError():
            return _from_domain(error, request).response(request)
        case web.HTTPException():
            return _from_http(error, request).response(request)
        case web.RequestPayloadError():  # a gzip or deflate body that does not decode, and the
            # connection ends: the rest of such a body cannot be read past to the next request (the
            # pipeline ends the body, `_end_encoded_body`)
            return ProblemError(400, "the request body cannot be read: its Content-Encoding or chunks are damaged",
                                slug="malformed-body", close=True).response(request)
        case ConnectionResetError() if request.transport is None or request.transport.is_closing():
            # the client went away before its body arrived: no one reads the answer, and nothing
            # went wrong here (an error with a traceback, as often as clients drop their
            # connections, would bury the ones that matter)
            log.debug("%s %s: the client went away: %s", request.method, request.path, error)
            return ProblemError(400, "the connection closed before the request body arrived", slug="malformed-body",
                                close=True).response(request)
    log.error(
        "unhandled error in %s %s", request.method, request.path,
        exc_info=(type(error), error, error.__traceback__),
    )
    return ProblemError(500, "an unexpected error occurred").response(request)
