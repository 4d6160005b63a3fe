"""Metrics, segments and value scores: aiogram-free queries and pure functions.

Every window is a range of local calendar days ``[start, end]`` (both included) of the chat. Definitions
(also in the README):

- DAU of a day: distinct members who sent at least one message that day (kept in ``analytics_chat_days``,
  so it survives pruning and /forgetme). WAU / MAU: distinct members with a message in the 7 / 30 days
  ending on a day (from the per-member rows).
- Active ratio: WAU / members in the chat.
- Retention of a join cohort at Dn (n = 1, 7, 30): among members who joined on day J, the share who sent
  a message on day J + n or later ("unbounded" retention); only members with J + n <= today count.
- Churn rate of a window: leaves / (members now - joins + leaves), i.e. leaves over the members at the
  start of the window.
- Check-in rate of a window: check-ins / (days x members), the average share of members checking in a day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Member, PointsEntry, User
from bot.services.members import PRESENT
from plugins.analytics.models import (
    MEMBER_COUNTERS,
    ChatDay,
    ChatHour,
    FaqDay,
    Incident,
    MemberDay,
    QuestionDay,
)

if TYPE_CHECKING:
    from plugins.analytics.config import AnalyticsConfig

LIFECYCLE_ORDER = ("new", "active", "silent", "churned", "zombie")
RETENTION_DAYS = (1, 7, 30)


def day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def day_start_utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


# ---- daily series ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayStat:
    day: date
    messages: int = 0
    chars: int = 0
    active_members: int = 0
    replies: int = 0
    mentions: int = 0
    thanks: int = 0
    checkins: int = 0
    faq_hits: int = 0
    unanswered: int = 0
    joins: int = 0
    leaves: int = 0
    sentiment_sum: float = 0.0
    sentiment_n: int = 0

    @property
    def sentiment(self) -> float | None:
        return self.sentiment_sum / self.sentiment_n if self.sentiment_n else None


DAY_FIELDS = [f for f in DayStat.__dataclass_fields__ if f != "day"]


async def daily(session: AsyncSession, chat_id: int, start: date, end: date) -> list[DayStat]:
    """One DayStat per day of the window (days without data are zeros)."""
    rows = (await session.scalars(
        select(ChatDay).where(ChatDay.chat_id == chat_id, ChatDay.day >= start, ChatDay.day <= end)
    )).all()
    by_day = {r.day: DayStat(r.day, **{f: getattr(r, f) for f in DAY_FIELDS}) for r in rows}
    return [by_day.get(d) or DayStat(d) for d in day_range(start, end)]


@dataclass(frozen=True)
class Totals:
    days: int
    messages: int
    active_days_sum: int  # sum of DAU over the days
    joins: int
    leaves: int
    checkins: int
    faq_hits: int
    unanswered: int
    replies: int
    mentions: int
    sentiment: float | None

    @property
    def avg_dau(self) -> float:
        return self.active_days_sum / self.days if self.days else 0.0

    @property
    def avg_messages(self) -> float:
        return self.messages / self.days if self.days else 0.0


def totals(days: Sequence[DayStat]) -> Totals:
    n = sum(d.sentiment_n for d in days)
    return Totals(
        days=len(days), messages=sum(d.messages for d in days), active_days_sum=sum(d.active_members for d in days),
        joins=sum(d.joins for d in days), leaves=sum(d.leaves for d in days), checkins=sum(d.checkins for d in days),
        faq_hits=sum(d.faq_hits for d in days), unanswered=sum(d.unanswered for d in days),
        replies=sum(d.replies for d in days), mentions=sum(d.mentions for d in days),
        sentiment=sum(d.sentiment_sum for d in days) / n if n else None,
    )


async def has_data(session: AsyncSession, chat_id: int) -> bool:
    return (await session.scalar(select(ChatDay.day).where(ChatDay.chat_id == chat_id).limit(1))) is not None


# ---- active members ----------------------------------------------------------------------------------
async def active_users(session: AsyncSession, chat_id: int, start: date, end: date) -> int:
    """Distinct members with at least one message in the window."""
    value = await session.scalar(
        select(func.count(func.distinct(MemberDay.user_id))).where(
            MemberDay.chat_id == chat_id, MemberDay.day >= start, MemberDay.day <= end, MemberDay.messages > 0
        )
    )
    return int(value or 0)


async def dau(session: AsyncSession, chat_id: int, day: date) -> int:
    value = await session.scalar(select(ChatDay.active_members).where(ChatDay.chat_id == chat_id, ChatDay.day == day))
    return int(value or 0)


async def wau(session: AsyncSession, chat_id: int, end: date) -> int:
    return await active_users(session, chat_id, end - timedelta(days=6), end)


async def mau(session: AsyncSession, chat_id: int, end: date) -> int:
    return await active_users(session, chat_id, end - timedelta(days=29), end)


# ---- hours -----------------------------------------------------------------------------------------
async def heatmap(session: AsyncSession, chat_id: int, start: date, end: date) -> list[list[int]]:
    """Messages per (weekday, hour): 7 rows (Monday first) of 24 local hours."""
    grid = [[0] * 24 for _ in range(7)]
    rows = await session.execute(
        select(ChatHour.day, ChatHour.hour, ChatHour.messages).where(
            ChatHour.chat_id == chat_id, ChatHour.day >= start, ChatHour.day <= end
        )
    )
    for day, hour, n in rows:
        grid[day.weekday()][int(hour)] += int(n)
    return grid


async def hour_histogram(session: AsyncSession, chat_id: int, start: date, end: date) -> dict[int, int]:
    """Messages per local hour of day (0-23) in the window; hours without messages are left out."""
    rows = await session.execute(
        select(ChatHour.hour, func.sum(ChatHour.messages)).where(
            ChatHour.chat_id == chat_id, ChatHour.day >= start, ChatHour.day <= end
        ).group_by(ChatHour.hour)
    )
    return {int(h): int(n) for h, n in rows if n}


def peak_slot(grid: list[list[int]]) -> tuple[int, int] | None:
    """(weekday, hour) with the most messages (earliest on ties); None without messages."""
    best: tuple[int, int] | None = None
    best_n = 0
    for wd in range(7):
        for h in range(24):
            if grid[wd][h] > best_n:
                best, best_n = (wd, h), grid[wd][h]
    return best


# ---- rates -----------------------------------------------------------------------------------------
def active_ratio(active: int, members: int) -> float | None:
    return ratio(active, members)


def churn_rate(leaves: int, joins: int, members_now: int) -> float | None:
    """Leaves over the members at the start of the window (members now - joins + leaves)."""
    return ratio(leaves, members_now - joins + leaves)


def checkin_rate(checkins: int, days: int, members: int) -> float | None:
    return ratio(checkins, days * members)


def change(now: float | None, before: float | None) -> float | None:
    """Relative change (0.25 = +25%); None when there is no base to compare with."""
    if now is None or before is None or before == 0:
        return None
    return (now - before) / before


# ---- retention -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cohort:
    start: date  # first join day of the cohort
    end: date
    size: int
    # n -> (retained, eligible)
    retention: dict[int, tuple[int, int]]

    def rate(self, n: int) -> float | None:
        retained, eligible = self.retention.get(n, (0, 0))
        return ratio(retained, eligible)


async def retention(session: AsyncSession, chat_id: int, start: date, end: date, today: date,
                    days: Iterable[int] = RETENTION_DAYS) -> Cohort:
    """The cohort of members who joined in ``[start, end]`` (first join in the window counts)."""
    joined = dict((await session.execute(
        select(MemberDay.user_id, func.min(MemberDay.day)).where(
            MemberDay.chat_id == chat_id, MemberDay.day >= start, MemberDay.day <= end, MemberDay.joins > 0
        ).group_by(MemberDay.user_id)
    )).all())
    last: dict[int, date] = {}
    users = list(joined)
    for i in range(0, len(users), 400):
        rows = await session.execute(
            select(MemberDay.user_id, func.max(MemberDay.day)).where(
                MemberDay.chat_id == chat_id, MemberDay.user_id.in_(users[i:i + 400]), MemberDay.messages > 0
            ).group_by(MemberDay.user_id)
        )
        last.update({int(u): d for u, d in rows})
    out: dict[int, tuple[int, int]] = {}
    for n in days:
        retained = eligible = 0
        for uid, jday in joined.items():
            if jday + timedelta(days=n) > today:
                continue
            eligible += 1
            seen = last.get(int(uid))
            if seen is not None and seen >= jday + timedelta(days=n):
                retained += 1
        out[n] = (retained, eligible)
    return Cohort(start, end, len(joined), out)


def week_start(day: date, weekday: int = 0) -> date:
    """The latest ``weekday`` (0 = Monday) on or before ``day``."""
    return day - timedelta(days=(day.weekday() - weekday) % 7)


async def weekly_cohorts(session: AsyncSession, chat_id: int, today: date, weeks: int = 6) -> list[Cohort]:
    """Join cohorts by calendar week (Monday to Sunday), oldest first, the current week included."""
    this_week = week_start(today)
    out = []
    for i in range(weeks - 1, -1, -1):
        start = this_week - timedelta(days=7 * i)
        out.append(await retention(session, chat_id, start, min(start + timedelta(days=6), today), today))
    return out


# ---- FAQ, questions, incidents ---------------------------------------------------------------------
async def top_faq(session: AsyncSession, chat_id: int, start: date, end: date, limit: int = 5
                  ) -> list[tuple[int, int, str | None]]:
    """(entry id, answers, first keyword or None) most answered first."""
    total = func.sum(FaqDay.hits)
    rows = (await session.execute(
        select(FaqDay.entry_id, total).where(FaqDay.chat_id == chat_id, FaqDay.day >= start, FaqDay.day <= end)
        .group_by(FaqDay.entry_id).order_by(total.desc(), FaqDay.entry_id).limit(limit)
    )).all()
    labels = await faq_labels(session, [int(e) for e, _ in rows])
    return [(int(e), int(n), labels.get(int(e))) for e, n in rows]


async def faq_labels(session: AsyncSession, entry_ids: list[int]) -> dict[int, str]:
    """The first keyword of each FAQ entry, read from the faq plugin's table by name (it may not exist)."""
    if not entry_ids:
        return {}
    stmt = text("SELECT entry_id, keyword FROM faq_keywords WHERE entry_id IN :ids ORDER BY position, id").bindparams(
        bindparam("ids", expanding=True))
    found = await optional_rows(session, stmt, {"ids": [int(e) for e in entry_ids]})
    out: dict[int, str] = {}
    for entry_id, keyword in found[1] if found else ():
        out.setdefault(int(entry_id), str(keyword))
    return out


async def optional_rows(session: AsyncSession, stmt: Any, params: dict[str, Any]
                        ) -> tuple[list[str], list[Any]] | None:
    """(column names, rows) of a query on another plugin's table, or None when that table does not exist
    in this install. PostgreSQL aborts the whole transaction on an error, so the query runs in a savepoint
    there."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"

    async def run() -> tuple[list[str], list[Any]]:
        result = await session.execute(stmt, params)
        return list(result.keys()), list(result.all())

    try:
        if dialect == "postgresql":
            async with session.begin_nested():
                return await run()
        return await run()
    except Exception:
        return None


async def top_questions(session: AsyncSession, chat_id: int, start: date, end: date, limit: int = 5
                        ) -> list[tuple[str, int]]:
    """(question as last asked, times) most asked first."""
    total = func.sum(QuestionDay.count)
    rows = (await session.execute(
        select(QuestionDay.qkey, total, func.max(QuestionDay.text)).where(
            QuestionDay.chat_id == chat_id, QuestionDay.day >= start, QuestionDay.day <= end
        ).group_by(QuestionDay.qkey).order_by(total.desc(), QuestionDay.qkey).limit(limit)
    )).all()
    return [(str(t), int(n)) for _k, n, t in rows]


async def incidents(session: AsyncSession, chat_id: int, start: date, end: date) -> tuple[int, int | None]:
    """(incidents opened in the window, highest level reached: 1 is the highest; None without any)."""
    row = (await session.execute(
        select(func.count(), func.min(Incident.peak_level)).where(
            Incident.chat_id == chat_id, Incident.day >= start, Incident.day <= end
        )
    )).one()
    return int(row[0] or 0), (int(row[1]) if row[1] is not None else None)


# ---- members, segments and value scores ------------------------------------------------------------
@dataclass(frozen=True)
class MemberFacts:
    user_id: int
    status: str
    joined_at: datetime | None
    first_seen_at: datetime
    left_at: datetime | None
    last_message_at: datetime | None

    @property
    def present(self) -> bool:
        return self.status in PRESENT

    @property
    def since(self) -> datetime:
        return self.joined_at or self.first_seen_at

    @property
    def spoke(self) -> bool:
        """Sent a message since (re)joining."""
        return self.last_message_at is not None and (self.joined_at is None or self.last_message_at >= self.joined_at)


async def member_facts(session: AsyncSession, chat_id: int, exclude: Iterable[int] = ()) -> list[MemberFacts]:
    """Every member the bot knows in the chat (core_members), bots left out."""
    skip = set(exclude)
    rows = await session.execute(
        select(Member.user_id, Member.status, Member.joined_at, Member.first_seen_at, Member.left_at,
               Member.last_message_at, User.is_bot)
        .join(User, User.user_id == Member.user_id, isouter=True)
        .where(Member.chat_id == chat_id).order_by(Member.user_id)
    )
    return [
        MemberFacts(int(uid), status, joined, first, left, last)
        for uid, status, joined, first, left, last, is_bot in rows
        if not is_bot and int(uid) not in skip and int(uid) > 0
    ]


def lifecycle(m: MemberFacts, now: datetime, cfg: AnalyticsConfig) -> str:
    """new | active | silent | churned | zombie (see the README for the rules and their order)."""
    if not m.present:
        return "churned"
    if m.joined_at is not None and now - m.joined_at < timedelta(days=cfg.new_days):
        return "new"
    if not m.spoke:
        return "zombie" if now - m.since >= timedelta(days=cfg.zombie_days) else "silent"
    assert m.last_message_at is not None
    idle = now - m.last_message_at
    if idle >= timedelta(days=cfg.churn_days):
        return "churned"
    if idle >= timedelta(days=cfg.silent_days):
        return "silent"
    return "active"


@dataclass
class Activity:
    active_days: int = 0
    messages: int = 0
    replies_received: int = 0
    mentions_received: int = 0
    thanks_received: int = 0
    checkins: int = 0

    @property
    def influence(self) -> int:
        return self.replies_received + self.mentions_received


async def activity(session: AsyncSession, chat_id: int, start: date, end: date) -> dict[int, Activity]:
    rows = await session.execute(
        select(
            MemberDay.user_id, func.sum(case((MemberDay.messages > 0, 1), else_=0)),
            func.sum(MemberDay.messages), func.sum(MemberDay.replies_received), func.sum(MemberDay.mentions_received),
            func.sum(MemberDay.thanks_received), func.sum(MemberDay.checkins),
        ).where(MemberDay.chat_id == chat_id, MemberDay.day >= start, MemberDay.day <= end)
        .group_by(MemberDay.user_id)
    )
    return {int(u): Activity(*(int(v or 0) for v in vals)) for u, *vals in rows}


async def points_earned(session: AsyncSession, chat_id: int, since: datetime) -> dict[int, int]:
    """Points credited to each member in this chat since ``since`` (spending does not reduce it)."""
    rows = await session.execute(
        select(PointsEntry.user_id, func.sum(PointsEntry.delta)).where(
            PointsEntry.chat_id == chat_id, PointsEntry.created_at >= since, PointsEntry.delta > 0,
            PointsEntry.user_id > 0,
        ).group_by(PointsEntry.user_id)
    )
    return {int(u): int(p or 0) for u, p in rows}


@dataclass(frozen=True)
class Score:
    recency: float
    frequency: float
    contribution: float
    influence: float
    total: float  # 0-100


def value_score(m: MemberFacts, act: Activity | None, points: int, today: date, tz: ZoneInfo,
                cfg: AnalyticsConfig) -> Score:
    """The RFM-like value score (0-100).

    R = 1 - (days since the last message) / score_days, at least 0 (0 for a member who never spoke);
    F = active days in the window / full_active_days, at most 1;
    C = points earned / full_points + thanks received / full_thanks, at most 1;
    I = (replies + mentions received) / full_influence, at most 1;
    score = 100 x (wR·R + wF·F + wC·C + wI·I) / (wR + wF + wC + wI).
    """
    act = act or Activity()
    if m.last_message_at is not None:
        idle = (today - local_day(m.last_message_at, tz)).days
        r = max(0.0, 1.0 - idle / cfg.score_days)
    else:
        r = 0.0
    f = min(1.0, act.active_days / cfg.full_active_days)
    c = min(1.0, points / cfg.full_points + act.thanks_received / cfg.full_thanks)
    i = min(1.0, act.influence / cfg.full_influence)
    weights = (cfg.weight_recency, cfg.weight_frequency, cfg.weight_contribution, cfg.weight_influence)
    total = 100.0 * (weights[0] * r + weights[1] * f + weights[2] * c + weights[3] * i) / sum(weights)
    return Score(r, f, c, i, round(total, 1))


def tier_of(score: float, cfg: AnalyticsConfig) -> str:
    for tier in cfg.sorted_tiers():
        if score >= tier.min_score:
            return tier.name
    return cfg.sorted_tiers()[-1].name


@dataclass
class Segmentation:
    facts: dict[int, MemberFacts] = field(default_factory=dict)
    lifecycle: dict[int, str] = field(default_factory=dict)
    scores: dict[int, Score] = field(default_factory=dict)
    tiers: dict[int, str] = field(default_factory=dict)  # present members only
    koc: list[tuple[int, Activity]] = field(default_factory=list)
    activity: dict[int, Activity] = field(default_factory=dict)

    def members(self, segment: str) -> list[int]:
        """User ids of a lifecycle segment, a tier name, or "koc", in a stable order."""
        if segment == "koc":
            return [u for u, _ in self.koc]
        if segment in LIFECYCLE_ORDER:
            return sorted(u for u, s in self.lifecycle.items() if s == segment)
        return sorted((u for u, t in self.tiers.items() if t == segment),
                      key=lambda u: (-self.scores[u].total, u))

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(LIFECYCLE_ORDER, 0)
        for s in self.lifecycle.values():
            out[s] += 1
        return out

    def tier_counts(self, cfg: AnalyticsConfig) -> dict[str, int]:
        out = {t.name: 0 for t in sorted(cfg.tiers, key=lambda t: t.min_score)}
        for t in self.tiers.values():
            out[t] += 1
        return out


async def segment(session: AsyncSession, chat_id: int, now: datetime, tz: ZoneInfo, cfg: AnalyticsConfig,
                  exclude: Iterable[int] = ()) -> Segmentation:
    """Lifecycle, value score, tier and KOC standing of every member the bot knows in the chat."""
    today = local_day(now, tz)
    facts = await member_facts(session, chat_id, exclude)
    act_score = await activity(session, chat_id, today - timedelta(days=cfg.score_days - 1), today)
    act_koc = act_score if cfg.koc_days == cfg.score_days else await activity(
        session, chat_id, today - timedelta(days=cfg.koc_days - 1), today)
    points = await points_earned(session, chat_id, day_start_utc(today - timedelta(days=cfg.score_days - 1), tz))
    seg = Segmentation(activity=act_score)
    for m in facts:
        seg.facts[m.user_id] = m
        seg.lifecycle[m.user_id] = lifecycle(m, now, cfg)
        if m.present:
            score = value_score(m, act_score.get(m.user_id), points.get(m.user_id, 0), today, tz, cfg)
            seg.scores[m.user_id] = score
            seg.tiers[m.user_id] = tier_of(score.total, cfg)
    leaders = [(u, a) for u, a in act_koc.items()
               if a.influence >= cfg.koc_min and u in seg.facts and seg.facts[u].present]
    leaders.sort(key=lambda ua: (-ua[1].influence, ua[0]))
    seg.koc = leaders[:cfg.koc_count]
    return seg


# ---- per-member rows (export, /mydata) --------------------------------------------------------------
async def member_days_of(session: AsyncSession, user_id: int) -> list[MemberDay]:
    return list((await session.scalars(
        select(MemberDay).where(MemberDay.user_id == user_id).order_by(MemberDay.chat_id, MemberDay.day)
    )).all())


# ---- repair of event-fed counters ------------------------------------------------------------------
def _max_upsert(session: AsyncSession, table: Any, rows: list[dict[str, Any]], keys: list[str],
                cols: list[str]) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert

        bigger = func.greatest
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert

        bigger = func.max
    tbl = table.__table__
    stmt = dialect_insert(tbl)
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: bigger(tbl.c[c], stmt.excluded[c]) for c in cols})
    return session.execute(stmt, rows)


async def repair_days(session: AsyncSession, chat_id: int, days: Sequence[date], tz: ZoneInfo,
                      checkin_reason: str = "checkin") -> int:
    """Raise joins, leaves and check-ins of these (closed) days to what core data shows.

    These counters come from events whose emitters commit on their own and do not emit again when an
    update is redelivered, so a crash between their commit and the batch commit would lose one. The
    core's tables hold the truth: core_members (the latest joined_at / left_at of each member) and the
    points ledger (one ``checkin:{chat}:{user}:{day}`` entry per check-in). Counters only ever go up
    here (max), so a repair never undoes what was counted. Returns the member rows repaired.
    """
    if not days:
        return 0
    lo, hi = day_start_utc(min(days), tz), day_start_utc(max(days) + timedelta(days=1), tz)
    wanted = set(days)
    derived: dict[tuple[int, date], dict[str, int]] = {}

    def bump(uid: int, at: datetime, col: str) -> None:
        d = local_day(at, tz)
        if d in wanted:
            row = derived.setdefault((uid, d), {"joins": 0, "leaves": 0, "checkins": 0})
            row[col] += 1

    members = await session.execute(
        select(Member.user_id, Member.joined_at, Member.left_at, User.is_bot)
        .join(User, User.user_id == Member.user_id, isouter=True)
        .where(Member.chat_id == chat_id,
               ((Member.joined_at >= lo) & (Member.joined_at < hi)) | ((Member.left_at >= lo) & (Member.left_at < hi)))
    )
    for uid, joined, left, is_bot in members:
        if is_bot:
            continue
        if joined is not None and lo <= joined < hi:
            bump(int(uid), joined, "joins")
        if left is not None and lo <= left < hi:
            bump(int(uid), left, "leaves")
    ledger = await session.execute(
        select(PointsEntry.user_id, PointsEntry.created_at).where(
            PointsEntry.chat_id == chat_id, PointsEntry.reason == checkin_reason,
            PointsEntry.reference.like(f"{checkin_reason}:{chat_id}:%"),
            PointsEntry.created_at >= lo, PointsEntry.created_at < hi, PointsEntry.user_id > 0,
        )
    )
    for uid, at in ledger:
        bump(int(uid), at, "checkins")
    if not derived:
        return 0
    zero = dict.fromkeys(MEMBER_COUNTERS, 0)
    rows = [{**zero, "chat_id": chat_id, "user_id": u, "day": d, **v} for (u, d), v in derived.items()]
    await _max_upsert(session, MemberDay, rows, ["chat_id", "user_id", "day"], ["joins", "leaves", "checkins"])
    sums = await session.execute(
        select(MemberDay.day, func.sum(MemberDay.joins), func.sum(MemberDay.leaves), func.sum(MemberDay.checkins))
        .where(MemberDay.chat_id == chat_id, MemberDay.day.in_(sorted(wanted))).group_by(MemberDay.day)
    )
    chat_zero = {c: 0 for c in ("messages", "chars", "active_members", "replies", "mentions", "thanks", "faq_hits",
                                "unanswered", "sentiment_n")}
    chat_rows = [{**chat_zero, "sentiment_sum": 0.0, "chat_id": chat_id, "day": d, "joins": int(j or 0),
                  "leaves": int(lv or 0), "checkins": int(c or 0)} for d, j, lv, c in sums]
    if chat_rows:
        await _max_upsert(session, ChatDay, chat_rows, ["chat_id", "day"], ["joins", "leaves", "checkins"])
    return len(rows)


async def chats_with_data(session: AsyncSession, since: date) -> list[int]:
    rows = await session.scalars(select(ChatDay.chat_id).where(ChatDay.day >= since).distinct())
    return sorted(int(c) for c in rows)


async def known_chats(session: AsyncSession) -> list[int]:
    rows = await session.scalars(select(ChatDay.chat_id).distinct())
    return sorted(int(c) for c in rows)

