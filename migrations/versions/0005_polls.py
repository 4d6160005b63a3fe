"""Tables of the polls (contests) plugin.

Revision ID: 0005_polls
Revises: 0004_faq
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0005_polls"
down_revision: str | None = "0004_faq"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "polls_contests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("creator_id", sa.BigInteger(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("poll_id", sa.String(length=64), nullable=True),
        sa.Column("source_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("source_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closes_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("announced_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_polls_contests")),
        sa.UniqueConstraint("source_chat_id", "source_message_id", name="uq_polls_contests_source"),
    )
    with op.batch_alter_table("polls_contests", schema=None) as batch_op:
        batch_op.create_index("ix_polls_contests_chat_status", ["chat_id", "status"], unique=False)
        batch_op.create_index("ix_polls_contests_status", ["status"], unique=False)
        batch_op.create_index("ix_polls_contests_poll_id", ["poll_id"], unique=False)

    op.create_table(
        "polls_entries",
        sa.Column("contest_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("choice", sa.Integer(), nullable=True),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contest_id"], ["polls_contests.id"], name=op.f("fk_polls_entries_contest_id_polls_contests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contest_id", "user_id", name=op.f("pk_polls_entries")),
    )

    op.create_table(
        "polls_pk_arguments",
        sa.Column("contest_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("message_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("side", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("excerpt", sa.String(length=200), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contest_id"], ["polls_contests.id"], name=op.f("fk_polls_pk_arguments_contest_id_polls_contests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contest_id", "message_id", name=op.f("pk_polls_pk_arguments")),
    )


def downgrade() -> None:
    op.drop_table("polls_pk_arguments")
    op.drop_table("polls_entries")
    with op.batch_alter_table("polls_contests", schema=None) as batch_op:
        batch_op.drop_index("ix_polls_contests_poll_id")
        batch_op.drop_index("ix_polls_contests_status")
        batch_op.drop_index("ix_polls_contests_chat_status")
    op.drop_table("polls_contests")
