"""Idempotency records committed with their note, and a random cursor secret per store.

Keys are now written in the same transaction as the note they made, so there are no unfinished
claims any more: the finished ones (status 201) are kept with their body as the outcome.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamp() -> sa.types.TypeEngine:
    if op.get_context().dialect.name == "postgresql":
        return sa.DateTime(timezone=True)
    return sa.BigInteger()


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("recorded_at", _timestamp(), nullable=False),
        sa.Column("outcome", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_idempotency_records_recorded_at", "idempotency_records", ["recorded_at"])
    op.execute(
        "INSERT INTO idempotency_records (key, fingerprint, recorded_at, outcome)"
        " SELECT key, fingerprint, claimed_at, body FROM idempotency_keys"
        " WHERE status = 201 AND body IS NOT NULL"
    )
    op.drop_table("idempotency_keys")
    settings = op.create_table(
        "store_settings",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.bulk_insert(settings, [{"name": "cursor_secret", "value": secrets.token_urlsafe(32)}])


def downgrade() -> None:
    op.drop_table("store_settings")
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("claimed_at", _timestamp(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_idempotency_keys_claimed_at", "idempotency_keys", ["claimed_at"])
    op.drop_table("idempotency_records")
