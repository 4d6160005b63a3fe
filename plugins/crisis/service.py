"""Database operations of the crisis plugin: aiogram-free, each taking a session first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import upsert
from plugins.crisis.models import OPEN, RESOLVED, CrisisBaseline, CrisisIncident, CrisisOutbox, CrisisTimeline

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
MAX_MEMBERS_STORED = 300
MAX_KEYWORDS_STORED = 50


# ---- incidents ------------------------------------------------------------------------------------
async def open_incident(
    s: AsyncSession, chat_id: int, title: str, level: int, trigger: str, now: datetime, *,
    score: float = 0.0, detail: Mapping[str, Any] | None = None, actor_id: int | None = None,
) -> CrisisIncident:
    """Insert an open incident and its "opened" timeline row (flushes: raises IntegrityError when the
    chat already has an open incident)."""
    inc = CrisisIncident(
        chat_id=chat_id, chat_title=title[:255], open_chat_id=chat_id, status=OPEN, level=level,
        peak_level=level, trigger=trigger, opened_at=now, level_since=now, updated_at=now, peak_score=score,
        messages=0, members={}, keywords={}, evidence=[], measures={},
    )
    s.add(inc)
    await s.flush()
    await add_timeline(s, inc.id, now, "opened", level=level, actor_id=actor_id, detail=detail)
    return inc


async def get_incident(s: AsyncSession, incident_id: int, *, for_update: bool = False) -> CrisisIncident | None:
    """The incident; ``for_update``: locked until the transaction ends (several workers add to it)."""
    if for_update:
        return await s.get(CrisisIncident, incident_id, with_for_update=True, populate_existing=True)
    return await s.get(CrisisIncident, incident_id)


async def open_for_chat(s: AsyncSession, chat_id: int) -> CrisisIncident | None:
    return await s.scalar(select(CrisisIncident).where(CrisisIncident.open_chat_id == chat_id))


async def all_open(s: AsyncSession) -> list[CrisisIncident]:
    return list(await s.scalars(select(CrisisIncident).where(CrisisIncident.status == OPEN)))


async def set_level(
    s: AsyncSession, inc: CrisisIncident, level: int, now: datetime, *, actor_id: int | None = None,
    detail: Mapping[str, Any] | None = None, floor: int | None = None,
) -> int:
    """Change the level (records the timeline); returns the old level."""
    old = inc.level
    inc.level = level
    inc.peak_level = min(inc.peak_level, level)
    inc.level_since = now
    inc.updated_at = now
    if floor is not None:
        inc.floor_level = floor
    await add_timeline(s, inc.id, now, "level", level=level, actor_id=actor_id,
                       detail={"from": old, **(detail or {})})
    return old


async def acknowledge(s: AsyncSession, inc: CrisisIncident, user_id: int, now: datetime) -> bool:
    """First ack wins; False when already acknowledged (a repeated press changes nothing)."""
    if inc.acked_at is not None or inc.status != OPEN:
        return False
    inc.acked_at = now
    inc.acked_by = user_id
    inc.updated_at = now
    await add_timeline(s, inc.id, now, "ack", level=inc.level, actor_id=user_id)
    return True


async def resolve(
    s: AsyncSession, inc: CrisisIncident, now: datetime, *, by: int | None, reason: str, note: str | None = None,
) -> bool:
    if inc.status != OPEN:
        return False
    inc.status = RESOLVED
    inc.open_chat_id = None
    inc.closed_at = now
    inc.updated_at = now
    inc.resolved_by = by
    inc.close_reason = reason
    if note:
        inc.note = note[:2000]
    await add_timeline(s, inc.id, now, "resolved", level=inc.level, actor_id=by,
                       detail={"reason": reason, **({"note": note[:500]} if note else {})})
    return True


def store_aggregates(
    inc: CrisisIncident, *, messages: int, members: Mapping[int, str], keywords: Mapping[str, int],
    evidence: Sequence[Mapping[str, Any]], peak_score: float, now: datetime,
) -> None:
    inc.messages = messages
    inc.members = {str(uid): name for uid, name in list(members.items())[:MAX_MEMBERS_STORED]}
    top = sorted(keywords.items(), key=lambda kv: -kv[1])[:MAX_KEYWORDS_STORED]
    inc.keywords = dict(top)
    if evidence:
        inc.evidence = [dict(e) for e in evidence]
    inc.peak_score = max(inc.peak_score or 0.0, peak_score)
    inc.updated_at = now


async def write_aggregates(s: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk update of open incidents' running aggregates (the runtime's flush)."""
    for row in rows:
        top = sorted(row["keywords"].items(), key=lambda kv: -kv[1])[:MAX_KEYWORDS_STORED]
        values: dict[str, Any] = {
            "messages": row["messages"],
            "members": {str(uid): name for uid, name in list(row["members"].items())[:MAX_MEMBERS_STORED]},
            "keywords": dict(top),
            "peak_score": row["peak_score"],
            "updated_at": row["at"],
        }
        if row.get("evidence"):
            values["evidence"] = list(row["evidence"])
        await s.execute(
            update(CrisisIncident).where(CrisisIncident.id == row["id"], CrisisIncident.status == OPEN).values(**values)
        )


def add_aggregates(
    inc: CrisisIncident, *, messages: int, members: Mapping[int, str], keywords: Mapping[str, int],
    evidence: Sequence[Mapping[str, Any]], peak_score: float, now: datetime,
) -> None:
    """Add one worker's notes since its last flush to the row (several workers share an incident)."""
    inc.messages = (inc.messages or 0) + messages
    merged = dict(inc.members or {})
    for uid, name in members.items():
        if len(merged) >= MAX_MEMBERS_STORED:
            break
        merged.setdefault(str(uid), name)
    inc.members = merged
    counts = Counter({str(k): int(v) for k, v in (inc.keywords or {}).items()})
    counts.update(keywords)
    inc.keywords = dict(counts.most_common(MAX_KEYWORDS_STORED))
    if evidence:
        inc.evidence = [dict(e) for e in evidence]
    inc.peak_score = max(inc.peak_score or 0.0, peak_score)
    inc.updated_at = now


async def merge_aggregates(s: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """``write_aggregates`` for several workers: each row holds one worker's deltas, added under a row lock."""
    for row in sorted(rows, key=lambda r: r["id"]):  # one lock order in every worker: no deadlock
        inc = await get_incident(s, row["id"], for_update=True)
        if inc is None or inc.status != OPEN:
            continue
        add_aggregates(inc, messages=row["messages"], members=row["members"], keywords=row["keywords"],
                       evidence=row["evidence"], peak_score=row["peak_score"], now=row["at"])
    await s.flush()


async def history(s: AsyncSession, chat_id: int, limit: int = 10) -> list[CrisisIncident]:
    return list(
        await s.scalars(
            select(CrisisIncident).where(CrisisIncident.chat_id == chat_id)
            .order_by(CrisisIncident.opened_at.desc(), CrisisIncident.id.desc()).limit(limit)
        )
    )


# ---- timeline -------------------------------------------------------------------------------------
async def add_timeline(
    s: AsyncSession, incident_id: int, at: datetime, kind: str, *, level: int | None = None,
    actor_id: int | None = None, detail: Mapping[str, Any] | None = None,
) -> None:
    s.add(CrisisTimeline(incident_id=incident_id, at=at, kind=kind, level=level, actor_id=actor_id,
                         detail=dict(detail or {})))


async def timeline(s: AsyncSession, incident_id: int) -> list[CrisisTimeline]:
    return list(
        await s.scalars(
            select(CrisisTimeline).where(CrisisTimeline.incident_id == incident_id)
            .order_by(CrisisTimeline.at, CrisisTimeline.id)
        )
    )


# ---- outbox ---------------------------------------------------------------------------------------
async def enqueue(
    s: AsyncSession, *, chat_id: int, dest_chat_id: int, kind: str, text: str, now: datetime,
    incident_id: int | None = None, markup: Mapping[str, Any] | None = None, silent: bool = False,
) -> CrisisOutbox:
    row = CrisisOutbox(
        incident_id=incident_id, chat_id=chat_id, dest_chat_id=dest_chat_id, kind=kind, text=text[:4096],
        markup=dict(markup) if markup else None, silent=silent, status=PENDING, attempts=0, created_at=now,
        next_attempt_at=now,
    )
    s.add(row)
    await s.flush()
    return row


async def pending_outbox(
    s: AsyncSession, now: datetime | None = None, *, dest_chat_id: int | None = None, limit: int = 100,
) -> list[CrisisOutbox]:
    """Pending rows, oldest first: all of one destination, or those due at ``now``."""
    stmt = select(CrisisOutbox).where(CrisisOutbox.status == PENDING)
    if dest_chat_id is not None:
        stmt = stmt.where(CrisisOutbox.dest_chat_id == dest_chat_id)
    if now is not None:
        stmt = stmt.where(CrisisOutbox.next_attempt_at <= now)
    return list(await s.scalars(stmt.order_by(CrisisOutbox.id).limit(limit)))


def backoff(attempts: int) -> timedelta:
    """15 s, 30 s, 1 min ... capped at 10 min."""
    return timedelta(seconds=min(600, 15 * 2 ** max(0, attempts - 1)))


async def mark_sent(s: AsyncSession, row_id: int, message_id: int | None, now: datetime) -> None:
    await s.execute(
        update(CrisisOutbox).where(CrisisOutbox.id == row_id)
        .values(status=SENT, sent_at=now, message_id=message_id, attempts=CrisisOutbox.attempts + 1, last_error=None)
    )


async def mark_failed(
    s: AsyncSession, row_id: int, error: str, now: datetime, *, max_attempts: int, permanent: bool = False,
) -> str:
    row = await s.get(CrisisOutbox, row_id)
    if row is None or row.status != PENDING:
        return row.status if row else FAILED
    row.attempts += 1
    row.last_error = error[:500]
    if permanent or row.attempts >= max_attempts:
        row.status = FAILED
    else:
        row.next_attempt_at = now + backoff(row.attempts)
    return row.status


async def outbox_counts(s: AsyncSession, chat_id: int | None = None) -> dict[str, int]:
    stmt = select(CrisisOutbox.status, func.count()).group_by(CrisisOutbox.status)
    if chat_id is not None:
        stmt = stmt.where(CrisisOutbox.chat_id == chat_id)
    return {status: int(n) for status, n in (await s.execute(stmt)).all()}


async def alert_messages(s: AsyncSession, incident_id: int) -> list[CrisisOutbox]:
    """Sent alerts of an incident (to edit their buttons when it is acknowledged or resolved)."""
    return list(
        await s.scalars(
            select(CrisisOutbox).where(
                CrisisOutbox.incident_id == incident_id, CrisisOutbox.kind == "alert", CrisisOutbox.status == SENT,
                CrisisOutbox.message_id.is_not(None),
            )
        )
    )


# ---- baselines ------------------------------------------------------------------------------------
async def load_baselines(s: AsyncSession) -> list[CrisisBaseline]:
    return list(await s.scalars(select(CrisisBaseline)))


async def save_baselines(s: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await upsert(s, CrisisBaseline, rows, ["chat_id"], ["rate", "negative_share", "score", "samples", "updated_at"])
