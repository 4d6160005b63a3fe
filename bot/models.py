"""Core tables (prefix ``core_``). Plugins keep their own tables in ``plugins/<name>/models.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import AutoId, Base, UTCDateTime


class ProcessedUpdate(Base):
    """Update ids whose effects are committed: a redelivered update is skipped."""

    __tablename__ = "core_processed_updates"
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Chat(Base):
    __tablename__ = "core_chats"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(16), default="supergroup")
    title: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(64))
    bot_status: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChatPluginSetting(Base):
    """Per-chat settings changed by admins in the chat; layered over the TOML config."""

    __tablename__ = "core_chat_plugin_settings"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    plugin: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[int | None] = mapped_column(BigInteger)


class User(Base):
    __tablename__ = "core_users"
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(String(64), index=True)
    first_name: Mapped[str] = mapped_column(String(255), default="")
    last_name: Mapped[str | None] = mapped_column(String(255))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    language_code: Mapped[str | None] = mapped_column(String(16))
    started_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Member(Base):
    """One row per (chat, user): the membership history later plugins build on."""

    __tablename__ = "core_members"
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default="member")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    join_count: Mapped[int] = mapped_column(Integer, default=0)
    invited_by: Mapped[int | None] = mapped_column(BigInteger)
    invite_link: Mapped[str | None] = mapped_column(String(255))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_core_members_chat_status", "chat_id", "status"),)


class Timer(Base):
    """A durable one-off timer (captcha deadline, contest close, scheduled post).

    Survives restarts; claimed atomically so it fires once even with several workers.
    """

    __tablename__ = "core_timers"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    handler: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_core_timers_status_due", "status", "due_at"),)


class PointsEntry(Base):
    """The append-only points ledger; balances are sums over it."""

    __tablename__ = "core_points_ledger"
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    pool: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    delta: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("pool", "reference", name="uq_core_points_ledger_pool_reference"),
        Index("ix_core_points_ledger_pool_user", "pool", "user_id"),
        Index("ix_core_points_ledger_pool_created", "pool", "created_at"),
    )


class Connection(Base):
    """Rose-style /connect: an admin manages a group from a private chat with the bot."""

    __tablename__ = "core_connections"
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsBalance(Base):
    """Running balance per (pool, user), updated in the same transaction as each ledger row."""

    __tablename__ = "core_points_balances"
    pool: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # Points earned since the last reset (``bot.services.points.NOT_EARNED_REASONS`` left out), kept
    # by PointsService in the same statement as ``balance``; unclamped (may go below zero).
    earned: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
