"""Tables of the welcome plugin: captcha state per (chat, member) and the captcha messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime

# Captcha statuses. "passing"/"failing" are claims taken before the Bot API calls, so a crash in
# between is resumed (and a concurrent answer/timeout cannot act twice).
PENDING = "pending"
PASSING = "passing"
FAILING = "failing"
PASSED = "passed"
KICKED = "kicked"  # failed and kicked (ban + unban)
FAILED = "failed"  # failed and left muted (captcha_kick = false)
LEFT = "left"  # left the chat while pending
RELEASED = "released"  # the captcha could not be shown: restriction lifted, no verdict
OPEN_STATUSES = (PENDING, PASSING, FAILING)


class Captcha(Base):
    """One row per (chat, member): the member's current (or last) captcha."""

    __tablename__ = "welcome_captchas"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The captcha message (shared by the members who joined in the same raid window).
    token: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(16))
    # Index of the right button.
    answer: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_welcome_captchas_chat_token", "chat_id", "token"),)


class Prompt(Base):
    """A sent captcha message: what to leave behind (the greeting) once every member resolved."""

    __tablename__ = "welcome_prompts"
    token: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    greeting: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
