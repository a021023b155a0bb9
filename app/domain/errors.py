"""The domain's errors. The HTTP adapter maps each to one problem+json answer."""

from __future__ import annotations

from dataclasses import dataclass


class NoteError(Exception):
    """Base of every error the domain raises."""


class NoteNotFoundError(NoteError):
    def __init__(self, note_id: int) -> None:
        super().__init__(f"note {note_id} does not exist")
        self.note_id = note_id


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One broken rule: `pointer` is a JSON pointer (RFC 6901) into the request body."""

    pointer: str
    detail: str


class NoteValidationError(NoteError):
    """A body that breaks the rules of the note: the first problems found (all of them, up to a
    limit), and how many there were in all (`count`)."""

    def __init__(self, problems: list[FieldProblem], count: int | None = None) -> None:
        super().__init__("; ".join(f"{p.pointer}: {p.detail}" for p in problems))
        self.problems = tuple(problems)
        self.count = len(problems) if count is None else count


class VersionConflictError(NoteError):
    """The stored note is not at the version the caller expected (a lost race or a stale If-Match)."""

    def __init__(self, note_id: int) -> None:
        super().__init__(f"note {note_id} has changed")
        self.note_id = note_id


class PreconditionFailedError(NoteError):
    """The caller's precondition does not hold for the note: it names a version the note no
    longer has, or asks for no note where there is one."""

    def __init__(self, note_id: int) -> None:
        super().__init__(f"the precondition does not hold for note {note_id}")
        self.note_id = note_id


class StorageUnavailableError(NoteError):
    """The database cannot be reached now; the request may be retried later."""


class StorageReadOnlyError(StorageUnavailableError):
    """The store refuses every write, and goes on refusing them until an operator changes it and
    starts the process again (a SQLite file this process may not write)."""


class IdempotencyKeyInUseError(NoteError):
    """A request with the same Idempotency-Key is still being processed."""


class IdempotencyKeyReusedError(NoteError):
    """The Idempotency-Key was first used with another request body."""


class AccountError(NoteError):
    """Base of the errors about owners and tokens; the message is one line naming the fix."""


class InvalidOwnerNameError(AccountError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is not a valid owner name: use 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit"
        )


class OwnerExistsError(AccountError):
    def __init__(self, name: str) -> None:
        super().__init__(f"owner {name} exists already")


class OwnerNotFoundError(AccountError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no owner named {name}: add one with `notes-api users add {name}`")
        self.name = name


class OwnerRemovedError(NoteError):
    """A note written for an owner that no longer exists: a process trusts a verified token for
    up to VERIFIED_FOR, so one of a removed owner may still ask. The store refuses the write, in
    the write's own statement or transaction, so that no note outlives its owner."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the owner {name} was removed")
        self.name = name


class OwnerHasNotesError(AccountError):
    def __init__(self, name: str, count: int) -> None:
        super().__init__(
            f"owner {name} has {count} notes: move them (`notes-api notes move --from {name} --to OWNER`)"
            " or delete them with --delete-notes"
        )


class LocalOwnerError(AccountError):
    def __init__(self) -> None:
        super().__init__("the owner local always exists and cannot be removed")


class TokenNotFoundError(AccountError):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"no token with id {token_id}")
        self.token_id = token_id


class InsufficientScopeError(AccountError):
    """A token asked for something its scope does not allow (a read token on a write)."""


class IssuerRevokedError(AccountError):
    """The token that asked for a new one was revoked meanwhile (or its owner removed): it may
    issue nothing, even while the processes that verified it moments ago still trust it."""

    def __init__(self) -> None:
        super().__init__("the token that issues this one is revoked")


class ImportConflictError(NoteError):
    """An import met an id the target already has, under `--on-conflict fail`."""

    def __init__(self, kind: str, item_id: int) -> None:
        super().__init__(
            f"{kind} {item_id} exists in the target already: nothing was imported;"
            " use --on-conflict skip or --on-conflict replace to keep or replace what is there"
        )
        self.kind, self.item_id = kind, item_id


class InvalidChangeTokenError(NoteError):
    """A `since` or `Last-Event-ID` that no store ever wrote."""

    def __init__(self, text: str) -> None:
        super().__init__(f"{text[:40]!r} is not a change token: send back a `next` or an event id as it came")


class ChangeTokenExpiredError(NoteError):
    """A token older than the kept log: the changes after it are gone."""

    def __init__(self, token: object) -> None:
        super().__init__(
            f"the changes after {token} are no longer kept: read /notes again, then follow from its `next`"
        )


class ChangeTokenAheadError(ChangeTokenExpiredError):
    """A token beyond the end of the log: no follower of this store was given it (another store's,
    or one of a log that began again: a memory store restarted). Following from it would skip
    the changes up to it, so the follower starts again, as from an expired one."""

    def __init__(self, token: object) -> None:
        NoteError.__init__(
            self,
            f"the change token {token} is beyond this store's log (another store's, or the store began"
            " again): read /notes again, then follow from its `next`",
        )


class RevisionNotFoundError(NoteError):
    def __init__(self, note_id: int, version: int) -> None:
        super().__init__(f"note {note_id} has no revision {version} (never made, or no longer kept)")
        self.note_id, self.version = note_id, version


class NotInTrashError(NoteError):
    def __init__(self, note_id: int) -> None:
        super().__init__(f"note {note_id} is not in the trash")
        self.note_id = note_id
