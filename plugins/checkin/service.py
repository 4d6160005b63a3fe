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
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import retry_locked
from bot.models import PointsBalance
from bot.services.points import NOT_EARNED_REASONS
from plugins.checkin.config import CheckinConfig
from plugins.checkin.levels import DailyAward, LevelInfo, daily_award, level_for, local_day
from plugins.checkin.models import CheckinBadge, CheckinDay, CheckinDayCount, CheckinMember

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
# Spending is not "earning": levels and earned-points boards leave these out (the core's rule, which
# also keeps the running total ``PointsBalance.earned``; "reset" restarts it).
NOT_EARNED = tuple(sorted(NOT_EARNED_REASONS))


# ---- earned points (what levels are computed from) ---------------------------------------------
async def earned(session: AsyncSession, app: App, chat_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    """Points earned per member since their last /resetpoints, shop spending left out (never below 0).

    Buying in the shop lowers the balance but not the level; an admin /take or a moderation
    deduction lowers both. One primary-key read of the core's running total (``PointsBalance.earned``,
    kept by every ledger write), equal to the sum of the member's ledger rows after their last reset
    whose reason is not in ``NOT_EARNED`` (a property test checks it).
    """
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    totals = await app.points.earned_totals(session, chat_id, ids)
    return {uid: max(0, total) for uid, total in totals.items()}


def clamp_earned(raw: int) -> int:
    """``earned`` of a raw running total (``PointsResult.earned``)."""
    return max(0, raw)


def level_up(cfg: CheckinConfig, before: int, after: int) -> LevelInfo | None:
    """The new level when earned points went from ``before`` to ``after`` across a threshold."""
    if after <= before or not any(before < lv.min_points <= after for lv in cfg.levels):
        return None  # no threshold crossed upwards (levels are sorted by min_points): the common case
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


@dataclass(frozen=True)
class _Sql:
    """The check-in's statements, built once per dialect (executed with parameter dicts)."""

    member: Any  # SELECT the member row by primary key
    today: Any  # SELECT (rank, points, message_id) of the member's real check-in of a day
    rank: Any  # count one more check-in of (chat, day), RETURNING the new count
    day: Any  # INSERT the day row
    save_member: Any  # INSERT or UPDATE the member row (the title is never touched)
    badge: Any  # INSERT a badge unless held, RETURNING it when new


def _build_sql(dialect_insert: Any) -> _Sql:
    members, counts = CheckinMember.__table__, CheckinDayCount.__table__
    days, badges = CheckinDay.__table__, CheckinBadge.__table__
    rank = dialect_insert(counts)
    save = dialect_insert(members)
    kept = ("streak", "best_streak", "last_day", "total_days", "broken_streak", "broken_last_day", "makeup_cards",
            "updated_at")
    return _Sql(
        member=select(members).where(members.c.chat_id == bindparam("chat_id"),
                                     members.c.user_id == bindparam("user_id")),
        today=select(days.c.rank, days.c.points, days.c.message_id).where(
            days.c.chat_id == bindparam("chat_id"), days.c.user_id == bindparam("user_id"),
            days.c.day == bindparam("day"), days.c.made_up.is_(False)),
        rank=rank.on_conflict_do_update(index_elements=["chat_id", "day"], set_={"count": counts.c.count + 1})
        .returning(counts.c.count),
        day=insert(days),
        save_member=save.on_conflict_do_update(index_elements=["chat_id", "user_id"],
                                               set_={c: save.excluded[c] for c in kept}),
        badge=dialect_insert(badges).on_conflict_do_nothing(index_elements=["chat_id", "user_id", "badge"])
        .returning(badges.c.badge),
    )


_SQL = MappingProxyType({"sqlite": _build_sql(sqlite_insert), "postgresql": _build_sql(postgresql_insert)})


def _sql(s: AsyncSession) -> _Sql:
    bind = s.bind
    return _SQL["postgresql" if bind is not None and bind.dialect.name == "postgresql" else "sqlite"]


async def check_in(
    app: App, cfg: CheckinConfig, chat_id: int, user_id: int, *, tz: ZoneInfo, message_id: int | None = None
) -> CheckinResult:
    """The day's 签到: one transaction of few prepared statements (the hot path of the plugin).

    The member row by primary key; today's rank from the per-day counter (one upsert RETURNING the
    new count); the day row; the member row (one upsert); the ledger credit, whose balance upsert
    returns the new balance and earned total (no re-read for the level); on a first check-in the
    badge (INSERT unless held). Today's day row is only looked up when the member row says they
    checked in today; if it exists anyway (a clock or time-zone change, a concurrent 签到 in another
    worker), its unique constraint stops the insert and the check-in runs again with the lookup.
    """
    now = app.clock.now()
    today = local_day(now, tz)
    key = {"chat_id": chat_id, "user_id": user_id}

    async def tx(probe: bool) -> CheckinResult:
        async with app.db() as s, s.begin():
            sql = _sql(s)
            row = (await s.execute(sql.member, key)).first()
            m: dict[str, Any] = dict(row._mapping) if row is not None else {
                **key, "streak": 0, "best_streak": 0, "last_day": None, "total_days": 0, "broken_streak": 0,
                "broken_last_day": None, "makeup_cards": 0}
            if probe or m["last_day"] == today:
                existing = (await s.execute(sql.today, {**key, "day": today})).first()
                if existing is not None:
                    assert row is not None
                    dup = message_id is not None and existing.message_id == message_id
                    return CheckinResult(
                        "duplicate" if dup else "already", today, streak=m["streak"], best_streak=m["best_streak"],
                        total_days=m["total_days"], rank=existing.rank, points=existing.points,
                        balance=await app.points.balance(chat_id, user_id, session=s), cards=m["makeup_cards"],
                    )
            first_ever = m["total_days"] == 0
            result = CheckinResult("ok", today)
            last = m["last_day"]
            if last is None or m["streak"] <= 0:
                streak = 1
            elif last >= today - timedelta(days=1):
                # Yesterday (or a clock/time-zone change put the last day at or after today).
                streak = m["streak"] + 1
            else:
                gap = _days_between(last + timedelta(days=1), today - timedelta(days=1))
                if cfg.makeup_auto and len(gap) <= cfg.makeup_grace_days and m["makeup_cards"] >= len(gap):
                    await _fill(s, chat_id, user_id, gap, now)
                    m["makeup_cards"] -= len(gap)
                    result.made_up = len(gap)
                    streak = m["streak"] + len(gap) + 1
                else:
                    result.broken, result.missed = m["streak"], len(gap)
                    m["broken_streak"], m["broken_last_day"] = m["streak"], last
                    streak = 1
            if not result.broken:
                m["broken_streak"], m["broken_last_day"] = 0, None
            rank = int((await s.execute(sql.rank, {"chat_id": chat_id, "day": today, "count": 1})).scalar_one())
            award = daily_award(cfg, chat_id, user_id, today, streak)
            await s.execute(sql.day, {
                "chat_id": chat_id, "user_id": user_id, "day": today, "points": award.total, "streak": streak,
                "rank": rank, "lucky": award.lucky, "made_up": False, "message_id": message_id, "created_at": now})
            m["streak"] = streak
            m["best_streak"] = max(m["best_streak"], streak)
            m["last_day"] = today
            m["total_days"] += 1
            m["updated_at"] = now
            m.pop("title", None)
            await s.execute(sql.save_member, m)
            note = f"day {streak}: {award.base}" + (f" +{award.milestone} milestone" if award.milestone else "") + (
                f" +{award.lucky} lucky" if award.lucky else "")
            applied = await app.points.credit(s, chat_id, user_id, award.total, R_CHECKIN,
                                              f"checkin:{chat_id}:{user_id}:{today.isoformat()}", note=note)
            for code in ("first_checkin" if first_ever else None, award.badge):
                if code and await _grant_new_badge(s, sql, chat_id, user_id, code, badge_label(cfg, code), now):
                    result.badges.append(code)
            after = clamp_earned(applied.earned)
            result.level_up = level_up(cfg, after - award.total, after)
            result.streak, result.best_streak, result.total_days = streak, m["best_streak"], m["total_days"]
            result.rank, result.points, result.balance, result.award = rank, award.total, applied.balance, award
            result.cards = m["makeup_cards"]
            return result

    try:
        return await retry_locked(lambda: tx(False))
    except IntegrityError:
        # Today's row exists though the member row did not say so, or a concurrent 签到 of the same
        # member (another worker) won: look again, with the lookup.
        return await retry_locked(lambda: tx(True))


async def _grant_new_badge(s: AsyncSession, sql: _Sql, chat_id: int, user_id: int, code: str, label: str,
                           now: datetime) -> bool:
    """``grant_badge`` without repeats in one statement: True when the badge is new."""
    row = await s.execute(sql.badge, {"chat_id": chat_id, "user_id": user_id, "badge": code, "label": label[:64],
                                      "count": 1, "first_at": now, "last_at": now})
    return row.first() is not None


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
    """The member card in one read session: the member row, the balance and earned total (one row),
    the rank on the balance board (a count of who is ahead, not the whole board) and the badges."""
    today = local_day(app.clock.now(), tz)
    pool = app.points.pool_for(chat_id)
    async with app.db() as s:
        member = await s.get(CheckinMember, (chat_id, user_id))
        row = (await s.execute(select(PointsBalance.balance, PointsBalance.earned)
                               .where(PointsBalance.pool == pool, PointsBalance.user_id == user_id))).first()
        balance, xp = (int(row[0]), clamp_earned(int(row[1]))) if row is not None else (0, 0)
        rank = None
        if balance > 0 and user_id > 0:  # on the board (``PointsService.leaderboard``: balance desc, user id)
            ahead = await s.scalar(
                select(func.count()).select_from(PointsBalance).where(
                    PointsBalance.pool == pool, PointsBalance.user_id > 0,
                    or_(PointsBalance.balance > balance,
                        and_(PointsBalance.balance == balance, PointsBalance.user_id < user_id))))
            rank = int(ahead or 0) + 1
        held = list(await s.scalars(
            select(CheckinBadge).where(CheckinBadge.chat_id == chat_id, CheckinBadge.user_id == user_id)
            .order_by(CheckinBadge.first_at, CheckinBadge.badge)))
    return Card(
        user_id=user_id, balance=balance, earned=xp, level=level_for(cfg.levels, xp),
        streak=live_streak(member, today), best_streak=member.best_streak if member else 0,
        total_days=member.total_days if member else 0, cards=member.makeup_cards if member else 0,
        title=member.title if member else None,
        badges=[(badge_label(cfg, b.badge, b.label), b.count) for b in held],
        rank=rank, checked_today=bool(member and member.last_day == today),
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
