"""What an operator can set, and which store a DATABASE_URL names: read by the command line
before anything is wired (app/container.py wires from it), so that a command that serves nothing
(`migrate`, `--help`) loads neither aiohttp nor the HTTP adapter."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from app.domain.history import DEFAULT_RETENTION

# DATABASE_URL scheme -> the storage that serves it
BACKENDS = {"memory": "memory", "sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}
SUPPORTED_URLS = "memory://, sqlite:///relative.db, sqlite:////absolute.db, postgresql://user@host/db"


_PASSWORD_PARAMETER = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # urlsplit drops tabs and line breaks: no part of a URL
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")  # scheme://host[:port]


def _unencoded_credentials(database_url: str) -> bool:
    """Whether the URL's user part holds a character it must percent-encode (`/`, `?`, `#`):
    then the host appears to end early, and what follows its last `@` is the real host; or `@`
    itself, which leaves two of them before the host."""
    try:
        parts = urlsplit(database_url)
    except ValueError:  # an unclosed [ (an IPv6 host): `backend_of` says so
        return False
    if parts.netloc.count("@") > 1:
        return True
    if "@" not in database_url.partition("://")[2]:
        return False
    # (a query field has its name, then `=`: an `@` before the first `=` or `&` is the host's)
    first_field = re.split("[=&]", parts.query, maxsplit=1)[0]
    if "@" in parts.path + parts.fragment + first_field:  # an @ after a /, ? or # of the user part
        return True
    host = parts.netloc.rpartition("@")[2]
    if "," not in host:  # (a list of hosts has a port each)
        try:  # (an IPv6 host's colons are in its brackets)
            port_is_a_port = parts.port is not None or ":" not in host.rpartition("]")[2]
        except ValueError:
            port_is_a_port = False
        after_host = database_url.partition("://")[2].partition(parts.netloc)[2]
        if not port_is_a_port and "@" in after_host:  # what reads as a port is a password's end: the host
            return True  # follows an @ further on
    if "@" in parts.netloc:
        return False
    return "@" in parts.query and not parts.path  # `u:1234?a=b@host/db`: a ? and = in a password of digits


def redacted(database_url: str) -> str:
    """The URL with its password (in the user part or a `password=` parameter) shown as ***:
    what any message may say of a DATABASE_URL. Control characters are left out: urlsplit
    drops them, so a password holding one was not found to hide."""
    database_url = _CONTROL.sub("", database_url)
    scheme, colon, rest = database_url.partition(":")
    if colon and not rest.startswith("//") and "@" in rest:  # `postgresql:bob:pw@host`: no // to find a user part by
        return _PASSWORD_PARAMETER.sub(r"\g<1>***", f"{scheme}:***@{rest.rpartition('@')[2]}")
    try:
        parts = urlsplit(database_url)
    except ValueError:  # an unclosed [ (an IPv6 host): no user part can be told apart from the rest
        parts = None
    if parts is None or _unencoded_credentials(database_url):  # all of the user part, wherever it seems to end
        scheme, _, rest = database_url.partition("://")
        if "@" in rest:
            database_url = f"{scheme}://***@{rest.rpartition('@')[2]}"
        return _PASSWORD_PARAMETER.sub(r"\g<1>***", database_url)
    if parts.password is not None:
        user_part, _, host_part = parts.netloc.rpartition("@")
        user = user_part.partition(":")[0]
        database_url = database_url.replace(parts.netloc, f"{user}:***@{host_part}", 1)
    return _PASSWORD_PARAMETER.sub(r"\g<1>***", database_url)


# Seconds a migration waits for a lock that another process holds (another migration, or a long
# transaction on a table it alters) before it gives up, changing nothing. Waiting longer would
# hold up every query behind it: PostgreSQL queues them after the migration's lock request.
MIGRATION_LOCK_TIMEOUT = 60.0


class UnsupportedDatabaseError(ValueError):
    """DATABASE_URL names a store this service cannot use."""


def backend_of(database_url: str, setting: str = "DATABASE_URL") -> str:
    """The storage for a DATABASE_URL; raises with the supported forms when there is none,
    naming the URL by `setting`, the flag or variable that gave it."""
    if _CONTROL.search(database_url):
        raise UnsupportedDatabaseError(
            f"{setting} {redacted(database_url)!r} holds a control character (a tab or a line break?): remove it,"
            " or percent-encode it in a password"
        )
    try:
        parts = urlsplit(database_url)
    except ValueError:  # urlsplit's "Invalid IPv6 URL": a [ or ] alone
        if {"[", "]"} & set(database_url.partition("://")[2].rpartition("@")[0]):  # in the user part
            raise UnsupportedDatabaseError(_must_encode(setting, database_url)) from None
        raise UnsupportedDatabaseError(
            f"{setting} {redacted(database_url)!r} has a [ or ] alone: write an IPv6 host as [::1]"
        ) from None
    scheme = parts.scheme.lower()
    backend = BACKENDS.get(scheme) if database_url[len(scheme):].startswith("://") else None
    if backend is None:
        raise UnsupportedDatabaseError(
            f"unsupported {setting} {redacted(database_url)!r}: use one of {SUPPORTED_URLS}"
        )
    if backend == "sqlite":
        try:
            sqlite_path(database_url)
        except ValueError as error:
            raise UnsupportedDatabaseError(f"{setting} {error}") from None
    if backend == "postgresql" and _unencoded_credentials(database_url):
        raise UnsupportedDatabaseError(_must_encode(setting, database_url))
    if backend == "postgresql" and "," not in parts.netloc:  # (a list of hosts has a port each)
        try:
            port = parts.port
        except ValueError:  # not a number, or over 65535
            port = 0
        if port == 0:
            raise UnsupportedDatabaseError(
                f"the port of {setting} {redacted(database_url)!r} must be a number from 1 to 65535"
            )
    return backend


def _must_encode(setting: str, database_url: str) -> str:
    return (f"the user or password (or database name) of {setting} {redacted(database_url)!r} holds a character"
            " that must be percent-encoded: / as %2F, ? as %3F, # as %23, @ as %40, [ as %5B, ] as %5D")


def sqlite_path(database_url: str) -> str:
    """`sqlite:///notes.db` -> notes.db, `sqlite:////var/lib/notes.db` -> /var/lib/notes.db."""
    scheme, _, rest = database_url.partition(":///")
    path = unquote(rest.split("?", 1)[0])
    if scheme.lower() != "sqlite" or not path or path == ":memory:":
        raise ValueError(f"{redacted(database_url)!r} names no database file: use sqlite:///path/to/notes.db")
    return path


# The CORS origins are checked here with the other settings: a wrong one is refused before the
# HTTP adapter (and aiohttp) is loaded, as a wrong DATABASE_URL is.
class InvalidOriginError(ValueError):
    """A configured origin is not `scheme://host[:port]`."""


def normalized_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """Origins as browsers send them in `Origin`: lower case, no path, no trailing slash."""
    found = []
    for origin in origins:
        origin = origin.strip().rstrip("/").lower()
        if not origin:
            continue
        if _ORIGIN.fullmatch(origin) is None:
            raise InvalidOriginError(f"CORS origin {origin!r} is not scheme://host[:port]")
        found.append(origin)
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything an operator can set (see `app/entrypoints/cli.py` for the flags)."""

    database_url: str = "memory://"
    db_timeout: float = 5.0  # seconds a request may wait on the database before a 503
    pool_size: int = 10
    max_body_bytes: int = 1024 * 1024
    max_import_bytes: int = 64 * 1024 * 1024  # the body of POST /import
    require_if_match: bool = False
    cursor_secret: str | None = None  # None: the store's own random secret
    body_timeout: float = 30.0  # seconds a request body may take to arrive
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser
    auth: str = "auto"  # required, local, or auto: local on loopback only, else required
    rate_limit: int | None = None  # requests a second per owner and process; None: no limit
    keep_revisions: int = DEFAULT_RETENTION.keep_revisions  # of each note
    trash_days: int = DEFAULT_RETENTION.trash_days  # before a deleted note is purged
    keep_changes_days: int = DEFAULT_RETENTION.keep_changes_days  # how far back GET /changes goes
