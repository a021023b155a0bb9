"""The ports: what the domain needs from storage, as structural types the adapters satisfy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from app.domain.model import Note, NoteDraft
from app.domain.query import ListQuery


class NoteRepository(Protocol):
    """Where notes live. Every method raises `StorageUnavailableError` when the store cannot be
    reached; no driver exception crosses this port."""

    async def add(self, draft: NoteDraft) -> Note:
        """Store a new note at version 1 under a fresh id that was never used before."""

    async def get(self, note_id: int) -> Note:
        """The note with this id; `NoteNotFoundError` if there is none."""

    async def update(self, note: Note) -> Note:
        """Store `note` in place of its predecessor, atomically, only if the stored note is still at
        `note.version - 1`. `NoteNotFoundError` if it is gone, `VersionConflictError` if it moved on."""

    async def delete(self, note_id: int, *, version: int | None = None) -> None:
        """Delete the note, if `version` is given only while it is at that version.
        `NoteNotFoundError` if it is gone, `VersionConflictError` if it is at another version."""

    async def list(self, query: ListQuery) -> Sequence[Note]:
        """Up to `query.limit` notes that match `query.filter`, in `query.sort` order, strictly after
        the key `query.after`. The cost does not grow with how deep `after` lies."""

    async def check(self) -> None:
        """Return when the store answers; raise `StorageUnavailableError` when it does not."""


IDEMPOTENCY_RETENTION = timedelta(hours=24)
IDEMPOTENCY_LEASE = timedelta(seconds=60)  # a claim older than this was left by a crashed request


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """The first answer to a request with an Idempotency-Key, to be given again to its retries."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class IdempotencyStore(Protocol):
    """Idempotency keys, kept in the same database as the notes for `IDEMPOTENCY_RETENTION`."""

    async def claim(self, key: str, fingerprint: str, now: datetime) -> RecordedResponse | None:
        """Claim `key` for a new request (None), or return the response to replay.

        Atomic across processes: of two claims of one key, exactly one gets None. Raises
        `IdempotencyKeyInUseError` while another request holds the key, and
        `IdempotencyKeyReusedError` when the key was used with another `fingerprint`.
        """

    async def finish(self, key: str, response: RecordedResponse, now: datetime) -> None:
        """Record the response of the request that claimed `key`."""

    async def release(self, key: str) -> None:
        """Forget an unfinished claim (its request failed), so that a retry may run."""
