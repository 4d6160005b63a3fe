"""Tables of the analytics plugin.

Revision ID: 0009_analytics
Revises: 0008_calendar
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0009_analytics"
down_revision: str | None = "0008_calendar"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COUNTERS = (
    "messages", "chars", "replies_sent", "replies_received", "mentions_received", "thanks_received",
    "checkins", "faq_hits", "joins", "leaves",
)
CHAT_COUNTERS = (
    "messages", "chars", "active_members", "replies", "mentions", "thanks", "checkins", "faq_hits",
    "unanswered", "joins", "leaves",
)


def upgrade() -> None:
    op.create_table(
        "analytics_member_days",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in COUNTERS],
        sa.PrimaryKeyConstraint("chat_id", "user_id", "day", name=op.f("pk_analytics_member_days")),
    )
    with op.batch_alter_table("analytics_member_days", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_member_days_chat_day", ["chat_id", "day"], unique=False)
        batch_op.create_index("ix_analytics_member_days_user", ["user_id"], unique=False)

    op.create_table(
        "analytics_chat_days",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in CHAT_COUNTERS],
        sa.Column("sentiment_sum", sa.Float(), nullable=False),
        sa.Column("sentiment_n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "day", name=op.f("pk_analytics_chat_days")),
    )

    op.create_table(
        "analytics_chat_hours",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "day", "hour", name=op.f("pk_analytics_chat_hours")),
    )

    op.create_table(
        "analytics_faq_days",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "day", "entry_id", name=op.f("pk_analytics_faq_days")),
    )

    op.create_table(
        "analytics_questions",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("qkey", sa.String(length=16), nullable=False),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "day", "qkey", name=op.f("pk_analytics_questions")),
    )

    op.create_table(
        "analytics_incidents",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("opened_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("peak_level", sa.Integer(), nullable=False),
        sa.Column("closed_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("chat_id", "incident_id", name=op.f("pk_analytics_incidents")),
    )
    with op.batch_alter_table("analytics_incidents", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_incidents_chat_day", ["chat_id", "day"], unique=False)

    op.create_table(
        "analytics_wakeups",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_analytics_wakeups")),
    )

    op.create_table(
        "analytics_cleanups",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_by", sa.BigInteger(), nullable=True),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_cleanups")),
    )
    with op.batch_alter_table("analytics_cleanups", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_cleanups_chat_created", ["chat_id", "created_at"], unique=False)

    op.create_table(
        "analytics_reports",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("sent_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "week", name=op.f("pk_analytics_reports")),
    )


def downgrade() -> None:
    op.drop_table("analytics_reports")
    with op.batch_alter_table("analytics_cleanups", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_cleanups_chat_created")
    op.drop_table("analytics_cleanups")
    op.drop_table("analytics_wakeups")
    with op.batch_alter_table("analytics_incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_incidents_chat_day")
    op.drop_table("analytics_incidents")
    op.drop_table("analytics_questions")
    op.drop_table("analytics_faq_days")
    op.drop_table("analytics_chat_hours")
    op.drop_table("analytics_chat_days")
    with op.batch_alter_table("analytics_member_days", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_member_days_user")
        batch_op.drop_index("ix_analytics_member_days_chat_day")
    op.drop_table("analytics_member_days")
