"""Notes, their indexes, and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite: tags mirrored into a table for "all of these tags" lookups, and a trigram full-text
# index over the case-folded search text; both kept in step with `notes` by triggers.
SQLITE_EXTRAS = [
    """CREATE TABLE note_tags (
        tag TEXT NOT NULL, note_id INTEGER NOT NULL, PRIMARY KEY (tag, note_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX ix_note_tags_note_id ON note_tags (note_id)",
    """CREATE VIRTUAL TABLE notes_fts USING fts5(
        search_text, content='notes', content_rowid='id', tokenize='trigram case_sensitive 1'
    )""",
    """CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
        INSERT INTO note_tags (tag, note_id) SELECT value, new.id FROM json_each(new.tags);
        INSERT INTO notes_fts (rowid, search_text) VALUES (new.id, new.search_text);
    END""",
    """CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
        DELETE FROM note_tags WHERE note_id = old.id;
        INSERT INTO notes_fts (notes_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
    END""",
    """CREATE TRIGGER notes_au_tags AFTER UPDATE OF tags ON notes WHEN new.tags <> old.tags BEGIN
        DELETE FROM note_tags WHERE note_id = old.id;
        INSERT INTO note_tags (tag, note_id) SELECT value, new.id FROM json_each(new.tags);
    END""",
    """CREATE TRIGGER notes_au_search AFTER UPDATE OF search_text ON notes
    WHEN new.search_text <> old.search_text BEGIN
        INSERT INTO notes_fts (notes_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
        INSERT INTO notes_fts (rowid, search_text) VALUES (new.id, new.search_text);
    END""",
]


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    timestamp = sa.DateTime(timezone=True) if dialect == "postgresql" else sa.BigInteger()
    op.create_table(
        "notes",
        sa.Column(
            "id",
            sa.BigInteger() if dialect == "postgresql" else sa.Integer(),
            sa.Identity(always=True),
            primary_key=True,
        ),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column(
            "tags", postgresql.ARRAY(sa.Text()) if dialect == "postgresql" else sa.Text(), nullable=False
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "title_key", sa.Text(collation="C") if dialect == "postgresql" else sa.Text(), nullable=False
        ),
        sa.Column("search_text", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    for column in ("created_at", "updated_at", "priority", "title_key", "created_by"):
        op.create_index(f"ix_notes_{column}_id", "notes", [column, "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("claimed_at", timestamp, nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_idempotency_keys_claimed_at", "idempotency_keys", ["claimed_at"])
    if dialect == "postgresql":
        op.create_index("ix_notes_tags", "notes", ["tags"], postgresql_using="gin")
        op.create_index(
            "ix_notes_search_text_trgm",
            "notes",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
    else:
        for statement in SQLITE_EXTRAS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute("DROP TABLE notes_fts")
        op.execute("DROP TABLE note_tags")
    op.drop_table("idempotency_keys")
    op.drop_table("notes")
