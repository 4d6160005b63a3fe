"""Tables of the moderation plugin (prefix ``moderation_``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import AutoId, Base, UTCDateTime


class Warn(Base):
    """One warn; the ladder counts the active ones (not revoked, not expired by the App clock).

    ``source`` names what caused it (a message, a command, a report button), unique per chat, so a
    redelivered update never warns twice.
    """

    __tablename__ = "moderation_warns"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("chat_id", "source", name="uq_moderation_warns_chat_source"),
        Index("ix_moderation_warns_chat_user", "chat_id", "user_id"),
    )


class ActionLog(Base):
    """Every action, manual or automatic: the log chat entry and what its undo button refers to."""

    __tablename__ = "moderation_actions"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))  # notice, delete, mute, ban, kick, unmute, unban, ...
    rule: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # None: an automatic rule
    excerpt: Mapped[str | None] = mapped_column(Text)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warn_id: Mapped[int | None] = mapped_column(BigInteger)
    warn_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_by: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("chat_id", "source", name="uq_moderation_actions_chat_source"),
        Index("ix_moderation_actions_chat_user", "chat_id", "user_id"),
    )


class BannedWord(Base):
    __tablename__ = "moderation_blacklist"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    word: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))  # normalized form: one entry per key
    action: Mapped[str] = mapped_column(String(32))
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("chat_id", "key", name="uq_moderation_blacklist_chat_key"),)


class Approved(Base):
    """Members exempt from anti-spam, anti-flood and locks in one chat (/approve)."""

    __tablename__ = "moderation_approved"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    approved_by: Mapped[int | None] = mapped_column(BigInteger)
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Report(Base):
    __tablename__ = "moderation_reports"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)  # the reported message
    reporter_id: Mapped[int] = mapped_column(BigInteger)
    target_id: Mapped[int] = mapped_column(BigInteger)
    command_message_id: Mapped[int] = mapped_column(BigInteger)  # the /report message
    excerpt: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, warn, mute, ban, dismissed
    handled_by: Mapped[int | None] = mapped_column(BigInteger)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("chat_id", "message_id", "reporter_id", name="uq_moderation_reports_chat_message_reporter"),
        Index("ix_moderation_reports_reporter_created", "reporter_id", "created_at"),
    )


class GlobalBan(Base):
    """A network ban (/gban): banned in every chat the bot manages, and again on any join."""

    __tablename__ = "moderation_gbans"
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    reason: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RaidState(Base):
    """Anti-raid mode of a chat while it is on (survives a restart)."""

    __tablename__ = "moderation_raids"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by: Mapped[int | None] = mapped_column(BigInteger)  # None: automatic
