"""SQLite's change log takes its positions without AUTOINCREMENT.

AUTOINCREMENT keeps the largest position ever given in `sqlite_sequence`, one more page written
by every write of a note: about a third of what the log cost a write. A plain rowid table gives
a new row the position after the largest there is, which is as good as long as the row holding
the largest position is never deleted: app/adapters/sqlite_history.py deletes log rows only
through `keeping_last_position`, which leaves a marker row (no owner, no content) in its place.
This migration leaves one too where rows past the largest remaining position were deleted.
Every server on the file must be stopped while it runs: an older one would go on deleting the
newest row (and read its last position where 0005 no longer keeps it).

PostgreSQL is unchanged: its positions come from an identity column.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_CONTENT = "title, description, priority, tags, created_by, created_at, updated_at"
_COLUMNS = f"position, owner, note_id, version, op, at, {_CONTENT}"
_LOG_PUT = f"""INSERT INTO changes (owner, note_id, version, op, at, {_CONTENT})
        VALUES (new.owner, new.id, new.version, 'put', new.updated_at,
                new.title, new.description, new.priority, new.tags, new.created_by, new.created_at, new.updated_at)"""

SQLITE = [
    # the triggers name the table: they go while it is rebuilt
    "DROP TRIGGER notes_log_ai",
    "DROP TRIGGER notes_log_au",
    "DROP TABLE IF EXISTS changes_0005",
    """CREATE TABLE changes_0005 (
        position INTEGER NOT NULL PRIMARY KEY,
        owner TEXT NOT NULL,
        note_id BIGINT NOT NULL,
        version INTEGER NOT NULL,
        op TEXT NOT NULL CONSTRAINT ck_changes_op CHECK (op IN ('put', 'delete')),
        at BIGINT NOT NULL,
        title TEXT, description TEXT, priority SMALLINT, tags TEXT, created_by TEXT,
        created_at BIGINT, updated_at BIGINT
    )""",
    f"INSERT INTO changes_0005 ({_COLUMNS}) SELECT {_COLUMNS} FROM changes ORDER BY position",
    # the marker: positions already given stay given. It leaves the feed (moving the horizon to
    # it) as a row written now would, when the retention of the feed has passed.
    """INSERT INTO changes_0005 (position, owner, note_id, version, op, at)
       SELECT seq, '', 0, 0, 'delete', CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
       FROM sqlite_sequence
       WHERE name = 'changes' AND seq > coalesce((SELECT max(position) FROM changes), 0)""",
    "DROP TABLE changes",
    "ALTER TABLE changes_0005 RENAME TO changes",
    "CREATE INDEX ix_changes_owner_position ON changes (owner, position)",
    "CREATE INDEX ix_changes_note_id_version ON changes (note_id, version)",
    f"CREATE TRIGGER notes_log_ai AFTER INSERT ON notes BEGIN {_LOG_PUT}; END",
    "CREATE TRIGGER notes_log_au AFTER UPDATE OF version ON notes WHEN new.version <> old.version"
    f" BEGIN {_LOG_PUT}; END",
]


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("0005 has no downgrade")
