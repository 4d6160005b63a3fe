"""Scheduled work: the weekly report (hourly check, sent once per chat and week in the chat's own time
zone) and maintenance (repair of event-fed counters for closed days, pruning of old per-member rows,
expiry of stale cleanup previews)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update

from bot.db import retry_locked, upsert
from plugins.analytics import privacy, report, service
from plugins.analytics.config import AnalyticsConfig
from plugins.analytics.models import Cleanup, WeeklyReport

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

NAME = "analytics"
REPAIR_DAYS = 3  # closed days looked at by each repair
REPAIR_GRACE = timedelta(hours=1)  # a day is repaired only once it ended this long ago


async def _cfg(app: App, chat_id: int) -> AnalyticsConfig | None:
    if not await app.chat_config.enabled(chat_id, NAME):
        return None
    cfg = await app.chat_config.get(chat_id, NAME)
    assert isinstance(cfg, AnalyticsConfig)
    return cfg


async def weekly_reports(app: App) -> list[int]:
    """Send every due weekly report; returns the chats reported on."""
    now = app.clock.now()
    async with app.db() as s:
        chats = await service.chats_with_data(s, now.date() - timedelta(days=16))
    sent = []
    for chat_id in chats:
        try:
            if await weekly_report(app, chat_id):
                sent.append(chat_id)
        except Exception:
            log.exception("weekly report of chat %s failed", chat_id)
    return sent


async def weekly_report(app: App, chat_id: int) -> bool:
    cfg = await _cfg(app, chat_id)
    if cfg is None or not cfg.weekly_report:
        return False
    core = await app.chat_config.chat(chat_id)
    log_chat = app.log_chat_for(core.log_chat_id)
    if log_chat is None:
        return False
    now = app.clock.now()
    start = report.week_due(now.astimezone(core.tz), cfg)
    async with app.db() as s:
        if await s.get(WeeklyReport, (chat_id, start)) is not None:
            return False
        days = await service.daily(s, chat_id, start - timedelta(days=7), start + timedelta(days=6))
    if not any(d.messages or d.joins or d.leaves for d in days):
        return False  # nothing happened in either week: no report
    _ = lambda text: app.i18n.gettext(core.language, text)  # noqa: E731
    week = await report.gather_week(app, chat_id, start, cfg, core.tz, _)
    message = await app.send_text(log_chat, report.render_week(week, _))
    if message is None:
        return False  # not sent: the next hourly run tries again

    async def mark() -> None:
        async with app.db() as s, s.begin():
            await upsert(s, WeeklyReport, [{"chat_id": chat_id, "week": start, "sent_at": app.clock.now()}],
                         ["chat_id", "week"])

    await retry_locked(mark)
    return True


async def maintenance(app: App) -> None:
    now = app.clock.now()
    async with app.db() as s:
        chats = await service.known_chats(s)
    for chat_id in chats:
        try:
            await maintain_chat(app, chat_id)
        except Exception:
            log.exception("analytics maintenance of chat %s failed", chat_id)

    async def expire() -> None:
        async with app.db() as s, s.begin():
            await s.execute(update(Cleanup)
                            .where(Cleanup.status == "pending", Cleanup.created_at < now - timedelta(days=1))
                            .values(status="expired"))

    await retry_locked(expire)


async def maintain_chat(app: App, chat_id: int) -> int:
    """Repair the last closed days and prune old rows of one chat; returns member rows repaired."""
    cfg = await _cfg(app, chat_id)
    if cfg is None:
        return 0
    tz = (await app.chat_config.chat(chat_id)).tz
    now = app.clock.now()
    today = service.local_day(now, tz)
    closed = [today - timedelta(days=i) for i in range(1, REPAIR_DAYS + 1)
              if service.day_start_utc(today - timedelta(days=i - 1), tz) + REPAIR_GRACE <= now]

    async def repair() -> int:
        async with app.db() as s, s.begin():
            return await service.repair_days(s, chat_id, closed, tz, cfg.checkin_reason)

    repaired = await retry_locked(repair)
    pruned = await privacy.prune(app, chat_id, cfg.retention_days, today)
    if repaired or pruned:
        log.info("analytics maintenance of %s: %d rows repaired, %d pruned", chat_id, repaired, pruned)
    return repaired
