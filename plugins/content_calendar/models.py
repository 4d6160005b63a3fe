"""Tables of the content_calendar plugin (prefix ``content_calendar_``); migration 0008_calendar."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import AutoId, Base, UTCDateTime


class CalendarEntry(Base):
    """An entry: from the calendar file (source "file", synced on load) or added in a chat ("chat")."""

    __tablename__ = "content_calendar_entries"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(8))
    owner_chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Occurrence(Base):
    """One post of one entry into one chat at one local slot; the unique key makes it happen once."""

    __tablename__ = "content_calendar_occurrences"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    entry_key: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    slot: Mapped[str] = mapped_column(String(24))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # sending, retry, sent, failed, held, skipped, dropped
    status: Mapped[str] = mapped_column(String(16))
    series: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("entry_key", "chat_id", "slot", name="uq_content_calendar_occurrences_entry_key_chat_id_slot"),
        Index("ix_content_calendar_occurrences_chat_status", "chat_id", "status"),
        Index("ix_content_calendar_occurrences_chat_series", "chat_id", "series"),
    )


class Pause(Base):
    """An entry paused in one chat by its admins (other chats keep getting it)."""

    __tablename__ = "content_calendar_pauses"
    entry_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    paused_by: Mapped[int | None] = mapped_column(BigInteger)
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CrisisState(Base):
    """Open crisis incidents per chat (from CrisisChanged), so a hold survives a restart."""

    __tablename__ = "content_calendar_crisis"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    incident_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    level: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Streak(Base):
    """The latest check-in streak per member (from the core CheckedIn event): {streak_leaders}."""

    __tablename__ = "content_calendar_streaks"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    streak: Mapped[int] = mapped_column(Integer)
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime)
