"""Tables of the faq plugin.

Revision ID: 0004_faq
Revises: 0003_engagement
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0004_faq"
down_revision: str | None = "0003_engagement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "faq_chats",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_faq_chats")),
    )
    op.create_table(
        "faq_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("reply_html", sa.Text(), nullable=False),
        sa.Column("buttons", sa.JSON(), nullable=False),
        sa.Column("media_type", sa.String(length=16), nullable=True),
        sa.Column("media_file_id", sa.String(length=255), nullable=True),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("last_hit_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_entries")),
    )
    with op.batch_alter_table("faq_entries", schema=None) as batch_op:
        batch_op.create_index("ix_faq_entries_chat", ["chat_id"], unique=False)

    op.create_table(
        "faq_gaps",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("question", sa.String(length=255), nullable=False),
        sa.Column("sample", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "question", name=op.f("pk_faq_gaps")),
    )
    with op.batch_alter_table("faq_gaps", schema=None) as batch_op:
        batch_op.create_index("ix_faq_gaps_chat_last", ["chat_id", "last_at"], unique=False)

    op.create_table(
        "faq_keywords",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("keyword", sa.String(length=255), nullable=False),
        sa.Column("norm", sa.String(length=300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["faq_entries.id"], name=op.f("fk_faq_keywords_entry_id_faq_entries"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_keywords")),
        sa.UniqueConstraint("chat_id", "norm", name=op.f("uq_faq_keywords_chat_id_norm")),
    )
    with op.batch_alter_table("faq_keywords", schema=None) as batch_op:
        batch_op.create_index("ix_faq_keywords_entry", ["entry_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("faq_keywords", schema=None) as batch_op:
        batch_op.drop_index("ix_faq_keywords_entry")
    op.drop_table("faq_keywords")
    with op.batch_alter_table("faq_gaps", schema=None) as batch_op:
        batch_op.drop_index("ix_faq_gaps_chat_last")
    op.drop_table("faq_gaps")
    with op.batch_alter_table("faq_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_faq_entries_chat")
    op.drop_table("faq_entries")
    op.drop_table("faq_chats")
