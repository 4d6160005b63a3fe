"""Tables of the moderation plugin.

Revision ID: 0006_moderation
Revises: 0005_polls
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0006_moderation"
down_revision: str | None = "0005_polls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "moderation_warns",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_warns")),
        sa.UniqueConstraint("chat_id", "source", name="uq_moderation_warns_chat_source"),
    )
    with op.batch_alter_table("moderation_warns", schema=None) as batch_op:
        batch_op.create_index("ix_moderation_warns_chat_user", ["chat_id", "user_id"], unique=False)

    op.create_table(
        "moderation_actions",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("excerpt", sa.Text(), nullable=True),
        sa.Column("until", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("warn_id", sa.BigInteger(), nullable=True),
        sa.Column("warn_count", sa.Integer(), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("undone_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_actions")),
        sa.UniqueConstraint("chat_id", "source", name="uq_moderation_actions_chat_source"),
    )
    with op.batch_alter_table("moderation_actions", schema=None) as batch_op:
        batch_op.create_index("ix_moderation_actions_chat_user", ["chat_id", "user_id"], unique=False)

    op.create_table(
        "moderation_blacklist",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("word", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("added_by", sa.BigInteger(), nullable=True),
        sa.Column("added_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_blacklist")),
        sa.UniqueConstraint("chat_id", "key", name="uq_moderation_blacklist_chat_key"),
    )
    op.create_table(
        "moderation_approved",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("approved_by", sa.BigInteger(), nullable=True),
        sa.Column("approved_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_moderation_approved")),
    )
    op.create_table(
        "moderation_reports",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("reporter_id", sa.BigInteger(), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("command_message_id", sa.BigInteger(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("handled_by", sa.BigInteger(), nullable=True),
        sa.Column("handled_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_reports")),
        sa.UniqueConstraint("chat_id", "message_id", "reporter_id",
                            name="uq_moderation_reports_chat_message_reporter"),
    )
    with op.batch_alter_table("moderation_reports", schema=None) as batch_op:
        batch_op.create_index("ix_moderation_reports_reporter_created", ["reporter_id", "created_at"],
                              unique=False)

    op.create_table(
        "moderation_gbans",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_moderation_gbans")),
    )
    op.create_table(
        "moderation_raids",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("started_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("until", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_moderation_raids")),
    )


def downgrade() -> None:
    op.drop_table("moderation_raids")
    op.drop_table("moderation_gbans")
    with op.batch_alter_table("moderation_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_moderation_reports_reporter_created")
    op.drop_table("moderation_reports")
    op.drop_table("moderation_approved")
    op.drop_table("moderation_blacklist")
    with op.batch_alter_table("moderation_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_moderation_actions_chat_user")
    op.drop_table("moderation_actions")
    with op.batch_alter_table("moderation_warns", schema=None) as batch_op:
        batch_op.drop_index("ix_moderation_warns_chat_user")
    op.drop_table("moderation_warns")
