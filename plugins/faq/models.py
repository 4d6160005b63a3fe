"""Tables of the faq plugin (prefix ``faq_``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import AutoId, Base, UTCDateTime


class FaqEntry(Base):
    """One answer. Its keywords (synonyms included) live in ``faq_keywords``."""

    __tablename__ = "faq_entries"
    __table_args__ = (Index("ix_faq_entries_chat", "chat_id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    # contains | exact | word | regex
    mode: Mapped[str] = mapped_column(String(16), default="contains")
    # The answer as Telegram HTML (the text, or the caption of a media answer).
    reply_html: Mapped[str] = mapped_column(Text, default="")
    # URL buttons: [[{"text": ..., "url": ...}, ...], ...] (rows of buttons).
    buttons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # photo | video | document | animation | sticker, with the Telegram file_id; None for text.
    media_type: Mapped[str | None] = mapped_column(String(16))
    media_file_id: Mapped[str | None] = mapped_column(String(255))
    hits: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hit_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FaqKeyword(Base):
    """A keyword of an entry; unique per chat by its normalized form (``norm``)."""

    __tablename__ = "faq_keywords"
    __table_args__ = (
        UniqueConstraint("chat_id", "norm"),
        Index("ix_faq_keywords_entry", "entry_id"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("faq_entries.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    # As the admin typed it (shown in /filters, used by /stop and export).
    keyword: Mapped[str] = mapped_column(String(255))
    # Match form for literal keywords; "regex:" + pattern for regex entries.
    norm: Mapped[str] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(Integer, default=0)


class FaqChat(Base):
    """Per-chat revision of the FAQ set, bumped on every change (also by ``qunbot faq import`` in
    another process): the bot compares it periodically and rebuilds stale automata."""

    __tablename__ = "faq_chats"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FaqGap(Base):
    """A question nobody's FAQ answered, grouped by its normalized text."""

    __tablename__ = "faq_gaps"
    __table_args__ = (Index("ix_faq_gaps_chat_last", "chat_id", "last_at"),)

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    question: Mapped[str] = mapped_column(String(255), primary_key=True)
    sample: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FaqNote(Base):
    """A note (Rose's /save): sent when someone asks for it by name (``#name`` or ``/get name``),
    never matched automatically."""

    __tablename__ = "faq_notes"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The name's lookup form (normalized, lower case); ``name`` is as the admin typed it.
    name_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    reply_html: Mapped[str] = mapped_column(Text, default="")
    buttons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    media_type: Mapped[str | None] = mapped_column(String(16))
    media_file_id: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
