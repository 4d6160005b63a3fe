"""The /stats report and the weekly report: gather the numbers (``gather``/``gather_week``), then render
them as text (``render_stats``/``render_week``) or as chart data (``chart_data``)."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.models import Chat, User
from bot.services.members import display_name
from plugins.analytics import service
from plugins.analytics.chart import ChartData
from plugins.analytics.service import Cohort, DayStat, Segmentation, Totals

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.app import App
    from plugins.analytics.config import AnalyticsConfig

log = logging.getLogger(__name__)

Tr = Callable[[str], str]
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
LIFECYCLE_LABELS = {"new": "新人", "active": "活跃", "silent": "沉默", "churned": "流失", "zombie": "僵尸"}
DELETED_NAMES = frozenset({"Deleted Account", "已注销账号"})


# ---- small helpers ---------------------------------------------------------------------------------
def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def signed_pct(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) < 0.0005:
        return "±0%"
    return f"{value * 100:+.1f}%"


def num(value: float) -> str:
    return f"{value:,.1f}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"


def mood(value: float | None) -> str:
    if value is None:
        return "—"
    face = "😊" if value >= 0.6 else "😐" if value >= 0.4 else "😟"
    return f"{value:.2f} {face}"


async def member_count(app: App, chat_id: int) -> int:
    """Members in the chat: getChatMemberCount, or the members the bot knows when Telegram fails."""
    try:
        return int(await app.bot.get_chat_member_count(chat_id))
    except Exception as exc:  # a Telegram or network failure: fall back to our own count
        log.info("getChatMemberCount(%s) failed: %s", chat_id, type(exc).__name__)
        return await app.members.count_present(chat_id)


async def chat_title(app: App, chat_id: int) -> str:
    async with app.db() as s:
        title = await s.scalar(select(Chat.title).where(Chat.chat_id == chat_id))
    if title:
        return str(title)
    try:
        chat = await app.bot.get_chat(chat_id)
        return chat.title or str(chat_id)
    except Exception:
        return str(chat_id)


async def names_of(session: AsyncSession, user_ids: list[int], _: Tr) -> dict[int, str]:
    """Display names (plain text, not links: a list must not ping anyone)."""
    out: dict[int, str] = {}
    for i in range(0, len(user_ids), 400):
        rows = await session.execute(
            select(User.user_id, User.first_name, User.last_name, User.username)
            .where(User.user_id.in_(user_ids[i:i + 400]))
        )
        for uid, first, last, uname in rows:
            out[int(uid)] = name_text(first, last, uname, _)
    for uid in user_ids:
        out.setdefault(uid, _("未知成员"))
    return out


def name_text(first: str | None, last: str | None, username: str | None, _: Tr) -> str:
    if (first or "").strip() in DELETED_NAMES and not username:
        return _("已注销账号")
    name = display_name(first, last, username)
    return _("匿名成员") if name == "?" else name


# ---- /stats ----------------------------------------------------------------------------------------
@dataclass
class StatsReport:
    chat_id: int
    title: str
    today: date
    members: int
    has_data: bool
    days: list[DayStat] = field(default_factory=list)  # the last 30 days, today last
    wau: int = 0
    mau: int = 0
    week: Totals | None = None
    heat_peak: tuple[int, int] | None = None
    cohort: Cohort | None = None  # joins in the last 60 days
    cohorts: list[Cohort] = field(default_factory=list)  # weekly, for the chart
    month: Totals | None = None
    seg: Segmentation | None = None
    koc_names: list[tuple[str, int, int]] = field(default_factory=list)
    faq: list[tuple[int, int, str | None]] = field(default_factory=list)
    questions: list[tuple[str, int]] = field(default_factory=list)
    incidents: tuple[int, int | None] = (0, None)


async def gather(app: App, chat_id: int, cfg: AnalyticsConfig, tz: ZoneInfo, _: Tr) -> StatsReport:
    now = app.clock.now()
    today = service.local_day(now, tz)
    title = await chat_title(app, chat_id)
    members = await member_count(app, chat_id)
    async with app.db() as s:
        if not await service.has_data(s, chat_id):
            return StatsReport(chat_id, title, today, members, has_data=False)
        r = StatsReport(chat_id, title, today, members, has_data=True)
        r.days = await service.daily(s, chat_id, today - timedelta(days=29), today)
        r.wau = await service.wau(s, chat_id, today)
        r.mau = await service.mau(s, chat_id, today)
        r.week = service.totals(r.days[-7:])
        r.month = service.totals(r.days)
        r.heat_peak = service.peak_slot(await service.heatmap(s, chat_id, today - timedelta(days=27), today))
        r.cohort = await service.retention(s, chat_id, today - timedelta(days=59), today, today)
        r.cohorts = await service.weekly_cohorts(s, chat_id, today, weeks=6)
        r.seg = await service.segment(s, chat_id, now, tz, cfg)
        names = await names_of(s, [u for u, _a in r.seg.koc[:cfg.top_count]], _)
        r.koc_names = [(names[u], a.replies_received, a.mentions_received) for u, a in r.seg.koc[:cfg.top_count]]
        start30 = today - timedelta(days=29)
        r.faq = await service.top_faq(s, chat_id, start30, today, cfg.top_count)
        r.questions = await service.top_questions(s, chat_id, start30, today, cfg.top_count)
        r.incidents = await service.incidents(s, chat_id, start30, today)
    return r


def render_stats(r: StatsReport, cfg: AnalyticsConfig, _: Tr) -> str:
    title = html.escape(r.title)
    head = _("📊 <b>{title}</b> 数据报告（{day}）").format(title=title, day=r.today.isoformat())
    if not r.has_data:
        return head + "\n" + _("成员 {members} 人").format(members=r.members) + "\n\n" + _(
            "还没有统计数据：机器人开始记录后（成员发言、入群、签到……），再发送 /stats 查看。")
    assert r.week is not None and r.month is not None and r.seg is not None and r.cohort is not None
    t = r.days[-1]
    lines = [head]
    lines.append(_("👥 成员 {members} 人 · 今日入群 {joins} / 退群 {leaves}").format(
        members=r.members, joins=t.joins, leaves=t.leaves))
    lines.append(_("🔥 日活 {dau} · 周活 {wau} · 月活 {mau} · 周活跃率 {ratio}").format(
        dau=t.active_members, wau=r.wau, mau=r.mau, ratio=pct(service.active_ratio(r.wau, r.members))))
    lines.append(_("💬 今日消息 {today} · 近7天 {week}（日均 {avg}）· 近30天 {month}").format(
        today=num(t.messages), week=num(r.week.messages), avg=num(round(r.week.avg_messages, 1)),
        month=num(r.month.messages)))
    if r.heat_peak is not None:
        wd, hour = r.heat_peak
        lines.append(_("⏰ 最活跃时段（近4周）：{weekday} {hour}:00").format(
            weekday=_(WEEKDAYS[wd]), hour=f"{hour:02d}"))
    lines.append(_("✅ 签到率（近7天）：{rate} · 问答命中 {faq} 次 · 未解答提问 {unanswered} 个").format(
        rate=pct(service.checkin_rate(r.week.checkins, 7, r.members)), faq=r.week.faq_hits,
        unanswered=r.week.unanswered))
    ret = r.cohort
    lines.append(_("📈 留存（近60天入群 {n} 人）：次日 {d1} · 7日 {d7} · 30日 {d30}").format(
        n=ret.size, d1=pct(ret.rate(1)), d7=pct(ret.rate(7)), d30=pct(ret.rate(30))))
    lines.append(_("📉 近30天入群 {joins} · 退群 {leaves} · 流失率 {rate}").format(
        joins=r.month.joins, leaves=r.month.leaves,
        rate=pct(service.churn_rate(r.month.leaves, r.month.joins, r.members))))
    counts = r.seg.counts()
    lines.append(_("🧭 生命周期：") + " · ".join(
        f"{_(LIFECYCLE_LABELS[k])} {counts[k]}" for k in service.LIFECYCLE_ORDER))
    tiers = r.seg.tier_counts(cfg)
    lines.append(_("💎 价值分层：") + " · ".join(f"{html.escape(name)} {n}" for name, n in reversed(tiers.items())))
    if r.koc_names:
        lines.append(_("🌟 意见领袖：") + "、".join(
            _("{name}（回复 {replies} · 提及 {mentions}）").format(name=html.escape(n), replies=rp, mentions=mn)
            for n, rp, mn in r.koc_names))
    if r.faq:
        lines.append(_("❓ 热门问答（近30天）：") + "、".join(
            f"{html.escape(label or '#' + str(e))} ×{n}" for e, n, label in r.faq))
    if r.questions:
        lines.append(_("🙋 未解答问题（近30天）：") + "、".join(
            f"「{html.escape(q[:40])}」×{n}" for q, n in r.questions))
    count, level = r.incidents
    if count:
        lines.append(_("🚨 近30天危机事件 {n} 起（最高 {level} 级）").format(n=count, level=level))
    else:
        lines.append(_("🚨 近30天没有危机事件"))
    lines.append(_("🙂 情绪均值：近7天 {week} · 近30天 {month}").format(
        week=mood(r.week.sentiment), month=mood(r.month.sentiment)))
    return "\n".join(lines)


def chart_data(r: StatsReport, _: Tr, *, plain_title: bool = False) -> ChartData:
    """``plain_title``: no font for the chat's title here (a CJK title without a CJK font): use its id."""
    assert r.seg is not None
    counts = r.seg.counts()
    title = r.title if not plain_title or r.title.isascii() else str(r.chat_id)
    return ChartData(
        title=_("{title} · 近30天").format(title=title),
        days=[d.day for d in r.days],
        messages=[d.messages for d in r.days],
        dau=[d.active_members for d in r.days],
        segments=[(_(LIFECYCLE_LABELS[k]), counts[k]) for k in service.LIFECYCLE_ORDER],
        cohorts=[(c.start.strftime("%m-%d"), [c.rate(n) for n in service.RETENTION_DAYS]) for c in r.cohorts],
        labels={
            "activity": _("每日消息与日活"), "messages": _("消息"), "dau": _("日活"),
            "segments": _("成员生命周期"), "retention": _("按入群周的留存"),
            "d1": _("次日"), "d7": _("7日"), "d30": _("30日"), "members": _("人数"),
        },
    )


# ---- the weekly report -----------------------------------------------------------------------------
@dataclass
class WeekReport:
    chat_id: int
    title: str
    start: date  # first day of the week reported on
    members: int
    this: Totals
    prev: Totals
    wau: int
    prev_wau: int
    cohort: Cohort  # members who joined during the week: their D1 retention
    koc: list[tuple[str, int]]
    faq: list[tuple[int, int, str | None]]
    questions: list[tuple[str, int]]
    incidents: tuple[int, int | None]

    @property
    def end(self) -> date:
        return self.start + timedelta(days=6)


async def gather_week(app: App, chat_id: int, start: date, cfg: AnalyticsConfig, tz: ZoneInfo, _: Tr) -> WeekReport:
    end = start + timedelta(days=6)
    prev_start = start - timedelta(days=7)
    today = service.local_day(app.clock.now(), tz)
    title = await chat_title(app, chat_id)
    members = await member_count(app, chat_id)
    async with app.db() as s:
        this = service.totals(await service.daily(s, chat_id, start, end))
        prev = service.totals(await service.daily(s, chat_id, prev_start, start - timedelta(days=1)))
        wau = await service.active_users(s, chat_id, start, end)
        prev_wau = await service.active_users(s, chat_id, prev_start, start - timedelta(days=1))
        cohort = await service.retention(s, chat_id, start, end, today, days=(1,))
        acts = await service.activity(s, chat_id, start, end)
        top = sorted(((u, a) for u, a in acts.items() if a.influence > 0), key=lambda ua: (-ua[1].influence, ua[0]))
        top = top[:cfg.top_count]
        names = await names_of(s, [u for u, _a in top], _)
        koc = [(names[u], a.influence) for u, a in top]
        faq = await service.top_faq(s, chat_id, start, end, cfg.top_count)
        questions = await service.top_questions(s, chat_id, start, end, cfg.top_count)
        incidents = await service.incidents(s, chat_id, start, end)
    return WeekReport(chat_id, title, start, members, this, prev, wau, prev_wau, cohort, koc, faq, questions,
                      incidents)


def render_week(w: WeekReport, _: Tr) -> str:
    def line(label: str, now: float, before: float, fmt: Callable[[float], str] = num) -> str:
        return _("{label} {now}（上周 {before}，{change}）").format(
            label=label, now=fmt(now), before=fmt(before), change=signed_pct(service.change(now, before)))

    lines = [_("🗓 <b>{title}</b> 周报（{start} ~ {end}）").format(
        title=html.escape(w.title), start=w.start.isoformat(), end=w.end.isoformat())]
    lines.append(line(_("💬 消息"), w.this.messages, w.prev.messages))
    lines.append(line(_("🔥 日均活跃"), round(w.this.avg_dau, 1), round(w.prev.avg_dau, 1)))
    lines.append(line(_("👥 周活跃成员"), w.wau, w.prev_wau))
    lines.append(line(_("➕ 入群"), w.this.joins, w.prev.joins))
    lines.append(line(_("➖ 退群"), w.this.leaves, w.prev.leaves))
    lines.append(_("📊 净增 {net:+d} · 当前成员 {members}").format(net=w.this.joins - w.this.leaves, members=w.members))
    rate, prev_rate = (service.checkin_rate(t.checkins, 7, w.members) for t in (w.this, w.prev))
    lines.append(_("✅ 签到率 {rate}（上周 {prev}）").format(rate=pct(rate), prev=pct(prev_rate)))
    lines.append(_("📈 本周新人次日留存 {rate}（{retained}/{eligible}）").format(
        rate=pct(w.cohort.rate(1)), retained=w.cohort.retention[1][0], eligible=w.cohort.retention[1][1]))
    lines.append(_("🙂 情绪均值 {now}（上周 {before}）").format(
        now=mood(w.this.sentiment), before=mood(w.prev.sentiment)))
    if w.koc:
        lines.append(_("🌟 本周意见领袖：") + "、".join(
            _("{name}（{n}）").format(name=html.escape(n), n=v) for n, v in w.koc))
    if w.faq:
        lines.append(_("❓ 热门问答：") + "、".join(
            f"{html.escape(label or '#' + str(e))} ×{n}" for e, n, label in w.faq))
    if w.questions:
        lines.append(_("🙋 未解答问题：") + "、".join(f"「{html.escape(q[:40])}」×{n}" for q, n in w.questions))
    count, level = w.incidents
    lines.append(_("🚨 危机事件 {n} 起（最高 {level} 级）").format(n=count, level=level) if count
                 else _("🚨 本周没有危机事件"))
    return "\n".join(lines)


def week_due(now_local: datetime, cfg: AnalyticsConfig) -> date:
    """First day of the latest 7-day period whose report is due at ``now_local``."""
    report_day = service.week_start(now_local.date(), cfg.weekly_weekday)
    if now_local.date() == report_day and now_local.hour < cfg.weekly_hour:
        report_day -= timedelta(days=7)
    return report_day - timedelta(days=7)
