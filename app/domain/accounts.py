"""The use cases of owners and tokens: add and remove owners, issue, list and revoke tokens,
hand notes from one owner to another, and tell whom a token's secret belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.errors import InsufficientScopeError, LocalOwnerError
from app.domain.owners import (
    LAST_USED_STEP,
    LOCAL,
    NewToken,
    OwnerSummary,
    Scope,
    Token,
    is_token_shaped,
    new_secret,
    owner_name,
    secret_hash,
    to_the_minute,
)
from app.domain.ports import Store
from app.domain.services import Clock

VERIFIED_FOR = timedelta(seconds=5)  # how long a verified token is trusted without asking the store
MAX_CACHED = 10_000  # verified tokens remembered at most (the oldest go first)
LABEL_MAX = 100
# A label is one line of text: control characters (a newline, a tab) would break the table of
# `notes-api tokens list`, and could forge rows in it.
LABEL_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
LABEL_RULE = f"text of at most {LABEL_MAX} characters, without control characters (a newline, a tab)"


def label_is_valid(label: object) -> bool:
    return isinstance(label, str) and len(label) <= LABEL_MAX and not any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in label
    )
MAX_DAYS = 36_500


@dataclass(frozen=True, slots=True)
class Issued:
    token: Token
    secret: str  # shown once, never kept


class AccountService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._accounts = store.accounts
        self._clock = clock
        # secret -> (its token, verified until, trusted without any I/O until): this process's
        # memory only, for at most VERIFIED_FOR; a request's header holds the secret anyway
        self._verified: dict[str, tuple[Token, datetime, datetime]] = {}
        self._next_touch: dict[int, datetime] = {}  # token id -> when its last use is next written
        self._revocations = 0  # revocations through this process: one while `authenticate` waits stops it caching

    async def add_owner(self, name: str) -> None:
        await self._accounts.add_owner(owner_name(name), self._clock())

    async def owners(self) -> Sequence[OwnerSummary]:
        return await self._accounts.owners()

    async def remove_owner(self, name: str, *, delete_notes: bool = False) -> int:
        if owner_name(name) == LOCAL:
            raise LocalOwnerError()
        return await self._accounts.remove_owner(name, delete_notes=delete_notes)

    async def issue_token(
        self, owner: str, *, label: str = "", scope: Scope = Scope.WRITE,
        expires_in_days: int | None = None, issuer: Token | None = None,
    ) -> Issued:
        """A new token of `owner`. Issued through another token (`issuer`), it may not have a
        wider scope than that one, nor outlive it, and the store makes it only if that one is
        still there: a token revoked moments ago, which a process may still trust for up to
        VERIFIED_FOR, cannot hand itself on."""
        if issuer is not None and not issuer.scope.allows(scope):
            raise InsufficientScopeError("a read token cannot issue a write token")
        if not label_is_valid(label):
            raise ValueError(f"a label is {LABEL_RULE}")
        if expires_in_days is not None and not 1 <= expires_in_days <= MAX_DAYS:
            raise ValueError(f"expires in 1 to {MAX_DAYS} days")
        now = self._clock()
        expires_at = None if expires_in_days is None else now + timedelta(days=expires_in_days)
        if issuer is not None and issuer.expires_at is not None:
            _not_outliving(issuer.expires_at, expires_at, now)
        secret = new_secret()
        token = await self._accounts.add_token(NewToken(
            owner=owner_name(owner), label=label, scope=scope, secret_hash=secret_hash(secret),
            created_at=now, expires_at=expires_at, issuer_id=None if issuer is None else issuer.id,
        ))
        return Issued(token, secret)

    async def tokens(self, owner: str | None = None) -> Sequence[Token]:
        if owner is not None:
            owner_name(owner)
        return await self._accounts.tokens(owner)

    async def revoke_token(self, token_id: int, owner: str | None = None) -> None:
        """Revoked in the store, and here at once: this process trusts it no longer (the others
        within VERIFIED_FOR)."""
        await self._accounts.revoke_token(token_id, owner)
        self._revocations += 1
        for secret in [s for s, entry in self._verified.items() if entry[0].id == token_id]:
            del self._verified[secret]

    async def move_notes(self, source: str, target: str) -> int:
        return await self._accounts.move_notes(owner_name(source), owner_name(target), at=self._clock())

    def trusted(self, secret: str) -> Token | None:
        """The token of this secret if `authenticate` accepted it moments ago and would again now
        without any I/O (verified less than VERIFIED_FOR ago, not expired, no last use to write).
        None means "ask `authenticate`", not "refused"."""
        entry = self._verified.get(secret)
        if entry is None or self._clock() >= entry[2]:
            return None
        return entry[0]

    async def authenticate(self, secret: str) -> Token | None:
        """The token this secret belongs to, if it is valid now; None for a malformed, unknown,
        expired or revoked one. A verified token is trusted for up to VERIFIED_FOR without asking
        the store again: that bounds how long a revoked token keeps working in this process. Its
        last-used time is written at most once a minute."""
        if not is_token_shaped(secret):
            return None
        now, revocations = self._clock(), self._revocations
        entry = self._verified.pop(secret, None)
        if entry is not None and now < entry[1]:
            token, verified_until = entry[0], entry[1]
        else:
            found = await self._accounts.token_by_hash(secret_hash(secret))
            if found is None:
                return None
            token, verified_until = found, now + VERIFIED_FOR
        if not token.valid_at(now):
            return None
        due = self._next_touch.get(token.id)
        if due is None or now >= due:
            await self._note_use(token, now)
        trusted_until = min(verified_until, self._next_touch.get(token.id, verified_until))
        if token.expires_at is not None:
            trusted_until = min(trusted_until, token.expires_at)
        if revocations != self._revocations:  # revoked (this one?) while it was read or touched
            return token  # verified for this request, not trusted beyond it
        if len(self._verified) >= MAX_CACHED:
            del self._verified[next(iter(self._verified))]
        self._verified[secret] = (token, verified_until, trusted_until)
        return token

    async def _note_use(self, token: Token, now: datetime) -> None:
        minute = to_the_minute(now)
        self._next_touch[token.id] = minute + LAST_USED_STEP
        if len(self._next_touch) > MAX_CACHED:
            del self._next_touch[next(iter(self._next_touch))]
        if token.last_used_at is not None and token.last_used_at >= minute:
            return  # another process wrote this minute already
        # to the minute, but never before the token was made (a token made at 12:00:40 and used at
        # once was last used at 12:00:40, not 12:00:00)
        await self._accounts.touch_token(token.id, max(minute, token.created_at))  # a revoked one's row is gone


def _not_outliving(issuer_expires_at: datetime, expires_at: datetime | None, now: datetime) -> None:
    """A token that expires may issue only tokens that expire no later: else it could renew
    itself for ever."""
    if expires_at is not None and expires_at <= issuer_expires_at:
        return
    days = (issuer_expires_at - now).days
    if days < 1:
        raise InsufficientScopeError("this token expires within a day: it cannot issue another")
    raise InsufficientScopeError(
        f"a token cannot outlive the one that issues it: ask for expires_in_days of at most {days}"
    )
