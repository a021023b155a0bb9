"""The schema, described once. Alembic's migrations build it; the adapters' SQL reads it.

The two SQL stores differ where each has a better native form: PostgreSQL keeps timestamps as
`timestamptz` and tags as `text[]` (with a GIN index for "all of these tags"); SQLite keeps
timestamps as integer microseconds since the epoch (exact and sortable) and tags as a JSON array,
mirrored by triggers into `note_tags` for the same lookup. `title_key` and `search_text` are
computed by the domain (`title_sort_key`, `search_text`) so that every store orders and searches alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

_Timestamp = sa.DateTime(timezone=True).with_variant(sa.BigInteger(), "sqlite")
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid

# Owners, and their tokens: only each secret's SHA-256 is kept. `local` always exists.
owners = sa.Table(
    "owners",
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("created_at", _Timestamp, nullable=True),  # null for `local`, made by the migration
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", _Id, sa.Identity(always=True), primary_key=True),
    sa.Column("owner", sa.Text(), sa.ForeignKey("owners.name", ondelete="CASCADE"), nullable=False),
    sa.Column("label", sa.Text(), nullable=False),
    sa.Column("scope", sa.Text(), nullable=False),
    sa.Column("secret_hash", sa.Text(), nullable=False, unique=True),
    sa.Column("created_at", _Timestamp, nullable=False),
    sa.Column("expires_at", _Timestamp, nullable=True),
    sa.Column("last_used_at", _Timestamp, nullable=True),
    sqlite_autoincrement=True,
)
sa.Index("ix_tokens_owner_id", tokens.c.owner, tokens.c.id)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", _Id, sa.Identity(always=True), primary_key=True),
    # Every statement on notes names its owner, and every index a query searches leads with it.
    sa.Column("owner", sa.Text(), nullable=False, server_default="local"),
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("priority", sa.SmallInteger(), nullable=False),
    sa.Column("tags", sa.Text().with_variant(postgresql.ARRAY(sa.Text()), "postgresql"), nullable=False),
    sa.Column("created_by", sa.Text(), nullable=True),
    sa.Column("created_at", _Timestamp, nullable=False),
    sa.Column("updated_at", _Timestamp, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("title_key", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
    sa.Column("search_text", sa.Text(), nullable=False),
    sqlite_autoincrement=True,  # ids are never reused, not even the newest one's after a delete
)

# One index per sort order, (owner, key, id) to match the keyset; and one per equality filter.
sa.Index("ix_notes_owner_id", notes.c.owner, notes.c.id)
for _column in ("created_at", "updated_at", "priority", "title_key", "created_by"):
    sa.Index(f"ix_notes_owner_{_column}_id", notes.c.owner, notes.c[_column], notes.c.id)
sa.Index("ix_notes_tags", notes.c.tags, postgresql_using="gin").ddl_if(dialect="postgresql")
sa.Index(
    "ix_notes_search_text_trgm",
    notes.c.search_text,
    postgresql_using="gin",
    postgresql_ops={"search_text": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")

# The outcome of the first request made with each Idempotency-Key, committed with its note.
idempotency_records = sa.Table(
    "idempotency_records",
    metadata,
    sa.Column("owner", sa.Text(), primary_key=True),
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    sa.Column("recorded_at", _Timestamp, nullable=False),
    sa.Column("outcome", sa.LargeBinary(), nullable=False),
)
sa.Index("ix_idempotency_records_recorded_at", idempotency_records.c.recorded_at)

# Values made once per store: `cursor_secret`, random, signs listing cursors.
store_settings = sa.Table(
    "store_settings",
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)


class Xid8(sa.types.UserDefinedType):
    """PostgreSQL's 64-bit transaction id, which orders the change log (postgres_history.py)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


postgresql.base.ischema_names["xid8"] = Xid8  # so that reflection reads it back as this type
PG_ONLY = {"only_on": "postgresql"}  # a column SQLite does not have (its writes are in commit order)


def _content() -> list[sa.Column]:
    """A note's content as the log and the trash keep it."""
    return [
        sa.Column("title", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("priority", sa.SmallInteger()),
        sa.Column("tags", sa.Text().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")),
        sa.Column("created_by", sa.Text()),
        sa.Column("created_at", _Timestamp),
        sa.Column("updated_at", _Timestamp),
    ]


notes.append_column(sa.Column("change_key", Xid8(), nullable=True, info=PG_ONLY))  # the key of its last change

# The change log: a `put` row carries the note as a write left it (a revision), a `delete` none.
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("position", _Id, sa.Identity(always=True), primary_key=True),
    sa.Column("key", Xid8(), nullable=False, info=PG_ONLY),
    sa.Column("owner", sa.Text(), nullable=False),
    sa.Column("note_id", sa.BigInteger(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("op", sa.Text(), sa.CheckConstraint("op IN ('put', 'delete')", name="ck_changes_op"), nullable=False),
    sa.Column("at", _Timestamp, nullable=False),
    *_content(),
    # no AUTOINCREMENT on SQLite (migration 0005): its log never deletes the row of the largest
    # position (sqlite_history.keeping_last_position), so a new row's position is a new one
)
sa.Index("ix_changes_owner_key_position", changes.c.owner, changes.c.key, changes.c.position).ddl_if(
    dialect="postgresql"
)
sa.Index("ix_changes_owner_position", changes.c.owner, changes.c.position).ddl_if(dialect="sqlite")
sa.Index("ix_changes_note_id_version", changes.c.note_id, changes.c.version)

# Deleted notes, until restored or purged.
trash = sa.Table(
    "trash",
    metadata,
    sa.Column("id", sa.BigInteger(), primary_key=True),
    sa.Column("owner", sa.Text(), nullable=False),
    *_content(),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("deleted_at", _Timestamp, nullable=False),
    sa.Column("change_key", Xid8(), info=PG_ONLY),
    sa.Column("title_key", sa.Text(collation="C"), info=PG_ONLY),
    sa.Column("search_text", sa.Text(), info=PG_ONLY),
)
sa.Index("ix_trash_owner_deleted_at_id", trash.c.owner, trash.c.deleted_at, trash.c.id)
sa.Index("ix_trash_deleted_at", trash.c.deleted_at)

# One row: the horizon of the feed (every row up to it has left it) and how far pruning looked.
change_log = sa.Table(
    "change_log",
    metadata,
    sa.Column("id", sa.Integer(), sa.CheckConstraint("id = 1", name="ck_change_log_one_row"), primary_key=True),
    sa.Column("horizon_key", Xid8(), nullable=False, server_default="0", info=PG_ONLY),
    sa.Column("horizon_position", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("examined", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("revisions_examined", sa.BigInteger(), nullable=False, server_default="0"),
)
