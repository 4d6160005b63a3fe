"""Leaderboards: points, streak and activity; this week, this month or all time.

Every board is a full ordered list of (user_id, value), best first, ties broken by user id, so the
order is deterministic and the caller's own rank can be shown even outside the top N.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select

from bot.models import PointsBalance
from plugins.checkin.levels import local_day, month_start, period_start, week_start
from plugins.checkin.models import I_REWARDED, CheckinDay, CheckinMember, Invite
from plugins.checkin.service import NOT_EARNED, R_ACTIVITY

if TYPE_CHECKING:
    from bot.app import App

KINDS = ("points", "streak", "activity")
PERIODS = ("week", "month", "all")
KIND_WORDS = {
    "points": "points", "积分": "points", "分": "points",
    "streak": "streak", "连签": "streak", "签到": "streak",
    "activity": "activity", "活跃": "activity", "发言": "activity",
}
PERIOD_WORDS = {
    "week": "week", "周": "week", "本周": "week", "weekly": "week",
    "month": "month", "月": "month", "本月": "month", "monthly": "month",
    "all": "all", "总": "all", "总榜": "all", "全部": "all",
}

Board = list[tuple[int, int]]


def parse_args(args: str) -> tuple[str, str] | None:
    """("points", "all") from "", "streak week", "活跃 月" ...; None on an unknown word."""
    kind, period = "points", "all"
    for word in args.lower().split():
        if word in KIND_WORDS:
            kind = KIND_WORDS[word]
        elif word in PERIOD_WORDS:
            period = PERIOD_WORDS[word]
        else:
            return None
    return kind, period


async def board(app: App, chat_id: int, kind: str, period: str, *, now: datetime, tz: ZoneInfo) -> Board:
    since = period_start(period, now, tz)
    if kind == "points":
        if since is None:
            return await app.points.leaderboard(chat_id, limit=0)
        return await app.points.leaderboard(chat_id, since=since, limit=0, exclude_reasons=NOT_EARNED)
    if kind == "activity":
        return await app.points.leaderboard(chat_id, since=since, limit=0, reasons=[R_ACTIVITY])
    if kind == "streak":
        return await streak_board(app, chat_id, period, now=now, tz=tz)
    raise ValueError(kind)


async def top(
    app: App, chat_id: int, kind: str, period: str, *, now: datetime, tz: ZoneInfo, limit: int, user_id: int | None
) -> tuple[Board, tuple[int, int] | None]:
    """The first ``limit`` rows of a board and ``user_id``'s (rank, value) on it (None: not on it).

    The all-time points board (the default /top) reads only its first rows and counts who is ahead
    of the member instead of loading every balance of the chat; the other boards are aggregates and
    are built whole.
    """
    if kind == "points" and period_start(period, now, tz) is None:
        rows = await app.points.leaderboard(chat_id, limit=limit)
        mine = rank_in(rows, user_id)
        if mine is None and user_id is not None and user_id > 0:
            mine = await balance_rank(app, chat_id, user_id)
        return rows, mine
    full = await board(app, chat_id, kind, period, now=now, tz=tz)
    return full[:limit], rank_in(full, user_id)


async def balance_rank(app: App, chat_id: int, user_id: int) -> tuple[int, int] | None:
    """(rank, balance) on the balance board (``PointsService.leaderboard``: balance > 0, balance desc,
    then user id), by counting the members ahead."""
    pool = app.points.pool_for(chat_id)
    async with app.db() as s:
        balance = await app.points.balance(chat_id, user_id, session=s)
        if balance <= 0:
            return None
        ahead = await s.scalar(
            select(func.count()).select_from(PointsBalance).where(
                PointsBalance.pool == pool, PointsBalance.user_id > 0,
                or_(PointsBalance.balance > balance,
                    and_(PointsBalance.balance == balance, PointsBalance.user_id < user_id))))
    return int(ahead or 0) + 1, balance


async def streak_board(app: App, chat_id: int, period: str, *, now: datetime, tz: ZoneInfo) -> Board:
    """All time: the live streak (a missed day drops it). Week/month: days checked in this period."""
    today = local_day(now, tz)
    async with app.db() as s:
        if period == "all":
            rows = await s.execute(
                select(CheckinMember.user_id, CheckinMember.streak)
                .where(CheckinMember.chat_id == chat_id, CheckinMember.streak > 0,
                       CheckinMember.last_day >= today - timedelta(days=1))
                .order_by(CheckinMember.streak.desc(), CheckinMember.user_id)
            )
        else:
            first = week_start(today) if period == "week" else month_start(today)
            days = func.count()
            rows = await s.execute(
                select(CheckinDay.user_id, days)
                .where(CheckinDay.chat_id == chat_id, CheckinDay.day >= first, CheckinDay.made_up.is_(False))
                .group_by(CheckinDay.user_id)
                .order_by(days.desc(), CheckinDay.user_id)
            )
        return [(int(u), int(v)) for u, v in rows.all()]


async def invite_board(app: App, chat_id: int) -> Board:
    async with app.db() as s:
        count = func.count()
        rows = await s.execute(
            select(Invite.inviter_id, count)
            .where(Invite.chat_id == chat_id, Invite.status == I_REWARDED)
            .group_by(Invite.inviter_id)
            .order_by(count.desc(), Invite.inviter_id)
        )
        return [(int(u), int(v)) for u, v in rows.all()]


def rank_in(rows: Board, user_id: int | None) -> tuple[int, int] | None:
    for index, (uid, value) in enumerate(rows, start=1):
        if uid == user_id:
            return index, value
    return None
