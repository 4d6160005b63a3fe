"""Actions from segments: zombie/churn cleanup (preview, confirm, paced removal) and wake-ups.

Cleanup removes members with ban + unban (a kick: they may join again), ``cleanup_batch`` members per
step, one step every ``cleanup_interval`` seconds, each step a durable core timer keyed by the run and
its position: a restart resumes the run, a repeated fire is ignored. Each member is checked again just
before removal (an admin now, spoke since the preview, already gone: skipped).

Wake-ups mention members of ``wakeup_segments`` in the chat (``wakeup_batch`` per message, paced by the
core's per-chat queue) or DM those who started the bot; a member is woken at most once per
``wakeup_period_days`` per chat (``analytics_wakeups``).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiogram.methods import BanChatMember, UnbanChatMember
from sqlalchemy import select

from bot.db import retry_locked, upsert
from bot.models import User
from bot.services.timers import TimerFire
from plugins.analytics import service
from plugins.analytics.models import Cleanup, Wakeup
from plugins.analytics.service import MemberFacts

if TYPE_CHECKING:
    from bot.app import App
    from plugins.analytics.config import AnalyticsConfig

log = logging.getLogger(__name__)

NAME = "analytics"
TIMER = "analytics.cleanup"
KINDS = {"zombies": "zombies", "zombie": "zombies", "僵尸": "zombies", "僵尸粉": "zombies",
         "churned": "churned", "churn": "churned", "inactive": "churned", "流失": "churned", "不活跃": "churned"}


async def protected(app: App, chat_id: int) -> set[int]:
    """Members no action ever touches: admins, bot owners, the bot itself."""
    admins = set(await app.admins.admins(chat_id))
    return admins | set(app.admins.owners) | {app.bot.id}


def eligible(m: MemberFacts, kind: str, days: int, now: datetime) -> bool:
    """zombies: present, never spoke since joining ``days`` ago or more; churned: present, no message
    (or, never having spoken, no join) for ``days`` days or more."""
    if not m.present:
        return False
    if kind == "zombies":
        return not m.spoke and now - m.since >= timedelta(days=days)
    last = m.last_message_at if m.spoke and m.last_message_at is not None else m.since
    return now - last >= timedelta(days=days)


def candidates(facts: list[MemberFacts], kind: str, days: int, now: datetime, skip: set[int]) -> list[int]:
    """Eligible members, longest inactive first."""
    picked = [m for m in facts if m.user_id not in skip and eligible(m, kind, days, now)]
    picked.sort(key=lambda m: ((m.last_message_at if m.spoke and m.last_message_at else m.since), m.user_id))
    return [m.user_id for m in picked]


async def preview_cleanup(app: App, chat_id: int, kind: str, days: int, by: int | None, cfg: AnalyticsConfig
                          ) -> tuple[Cleanup | None, int]:
    """Store a pending run with its targets; (run or None when nobody qualifies, candidates in total)."""
    now = app.clock.now()
    skip = await protected(app, chat_id)
    async with app.db() as s:
        facts = await service.member_facts(s, chat_id)
    targets = candidates(facts, kind, days, now, skip)
    if not targets:
        return None, 0

    async def tx() -> Cleanup:
        async with app.db() as s, s.begin():
            run = Cleanup(chat_id=chat_id, kind=kind, days=days, requested_by=by, targets=targets[:cfg.cleanup_max],
                          status="pending", created_at=now)
            s.add(run)
            await s.flush()
            return run

    return await retry_locked(tx), len(targets)


async def get_run(app: App, run_id: int) -> Cleanup | None:
    async with app.db() as s:
        return await s.get(Cleanup, run_id)


async def confirm_cleanup(app: App, run_id: int, by: int, message_chat_id: int, message_id: int,
                          cfg: AnalyticsConfig) -> str:
    """pending -> running and arm the first step. Returns the run's status after the call
    ("running" when this call started it, or "expired", "done", "cancelled", "missing", "busy")."""
    now = app.clock.now()

    async def tx() -> str:
        async with app.db() as s, s.begin():
            run = await s.get(Cleanup, run_id)
            if run is None:
                return "missing"
            if run.status == "running":
                return "busy"
            if run.status != "pending":
                return run.status
            if now - run.created_at > timedelta(minutes=cfg.cleanup_confirm_minutes):
                run.status = "expired"
                return "expired"
            run.status = "running"
            run.confirmed_by = by
            run.confirmed_at = now
            run.message_chat_id = message_chat_id
            run.message_id = message_id
            return "running"

    status = await retry_locked(tx)
    if status == "running":
        await app.timers.schedule(f"analytics:cleanup:{run_id}:0", TIMER, now, chat_id=message_chat_id,
                                  payload={"id": run_id, "position": 0})
    return status


async def cancel_cleanup(app: App, run_id: int) -> str:
    async def tx() -> str:
        async with app.db() as s, s.begin():
            run = await s.get(Cleanup, run_id)
            if run is None:
                return "missing"
            if run.status == "pending":
                run.status = "cancelled"
                return "cancelled"
            return "busy" if run.status == "running" else run.status

    return await retry_locked(tx)


async def on_cleanup_timer(app: App, fire: TimerFire) -> None:
    """One paced step of a confirmed run."""
    run_id = int(fire.payload.get("id", 0))
    position = int(fire.payload.get("position", -1))
    run = await get_run(app, run_id)
    if run is None or run.status != "running" or run.position != position:
        return  # a repeated or stale fire
    chat_id = run.chat_id
    cfg: AnalyticsConfig = await app.chat_config.get(chat_id, NAME)  # type: ignore[assignment]
    batch = [int(u) for u in run.targets[position:position + cfg.cleanup_batch]]
    now = app.clock.now()
    skip = await protected(app, chat_id)
    async with app.db() as s:
        facts = {m.user_id: m for m in await service.member_facts(s, chat_id) if m.user_id in set(batch)}
    removed = skipped = failed = 0
    for uid in batch:
        m = facts.get(uid)
        if uid in skip or m is None or not eligible(m, run.kind, run.days, now):
            skipped += 1
            continue
        banned = await app.call(chat_id, BanChatMember(chat_id=chat_id, user_id=uid,
                                                        until_date=now + timedelta(seconds=60)))
        if not banned:
            failed += 1
            continue
        await app.call(chat_id, UnbanChatMember(chat_id=chat_id, user_id=uid, only_if_banned=True))
        removed += 1
    new_position = position + len(batch)
    finished = new_position >= len(run.targets)

    async def tx() -> bool:
        async with app.db() as s, s.begin():
            row = await s.get(Cleanup, run_id)
            if row is None or row.position != position:
                return False
            row.position = new_position
            row.removed += removed
            row.skipped += skipped
            row.failed += failed
            if finished:
                row.status = "done"
                row.finished_at = app.clock.now()
            return True

    if not await retry_locked(tx):
        return
    log.info("cleanup %s in %s: step at %d: removed %d, skipped %d, failed %d", run_id, chat_id, position, removed,
             skipped, failed)
    if not finished:
        await app.timers.schedule(f"analytics:cleanup:{run_id}:{new_position}", TIMER,
                                  app.clock.now() + timedelta(seconds=cfg.cleanup_interval), chat_id=chat_id,
                                  payload={"id": run_id, "position": new_position})
        return
    from plugins.analytics import handlers

    await handlers.announce_cleanup_done(app, run_id)


# ---- wake-ups --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WakeupPlan:
    targets: list[int]  # who may be woken now (at most wakeup_max), longest silent first
    started: list[int]  # those of them who started the bot (may be DMed)
    recent: int  # members of the segments skipped because woken within the period


async def plan_wakeup(app: App, chat_id: int, cfg: AnalyticsConfig) -> WakeupPlan:
    now = app.clock.now()
    skip = await protected(app, chat_id)
    async with app.db() as s:
        facts = await service.member_facts(s, chat_id)
        marks = dict((await s.execute(
            select(Wakeup.user_id, Wakeup.last_at).where(Wakeup.chat_id == chat_id)
        )).all())
        pool = [m for m in facts if m.user_id not in skip and m.present
                and service.lifecycle(m, now, cfg) in cfg.wakeup_segments]
        period = timedelta(days=cfg.wakeup_period_days)
        fresh = [m for m in pool if not (m.user_id in marks and now - marks[m.user_id] < period)]
        fresh.sort(key=lambda m: (m.last_message_at or m.since, m.user_id))
        targets = [m.user_id for m in fresh[:cfg.wakeup_max]]
        started = set((await s.scalars(
            select(User.user_id).where(User.user_id.in_(targets or [0]), User.started_bot.is_(True))
        )).all())
    return WakeupPlan(targets, [u for u in targets if u in started], len(pool) - len(fresh))


async def mark_woken(app: App, chat_id: int, user_ids: list[int], via: str) -> None:
    now = app.clock.now()

    async def tx() -> None:
        async with app.db() as s, s.begin():
            await upsert(s, Wakeup, [{"chat_id": chat_id, "user_id": u, "last_at": now, "times": 1, "via": via}
                                     for u in user_ids], ["chat_id", "user_id"], ["last_at", "via"],
                         increment=["times"])

    await retry_locked(tx)


async def wake_by_mention(app: App, chat_id: int, cfg: AnalyticsConfig) -> int:
    """Mention the targets in the chat in batches; returns how many were mentioned."""
    plan = await plan_wakeup(app, chat_id, cfg)
    if not plan.targets:
        return 0
    await mark_woken(app, chat_id, plan.targets, "mention")
    for i in range(0, len(plan.targets), cfg.wakeup_batch):
        mentions = " ".join([await app.members.mention(u) for u in plan.targets[i:i + cfg.wakeup_batch]])
        app.send_text(chat_id, cfg.wakeup_text.replace("{mentions}", mentions))
    return len(plan.targets)


async def wake_by_dm(app: App, chat_id: int, title: str, cfg: AnalyticsConfig) -> int:
    """DM the targets who started the bot; returns how many were messaged."""
    plan = await plan_wakeup(app, chat_id, cfg)
    if not plan.started:
        return 0
    await mark_woken(app, chat_id, plan.started, "dm")
    text = cfg.wakeup_dm_text.replace("{title}", html.escape(title))
    for uid in plan.started:
        app.send_text(uid, text)
    return len(plan.started)

