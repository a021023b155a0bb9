"""Owners and their tokens: names, scopes, expiry, and the secrets the service never keeps.

A token's secret is `notes_` and 43 base64url characters (256 random bits). The service keeps
only its SHA-256, so a copy of the database lets no one in; the secret is shown once, when issued.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.domain.errors import InvalidOwnerNameError

LOCAL = "local"  # the built-in owner: notes made without a token where the mode allows it
_OWNER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TOKEN_PREFIX = "notes_"
_TOKEN = re.compile(r"notes_[A-Za-z0-9_-]{43}")
LAST_USED_STEP = timedelta(minutes=1)  # last-used times are kept to the minute


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"

    def allows(self, other: Scope) -> bool:
        """Whether a token of this scope may do what `other` allows (and issue such a token)."""
        return self is Scope.WRITE or other is Scope.READ


def owner_name(name: str) -> str:
    """`name` if it is a valid owner name; InvalidOwnerNameError otherwise."""
    if not isinstance(name, str) or _OWNER_NAME.fullmatch(name) is None:
        raise InvalidOwnerNameError(str(name)[:80])
    return name


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_token_shaped(secret: str) -> bool:
    return _TOKEN.fullmatch(secret) is not None


def secret_hash(secret: str) -> str:
    """What the store keeps of a secret, and looks it up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def to_the_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """A token as the store keeps it: never the secret."""

    id: int
    owner: str
    label: str
    scope: Scope
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class NewToken:
    """A token about to be stored: everything but the id."""

    owner: str
    label: str
    scope: Scope
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None
    issuer_id: int | None = None  # the token asking for it, which must still be there (else nothing is stored)


@dataclass(frozen=True, slots=True)
class OwnerSummary:
    name: str
    notes: int
    tokens: int


@dataclass(frozen=True, slots=True)
class Identity:
    """Whom a request acts for: an owner, and the token it came with (None: `local` without one)."""

    owner: str
    token: Token | None = None

    @property
    def scope(self) -> Scope:
        return Scope.WRITE if self.token is None else self.token.scope


LOCAL_IDENTITY = Identity(LOCAL)
