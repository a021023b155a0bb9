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
    """The client's If-Match names a version the note no longer has."""

    def __init__(self, note_id: int) -> None:
        super().__init__(f"note {note_id} does not match the If-Match precondition")
        self.note_id = note_id


class StorageUnavailableError(NoteError):
    """The database cannot be reached now; the request may be retried later."""


class IdempotencyKeyInUseError(NoteError):
    """A request with the same Idempotency-Key is still being processed."""


class IdempotencyKeyReusedError(NoteError):
    """The Idempotency-Key was first used with another request body."""
