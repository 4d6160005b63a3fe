"""Tables of the content_calendar plugin.

Revision ID: 0008_calendar
Revises: 0007_crisis
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0008_calendar"
down_revision: str | None = "0007_crisis"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "content_calendar_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("owner_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_calendar_entries")),
        sa.UniqueConstraint("key", name=op.f("uq_content_calendar_entries_key")),
    )
    with op.batch_alter_table("content_calendar_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_content_calendar_entries_owner_chat_id"), ["owner_chat_id"], unique=False)

    op.create_table(
        "content_calendar_occurrences",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.String(length=24), nullable=False),
        sa.Column("due_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("series", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_calendar_occurrences")),
        sa.UniqueConstraint("entry_key", "chat_id", "slot",
                            name="uq_content_calendar_occurrences_entry_key_chat_id_slot"),
    )
    with op.batch_alter_table("content_calendar_occurrences", schema=None) as batch_op:
        batch_op.create_index("ix_content_calendar_occurrences_chat_status", ["chat_id", "status"], unique=False)
        batch_op.create_index("ix_content_calendar_occurrences_chat_series", ["chat_id", "series"], unique=False)

    op.create_table(
        "content_calendar_pauses",
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("paused_by", sa.BigInteger(), nullable=True),
        sa.Column("paused_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_key", "chat_id", name=op.f("pk_content_calendar_pauses")),
    )
    op.create_table(
        "content_calendar_crisis",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "incident_id", name=op.f("pk_content_calendar_crisis")),
    )
    op.create_table(
        "content_calendar_streaks",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("checked_in_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_content_calendar_streaks")),
    )


def downgrade() -> None:
    op.drop_table("content_calendar_streaks")
    op.drop_table("content_calendar_crisis")
    op.drop_table("content_calendar_pauses")
    with op.batch_alter_table("content_calendar_occurrences", schema=None) as batch_op:
        batch_op.drop_index("ix_content_calendar_occurrences_chat_series")
        batch_op.drop_index("ix_content_calendar_occurrences_chat_status")
    op.drop_table("content_calendar_occurrences")
    with op.batch_alter_table("content_calendar_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_calendar_entries_owner_chat_id"))
    op.drop_table("content_calendar_entries")
