"""The weekly "top contributor" award: once the chat's local week is over, the member who earned the
most points in it (shop spending left out) gets a bonus and the weekly_top badge.

The job runs hourly for every chat with recent activity; the ledger reference
``weekly_top:{chat}:{monday}`` makes each week's award happen exactly once, whenever the job runs.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from bot.db import retry_locked
from bot.models import PointsEntry
from plugins.checkin.config import CheckinConfig
from plugins.checkin.levels import day_start_utc, local_day, week_start
from plugins.checkin.models import CheckinDay
from plugins.checkin.service import NOT_EARNED, R_WEEKLY, badge_label, grant_badge

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeeklyWinner:
    chat_id: int
    user_id: int
    week: date  # the Monday of the week won
    earned: int
    bonus: int


async def award_chat(app: App, chat_id: int) -> WeeklyWinner | None:
    """Award last week's top earner of one chat; None when already done or nobody earned anything."""
    cfg: CheckinConfig = await app.chat_config.get(chat_id, "checkin")  # type: ignore[assignment]
    tz = (await app.chat_config.chat(chat_id)).tz
    now = app.clock.now()
    this_monday = week_start(local_day(now, tz))
    last_monday = this_monday - timedelta(days=7)
    since, until = day_start_utc(last_monday, tz), day_start_utc(this_monday, tz)
    reference = f"weekly_top:{chat_id}:{last_monday.isoformat()}"
    if await app.points.has_reference(chat_id, reference):
        return None
    total = func.sum(PointsEntry.delta)
    async with app.db() as s:
        top = (
            await s.execute(
                select(PointsEntry.user_id, total)
                .where(PointsEntry.pool == app.points.pool_for(chat_id), PointsEntry.chat_id == chat_id,
                       PointsEntry.created_at >= since, PointsEntry.created_at < until,
                       PointsEntry.reason.not_in((*NOT_EARNED, R_WEEKLY)))
                .group_by(PointsEntry.user_id)
                .having(total > 0)
                .order_by(total.desc(), PointsEntry.user_id)
                .limit(1)
            )
        ).first()
    if top is None:
        return None
    user_id, points = int(top[0]), int(top[1])

    async def tx() -> bool:
        async with app.db() as s, s.begin():
            result = await app.points.change(chat_id, user_id, cfg.weekly_top_points, R_WEEKLY, reference,
                                             note=f"week of {last_monday.isoformat()}: {points}", session=s)
            if result.applied:
                await grant_badge(s, chat_id, user_id, "weekly_top", badge_label(cfg, "weekly_top"), now, repeat=True)
            return result.applied

    if not await retry_locked(tx):
        return None
    return WeeklyWinner(chat_id, user_id, last_monday, points, cfg.weekly_top_points)


async def run(app: App) -> list[WeeklyWinner]:
    """The hourly job: award every chat whose local week has turned."""
    now = app.clock.now()
    # Chats with recent check-ins, chats whose messages the observer saw since start, configured chats
    # (no scan of the ledger, which grows with every activity point).
    async with app.db() as s:
        chats = {int(c) for c in await s.scalars(
            select(CheckinDay.chat_id).where(CheckinDay.day >= (now - timedelta(days=9)).date()).distinct()
        )}
    chats |= app.runtime("checkin").active_chats
    chats |= set(app.chat_config.configured_chats())
    winners = []
    for chat_id in sorted(chats):
        if chat_id > 0 or not await app.chat_config.enabled(chat_id, "checkin"):
            continue
        try:
            winner = await award_chat(app, chat_id)
        except Exception:
            log.exception("weekly award failed in %s", chat_id)
            continue
        if winner is None:
            continue
        winners.append(winner)
        cfg: CheckinConfig = await app.chat_config.get(chat_id, "checkin")  # type: ignore[assignment]
        if cfg.weekly_top_announce:
            lang = (await app.chat_config.chat(chat_id)).language
            msgid = "👑 上周之星：{name}，一周获得 {points} 积分！奖励 {bonus} 积分和徽章「{badge}」。"
            text = app.i18n.gettext(lang, msgid)
            app.send_text(chat_id, text.format(name=await app.members.mention(winner.user_id), points=winner.earned,
                                               bonus=winner.bonus, badge=html.escape(badge_label(cfg, "weekly_top"))))
    return winners
