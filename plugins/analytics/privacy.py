"""/mydata, /forgetme and retention pruning.

What a member's data is, here: their core_users row (names), their core_members rows (membership),
their analytics rows (per-day counters, wake-up marks) and their points ledger entries and balances.
/forgetme deletes the names and the analytics rows and detaches the ledger (``PointsService.anonymize_user``);
the per-chat daily totals (``analytics_chat_days``, ``analytics_chat_hours``) have no member in them and
stay. Membership rows stay: moderation and captcha need them, and they hold no names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from bot.db import retry_locked
from bot.models import Member, PointsBalance, PointsEntry, User
from plugins.analytics.models import MEMBER_COUNTERS, Cleanup, MemberDay, QuestionDay, Wakeup

if TYPE_CHECKING:
    from bot.app import App

NAME = "analytics"


def _iso(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


async def user_data(app: App, user_id: int) -> dict[str, Any]:
    """Everything the bot keeps about one user, as JSON-ready data."""
    async with app.db() as s:
        user = await s.get(User, user_id)
        memberships = (await s.scalars(select(Member).where(Member.user_id == user_id).order_by(Member.chat_id))).all()
        days = (await s.scalars(
            select(MemberDay).where(MemberDay.user_id == user_id).order_by(MemberDay.chat_id, MemberDay.day)
        )).all()
        wakeups = (await s.scalars(select(Wakeup).where(Wakeup.user_id == user_id))).all()
        ledger = (await s.scalars(
            select(PointsEntry).where(PointsEntry.user_id == user_id).order_by(PointsEntry.id)
        )).all()
        balances = (await s.scalars(select(PointsBalance).where(PointsBalance.user_id == user_id))).all()
    return {
        "user_id": user_id,
        "exported_at": app.clock.now().isoformat(),
        "profile": None if user is None else {
            "first_name": user.first_name, "last_name": user.last_name, "username": user.username,
            "language_code": user.language_code, "started_bot": user.started_bot, "updated_at": _iso(user.updated_at),
        },
        "memberships": [
            {"chat_id": m.chat_id, "status": m.status, "first_seen_at": _iso(m.first_seen_at),
             "joined_at": _iso(m.joined_at), "left_at": _iso(m.left_at), "join_count": m.join_count,
             "invited_by": m.invited_by, "verified_at": _iso(m.verified_at), "last_message_at": _iso(m.last_message_at)}
            for m in memberships
        ],
        "daily_activity": [
            {"chat_id": d.chat_id, "day": d.day.isoformat(), **{c: getattr(d, c) for c in MEMBER_COUNTERS}}
            for d in days
        ],
        "wakeups": [{"chat_id": w.chat_id, "last_at": _iso(w.last_at), "times": w.times, "via": w.via}
                    for w in wakeups],
        "points_balances": [{"pool": b.pool, "balance": b.balance} for b in balances],
        "points_ledger": [
            {"id": e.id, "chat_id": e.chat_id, "pool": e.pool, "delta": e.delta, "reason": e.reason,
             "reference": e.reference, "note": e.note, "created_at": _iso(e.created_at)}
            for e in ledger
        ],
    }


def user_data_file(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


@dataclass(frozen=True)
class Forgotten:
    day_rows: int
    ledger_rows: int
    names: bool


async def forget_user(app: App, user_id: int) -> Forgotten:
    """Delete a member's personal data; keep anonymous aggregates. Idempotent."""
    # Buffered counters first, so nothing of theirs is written after the delete.
    await app.flush()

    async def tx() -> Forgotten:
        async with app.db() as s, s.begin():
            days = await s.execute(delete(MemberDay).where(MemberDay.user_id == user_id))
            await s.execute(delete(Wakeup).where(Wakeup.user_id == user_id))
            names = await s.execute(
                update(User).where(User.user_id == user_id)
                .values(first_name="", last_name=None, username=None, language_code=None)
            )
            ledger = await app.points.anonymize_user(user_id, session=s)
            return Forgotten(int(days.rowcount or 0), ledger, bool(names.rowcount))  # type: ignore[attr-defined]

    return await retry_locked(tx)


async def prune(app: App, chat_id: int, retention_days: int, today: date) -> int:
    """Delete per-member rows and question samples older than the retention; returns member rows deleted."""
    cutoff = today - timedelta(days=retention_days)

    async def tx() -> int:
        async with app.db() as s, s.begin():
            result = await s.execute(delete(MemberDay).where(MemberDay.chat_id == chat_id, MemberDay.day < cutoff))
            await s.execute(delete(QuestionDay).where(QuestionDay.chat_id == chat_id, QuestionDay.day < cutoff))
            old = app.clock.now() - timedelta(days=max(retention_days, 365))
            await s.execute(delete(Wakeup).where(Wakeup.chat_id == chat_id, Wakeup.last_at < old))
            await s.execute(delete(Cleanup).where(Cleanup.chat_id == chat_id, Cleanup.created_at < old,
                                                  Cleanup.status != "running"))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    return await retry_locked(tx)
