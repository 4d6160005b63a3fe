"""Check-in, streaks and 补签卡, earned points (levels), badges and member cards. aiogram-free.

Every write goes through one transaction that also writes the core ledger row
(``app.points.change(session=...)``), so a check-in, its points and its badges commit together or
not at all, and the ledger reference ``checkin:{chat}:{user}:{local_date}`` plus the unique
(chat, user, day) row make a redelivered 签到 change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import retry_locked
from bot.models import PointsEntry
from plugins.checkin.config import CheckinConfig
from plugins.checkin.levels import DailyAward, LevelInfo, daily_award, level_for, local_day
from plugins.checkin.models import CheckinBadge, CheckinDay, CheckinMember

if TYPE_CHECKING:
    from bot.app import App

# Ledger reasons written by this plugin.
R_CHECKIN = "checkin"
R_ACTIVITY = "activity"
R_INVITE = "invite"
R_WEEKLY = "weekly_top"
R_GIVE = "admin_give"
R_TAKE = "admin_take"
R_REDEEM = "redeem"
R_RESET = "reset"
# Spending is not "earning": levels and earned-points boards leave these out.
NOT_EARNED = (R_REDEEM, "refund", R_RESET)


# ---- earned points (what levels are computed from) ---------------------------------------------
async def earned(session: AsyncSession, app: App, chat_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    """Points earned per member since their last /resetpoints, shop spending left out.

    Buying in the shop lowers the balance but not the level; an admin /take or a moderation
    deduction lowers both.
    """
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    pool = app.points.pool_for(chat_id)
    resets = (
        select(PointsEntry.user_id.label("uid"), func.max(PointsEntry.id).label("rid"))
        .where(PointsEntry.pool == pool, PointsEntry.reason == R_RESET, PointsEntry.user_id.in_(ids))
        .group_by(PointsEntry.user_id)
        .subquery()
    )
    rows = await session.execute(
        select(PointsEntry.user_id, func.coalesce(func.sum(PointsEntry.delta), 0))
        .outerjoin(resets, resets.c.uid == PointsEntry.user_id)
        .where(
            PointsEntry.pool == pool,
            PointsEntry.user_id.in_(ids),
            PointsEntry.reason.not_in(NOT_EARNED),
            or_(resets.c.rid.is_(None), PointsEntry.id > resets.c.rid),
        )
        .group_by(PointsEntry.user_id)
    )
    out = {uid: 0 for uid in ids}
    for uid, total in rows.all():
        out[int(uid)] = max(0, int(total))
    return out


def level_up(cfg: CheckinConfig, before: int, after: int) -> LevelInfo | None:
    """The new level when earned points went from ``before`` to ``after`` across a threshold."""
    old, new = level_for(cfg.levels, before), level_for(cfg.levels, after)
    return new if new.index > old.index else None


# ---- badges ------------------------------------------------------------------------------------
def badge_label(cfg: CheckinConfig, code: str, stored: str | None = None) -> str:
    return cfg.badges.get(code) or stored or code


async def grant_badge(
    s: AsyncSession, chat_id: int, user_id: int, code: str, label: str, now: datetime, *, repeat: bool = False
) -> bool:
    """Give a badge; True when it is new (``repeat`` counts another award of one already held)."""
    row = await s.get(CheckinBadge, (chat_id, user_id, code))
    if row is not None:
        if repeat:
            row.count += 1
            row.last_at = now
        return False
    s.add(CheckinBadge(chat_id=chat_id, user_id=user_id, badge=code, label=label[:64], count=1, first_at=now,
                       last_at=now))
    await s.flush()
    return True


async def badges_of(app: App, chat_id: int, user_id: int) -> list[CheckinBadge]:
    async with app.db() as s:
        rows = await s.scalars(
            select(CheckinBadge)
            .where(CheckinBadge.chat_id == chat_id, CheckinBadge.user_id == user_id)
            .order_by(CheckinBadge.first_at, CheckinBadge.badge)
        )
        return list(rows)


# ---- check-in ----------------------------------------------------------------------------------
@dataclass
class CheckinResult:
    status: str  # "ok", "already" (checked in today), "duplicate" (this very message was processed)
    day: date
    streak: int = 0
    best_streak: int = 0
    total_days: int = 0
    rank: int = 0
    points: int = 0
    balance: int = 0
    award: DailyAward | None = None
    made_up: int = 0  # days repaired automatically with 补签卡 at this check-in
    broken: int = 0  # the streak a missed day reset (0: none)
    missed: int = 0  # days missed before today (when broken)
    cards: int = 0
    badges: list[str] = field(default_factory=list)
    level_up: LevelInfo | None = None


def _member(chat_id: int, user_id: int, now: datetime) -> CheckinMember:
    return CheckinMember(chat_id=chat_id, user_id=user_id, streak=0, best_streak=0, total_days=0, broken_streak=0,
                         makeup_cards=0, updated_at=now)


def _days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last`` inclusive (empty when first > last)."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


async def _fill(s: AsyncSession, chat_id: int, user_id: int, days: Sequence[date], now: datetime) -> None:
    for day in days:
        s.add(CheckinDay(chat_id=chat_id, user_id=user_id, day=day, points=0, streak=0, rank=0, lucky=0, made_up=True,
                         created_at=now))
    await s.flush()


async def check_in(
    app: App, cfg: CheckinConfig, chat_id: int, user_id: int, *, tz: ZoneInfo, message_id: int | None = None
) -> CheckinResult:
    now = app.clock.now()
    today = local_day(now, tz)

    async def tx() -> CheckinResult:
        async with app.db() as s, s.begin():
            existing = await s.scalar(
                select(CheckinDay).where(CheckinDay.chat_id == chat_id, CheckinDay.user_id == user_id,
                                         CheckinDay.day == today, CheckinDay.made_up.is_(False))
            )
            member = await s.get(CheckinMember, (chat_id, user_id))
            if existing is not None:
                assert member is not None
                dup = message_id is not None and existing.message_id == message_id
                return CheckinResult(
                    "duplicate" if dup else "already", today, streak=member.streak, best_streak=member.best_streak,
                    total_days=member.total_days, rank=existing.rank, points=existing.points,
                    balance=await app.points.balance(chat_id, user_id), cards=member.makeup_cards,
                )
            if member is None:
                member = _member(chat_id, user_id, now)
                s.add(member)
            first_ever = member.total_days == 0
            result = CheckinResult("ok", today)
            last = member.last_day
            if last is None or member.streak <= 0:
                streak = 1
            elif last >= today - timedelta(days=1):
                # Yesterday (or a clock/time-zone change put the last day at or after today).
                streak = member.streak + 1
            else:
                gap = _days_between(last + timedelta(days=1), today - timedelta(days=1))
                if cfg.makeup_auto and len(gap) <= cfg.makeup_grace_days and member.makeup_cards >= len(gap):
                    await _fill(s, chat_id, user_id, gap, now)
                    member.makeup_cards -= len(gap)
                    result.made_up = len(gap)
                    streak = member.streak + len(gap) + 1
                else:
                    result.broken, result.missed = member.streak, len(gap)
                    member.broken_streak, member.broken_last_day = member.streak, last
                    streak = 1
            if not result.broken:
                member.broken_streak, member.broken_last_day = 0, None
            rank = int(
                await s.scalar(
                    select(func.count()).select_from(CheckinDay).where(
                        CheckinDay.chat_id == chat_id, CheckinDay.day == today, CheckinDay.made_up.is_(False)
                    )
                ) or 0
            ) + 1
            award = daily_award(cfg, chat_id, user_id, today, streak)
            s.add(CheckinDay(chat_id=chat_id, user_id=user_id, day=today, points=award.total, streak=streak, rank=rank,
                             lucky=award.lucky, made_up=False, message_id=message_id, created_at=now))
            member.streak = streak
            member.best_streak = max(member.best_streak, streak)
            member.last_day = today
            member.total_days += 1
            member.updated_at = now
            await s.flush()
            note = f"day {streak}: {award.base}" + (f" +{award.milestone} milestone" if award.milestone else "") + (
                f" +{award.lucky} lucky" if award.lucky else "")
            applied = await app.points.change(chat_id, user_id, award.total, R_CHECKIN,
                                              f"checkin:{chat_id}:{user_id}:{today.isoformat()}", note=note, session=s)
            if first_ever and await grant_badge(s, chat_id, user_id, "first_checkin",
                                                badge_label(cfg, "first_checkin"), now):
                result.badges.append("first_checkin")
            if award.badge and await grant_badge(s, chat_id, user_id, award.badge, badge_label(cfg, award.badge), now):
                result.badges.append(award.badge)
            after = (await earned(s, app, chat_id, [user_id]))[user_id]
            result.level_up = level_up(cfg, after - award.total, after)
            result.streak, result.best_streak, result.total_days = streak, member.best_streak, member.total_days
            result.rank, result.points, result.balance, result.award = rank, award.total, applied.balance, award
            result.cards = member.makeup_cards
            return result

    return await retry_locked(tx)


# ---- 补签卡 ------------------------------------------------------------------------------------
@dataclass
class MakeupResult:
    status: str  # ok, disabled, nothing, too_late, no_cards
    days: int = 0  # days repaired (or needed)
    streak: int = 0
    cards: int = 0
    bonus: int = 0
    badges: list[str] = field(default_factory=list)


async def makeup(app: App, cfg: CheckinConfig, chat_id: int, user_id: int, *, tz: ZoneInfo) -> MakeupResult:
    """Spend 补签卡 to fill the missed days before today (before or after today's check-in).

    Before today's 签到: fills the days after the last check-in up to yesterday, so today's 签到
    continues the streak. After a 签到 that reset the streak today: fills the gap and restores the
    old streak + the filled days + today. Milestones passed by the repair pay their bonus once.
    """
    now = app.clock.now()
    today = local_day(now, tz)
    yesterday = today - timedelta(days=1)
    if cfg.makeup_grace_days <= 0:
        return MakeupResult("disabled")

    async def tx() -> MakeupResult:
        async with app.db() as s, s.begin():
            member = await s.get(CheckinMember, (chat_id, user_id))
            if member is None or member.last_day is None:
                return MakeupResult("nothing")
            if member.last_day == today and member.broken_streak > 0 and member.broken_last_day is not None:
                gap = _days_between(member.broken_last_day + timedelta(days=1), yesterday)
                old, new = member.streak, member.broken_streak + len(gap) + member.streak
            elif member.last_day < yesterday and member.streak > 0:
                gap = _days_between(member.last_day + timedelta(days=1), yesterday)
                old, new = member.streak, member.streak + len(gap)
            else:
                return MakeupResult("nothing", cards=member.makeup_cards, streak=member.streak)
            if len(gap) > cfg.makeup_grace_days:
                return MakeupResult("too_late", days=len(gap), cards=member.makeup_cards)
            if member.makeup_cards < len(gap):
                return MakeupResult("no_cards", days=len(gap), cards=member.makeup_cards)
            await _fill(s, chat_id, user_id, gap, now)
            member.makeup_cards -= len(gap)
            member.streak = new
            member.best_streak = max(member.best_streak, new)
            if member.last_day < yesterday:
                member.last_day = yesterday
            member.broken_streak, member.broken_last_day = 0, None
            member.updated_at = now
            result = MakeupResult("ok", days=len(gap), streak=new, cards=member.makeup_cards)
            for day_count, milestone in cfg.milestones.items():
                if old < day_count <= new:
                    if milestone.points:
                        applied = await app.points.change(
                            chat_id, user_id, milestone.points, R_CHECKIN,
                            f"checkin-milestone:{chat_id}:{user_id}:{day_count}:{today.isoformat()}",
                            note=f"milestone {day_count} (make-up)", session=s,
                        )
                        result.bonus += applied.delta
                    if milestone.badge and await grant_badge(s, chat_id, user_id, milestone.badge,
                                                             badge_label(cfg, milestone.badge), now):
                        result.badges.append(milestone.badge)
            return result

    return await retry_locked(tx)


# ---- member card -------------------------------------------------------------------------------
@dataclass
class Card:
    user_id: int
    balance: int
    earned: int
    level: LevelInfo
    streak: int  # the live streak (0 when a day was missed)
    best_streak: int
    total_days: int
    cards: int
    title: str | None
    badges: list[tuple[str, int]]  # (label, count)
    rank: int | None
    checked_today: bool


def live_streak(member: CheckinMember | None, today: date) -> int:
    if member is None or member.last_day is None:
        return 0
    return member.streak if member.last_day >= today - timedelta(days=1) else 0


async def card(app: App, cfg: CheckinConfig, chat_id: int, user_id: int, *, tz: ZoneInfo) -> Card:
    today = local_day(app.clock.now(), tz)
    async with app.db() as s:
        member = await s.get(CheckinMember, (chat_id, user_id))
        xp = (await earned(s, app, chat_id, [user_id]))[user_id]
    balance = await app.points.balance(chat_id, user_id)
    rank = await app.points.rank(chat_id, user_id)
    held = await badges_of(app, chat_id, user_id)
    return Card(
        user_id=user_id, balance=balance, earned=xp, level=level_for(cfg.levels, xp),
        streak=live_streak(member, today), best_streak=member.best_streak if member else 0,
        total_days=member.total_days if member else 0, cards=member.makeup_cards if member else 0,
        title=member.title if member else None,
        badges=[(badge_label(cfg, b.badge, b.label), b.count) for b in held],
        rank=rank[0] if rank else None, checked_today=bool(member and member.last_day == today),
    )


async def add_cards(s: AsyncSession, chat_id: int, user_id: int, count: int, now: datetime) -> int:
    member = await s.get(CheckinMember, (chat_id, user_id))
    if member is None:
        member = _member(chat_id, user_id, now)
        s.add(member)
    member.makeup_cards += count
    member.updated_at = now
    await s.flush()
    return member.makeup_cards


async def set_title(s: AsyncSession, chat_id: int, user_id: int, title: str, now: datetime) -> None:
    member = await s.get(CheckinMember, (chat_id, user_id))
    if member is None:
        member = _member(chat_id, user_id, now)
        s.add(member)
    member.title = title[:64]
    member.updated_at = now
    await s.flush()
