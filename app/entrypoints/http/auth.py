"""Authentication and the rate limit: a step of the request pipeline (pipeline.py) before any
handler, so every route, present or future, added here or the plain aiohttp way, needs a token
unless it is named open below (default deny). Whom a request acts for is `request[IDENTITY]`; handlers read the owner
there, and the store scopes every query by it.

Modes (`--auth`): `required`, a request without a valid token is 401; `local`, a request without
a token acts for the built-in owner `local`; `auto`, `local` when every address listened on is a
loopback address, else `required` (decided once the server listens, `required` until then).

`local` trusts the machine's own clients, not every web page its browser opens. A request without
a token needs one when a page of another site sent it (its `Origin`, unless --cors-origin names
it; or, without an `Origin`, its `Sec-Fetch-Site`): it would act as the user (cross-site request
forgery). It needs one too when it is addressed to a host name other than localhost (its `Host`):
it comes from a page whose name was made to point at this server (DNS rebinding). An address
(`127.0.0.1`, `192.168.1.5`, `[::1]`) is no such name. The tutorial's clients send neither
`Origin` nor `Sec-Fetch-Site`, and address localhost.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Coroutine, Iterable
from enum import StrEnum
from typing import Any

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy, istr

from app.domain.owners import LOCAL_IDENTITY, Identity, Scope
from app.entrypoints.http.keys import ACCOUNTS, IDENTITY
from app.entrypoints.http.problems import REALM, ProblemError, invalid_token, unauthorized
from app.entrypoints.http.routing import get_behind_options

# Routes anyone may call in every mode: health, the description of the API, its problem pages.
OPEN_ROUTES = frozenset({"healthz", "readyz", "openapi", "docs", "docs-assets", "problems"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthMode(StrEnum):
    REQUIRED = "required"
    LOCAL = "local"
    AUTO = "auto"


def _bearer_secret(header: str) -> str | None:
    """The secret of `Authorization: Bearer <secret>` (the scheme in any case), else None."""
    scheme, _, secret = header.strip().partition(" ")
    secret = secret.strip()
    return secret if scheme.lower() == "bearer" and secret else None


def _authorization(headers: CIMultiDictProxy[str]) -> str | None:
    """The request's one Authorization header, or None. Two or more are a 400: a server that took
    the first and a proxy that took the last would disagree on whom the request acts for (RFC
    6750, section 3.1: invalid_request)."""
    header = headers.get(hdrs.AUTHORIZATION)
    if header is not None and len(headers.getall(hdrs.AUTHORIZATION)) > 1:
        raise ProblemError(  # a new one each time: a raised exception keeps its traceback, frames and all
            400, "Authorization was sent more than once: send one token, in one header",
            slug="invalid-authorization", headers={"WWW-Authenticate": f'{REALM}, error="invalid_request"'},
        )
    return header


def insufficient_scope() -> ProblemError:
    """A new one each time it is raised: a raised exception keeps its traceback, frames and
    requests included, and one raised again adds to it."""
    return ProblemError(
        403, "this token may only read: writing needs a token of scope write", slug="insufficient-scope",
        headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="write"'},
    )


_NO_OTHER_SITE = frozenset({"none", "same-origin"})
SEC_FETCH_SITE = istr("Sec-Fetch-Site")  # an istr: a plain str is folded to compare on every lookup


def names_no_other_host(host: str) -> bool:
    """Whether a Host header names no host a page could have made point here: localhost or a name
    under it (RFC 6761, section 6.3), or an address (DNS rebinding needs a name); any port."""
    name = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    name = name.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class Authentication:
    """The mode in force, and the step of the pipeline that applies it (`identify`)."""

    def __init__(self, mode: AuthMode, rate_limit: int | None = None, origins: Iterable[str] = ()) -> None:
        self.mode = mode
        self._origins = frozenset(origins)  # --cors-origin: pages trusted as the machine's own
        self._local_hosts: set[str] = set()  # Host values seen to be no rebound name (a few)
        # auto stays closed until the addresses are known (`listening`). A bool, not the mode: it
        # is read on every request, and reading an enum's member costs several times as much.
        self._local = mode is AuthMode.LOCAL
        self._limiter = RateLimiter(rate_limit) if rate_limit else None
        self._identities: dict[int, Identity] = {}  # by token id: one per token the process trusts
        self._needs: dict[web.AbstractRoute, bool] = {}  # by route: needs an identity (not open)

    @property
    def in_force(self) -> AuthMode:
        """`local` or `required`: the mode `auto` became once the server listens (`required` until then)."""
        return AuthMode.LOCAL if self._local else AuthMode.REQUIRED

    def listening(self, hosts: Iterable[str]) -> str:
        """Decide `auto` from the addresses listened on; the reason, for the start-up log."""
        hosts = list(hosts)
        if self.mode is not AuthMode.AUTO:
            return f"auth {self.mode}"
        if hosts and all(is_loopback(host) for host in hosts):
            self._local = True
            return "auth local (--auth auto: listening on loopback only)"
        self._local = False
        return "auth required (--auth auto: listening beyond loopback)"

    def identify(
        self, request: web.Request, headers: CIMultiDictProxy[str], route: web.AbstractRoute, noted: list
    ) -> Coroutine[Any, Any, dict[str, str] | None] | None:
        """Note whom the request acts for (`request[IDENTITY]`, and `noted` for the access log:
        the pipeline's record of the request, logs.CURRENT_REQUEST). The request pipeline calls it
        before any handler, on every route, with the request's headers and route (which it has at
        hand: each of aiohttp's properties is a call). What needs no I/O is done here, at once (an open route; a request
        without a token in local mode; a token verified moments ago); anything else is a
        coroutine to await, which raises the 401, 403 or 429, and gives the rate limit's headers
        for the answer."""
        needs = self._needs.get(route)
        if needs is None:
            needs = self._route_needs_identity(route)
        if needs is False:  # an open route, in every mode
            return None
        if needs and self._limiter is None:
            header = headers.get(hdrs.AUTHORIZATION)  # `_authorization` only when there is one
            if header is None:
                if self._local and (
                    # what the machine's own clients send (`_from_this_machine` in short, inline: a
                    # call costs more than the test)
                    (headers.get(hdrs.HOST) in self._local_hosts and hdrs.ORIGIN not in headers
                     and SEC_FETCH_SITE not in headers)
                    or self._from_this_machine(headers)
                ):
                    request[IDENTITY] = LOCAL_IDENTITY
                    noted[3] = LOCAL_IDENTITY.owner  # for the access log
                    return None
            elif (
                _authorization(headers) is not None  # two of them are a 400
                and header[:7] == "Bearer "
                and (token := request.app[ACCOUNTS].trusted(header[7:])) is not None
            ):
                identity = self._identities.get(token.id)
                if identity is None or identity.token is not token:
                    identity = self._identities[token.id] = Identity(token.owner, token)
                noted[3] = identity.owner  # for the access log, a 403 included
                request[IDENTITY] = self._checked(request, identity)
                return None  # a token verified moments ago
        return self._identify_with_io(request, noted)

    def _route_needs_identity(self, route: web.AbstractRoute) -> bool | None:
        """Whether a route of the application needs an identity (False: it is open), remembered
        by route: the routes are few and fixed, and reading a route's name through aiohttp's
        properties on every request costs more than the rest of the fast path. None for the
        router's own answers (404, 405): their routes are made afresh for each request, so they
        are never remembered, and `_needs_identity` decides."""
        if route.resource is None:
            return None
        needs = self._needs[route] = route.name not in OPEN_ROUTES
        return needs

    def _from_this_machine(self, headers: CIMultiDictProxy[str]) -> bool:
        """Whether a request without a token may act for `local` (see the module's docstring)."""
        host = headers.get(hdrs.HOST)
        if host is not None and host not in self._local_hosts:
            if not names_no_other_host(host):
                return False
            if len(self._local_hosts) < 16:  # its forms: localhost, 127.0.0.1, [::1], with ports
                self._local_hosts.add(host)
        origin = headers.get(hdrs.ORIGIN)
        if origin is None:  # a browser's own navigation ("none"), or no browser at all
            return headers.get(SEC_FETCH_SITE, "none") in _NO_OTHER_SITE
        return (
            origin in self._origins
            or (host is not None and origin.partition("://")[2].lower() == host.lower())  # /docs
            # a same-origin page under Referrer-Policy: no-referrer sends `Origin: null`
            or (origin == "null" and headers.get(SEC_FETCH_SITE) == "same-origin")
        )

    @staticmethod
    def _checked(request: web.Request, identity: Identity) -> Identity:
        if identity.scope is Scope.READ and request.method not in SAFE_METHODS:
            raise insufficient_scope()
        return identity

    async def _identify_with_io(self, request: web.Request, noted: list) -> dict[str, str] | None:
        if not await _needs_identity(request):
            return None
        identity = await self._identity(request)
        noted[3] = identity.owner  # for the access log, a 403 included
        request[IDENTITY] = self._checked(request, identity)
        return None if self._limiter is None else self._limiter.take(identity.owner)

    async def _identity(self, request: web.Request) -> Identity:
        header = _authorization(request.headers)
        if header is None:
            if not self._local:
                raise unauthorized("this request needs a token: send Authorization: Bearer <token>", invalid=False)
            if not self._from_this_machine(request.headers):
                raise unauthorized(
                    "a request from a web page of another origin, or to a host name that is not this"
                    " machine's, needs a token: send Authorization: Bearer <token>", invalid=False)
            return LOCAL_IDENTITY
        secret = _bearer_secret(header)
        if secret is None:
            raise unauthorized("send the token as Authorization: Bearer <token>", invalid=True)
        token = await request.app[ACCOUNTS].authenticate(secret)
        if token is None:  # nothing of the secret is repeated, anywhere
            raise invalid_token()
        return Identity(token.owner, token)


async def _needs_identity(request: web.Request) -> bool:
    """Every route but the open ones. Nothing there (404) and a method a resource lacks (405)
    need none either, but for OPTIONS, which answers what GET would of a missing resource
    on a path with parameters (pipeline.py): it acts for the caller, like the GET it stands for."""
    match = request.match_info
    if match.http_exception is None:
        return match.route.name not in OPEN_ROUTES
    if request.method != hdrs.METH_OPTIONS or match.http_exception.status != 405 or _is_preflight(request):
        return False
    behind = await get_behind_options(request)
    return behind is not None and behind[1].route.name not in OPEN_ROUTES


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


class RateLimiter:
    """A token bucket per owner in this process: `rate` requests a second, in bursts of up to
    twice that. Headers of draft-ietf-httpapi-ratelimit-headers on every answer it limits."""

    def __init__(self, rate: int) -> None:
        self.rate, self.burst = rate, 2 * rate
        self._buckets: dict[str, tuple[float, float]] = {}  # owner -> (tokens, at)
        self._policy = f'"owner";q={self.burst};w=2'

    def take(self, owner: str, now: float | None = None) -> dict[str, str]:
        """Headers for an answer within the limit; raises the 429 over it."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(owner, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[owner] = (tokens, now)
            wait = math.ceil((1 - tokens) / self.rate)
            raise ProblemError(
                429, f"over the limit of {self.rate} requests a second: retry after {wait} s",
                slug="rate-limited",
                headers={"Retry-After": str(wait), "RateLimit-Policy": self._policy,
                         "RateLimit": f'"owner";r=0;t={wait}'},
            )
        tokens -= 1
        self._buckets[owner] = (tokens, now)
        refill = math.ceil((self.burst - tokens) / self.rate)
        return {"RateLimit-Policy": self._policy, "RateLimit": f'"owner";r={int(tokens)};t={refill}'}


async def still_authorized(request: web.Request) -> bool:
    """For an answer that goes on after its request was let in (an event stream, a long poll):
    whether the token it came with still holds, not revoked nor expired since. As on every
    request, a token verified less than VERIFIED_FOR ago is trusted without asking the store:
    revocation reaches an open stream within those 5 seconds too."""
    identity = request.get(IDENTITY)
    if identity is None or identity.token is None:  # an open route, or `local` without a token
        return True
    secret = _bearer_secret(request.headers.get(hdrs.AUTHORIZATION, ""))
    if secret is None:
        return False
    accounts = request.app[ACCOUNTS]
    return accounts.trusted(secret) is not None or await accounts.authenticate(secret) is not None
