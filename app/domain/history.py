"""The history of notes: one change log per store, and the three views of it, revisions, the
trash and the changes feed.

Every write of a note (create, replace, patch, restore, delete, purge) adds its row to the log
in the same transaction as the write itself. A `put` row carries the note as that write left
it: those rows are the note's revisions. A `delete` row carries none. The feed is every row of
an owner, in the order of its `ChangeToken`s.

The token is what makes the feed safe to follow. A store hands out tokens so that a row with a
smaller token than one a follower has read can never become visible later: how each store keeps
that promise is written where it does (memory.py, sqlite.py, postgres_history.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.domain.errors import InvalidChangeTokenError
from app.domain.model import Note

_TOKEN_PART_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True, order=True)
class ChangeToken:
    """A place in the log: every row up to and including it has been read.

    `key` orders rows before `position` does. A store whose commits are numbered in commit order
    (SQLite's one writer, the memory store) leaves `key` at 0; PostgreSQL keys rows by
    transaction (postgres_history.py). Written as `position`, or `key.position` when `key` is set.
    """

    key: int = 0
    position: int = 0

    def __str__(self) -> str:
        return str(self.position) if self.key == 0 else f"{self.key}.{self.position}"

    @classmethod
    def parse(cls, text: str) -> ChangeToken:
        """A token as `str` writes it; `InvalidChangeTokenError` for anything else."""
        key, dot, position = text.rpartition(".")
        if not dot:
            key = "0"
        if not (_is_number(key) and _is_number(position)):
            raise InvalidChangeTokenError(text)
        return cls(int(key), int(position))


def _is_number(text: str) -> bool:
    return (
        text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")
        and len(text) <= 19 and int(text) <= _TOKEN_PART_MAX
    )


START = ChangeToken()


class ChangeOp(StrEnum):
    PUT = "put"  # the note was created or changed: `note` is the note as the change left it
    DELETE = "delete"  # the note left the owner's notes (to the trash, or for good)


@dataclass(frozen=True, slots=True)
class Change:
    token: ChangeToken
    op: ChangeOp
    note_id: int
    version: int
    at: datetime
    note: Note | None  # None for a delete


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """Changes in log order, and the token to continue from (past every change the page holds,
    and possibly past rows of other owners that need not be read again). `held_back`: changes
    after `next` have committed, but a transaction still in flight keeps them from being read
    yet, and its end may wake no follower: look again soon."""

    changes: tuple[Change, ...]
    next: ChangeToken
    held_back: bool = False


@dataclass(frozen=True, slots=True)
class Trashed:
    """A note in the trash: as it was when deleted, and when that was."""

    note: Note
    deleted_at: datetime


@dataclass(frozen=True, slots=True)
class Retention:
    """How long history is kept: `--keep-revisions`, `--trash-days`, `--keep-changes-days`."""

    keep_revisions: int = 100
    trash_days: int = 30
    keep_changes_days: int = 30

    def trash_cutoff(self, now: datetime) -> datetime:
        """Notes deleted before this are purged from the trash."""
        return now - timedelta(days=self.trash_days)

    def changes_cutoff(self, now: datetime) -> datetime:
        """Log rows written before this leave the feed."""
        return now - timedelta(days=self.keep_changes_days)

    def oldest_kept(self, version: int) -> int:
        """The oldest revision kept of a note at `version`."""
        return max(1, version - self.keep_revisions + 1)

    def gone_with_feed(self, op: str, version: int, current: int | None) -> bool:
        """Whether a row of the log that leaves the feed leaves the store too: a delete does, and
        a put unless it is still one of its note's kept revisions (`current`: the note's version
        now, None when the note is gone)."""
        return op != ChangeOp.PUT or current is None or version < self.oldest_kept(current)


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one round of pruning removed; a round is small, and the pruner goes on while any is
    not empty."""

    revisions: int = 0
    trashed: int = 0
    changes: int = 0
    more: bool = False  # a step stopped at its batch's size: another round has work

    def __bool__(self) -> bool:
        return bool(self.revisions or self.trashed or self.changes or self.more)


DEFAULT_RETENTION = Retention()
