"""Tables of the polls (contests) plugin: contests, entries (votes / lottery entrants / poll answers),
and tagged PK arguments with their reply counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import AutoId, Base, UTCDateTime

KINDS = ("poll", "pk", "lottery", "quiz")
OPEN, CLOSED, CANCELLED = "open", "closed", "cancelled"


class Contest(Base):
    """One poll, PK, lottery or quiz. ``data`` holds the kind's settings, ``result`` the outcome."""

    __tablename__ = "polls_contests"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    creator_id: Mapped[int | None] = mapped_column(BigInteger)
    title: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The bot's message (the native poll, or the message with the buttons).
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    poll_id: Mapped[str | None] = mapped_column(String(64))
    # The command message that created it: a redelivered command does not create a second contest.
    source_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    source_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once the result message went out (the close timer may fire more than once).
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("source_chat_id", "source_message_id", name="uq_polls_contests_source"),
        Index("ix_polls_contests_chat_status", "chat_id", "status"),
        Index("ix_polls_contests_status", "status"),
        Index("ix_polls_contests_poll_id", "poll_id"),
    )


class Entry(Base):
    """A member's part in a contest: PK side (``choice``), lottery entry, or native poll answer."""

    __tablename__ = "polls_entries"
    contest_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("polls_contests.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    choice: Mapped[int | None] = mapped_column(Integer)
    choices: Mapped[list[int] | None] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16), default="button")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Argument(Base):
    """A PK message tagged with a side (#A/#B, [正方]/[反方]) and how many replies it drew."""

    __tablename__ = "polls_pk_arguments"
    contest_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("polls_contests.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    side: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(BigInteger)
    excerpt: Mapped[str] = mapped_column(String(200))
    replies: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
