"""Tables of the analytics plugin (prefix ``analytics_``). Days are local calendar days of the chat."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import AutoId, Base, UTCDateTime

# Counter columns of a member's day, in the order the collector's buffers keep them.
MEMBER_COUNTERS = (
    "messages", "chars", "replies_sent", "replies_received", "mentions_received", "thanks_received",
    "checkins", "faq_hits", "joins", "leaves",
)  # fmt: skip


class MemberDay(Base):
    """Per member, per chat, per local day: personal data, pruned after ``retention_days``."""

    __tablename__ = "analytics_member_days"
    __table_args__ = (
        Index("ix_analytics_member_days_chat_day", "chat_id", "day"),
        Index("ix_analytics_member_days_user", "user_id"),
    )

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    chars: Mapped[int] = mapped_column(Integer, default=0)
    replies_sent: Mapped[int] = mapped_column(Integer, default=0)
    replies_received: Mapped[int] = mapped_column(Integer, default=0)
    mentions_received: Mapped[int] = mapped_column(Integer, default=0)
    thanks_received: Mapped[int] = mapped_column(Integer, default=0)
    checkins: Mapped[int] = mapped_column(Integer, default=0)
    faq_hits: Mapped[int] = mapped_column(Integer, default=0)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    leaves: Mapped[int] = mapped_column(Integer, default=0)


class ChatDay(Base):
    """Per chat, per local day: anonymous totals, kept when member rows are pruned or forgotten."""

    __tablename__ = "analytics_chat_days"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    chars: Mapped[int] = mapped_column(Integer, default=0)
    # Distinct members who sent at least one message that day (DAU).
    active_members: Mapped[int] = mapped_column(Integer, default=0)
    replies: Mapped[int] = mapped_column(Integer, default=0)
    mentions: Mapped[int] = mapped_column(Integer, default=0)
    thanks: Mapped[int] = mapped_column(Integer, default=0)
    checkins: Mapped[int] = mapped_column(Integer, default=0)
    faq_hits: Mapped[int] = mapped_column(Integer, default=0)
    unanswered: Mapped[int] = mapped_column(Integer, default=0)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    leaves: Mapped[int] = mapped_column(Integer, default=0)
    sentiment_sum: Mapped[float] = mapped_column(Float, default=0.0)
    sentiment_n: Mapped[int] = mapped_column(Integer, default=0)


class ChatHour(Base):
    """Messages per chat, local day and local hour: the hour-of-week heatmap and hour histogram."""

    __tablename__ = "analytics_chat_hours"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    messages: Mapped[int] = mapped_column(Integer, default=0)


class FaqDay(Base):
    """FAQ answers per entry and day (from FaqAnswered)."""

    __tablename__ = "analytics_faq_days"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer, default=0)


class QuestionDay(Base):
    """Unanswered questions per normalized text and day (from QuestionUnanswered), without the asker."""

    __tablename__ = "analytics_questions"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    qkey: Mapped[str] = mapped_column(String(16), primary_key=True)
    text: Mapped[str] = mapped_column(String(200), default="")
    count: Mapped[int] = mapped_column(Integer, default=0)


class Incident(Base):
    """Crisis incidents seen through CrisisChanged (one row per incident: idempotent)."""

    __tablename__ = "analytics_incidents"
    __table_args__ = (Index("ix_analytics_incidents_chat_day", "chat_id", "day"),)

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    incident_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    peak_level: Mapped[int] = mapped_column(Integer)  # 1 is the highest
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Wakeup(Base):
    """When a member was last woken up in a chat (at most once per ``wakeup_period_days``)."""

    __tablename__ = "analytics_wakeups"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    times: Mapped[int] = mapped_column(Integer, default=0)
    via: Mapped[str] = mapped_column(String(8), default="mention")


class Cleanup(Base):
    """A /cleanup run: the previewed targets, then paced removal progress."""

    __tablename__ = "analytics_cleanups"
    __table_args__ = (Index("ix_analytics_cleanups_chat_created", "chat_id", "created_at"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # zombies | churned
    days: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[int | None] = mapped_column(BigInteger)
    confirmed_by: Mapped[int | None] = mapped_column(BigInteger)
    targets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # pending -> running -> done, or pending -> cancelled / expired
    status: Mapped[str] = mapped_column(String(16), default="pending")
    message_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WeeklyReport(Base):
    """A weekly report that was sent (``week``: the first local day of the 7 days reported on)."""

    __tablename__ = "analytics_reports"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
