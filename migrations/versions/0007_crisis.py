"""Tables of the crisis plugin.

Revision ID: 0007_crisis
Revises: 0006_moderation
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0007_crisis"
down_revision: str | None = "0006_moderation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "crisis_incidents",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_title", sa.String(length=255), nullable=False),
        sa.Column("open_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("peak_level", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("opened_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("level_since", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acked_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acked_by", sa.BigInteger(), nullable=True),
        sa.Column("resolved_by", sa.BigInteger(), nullable=True),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("floor_level", sa.Integer(), nullable=True),
        sa.Column("peak_score", sa.Float(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("measures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crisis_incidents")),
        sa.UniqueConstraint("open_chat_id", name=op.f("uq_crisis_incidents_open_chat_id")),
    )
    with op.batch_alter_table("crisis_incidents", schema=None) as batch_op:
        batch_op.create_index("ix_crisis_incidents_chat_opened", ["chat_id", "opened_at"], unique=False)

    op.create_table(
        "crisis_timeline",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", AUTO_ID, nullable=False),
        sa.Column("at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["crisis_incidents.id"],
                                name=op.f("fk_crisis_timeline_incident_id_crisis_incidents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crisis_timeline")),
    )
    with op.batch_alter_table("crisis_timeline", schema=None) as batch_op:
        batch_op.create_index("ix_crisis_timeline_incident_at", ["incident_id", "at"], unique=False)

    op.create_table(
        "crisis_outbox",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("dest_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("markup", sa.JSON(), nullable=True),
        sa.Column("silent", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crisis_outbox")),
    )
    with op.batch_alter_table("crisis_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_crisis_outbox_status_next", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "crisis_baselines",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("negative_share", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_crisis_baselines")),
    )


def downgrade() -> None:
    op.drop_table("crisis_baselines")
    with op.batch_alter_table("crisis_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_crisis_outbox_status_next")
    op.drop_table("crisis_outbox")
    with op.batch_alter_table("crisis_timeline", schema=None) as batch_op:
        batch_op.drop_index("ix_crisis_timeline_incident_at")
    op.drop_table("crisis_timeline")
    with op.batch_alter_table("crisis_incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_crisis_incidents_chat_opened")
    op.drop_table("crisis_incidents")
