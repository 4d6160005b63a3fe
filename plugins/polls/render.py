"""Texts and keyboards of the contests (HTML; user content escaped). ``_`` is the chat's gettext."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from plugins.polls.models import Contest
from plugins.polls.parsing import format_duration

Gettext = Callable[[str], str]
PREFIX = "polls"
SIDE_MARKS = ("🔴", "🔵")


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def when(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%m-%d %H:%M")


def bar(part: int, total: int, width: int = 10) -> str:
    filled = round(width * part / total) if total else 0
    return "█" * filled + "░" * (width - filled)


def percent(part: int, total: int) -> str:
    return f"{round(100 * part / total)}%" if total else "0%"


def kind_name(kind: str, _: Gettext) -> str:
    return {"poll": _("投票"), "pk": _("话题PK"), "lottery": _("抽奖"), "quiz": _("知识竞赛")}.get(kind, kind)


# ------------------------------------------------------------------------------------------ PK
def pk_markup(contest: Contest, counts: Sequence[int]) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(text=f"{SIDE_MARKS[i]} {name} ({counts[i]})", callback_data=f"{PREFIX}:v:{contest.id}:{i}")
        for i, name in enumerate(contest.options[:2])
    ]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


def pk_text(contest: Contest, counts: Sequence[int], tz: ZoneInfo, _: Gettext, *, closed: bool = False) -> str:
    a, b = contest.options[:2]
    total = sum(counts)
    lines = [
        f"⚔️ <b>{_('话题PK')} #{contest.id}</b>",
        f"{SIDE_MARKS[0]} {_('正方')}：<b>{esc(a)}</b>",
        f"{SIDE_MARKS[1]} {_('反方')}：<b>{esc(b)}</b>",
        "",
    ]
    for i in range(2):
        lines.append(
            f"{SIDE_MARKS[i]} {bar(counts[i], total)} "
            + _("{n} 票").format(n=counts[i])
            + f" ({percent(counts[i], total)})"
        )
    lines.append(_("共 {n} 人投票").format(n=total))
    if closed:
        lines.append(_("⏹ 已结束"))
    else:
        lines.append(_("截止时间：{at}").format(at=when(contest.closes_at, tz)))
        lines.append(_("点下方按钮投票，截止前可以改票。"))
        if contest.data.get("arguments", True):
            lines.append(_("发言以 #A / #B（或 [正方] / [反方]）开头即为论点，回复最多的论点会在结果中展示。"))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ lottery
def lottery_markup(contest: Contest, _: Gettext) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=_("🎁 参与抽奖"), callback_data=f"{PREFIX}:j:{contest.id}")]]
    )


def lottery_text(contest: Contest, entrants: int, tz: ZoneInfo, _: Gettext, *, closed: bool = False) -> str:
    data = contest.data
    keyword = data.get("keyword")
    lines = [
        f"🎁 <b>{_('抽奖')} #{contest.id}</b>",
        _("奖品：{prize} × {n} 名").format(prize=f"<b>{esc(contest.title)}</b>", n=data.get("winners", 1)),
        _("开奖时间：{at}").format(at=when(contest.closes_at, tz)),
    ]
    if not closed:
        if keyword:
            lines.append(_("参与方式：点下方按钮，或在群里发送「{keyword}」").format(keyword=esc(keyword)))
        else:
            lines.append(_("参与方式：点下方按钮"))
    lines.append(_("已参与：{n} 人").format(n=entrants))
    lines.append(_("公证承诺 sha256(种子)：") + f"\n<code>{data.get('commitment', '')}</code>")
    if closed:
        lines.append(_("⏹ 已开奖"))
    else:
        lines.append(_("开奖时公布种子，任何人都可以复核：/lottery_verify {id}").format(id=contest.id))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ quiz
def quiz_text(contest: Contest, _: Gettext, duration: int) -> str:
    return "\n".join(
        [
            f"🧠 <b>{_('知识竞赛')} #{contest.id}</b>",
            esc(contest.title),
            "",
            _("🏆 奖励 {points} 积分 · ⏱ 限时 {duration}").format(
                points=contest.data.get("points", 0), duration=format_duration(duration, _)
            ),
            _("直接在群里发送答案，第一个答对的人获胜！"),
        ]
    )


# ------------------------------------------------------------------------------------------ poll
def poll_summary(contest: Contest, counts: Sequence[int], total: int, _: Gettext,
                 correct_names: Sequence[str] | None = None) -> str:
    correct = contest.data.get("correct_option")
    lines = [f"📊 <b>{_('投票')} #{contest.id} {_('结果')}</b>", esc(contest.title), ""]
    votes_sum = sum(counts)
    for i, option in enumerate(contest.options):
        n = counts[i] if i < len(counts) else 0
        mark = " ✅" if correct == i else ""
        lines.append(f"{i + 1}. {esc(option)}{mark}")
        lines.append(f"    {bar(n, votes_sum)} " + _("{n} 票").format(n=n) + f" ({percent(n, votes_sum)})")
    lines.append(_("共 {n} 人投票").format(n=total))
    if votes_sum and correct is None:
        top = max(counts)
        leaders = [contest.options[i] for i, n in enumerate(counts) if n == top]
        if len(leaders) == 1:
            lines.append(_("🏆 得票最多：{option}").format(option=esc(leaders[0])))
        else:
            lines.append(_("🤝 并列第一：{options}").format(options="、".join(esc(x) for x in leaders)))
    if correct_names is not None:
        if correct_names:
            shown = "、".join(correct_names[:30]) + ("…" if len(correct_names) > 30 else "")
            lines.append(_("答对 {n} 人：{names}").format(n=len(correct_names), names=shown))
        else:
            lines.append(_("没有人答对。"))
    return "\n".join(lines)
