"""History: the change log (revisions and the changes feed), the trash, and where the log starts.

`changes` holds one row per write of a note, in the transaction of the write: a `put` carries
the note as the write left it (a revision), a `delete` carries none. `trash` holds deleted notes
until they are restored or purged. `change_log` is one row: the horizon (every row up to it has
left the feed; an older token is 410) and how far pruning has looked.

On PostgreSQL a row's `key` is the id of the transaction that wrote it (at least the one of the
note's previous change): see app/adapters/postgres_history.py for why a follower that reads by
(key, position) below the oldest transaction in flight never skips a row. SQLite has one writer
at a time, so its positions already follow commit order; triggers write its `put` rows.

Every note there is now gets its current version as its first revision, so the feed starts
with the whole store.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CONTENT = "title, description, priority, tags, created_by, created_at, updated_at"
_PUT = f"""INSERT INTO changes (owner, note_id, version, op, at, {CONTENT})
        VALUES (new.owner, new.id, new.version, 'put', new.updated_at,
                new.title, new.description, new.priority, new.tags, new.created_by, new.created_at, new.updated_at)"""
# SQLite's log of puts, by trigger, so that every way a note is written (one note, a batch) logs it.
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER notes_log_ai AFTER INSERT ON notes BEGIN {_PUT}; END",
    f"CREATE TRIGGER notes_log_au AFTER UPDATE OF version ON notes WHEN new.version <> old.version BEGIN {_PUT}; END",
]


def _content_columns(postgres: bool) -> list[sa.Column]:
    timestamp = sa.DateTime(timezone=True) if postgres else sa.BigInteger()
    return [
        sa.Column("title", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("priority", sa.SmallInteger()),
        sa.Column("tags", postgresql.ARRAY(sa.Text()) if postgres else sa.Text()),
        sa.Column("created_by", sa.Text()),
        sa.Column("created_at", timestamp),
        sa.Column("updated_at", timestamp),
    ]


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    timestamp = sa.DateTime(timezone=True) if postgres else sa.BigInteger()
    identity = sa.BigInteger() if postgres else sa.Integer()
    op.create_table(
        "changes",
        sa.Column("position", identity, sa.Identity(always=True), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("note_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("op", sa.Text(), sa.CheckConstraint("op IN ('put', 'delete')", name="ck_changes_op"), nullable=False),
        sa.Column("at", timestamp, nullable=False),
        *_content_columns(postgres),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "trash",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        *_content_columns(postgres),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", timestamp, nullable=False),
    )
    op.create_index("ix_trash_owner_deleted_at_id", "trash", ["owner", "deleted_at", "id"])
    op.create_index("ix_trash_deleted_at", "trash", ["deleted_at"])
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer(), sa.CheckConstraint("id = 1", name="ck_change_log_one_row"), primary_key=True),
        sa.Column("horizon_position", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("examined", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("revisions_examined", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute("INSERT INTO change_log (id) VALUES (1)")
    if postgres:
        # xid8 has no SQLAlchemy type: the columns that hold transaction ids are added in SQL.
        # A note's `change_key` is the key of its last change; NULL (every note now) is older
        # than any transaction to come.
        op.execute("ALTER TABLE notes ADD COLUMN change_key xid8")
        op.execute("ALTER TABLE trash ADD COLUMN change_key xid8")
        # what a restore puts back in `notes` without computing it again
        op.execute('ALTER TABLE trash ADD COLUMN title_key text COLLATE "C", ADD COLUMN search_text text')
        op.execute("ALTER TABLE changes ADD COLUMN key xid8 NOT NULL DEFAULT pg_current_xact_id()")
        op.execute("ALTER TABLE changes ALTER COLUMN key DROP DEFAULT")
        op.execute("ALTER TABLE change_log ADD COLUMN horizon_key xid8 NOT NULL DEFAULT '0'")
        op.create_index("ix_changes_owner_key_position", "changes", ["owner", "key", "position"])
        op.execute(
            f"INSERT INTO changes (key, owner, note_id, version, op, at, {CONTENT})"
            f" SELECT pg_current_xact_id(), owner, id, version, 'put', updated_at, {CONTENT} FROM notes ORDER BY id"
        )
    else:
        op.create_index("ix_changes_owner_position", "changes", ["owner", "position"])
        op.execute(
            f"INSERT INTO changes (owner, note_id, version, op, at, {CONTENT})"
            f" SELECT owner, id, version, 'put', updated_at, {CONTENT} FROM notes ORDER BY id"
        )
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.create_index("ix_changes_note_id_version", "changes", ["note_id", "version"])


def downgrade() -> None:
    raise NotImplementedError("0004 has no downgrade: the history of notes would be lost")
