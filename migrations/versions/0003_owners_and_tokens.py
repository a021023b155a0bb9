"""Owners and tokens; every note and idempotency record belongs to an owner (`local` until moved).

The indexes of `notes` are rebuilt with the owner leading, so a page, a filter or a sort of one
owner never reads another's entries. SQLite's tag table carries the owner too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SORTED = ("created_at", "updated_at", "priority", "title_key", "created_by")

SQLITE_TAGS = [
    "DROP TRIGGER notes_ai",
    "DROP TRIGGER notes_ad",
    "DROP TRIGGER notes_au_tags",
    "DROP TABLE note_tags",
    """CREATE TABLE note_tags (
        owner TEXT NOT NULL, tag TEXT NOT NULL, note_id INTEGER NOT NULL,
        PRIMARY KEY (owner, tag, note_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX ix_note_tags_note_id ON note_tags (note_id)",
    "INSERT INTO note_tags (owner, tag, note_id) SELECT notes.owner, value, notes.id FROM notes, json_each(notes.tags)",
    """CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
        INSERT INTO note_tags (owner, tag, note_id) SELECT new.owner, value, new.id FROM json_each(new.tags);
        INSERT INTO notes_fts (rowid, search_text) VALUES (new.id, new.search_text);
    END""",
    """CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
        DELETE FROM note_tags WHERE note_id = old.id;
        INSERT INTO notes_fts (notes_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
    END""",
    """CREATE TRIGGER notes_au_tags AFTER UPDATE OF tags, owner ON notes
    WHEN new.tags <> old.tags OR new.owner <> old.owner BEGIN
        DELETE FROM note_tags WHERE note_id = old.id;
        INSERT INTO note_tags (owner, tag, note_id) SELECT new.owner, value, new.id FROM json_each(new.tags);
    END""",
]


def _timestamp() -> sa.types.TypeEngine:
    if op.get_context().dialect.name == "postgresql":
        return sa.DateTime(timezone=True)
    return sa.BigInteger()


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger() if op.get_context().dialect.name == "postgresql" else sa.Integer()


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    owners = op.create_table(
        "owners",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("created_at", _timestamp(), nullable=True),
    )
    op.bulk_insert(owners, [{"name": "local", "created_at": None}])
    op.create_table(
        "tokens",
        sa.Column("id", _id(), sa.Identity(always=True), primary_key=True),
        sa.Column("owner", sa.Text(), sa.ForeignKey("owners.name", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("expires_at", _timestamp(), nullable=True),
        sa.Column("last_used_at", _timestamp(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tokens_owner_id", "tokens", ["owner", "id"])

    op.add_column("notes", sa.Column("owner", sa.Text(), nullable=False, server_default="local"))
    for column in SORTED:
        op.drop_index(f"ix_notes_{column}_id", "notes")
        op.create_index(f"ix_notes_owner_{column}_id", "notes", ["owner", column, "id"])
    op.create_index("ix_notes_owner_id", "notes", ["owner", "id"])
    if sqlite:
        for statement in SQLITE_TAGS:
            op.execute(statement)

    # Records of requests in flight are a day's worth at most: carried over, as `local`'s.
    op.create_table(
        "idempotency_records_owned",
        sa.Column("owner", sa.Text(), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("recorded_at", _timestamp(), nullable=False),
        sa.Column("outcome", sa.LargeBinary(), nullable=False),
    )
    op.execute(
        "INSERT INTO idempotency_records_owned (owner, key, fingerprint, recorded_at, outcome)"
        " SELECT 'local', key, fingerprint, recorded_at, outcome FROM idempotency_records"
    )
    op.drop_table("idempotency_records")
    op.rename_table("idempotency_records_owned", "idempotency_records")
    if not sqlite:  # PostgreSQL names a primary key after its table: keep the name a new table gets
        op.execute("ALTER INDEX idempotency_records_owned_pkey RENAME TO idempotency_records_pkey")
    op.create_index("ix_idempotency_records_recorded_at", "idempotency_records", ["recorded_at"])


def downgrade() -> None:
    raise NotImplementedError("0003 has no downgrade: owners and tokens cannot be folded back into one store")
