"""Tables of the checkin plugin (engagement): check-in days and streaks, badges, the points shop
(items, coupon codes, redemptions) and invite rewards. Points themselves live in the core ledger
(``core_points_ledger`` / ``core_points_balances``); nothing here stores a balance.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import AutoId, Base, UTCDateTime

# Shop item kinds.
KIND_COUPON = "coupon"  # a code drawn from the item's pool, delivered privately
KIND_BADGE = "badge"  # a badge shown on the member's card
KIND_TITLE = "title"  # a custom title shown on the member's card
KIND_CUSTOM = "custom"  # fulfilled by an admin (/fulfill)
KIND_MAKEUP = "makeup"  # a 补签卡 (make-up card) for a missed check-in day
ITEM_KINDS = (KIND_COUPON, KIND_BADGE, KIND_TITLE, KIND_CUSTOM, KIND_MAKEUP)

# Redemption statuses.
R_DONE = "done"
R_PENDING = "pending"  # a custom item waiting for an admin
R_FULFILLED = "fulfilled"

# Invite statuses.
I_PENDING = "pending"
I_REWARDED = "rewarded"
I_REJECTED = "rejected"


class CheckinMember(Base):
    """Per (chat, member): the streak state, make-up cards and shop-bought title."""

    __tablename__ = "checkin_members"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    streak: Mapped[int] = mapped_column(Integer, default=0)
    best_streak: Mapped[int] = mapped_column(Integer, default=0)
    # The last local day counted in the streak (a real or a made-up check-in).
    last_day: Mapped[date | None] = mapped_column(Date)
    total_days: Mapped[int] = mapped_column(Integer, default=0)
    # The streak a missed day broke (kept so /makeup can repair it after today's check-in).
    broken_streak: Mapped[int] = mapped_column(Integer, default=0)
    broken_last_day: Mapped[date | None] = mapped_column(Date)
    makeup_cards: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CheckinDay(Base):
    """One row per member per local day checked in (``made_up``: filled with a 补签卡)."""

    __tablename__ = "checkin_days"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date)
    points: Mapped[int] = mapped_column(Integer, default=0)
    streak: Mapped[int] = mapped_column(Integer, default=0)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    lucky: Mapped[int] = mapped_column(Integer, default=0)
    made_up: Mapped[bool] = mapped_column(Boolean, default=False)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("chat_id", "user_id", "day", name="uq_checkin_days_chat_id_user_id_day"),
        Index("ix_checkin_days_chat_day", "chat_id", "day"),
    )


class CheckinDayCount(Base):
    """Real (not made-up) check-ins per chat per local day, incremented in the check-in's transaction:
    today's rank is the new count (one upsert instead of counting the day's rows)."""

    __tablename__ = "checkin_day_counts"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class CheckinBadge(Base):
    """A badge a member holds in a chat; ``count`` for repeatable ones (weekly top contributor)."""

    __tablename__ = "checkin_badges"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    badge: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShopItem(Base):
    """A points-shop item of one chat (from TOML: ``source="config"``, or added by an admin)."""

    __tablename__ = "checkin_shop_items"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[int] = mapped_column(BigInteger)
    # None: unlimited. Coupon items are also limited by their unclaimed codes.
    stock: Mapped[int | None] = mapped_column(Integer)
    # Redemptions per member; 0: unlimited.
    per_member_limit: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("chat_id", "code", name="uq_checkin_shop_items_chat_id_code"),)


class CouponCode(Base):
    """One code of a coupon item's pool; claimed at most once (conditional UPDATE on claimed_by)."""

    __tablename__ = "checkin_coupon_codes"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(255))
    claimed_by: Mapped[int | None] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("item_id", "code", name="uq_checkin_coupon_codes_item_id_code"),
        Index("ix_checkin_coupon_codes_item_claimed", "item_id", "claimed_by"),
    )


class Redemption(Base):
    """One redemption. ``request_ref`` (the /redeem message) makes a redelivered command a no-op;
    ``seq`` (the member's n-th of this item) with its unique constraint enforces the per-member limit
    even under concurrent redeems."""

    __tablename__ = "checkin_redemptions"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    item_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(Integer)
    item_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    price: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    request_ref: Mapped[str] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfilled_by: Mapped[int | None] = mapped_column(BigInteger)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("chat_id", "request_ref", name="uq_checkin_redemptions_chat_id_request_ref"),
        UniqueConstraint("item_id", "user_id", "seq", name="uq_checkin_redemptions_item_id_user_id_seq"),
        Index("ix_checkin_redemptions_user", "user_id", "delivered_at"),
    )


class InviteLink(Base):
    """A member's personal invite link for a chat (createChatInviteLink named for them)."""

    __tablename__ = "checkin_invite_links"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    link: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Invite(Base):
    """A join attributed to an inviter's link; one row per (chat, invitee) ever: a re-join pays nothing."""

    __tablename__ = "checkin_invites"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    invitee_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    inviter_id: Mapped[int] = mapped_column(BigInteger)
    link: Mapped[str] = mapped_column(String(255))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_checkin_invites_chat_inviter", "chat_id", "inviter_id", "status"),)
