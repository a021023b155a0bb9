"""What moves between stores in an export, an import or a copy: owners, their tokens (the
hashes only) and their notes, each with what the store keeps of it, ids, versions and times
included, so that a store filled from another one answers exactly as that one did.

A store exports them as one ordered stream, in constant memory: owners by name, then tokens by
id, then notes by id (those in the trash with the time they were deleted), then the notes'
older revisions by note id and version. It imports such a stream in one transaction: all of it
or nothing. An import adds to the target's change log what a follower needs to rebuild the
imported notes: each note's revisions, oldest first, and a delete for each note in the trash.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from app.domain.model import Note
from app.domain.owners import Scope


@dataclass(frozen=True, slots=True)
class OwnerRecord:
    name: str
    created_at: datetime | None  # None: `local`, which every store has from the start


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRecord:
    id: int
    owner: str
    label: str
    scope: Scope
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class NoteRecord:
    owner: str
    note: Note
    deleted_at: datetime | None = None  # a note in the trash: when it was deleted


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    """An older version of a note (the note's line is its current one): the note as it was."""

    owner: str
    note: Note


Record = OwnerRecord | TokenRecord | NoteRecord | RevisionRecord


class OnConflict(StrEnum):
    """What an import does with a note or token whose id the target already has."""

    FAIL = "fail"  # refuse the whole import, naming the id
    SKIP = "skip"  # keep the target's
    REPLACE = "replace"  # take the imported one (see `replacement`)


@dataclass(frozen=True, slots=True)
class Replacement:
    """How `OnConflict.REPLACE` writes an imported note over the target's note of the same id.

    The imported note is the note's next change in the target. A version names one content for
    good: it is the note's ETag, which a client may hold for a conditional request, and a
    follower of the changes keeps the highest version it has seen of each note. So the imported
    note takes a version past every one the target gave the note, which is its own version when
    the two stores' histories of the note agree up to the target's (one copied from the other,
    then edited further). The target keeps the revisions it gave out (those of another owner go
    with the note, as a purge takes them); the file's newer ones follow."""

    version: int  # the imported note's version in the target
    kept_up_to: int  # the target keeps its revisions up to this version, and takes the file's above it
    from_another_owner: bool  # whose revisions of it go
    leaves: str | None  # that owner, if the note was one of their notes (their followers hear a delete)

    @classmethod
    def over(cls, owner: str, version: int, live: bool, imported_owner: str, imported_version: int) -> Replacement:
        """Over the target's note of `owner` at `version` (`live`: not in the trash)."""
        same_owner = owner == imported_owner
        return cls(
            version=max(imported_version, version + 1),
            kept_up_to=version if same_owner else 0,
            from_another_owner=not same_owner,
            leaves=None if same_owner or not live else owner,
        )


def replacement(target: NoteRecord, imported: NoteRecord) -> Replacement | None:
    """None when the target holds the imported note already: the same in all but the version,
    which is the imported one's or, after an earlier replace that took a version past the
    target's, above it (the same copy run again). Nothing is written, and no follower hears of it."""
    if target.note.version >= imported.note.version and replace(
        target, note=replace(target.note, version=imported.note.version)
    ) == imported:
        return None
    return Replacement.over(
        target.owner, target.note.version, target.deleted_at is None, imported.owner, imported.note.version
    )


@dataclass(slots=True)
class Imported:
    """What an import wrote: owners it added, tokens and notes it wrote, and the ids it skipped
    (`--on-conflict skip`) or replaced."""

    owners: int = 0
    tokens: int = 0
    notes: int = 0
    # note ids the target kept as they were: skipped, or (replace) holding the imported note already
    skipped: list[int] = field(default_factory=list)
    skipped_tokens: list[int] = field(default_factory=list)  # imported tokens whose id or secret the target had
    replaced: int = 0
    # note id -> the imported version, of each replaced note that took another (`Replacement`)
    renumbered: dict[int, int] = field(default_factory=dict)
    from_other_owners: int = 0  # replaced notes that another owner had
    revisions: int = 0  # older revisions written

    def count_replaced(self, note_id: int, imported_version: int, change: Replacement) -> None:
        self.replaced += 1
        self.from_other_owners += change.from_another_owner
        if change.version != imported_version:
            self.renumbered[note_id] = imported_version


@dataclass(frozen=True, slots=True)
class Selection:
    """Which part of a store an export covers: every owner (with tokens), or the named ones; and
    of each note, the revisions a server with --keep-revisions `keep_revisions` shows (the last
    that many versions, the current one included), or every one the store holds."""

    owners: tuple[str, ...] | None = None  # None: the whole store
    keep_revisions: int | None = None  # None: every revision stored

    def older_kept(self, current: int, version: int) -> bool:
        """Whether `version` is a revision of a note at `current` that the export carries."""
        return version < current and (self.keep_revisions is None or version > current - self.keep_revisions)

    @property
    def revisions_back(self) -> int:
        """How many versions below the current one the export carries (for a statement)."""
        return 2**62 if self.keep_revisions is None else self.keep_revisions - 1

    @property
    def whole_store(self) -> bool:
        return self.owners is None

    def covers(self, owner: str) -> bool:
        return self.owners is None or owner in self.owners


WHOLE_STORE = Selection()
