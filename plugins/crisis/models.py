"""Tables of the crisis plugin (prefix ``crisis_``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import AutoId, Base, UTCDateTime

OPEN = "open"
RESOLVED = "resolved"


class CrisisIncident(Base):
    """One incident per chat at a time: ``open_chat_id`` is the chat id while it is open, NULL after,
    and unique, so the database itself refuses a second open incident in a chat."""

    __tablename__ = "crisis_incidents"
    __table_args__ = (
        UniqueConstraint("open_chat_id"),
        Index("ix_crisis_incidents_chat_opened", "chat_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    chat_title: Mapped[str] = mapped_column(String(255), default="")
    open_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    level: Mapped[int] = mapped_column(Integer)
    peak_level: Mapped[int] = mapped_column(Integer)
    # score | instant | manual
    trigger: Mapped[str] = mapped_column(String(16), default="score")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    level_since: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acked_by: Mapped[int | None] = mapped_column(BigInteger)
    resolved_by: Mapped[int | None] = mapped_column(BigInteger)
    # manual | auto
    close_reason: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    # A manual escalation pins the level: automatic de-escalation stops there.
    floor_level: Mapped[int | None] = mapped_column(Integer)
    peak_score: Mapped[float] = mapped_column(Float, default=0.0)
    # Messages with a risk word or a negative tone while the incident was open.
    messages: Mapped[int] = mapped_column(Integer, default=0)
    # {user_id: name} of the members involved (risk voices), at most a few hundred.
    members: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {keyword: count}
    keywords: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The latest evidence quoted in an alert: [{message_id, user_id, name, text, at}]
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Measures in force and what is needed to lift them: {"permissions": {...}, "restrict": "media",
    # "holding_message_id": 12, "owners_pinged": true}
    measures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CrisisTimeline(Base):
    """The incident's timeline: opened, level, ack, action, resolved, note."""

    __tablename__ = "crisis_timeline"
    __table_args__ = (Index("ix_crisis_timeline_incident_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("crisis_incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[int | None] = mapped_column(Integer)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CrisisOutbox(Base):
    """Every alert, note, summary and owner DM goes through here first: a send that fails stays
    ``pending`` and the retry job sends it later; nothing is lost when the log chat is unreachable."""

    __tablename__ = "crisis_outbox"
    __table_args__ = (Index("ix_crisis_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(BigInteger)
    # The group the incident is about (language, links); the destination is dest_chat_id.
    chat_id: Mapped[int] = mapped_column(BigInteger)
    dest_chat_id: Mapped[int] = mapped_column(BigInteger)
    # alert | note | summary | dm
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    markup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    silent: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending | sent | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[int | None] = mapped_column(BigInteger)


class CrisisBaseline(Base):
    """A chat's calm-period baseline (EWMA), so a restart does not forget what normal looks like."""

    __tablename__ = "crisis_baselines"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    rate: Mapped[float] = mapped_column(Float, default=0.0)
    negative_share: Mapped[float] = mapped_column(Float, default=0.0)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
