"""The ports: what the domain needs from storage, as structural types the adapters satisfy."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Protocol

from app.domain.history import ChangesPage, ChangeToken, Pruned, Retention, Trashed
from app.domain.model import Note, NoteDraft
from app.domain.owners import NewToken, OwnerSummary, Token
from app.domain.query import ListQuery
from app.domain.transfer import Imported, OnConflict, Record, Selection


class NoteRepository(Protocol):
    """The notes of one owner (`Store.notes_of`): no method sees, counts or changes a note of
    another owner; to it, another owner's note does not exist. Every method raises
    `StorageUnavailableError` when the store cannot be reached; no driver exception crosses this
    port."""

    async def add(self, draft: NoteDraft) -> Note:
        """Store a new note of this owner at version 1 under a fresh id that was never used before."""

    async def get(self, note_id: int) -> Note:
        """The note with this id; `NoteNotFoundError` if there is none."""

    async def update(self, note: Note) -> Note:
        """Store `note` in place of its predecessor, atomically, only if the stored note is still at
        `note.version - 1`. `NoteNotFoundError` if it is gone, `VersionConflictError` if it moved on."""

    async def delete(self, note_id: int, *, at: datetime, version: int | None = None, purge: bool = False) -> None:
        """Move the note to the trash, deleted `at` (with `purge`, delete it for good with its
        revisions), if `version` is given only while it is at that version; either way a `delete`
        joins the log. `NoteNotFoundError` if it is gone, `VersionConflictError` if it is at
        another version."""

    async def revisions(self, note_id: int, *, newest: int, oldest: int, limit: int) -> Sequence[Note]:
        """Up to `limit` revisions of the note, from version `newest` down to `oldest`, newest
        first: each the note as that version left it. Revisions of a note in the trash are not
        found here: only the note's own, while it is one of this owner's notes."""

    async def trash(self, *, limit: int, after: tuple[datetime, int] | None = None) -> Sequence[Trashed]:
        """Up to `limit` notes of the trash, most recently deleted first (then by id, highest
        first), strictly after the key (deleted_at, id) `after`."""

    async def in_trash(self, note_id: int) -> Trashed:
        """The note in the trash with this id; `NotInTrashError` if there is none."""

    async def restore(self, note_id: int, at: datetime, version: int | None = None) -> Note:
        """Take the note out of the trash, under its id, at one version more than it had, changed
        `at`; a `put` joins the log. `NotInTrashError` if it is not in the trash; with `version`,
        `VersionConflictError` when the trash holds it at another version."""

    async def purge(self, note_id: int, version: int | None = None) -> None:
        """Delete the note in the trash for good, with its revisions. `NotInTrashError`; with
        `version`, `VersionConflictError` when the trash holds it at another version."""

    async def changes(self, since: ChangeToken | None, limit: int) -> ChangesPage:
        """Up to `limit` rows of this owner's log after `since` (the start of the kept log when
        None), in token order; a row with a token below one returned now never appears later.
        `ChangeTokenExpiredError` when rows after `since` are no longer kept."""

    async def list(self, query: ListQuery) -> Sequence[Note]:
        """Up to `query.limit` notes that match `query.filter`, in `query.sort` order, strictly after
        the key `query.after`. The cost does not grow with how deep `after` lies."""

    async def add_many(self, drafts: Sequence[NoteDraft]) -> Sequence[Note]:
        """Store new notes of this owner, in order, each as `add` would, in one statement or
        batch where the store has one, and in one transaction: all of them or none."""


IDEMPOTENCY_RETENTION = timedelta(hours=24)


class IdempotencyStore(Protocol):
    """Idempotency keys and the outcome of the first request made with each, kept for
    `IDEMPOTENCY_RETENTION`. Only usable inside a unit of work (`Store.transaction`): the key, the
    note it made and its outcome commit together, or none of them does."""

    async def claim(self, key: str, fingerprint: str, now: datetime) -> bytes | None:
        """Take `key` for this unit of work (None), or return the outcome recorded for it.

        Raises `IdempotencyKeyInUseError` while another unit of work holds the key (a store may
        instead wait for that one to end), and `IdempotencyKeyReusedError` when the key was used
        with another `fingerprint`. A key recorded longer than the retention ago is free again.
        """

    async def record(self, key: str, fingerprint: str, outcome: bytes, now: datetime) -> None:
        """Keep `outcome` as the answer to every later claim of `key` with `fingerprint`."""


class UnitOfWork(Protocol):
    """The ports of one transaction, for one owner: what is done through them commits together or
    not at all."""

    @property
    def notes(self) -> NoteRepository: ...

    @property
    def idempotency(self) -> IdempotencyStore: ...


class Accounts(Protocol):
    """Owners and their tokens, kept in the same database as the notes."""

    async def add_owner(self, name: str, now: datetime) -> None:
        """`OwnerExistsError` if there is one of that name."""

    async def owners(self) -> Sequence[OwnerSummary]:
        """Every owner with how many notes and tokens it has, by name."""

    async def remove_owner(self, name: str, *, delete_notes: bool) -> int:
        """Remove the owner and its tokens (and, if told, its notes: how many is returned).
        `OwnerNotFoundError`; `OwnerHasNotesError` while it has notes and `delete_notes` is false."""

    async def add_token(self, token: NewToken) -> Token:
        """`OwnerNotFoundError` if the token's owner does not exist."""

    async def token_by_hash(self, secret_hash: str) -> Token | None:
        """The token whose secret has this hash, expired or not; None if there is none."""

    async def tokens(self, owner: str | None = None) -> Sequence[Token]:
        """The tokens of `owner` (every owner's when None), by id."""

    async def revoke_token(self, token_id: int, owner: str | None = None) -> None:
        """Delete the token (only if it is `owner`'s, when given); `TokenNotFoundError` if none."""

    async def touch_token(self, token_id: int, used_at: datetime) -> None:
        """Set the token's last-used time (a minute, already rounded)."""

    async def move_notes(self, source: str, target: str, *, at: datetime) -> int:
        """Give every note of `source` to `target` in one transaction, with its trash and its
        history; how many notes moved. `OwnerNotFoundError` if either does not exist.

        A move is a change of each note, logged `at`: the followers of `source` get a `delete`
        of each note it had (in the trash too), and the followers of `target` a `put` of each
        note, at its version, so that neither side's follower misses it (the newest revision's
        row moves to the end of the log: each version stays in it once). A purged note's rows
        stay the source's."""


class ChangeWatch(Protocol):
    """One follower's wait for changes (`Store.watch`)."""

    @property
    def closing(self) -> bool:
        """The store is closing: stop waiting and answer now."""

    async def wait(self, timeout: float, *, looking_again: bool = False) -> bool:
        """Return True when a change may have been made since the last wait (or the watch began),
        False when `timeout` seconds passed first or the store is closing. `looking_again`: a
        short wait before the follower reads again (it is active, not idle)."""


class Store(Protocol):
    """One open store: each owner's notes, transactions, accounts, and whether it can take writes."""

    def notes_of(self, owner: str) -> NoteRepository:
        """The notes of `owner`, each call a transaction of its own."""

    @property
    def accounts(self) -> Accounts: ...

    def transaction(self, owner: str, *, rows: int = 0) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work: committed when the block ends, rolled back when it raises. A lost
        reply to the commit leaves either all of it or nothing, never a part. `rows`: how many
        notes it may write beyond a few (an import's), for a store that bounds the time of a
        transaction to give it the time they take."""

    async def check(self) -> None:
        """Return when the store can take writes now; raise `StorageUnavailableError` if not."""

    async def check_not_read_only(self) -> None:
        """Raise `StorageReadOnlyError` when the store will refuse every write for as long as
        this process runs (a SQLite file it could open only to read). Answers at once: it waits
        for no lock, and a store that is busy or unreachable now passes (`check` is for that)."""

    def export(self, selection: Selection) -> AsyncIterator[Record]:
        """What `selection` covers, streamed in constant memory and read in one snapshot: its
        owners by name, then (the whole store only) the tokens by id, then the notes by id."""

    def watch(self, owner: str) -> AbstractAsyncContextManager[ChangeWatch]:
        """Wake-ups for `owner`'s changes, from this process and (where the store is shared)
        from others, for as long as the block lasts: enter it before reading the log, so that no
        change falls between the read and the wait."""

    def close_watches(self) -> None:
        """End every watch now, and every one begun from now on: the process is stopping."""

    async def prune(self, now: datetime, retention: Retention) -> Pruned:
        """One small round of pruning: revisions beyond `retention.keep_revisions` of a note,
        notes in the trash longer than its days, log rows older than its days. Each round is a
        short transaction; the caller repeats while a round removes anything."""

    async def count_notes(self, selection: Selection) -> int:
        """How many notes `selection` covers now (a progress bar's total)."""

    async def import_records(
        self, records: AsyncIterable[Record], on_conflict: OnConflict, *, at: datetime
    ) -> Imported:
        """Write `records`, in the order `export` gives them, in one transaction: if anything
        raises, `records` included, nothing is written. Ids, versions and times are kept; an
        owner the store lacks is added; new ids continue past the largest one imported. An id the
        store has already is `ImportConflictError` (`FAIL`), kept (`SKIP`) or written over as
        `transfer.replacement` says (`REPLACE`); a note that leaves another owner so is logged
        as deleted for them `at`."""
