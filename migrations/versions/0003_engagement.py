"""Tables of the checkin (engagement: check-in days, streaks, badges, points shop, invites) plugin.

Revision ID: 0003_engagement
Revises: 0002_welcome
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0003_engagement"
down_revision: str | None = "0002_welcome"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "checkin_members",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("best_streak", sa.Integer(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column("total_days", sa.Integer(), nullable=False),
        sa.Column("broken_streak", sa.Integer(), nullable=False),
        sa.Column("broken_last_day", sa.Date(), nullable=True),
        sa.Column("makeup_cards", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=64), nullable=True),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_checkin_members")),
    )
    op.create_table(
        "checkin_days",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("lucky", sa.Integer(), nullable=False),
        sa.Column("made_up", sa.Boolean(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_days")),
        sa.UniqueConstraint("chat_id", "user_id", "day", name="uq_checkin_days_chat_id_user_id_day"),
    )
    with op.batch_alter_table("checkin_days", schema=None) as batch_op:
        batch_op.create_index("ix_checkin_days_chat_day", ["chat_id", "day"], unique=False)

    op.create_table(
        "checkin_day_counts",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "day", name=op.f("pk_checkin_day_counts")),
    )
    op.create_table(
        "checkin_badges",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("badge", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id", "badge", name=op.f("pk_checkin_badges")),
    )
    op.create_table(
        "checkin_shop_items",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("per_member_limit", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_shop_items")),
        sa.UniqueConstraint("chat_id", "code", name="uq_checkin_shop_items_chat_id_code"),
    )
    op.create_table(
        "checkin_coupon_codes",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=255), nullable=False),
        sa.Column("claimed_by", sa.BigInteger(), nullable=True),
        sa.Column("claimed_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("added_by", sa.BigInteger(), nullable=True),
        sa.Column("added_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_coupon_codes")),
        sa.UniqueConstraint("item_id", "code", name="uq_checkin_coupon_codes_item_id_code"),
    )
    with op.batch_alter_table("checkin_coupon_codes", schema=None) as batch_op:
        batch_op.create_index("ix_checkin_coupon_codes_item_claimed", ["item_id", "claimed_by"], unique=False)

    op.create_table(
        "checkin_redemptions",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("item_name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_ref", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fulfilled_by", sa.BigInteger(), nullable=True),
        sa.Column("fulfilled_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_redemptions")),
        sa.UniqueConstraint("chat_id", "request_ref", name="uq_checkin_redemptions_chat_id_request_ref"),
        sa.UniqueConstraint("item_id", "user_id", "seq", name="uq_checkin_redemptions_item_id_user_id_seq"),
    )
    with op.batch_alter_table("checkin_redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_checkin_redemptions_user", ["user_id", "delivered_at"], unique=False)

    op.create_table(
        "checkin_invite_links",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("link", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_checkin_invite_links")),
        sa.UniqueConstraint("link", name=op.f("uq_checkin_invite_links_link")),
    )
    op.create_table(
        "checkin_invites",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("invitee_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("inviter_id", sa.BigInteger(), nullable=False),
        sa.Column("link", sa.String(length=255), nullable=False),
        sa.Column("joined_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("settled_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("chat_id", "invitee_id", name=op.f("pk_checkin_invites")),
    )
    with op.batch_alter_table("checkin_invites", schema=None) as batch_op:
        batch_op.create_index("ix_checkin_invites_chat_inviter", ["chat_id", "inviter_id", "status"], unique=False)

    # Levels read a running "earned since the last reset" total kept by the core PointsService next to
    # the balance (bot.services.points.NOT_EARNED_REASONS / RESET_REASONS), instead of summing the
    # member's ledger on every check-in and flush. Filled here from the ledger for existing rows.
    with op.batch_alter_table("core_points_balances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("earned", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    _backfill()


def _backfill() -> None:
    """``earned`` from the ledger, and the per-day check-in counts from ``checkin_days`` (both no-ops on
    an empty database)."""
    balances = sa.table("core_points_balances", sa.column("pool", sa.String()), sa.column("user_id", sa.BigInteger()),
                        sa.column("earned", sa.BigInteger()))
    ledger = sa.table("core_points_ledger", sa.column("id", sa.BigInteger()), sa.column("pool", sa.String()),
                      sa.column("user_id", sa.BigInteger()), sa.column("delta", sa.BigInteger()),
                      sa.column("reason", sa.String()))
    resets = ledger.alias("r")
    last_reset = (
        sa.select(sa.func.coalesce(sa.func.max(resets.c.id), 0))
        .where(resets.c.pool == ledger.c.pool, resets.c.user_id == ledger.c.user_id, resets.c.reason == "reset")
        .scalar_subquery()
    )
    total = (
        sa.select(sa.func.coalesce(sa.func.sum(ledger.c.delta), 0))
        .where(ledger.c.pool == balances.c.pool, ledger.c.user_id == balances.c.user_id,
               ledger.c.reason.not_in(("redeem", "refund", "reset")), ledger.c.id > last_reset)
        .scalar_subquery()
    )
    op.execute(balances.update().values(earned=total))
    days = sa.table("checkin_days", sa.column("chat_id", sa.BigInteger()), sa.column("day", sa.Date()),
                    sa.column("made_up", sa.Boolean()))
    counts = sa.table("checkin_day_counts", sa.column("chat_id", sa.BigInteger()), sa.column("day", sa.Date()),
                      sa.column("count", sa.Integer()))
    op.execute(counts.insert().from_select(
        ["chat_id", "day", "count"],
        sa.select(days.c.chat_id, days.c.day, sa.func.count()).where(days.c.made_up == sa.false())
        .group_by(days.c.chat_id, days.c.day),
    ))


def downgrade() -> None:
    with op.batch_alter_table("core_points_balances", schema=None) as batch_op:
        batch_op.drop_column("earned")
    with op.batch_alter_table("checkin_invites", schema=None) as batch_op:
        batch_op.drop_index("ix_checkin_invites_chat_inviter")
    op.drop_table("checkin_invites")
    op.drop_table("checkin_invite_links")
    with op.batch_alter_table("checkin_redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_checkin_redemptions_user")
    op.drop_table("checkin_redemptions")
    with op.batch_alter_table("checkin_coupon_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_checkin_coupon_codes_item_claimed")
    op.drop_table("checkin_coupon_codes")
    op.drop_table("checkin_shop_items")
    op.drop_table("checkin_badges")
    op.drop_table("checkin_day_counts")
    with op.batch_alter_table("checkin_days", schema=None) as batch_op:
        batch_op.drop_index("ix_checkin_days_chat_day")
    op.drop_table("checkin_days")
    op.drop_table("checkin_members")
