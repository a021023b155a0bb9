"""One contract for owners, tokens and the owner scoping of notes, on every store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from app.adapters import Storage
from app.domain.accounts import VERIFIED_FOR, AccountService
from app.domain.errors import (
    IdempotencyKeyReusedError,
    InsufficientScopeError,
    InvalidOwnerNameError,
    IssuerRevokedError,
    LocalOwnerError,
    NoteNotFoundError,
    OwnerExistsError,
    OwnerHasNotesError,
    OwnerNotFoundError,
    OwnerRemovedError,
    TokenNotFoundError,
)
from app.domain.owners import LOCAL, Scope, secret_hash, to_the_minute
from app.domain.query import ListQuery, NoteFilter
from app.domain.transfer import WHOLE_STORE
from tests.databases import owner_is_held
from tests.factories import T0, draft, owner


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(storage: Storage, clock: Clock) -> AccountService:
    return AccountService(storage, clock)


async def test_local_always_exists_and_cannot_be_removed(accounts: AccountService) -> None:
    assert [o.name for o in await accounts.owners()] == [LOCAL]
    with pytest.raises(LocalOwnerError):
        await accounts.remove_owner(LOCAL)
    with pytest.raises(OwnerExistsError):
        await accounts.add_owner(LOCAL)


@pytest.mark.parametrize("name", ["", "Alice", "-x", ".x", "a b", "a/b", "x" * 65, "ünï"])
async def test_owner_names_follow_the_rule(accounts: AccountService, name: str) -> None:
    with pytest.raises(InvalidOwnerNameError):
        await accounts.add_owner(name)


async def test_owners_are_listed_with_their_counts(storage: Storage, accounts: AccountService) -> None:
    await accounts.add_owner("bob")
    await accounts.add_owner("alice")
    await storage.notes_of("alice").add(draft())
    await accounts.issue_token("alice")
    summary = {o.name: (o.notes, o.tokens) for o in await accounts.owners()}
    assert list(summary) == ["alice", "bob", LOCAL] and summary["alice"] == (1, 1) and summary["bob"] == (0, 0)


async def test_an_owner_with_notes_is_removed_only_with_them(storage: Storage, accounts: AccountService) -> None:
    await accounts.add_owner("alice")
    note = await storage.notes_of("alice").add(draft())
    issued = await accounts.issue_token("alice")
    with pytest.raises(OwnerHasNotesError):
        await accounts.remove_owner("alice")
    assert await storage.notes_of("alice").get(note.id) == note
    assert await accounts.remove_owner("alice", delete_notes=True) == 1
    assert await accounts.authenticate(issued.secret) is None
    with pytest.raises(NoteNotFoundError):
        await storage.notes_of("alice").get(note.id)
    with pytest.raises(OwnerNotFoundError):
        await accounts.remove_owner("alice")


async def test_a_token_is_kept_as_a_hash_and_authenticates_its_owner(
    storage: Storage, accounts: AccountService
) -> None:
    await accounts.add_owner("alice")
    issued = await accounts.issue_token("alice", label="laptop", scope=Scope.READ)
    assert issued.secret.startswith("notes_") and len(issued.secret) == 49
    assert await storage.accounts.token_by_hash(issued.secret) is None  # never kept in the clear
    stored = await storage.accounts.token_by_hash(secret_hash(issued.secret))
    assert stored == issued.token and stored.label == "laptop" and stored.scope is Scope.READ
    token = await accounts.authenticate(issued.secret)
    assert token is not None and token.owner == "alice" and token.id == issued.token.id
    other_last = "A" if issued.secret[-1] != "A" else "B"  # one character changed, whatever it was
    for wrong in ("", "notes_", issued.secret[:-1], issued.secret[:-1] + other_last, "Bearer " + issued.secret):
        assert await accounts.authenticate(wrong) is None


async def test_tokens_need_an_existing_owner(accounts: AccountService) -> None:
    with pytest.raises(OwnerNotFoundError):
        await accounts.issue_token("nobody")


async def test_an_expired_token_is_refused(accounts: AccountService, clock: Clock) -> None:
    await accounts.add_owner("alice")
    issued = await accounts.issue_token("alice", expires_in_days=1)
    assert issued.token.expires_at == T0 + timedelta(days=1)
    assert await accounts.authenticate(issued.secret) is not None
    clock.now = T0 + timedelta(days=1)
    assert await accounts.authenticate(issued.secret) is None


async def test_a_revoked_token_is_refused_once_its_verification_is_older_than_five_seconds(
    storage: Storage, accounts: AccountService, clock: Clock
) -> None:
    await accounts.add_owner("alice")
    issued = await accounts.issue_token("alice")
    assert await accounts.authenticate(issued.secret) is not None
    await AccountService(storage, clock).revoke_token(issued.token.id)  # another process, say
    clock.now += VERIFIED_FOR
    assert await accounts.authenticate(issued.secret) is None
    with pytest.raises(TokenNotFoundError):
        await accounts.revoke_token(issued.token.id)


async def test_a_token_of_another_owner_cannot_be_revoked_through_it(accounts: AccountService) -> None:
    await accounts.add_owner("alice")
    await accounts.add_owner("bob")
    issued = await accounts.issue_token("alice")
    with pytest.raises(TokenNotFoundError):
        await accounts.revoke_token(issued.token.id, owner="bob")
    assert [t.id for t in await accounts.tokens("alice")] == [issued.token.id]
    assert await accounts.tokens("bob") == []


async def test_a_read_token_cannot_issue_a_write_token(accounts: AccountService) -> None:
    await accounts.add_owner("alice")
    reader = (await accounts.issue_token("alice", scope=Scope.READ)).token
    with pytest.raises(InsufficientScopeError):
        await accounts.issue_token("alice", scope=Scope.WRITE, issuer=reader)
    assert (await accounts.issue_token("alice", scope=Scope.READ, issuer=reader)).token.scope is Scope.READ


async def test_a_revoked_token_issues_nothing_though_it_was_trusted_moments_ago(accounts: AccountService) -> None:
    """Revoked in another process, it is still trusted here for up to VERIFIED_FOR: were it to
    issue a token meanwhile, the revocation would come to nothing."""
    await accounts.add_owner("alice")
    await accounts.add_owner("bob")
    issuer = (await accounts.issue_token("alice")).token
    bobs = (await accounts.issue_token("bob")).token
    await accounts.revoke_token(issuer.id)
    with pytest.raises(IssuerRevokedError):
        await accounts.issue_token("alice", issuer=issuer)
    with pytest.raises(IssuerRevokedError):  # nor is another owner's token an issuer of alice's
        await accounts.issue_token("alice", issuer=bobs)
    assert await accounts.tokens("alice") == []


async def test_a_token_revoked_through_this_process_is_refused_here_at_once(accounts: AccountService) -> None:
    await accounts.add_owner("alice")
    issued = await accounts.issue_token("alice")
    assert await accounts.authenticate(issued.secret) is not None and accounts.trusted(issued.secret) is not None
    await accounts.revoke_token(issued.token.id)
    assert accounts.trusted(issued.secret) is None and await accounts.authenticate(issued.secret) is None


async def test_a_revocation_while_the_token_is_being_verified_is_not_undone(
    storage: Storage, accounts: AccountService
) -> None:
    """A request that looked the token up before the revocation is let in, but the token is not
    then trusted for VERIFIED_FOR more."""
    await accounts.add_owner("alice")
    issued = await accounts.issue_token("alice")
    looked_up, go_on = asyncio.Event(), asyncio.Event()
    token_by_hash = storage.accounts.token_by_hash

    async def held(secret_hash: str) -> Any:
        found = await token_by_hash(secret_hash)
        looked_up.set()
        await go_on.wait()
        return found

    storage.accounts.token_by_hash = held  # type: ignore[method-assign]
    try:
        verifying = asyncio.ensure_future(accounts.authenticate(issued.secret))
        await looked_up.wait()
        await accounts.revoke_token(issued.token.id)
        go_on.set()
        assert await verifying is not None
    finally:
        del storage.accounts.token_by_hash
    assert accounts.trusted(issued.secret) is None and await accounts.authenticate(issued.secret) is None


async def test_a_token_that_expires_cannot_issue_one_that_outlives_it(accounts: AccountService, clock: Clock) -> None:
    await accounts.add_owner("alice")
    issuer = (await accounts.issue_token("alice", expires_in_days=10)).token
    for days in (None, 11):
        with pytest.raises(InsufficientScopeError, match="at most 10"):
            await accounts.issue_token("alice", expires_in_days=days, issuer=issuer)
    last = await accounts.issue_token("alice", expires_in_days=10, issuer=issuer)
    assert last.token.expires_at == issuer.expires_at
    clock.now += timedelta(days=9, hours=12)
    with pytest.raises(InsufficientScopeError, match="expires within a day"):
        await accounts.issue_token("alice", expires_in_days=1, issuer=issuer)
    assert (await accounts.issue_token("alice", issuer=None)).token.expires_at is None  # the command line: no issuer


async def test_a_token_used_in_the_minute_it_was_made_was_not_used_before_it_was_made(
    accounts: AccountService, clock: Clock
) -> None:
    await accounts.add_owner("alice")
    clock.now = T0 + timedelta(seconds=40)
    issued = await accounts.issue_token("alice")
    clock.now += timedelta(seconds=5)
    assert await accounts.authenticate(issued.secret) is not None
    [token] = await accounts.tokens("alice")
    assert token.last_used_at == token.created_at == T0 + timedelta(seconds=40)


async def test_last_use_is_written_to_the_minute_at_most_once_a_minute(
    storage: Storage, accounts: AccountService, clock: Clock
) -> None:
    await accounts.add_owner("alice")
    issued = await accounts.issue_token("alice")
    writes: list[object] = []
    touch = storage.accounts.touch_token

    async def counted(token_id: int, used_at) -> None:
        writes.append(used_at)
        await touch(token_id, used_at)

    storage.accounts.touch_token = counted  # type: ignore[method-assign]
    try:
        for seconds in range(0, 130, 5):
            clock.now = T0 + timedelta(seconds=seconds)
            assert await accounts.authenticate(issued.secret) is not None
    finally:
        del storage.accounts.touch_token
    # the first within the minute the token was made: when it was made, not before
    assert writes == [T0, *(to_the_minute(T0 + timedelta(minutes=m)) for m in (1, 2))]
    (token,) = await accounts.tokens("alice")
    assert token.last_used_at == to_the_minute(T0 + timedelta(minutes=2))


async def test_notes_move_from_one_owner_to_another_with_their_ids(
    storage: Storage, accounts: AccountService
) -> None:
    await accounts.add_owner("alice")
    mine = [await storage.notes_of(LOCAL).add(draft(title=str(i), tags=("t",))) for i in range(3)]
    assert await accounts.move_notes(LOCAL, "alice") == 3
    assert await storage.notes_of(LOCAL).list(ListQuery()) == []
    assert await storage.notes_of("alice").list(ListQuery(filter=NoteFilter(tags=frozenset({"t"})))) == mine
    with pytest.raises(OwnerNotFoundError):
        await accounts.move_notes("alice", "nobody")


async def test_one_owner_never_reaches_anothers_note(storage: Storage) -> None:
    note = await storage.notes_of(await owner(storage, "alice")).add(draft())
    bob = storage.notes_of("bob")
    for attempt in (
        lambda: bob.get(note.id),
        lambda: bob.update(note.revised(note.content(), T0)),
        lambda: bob.delete(note.id, at=T0),
        lambda: bob.delete(note.id, at=T0, version=1),
    ):
        with pytest.raises(NoteNotFoundError):
            await attempt()
    assert await bob.list(ListQuery()) == []
    assert await storage.notes_of("alice").get(note.id) == note


async def test_idempotency_keys_are_per_owner(storage: Storage) -> None:
    async with storage.transaction("alice") as tx:
        assert await tx.idempotency.claim("k", "f1", T0) is None
        await tx.idempotency.record("k", "f1", b"alice's", T0)
    async with storage.transaction("bob") as tx:
        assert await tx.idempotency.claim("k", "f2", T0) is None  # the same key: another request
        await tx.idempotency.record("k", "f2", b"bob's", T0)
    async with storage.transaction("alice") as tx:
        assert await tx.idempotency.claim("k", "f1", T0) == b"alice's"
        with pytest.raises(IdempotencyKeyReusedError):
            await tx.idempotency.claim("k", "f2", T0)


async def test_no_note_is_made_of_an_owner_once_removed(storage: Storage) -> None:
    """A process trusts a verified token a few seconds longer than its owner may live (VERIFIED_FOR):
    the store refuses the write itself, so no note outlives its owner (an export would then name an
    owner the store does not hold, and the next owner of that name would find the note)."""
    kept = storage.notes_of(await owner(storage, "dave"))  # as a request that began before
    await storage.accounts.remove_owner("dave", delete_notes=False)
    for write in (lambda: kept.add(draft()), lambda: kept.add_many([draft()]),
                  lambda: storage.notes_of("dave").add(draft())):
        with pytest.raises(OwnerRemovedError):
            await write()
    with pytest.raises(OwnerRemovedError):
        async with storage.transaction("dave") as tx:  # an idempotent create, an import
            await tx.notes.add(draft())
    assert [o.name for o in await storage.accounts.owners()] == [LOCAL]
    assert not [r async for r in storage.export(WHOLE_STORE) if getattr(r, "owner", None) == "dave"]


async def test_an_owner_is_removed_only_once_the_notes_being_made_of_it_are_counted(
    storage: Storage, database_url: str
) -> None:
    """PostgreSQL, where a note and a removal may be written at once: the removal waits for the
    transaction making the note, then finds it (without --delete-notes, it refuses)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite and memory write one transaction at a time")
    dave = await owner(storage, "dave")
    async with storage.transaction(dave) as tx:
        await tx.notes.add(draft())
        assert await owner_is_held(database_url, dave)  # a removal now would wait for this one
    with pytest.raises(OwnerHasNotesError):
        await storage.accounts.remove_owner(dave, delete_notes=False)
    assert [n.title for n in await storage.notes_of(dave).list(ListQuery())] == ["note two"]

