"""Texts of the crisis plugin (Telegram HTML). Every function takes ``_`` (gettext into the chat's
language); user content is escaped here."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from bot.plugin import N_
from plugins.crisis.signal import Record, Snapshot

Tr = Callable[[str], str]

LEVEL_NAMES = {1: N_("一级（紧急）"), 2: N_("二级（局部）"), 3: N_("三级（观察）")}
CATEGORY_NAMES = {
    "complaint": N_("投诉差评"), "refund": N_("退款售后"), "legal": N_("法律监管"), "safety": N_("安全健康"),
    "fraud": N_("欺诈舆情"), "emergency": N_("紧急情况"),
}  # fmt: skip
ACTION_NAMES = {
    "alert": N_("已通知日志群"), "dm_owners": N_("已私信所有者"), "restrict": N_("已限制群内发言"),
    "unrestrict": N_("已恢复群内发言"), "statement": N_("已发布安抚声明"), "escalate": N_("人工升级"),
}  # fmt: skip
SNIPPET_CHARS = 80


def level_name(_: Tr, level: int | None) -> str:
    return _(LEVEL_NAMES[level]) if level in LEVEL_NAMES else "—"


def category_name(_: Tr, name: str) -> str:
    return _(CATEGORY_NAMES[name]) if name in CATEGORY_NAMES else name


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_link(chat_id: int, username: str | None, message_id: int) -> str | None:
    if username:
        return f"https://t.me/{username}/{message_id}"
    raw = str(chat_id)
    if raw.startswith("-100") and len(raw) > 4:
        return f"https://t.me/c/{raw[4:]}/{message_id}"
    return None


def mention(user_id: int, name: str) -> str:
    return f'<a href="tg://user?id={user_id}">{esc(name or str(user_id))}</a>'


def duration(_: Tr, seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return _("{n} 秒").format(n=seconds)
    minutes = seconds // 60
    if minutes < 60:
        return _("{n} 分钟").format(n=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _("{h} 小时 {m} 分钟").format(h=hours, m=minutes)
    return _("{d} 天 {h} 小时").format(d=hours // 24, h=hours % 24)


def hm(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%H:%M")


def mdhm(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%m-%d %H:%M")


def chat_label(title: str, chat_id: int) -> str:
    return f"<b>{esc(title or str(chat_id))}</b>（<code>{chat_id}</code>）"


def evidence_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [
        {"message_id": r.message_id, "user_id": r.user_id, "name": r.name, "text": snippet(r.snippet), "at": r.at}
        for r in records
    ]


def _signal_lines(_: Tr, snap: Snapshot, window_minutes: float, trend: Sequence[tuple[int, int, int]]) -> list[str]:
    lines = [
        _("近 {w} 分钟：{m} 条消息，{n} 人发言，{r} 人涉及风险词，负面占比 {s}%").format(
            w=f"{window_minutes:g}", m=snap.messages, n=snap.members, r=snap.risk_members,
            s=round(snap.negative_share * 100),
        ),
        _("消息速度：{rate} 条/分钟（平时 {base} 条/分钟）").format(rate=f"{snap.rate:.1f}",
                                                              base=f"{snap.baseline_rate:.1f}"),
    ]
    if snap.by_category:
        cats = sorted(snap.by_category.items(), key=lambda kv: -kv[1])
        lines.append(_("风险类别：") + " · ".join(
            _("{cat} {n} 人").format(cat=category_name(_, c), n=n) for c, n in cats
        ))
    if snap.keywords:
        lines.append(_("关键词：") + " ".join(f"{esc(w)}×{n}" for w, n in snap.keywords[:8]))
    if trend:
        cells = " → ".join(f"{m}/{neg}/{risk}" for m, neg, risk in trend)
        lines.append(_("近一小时趋势（每 10 分钟 消息/负面/风险）：") + cells)
    return lines


def alert_text(
    _: Tr, *, incident_id: int, level: int, old_level: int | None, title: str, chat_id: int, username: str | None,
    snap: Snapshot, window_minutes: float, trend: Sequence[tuple[int, int, int]], opened_at: datetime, tz: tzinfo,
    trigger: str, manual_by: str | None = None,
) -> str:
    if old_level is None:
        head = _("🚨 <b>危机预警 · {level}</b>").format(level=level_name(_, level))
    else:
        head = _("⬆️ <b>危机升级 · {level}</b>（原为{old}）").format(level=level_name(_, level),
                                                               old=level_name(_, old_level))
    lines = [
        head,
        _("等级 {n}（1 最高，3 最低）· 群：{chat}").format(n=level, chat=chat_label(title, chat_id)),
        _("事件 #{id} · {t} 开始 · 评分 {score}").format(id=incident_id, t=hm(opened_at, tz),
                                                     score=f"{snap.score:.1f}"),
    ]
    if trigger == "instant" and old_level is None:
        lines.append(_("触发：单条消息出现高危组合（安全 + 紧急情况）"))
    if manual_by:
        lines.append(_("人工升级：{who}").format(who=manual_by))
    lines += _signal_lines(_, snap, window_minutes, trend)
    if snap.evidence:
        lines.append(_("代表消息："))
        for r in snap.evidence:
            link = message_link(chat_id, username, r.message_id)
            ref = f' <a href="{link}">{_("查看")}</a>' if link else ""
            lines.append(f"• {mention(r.user_id, r.name)}：{esc(snippet(r.snippet))}{ref}")
    if snap.voices:
        names = "、".join(mention(uid, name) for uid, name, _w in snap.voices[:10])
        more = _("等 {n} 人").format(n=len(snap.voices)) if len(snap.voices) > 10 else ""
        lines.append(_("涉及成员：") + names + more)
    return "\n".join(lines)


def alert_markup(_: Tr, incident_id: int, *, ack: bool = True, level: int = 3) -> dict[str, Any]:
    row: list[dict[str, str]] = []
    if ack:
        row.append({"text": _("✋ 认领"), "callback_data": f"crisis:ack:{incident_id}"})
    row.append({"text": _("✅ 已解决"), "callback_data": f"crisis:res:{incident_id}"})
    if level > 1:
        row.append({"text": _("⬆️ 升级"), "callback_data": f"crisis:esc:{incident_id}"})
    return {"inline_keyboard": [row]}


def down_text(_: Tr, *, incident_id: int, level: int, old_level: int, title: str, chat_id: int, score: float) -> str:
    return _("⬇️ 事件 #{id} 降为{level}（原为{old}）· 群：{chat} · 当前评分 {score}").format(
        id=incident_id, level=level_name(_, level), old=level_name(_, old_level), chat=chat_label(title, chat_id),
        score=f"{score:.1f}",
    )


def dm_text(_: Tr, *, incident_id: int, title: str, chat_id: int, alert: str) -> str:
    return _("🆘 <b>一级危机</b>：群 {chat} 的事件 #{id} 已升到最高等级，请尽快处理。").format(
        chat=chat_label(title, chat_id), id=incident_id,
    ) + "\n\n" + alert


def ack_line(_: Tr, who: str, at: datetime, tz: tzinfo) -> str:
    return _("✋ {who} 已认领（{t}）").format(who=who, t=hm(at, tz))


def resolved_line(_: Tr, who: str | None, at: datetime, tz: tzinfo) -> str:
    if who:
        return _("✅ {who} 已标记解决（{t}）").format(who=who, t=hm(at, tz))
    return _("✅ 已自动结束（{t}）").format(t=hm(at, tz))


def _timeline_line(_: Tr, row: Any, tz: tzinfo, names: Mapping[int, str]) -> str:
    t = hm(row.at, tz)
    who = f" · {esc(names.get(row.actor_id, str(row.actor_id)))}" if row.actor_id else ""
    detail = row.detail or {}
    if row.kind == "opened":
        return _("{t} 开启，{level}").format(t=t, level=level_name(_, row.level)) + who
    if row.kind == "level":
        verb = _("升为") if (row.level or 3) < int(detail.get("from", 3)) else _("降为")
        return f"{t} {verb}{level_name(_, row.level)}" + who
    if row.kind == "ack":
        return _("{t} 认领").format(t=t) + who
    if row.kind == "action":
        action = str(detail.get("action", ""))
        name = _(ACTION_NAMES[action]) if action in ACTION_NAMES else action
        failed = _("（失败）") if detail.get("ok") is False else ""
        return f"{t} {name}{failed}" + who
    if row.kind == "resolved":
        reason = _("自动结束") if detail.get("reason") in ("auto", "disabled") else _("已解决")
        return f"{t} {reason}" + who
    return f"{t} {esc(row.kind)}" + who


def timeline_text(_: Tr, rows: Sequence[Any], tz: tzinfo, names: Mapping[int, str]) -> list[str]:
    return [_timeline_line(_, r, tz, names) for r in rows]


def summary_text(
    _: Tr, *, inc: Any, rows: Sequence[Any], tz: tzinfo, names: Mapping[int, str], calm_minutes: float,
) -> str:
    end = inc.closed_at or inc.updated_at
    members = [(int(uid), name) for uid, name in (inc.members or {}).items()]
    if inc.close_reason == "auto":
        outcome = _("自动结束（平静 {n} 分钟）").format(n=f"{calm_minutes:g}")
    elif inc.close_reason == "disabled":
        outcome = _("本群已关闭危机监测，事件随之结束")
    else:
        outcome = _("已解决（{who}）").format(who=esc(names.get(inc.resolved_by, str(inc.resolved_by))))
    lines = [
        _("📋 <b>事件总结</b> #{id} · 群：{chat}").format(id=inc.id, chat=chat_label(inc.chat_title, inc.chat_id)),
        _("结果：") + outcome,
        _("持续：{d}（{a} – {b}）").format(d=duration(_, (end - inc.opened_at).total_seconds()),
                                       a=mdhm(inc.opened_at, tz), b=hm(end, tz)),
        _("最高等级：{level} · 最高评分 {score}").format(level=level_name(_, inc.peak_level),
                                                   score=f"{inc.peak_score or 0:.1f}"),
        _("涉及：{m} 条消息，{n} 名成员").format(m=inc.messages or 0, n=len(members)),
    ]
    if members:
        shown = "、".join(mention(uid, name) for uid, name in members[:10])
        lines.append(_("成员：") + shown + (_("等") if len(members) > 10 else ""))
    if inc.keywords:
        top = sorted(inc.keywords.items(), key=lambda kv: -kv[1])[:8]
        lines.append(_("关键词：") + " ".join(f"{esc(w)}×{n}" for w, n in top))
    if inc.acked_at is not None:
        lines.append(_("认领：{who}（{t}）").format(who=esc(names.get(inc.acked_by, str(inc.acked_by))),
                                               t=hm(inc.acked_at, tz)))
    else:
        lines.append(_("认领：无人认领"))
    actions = [r for r in rows if r.kind == "action" and (r.detail or {}).get("ok", True)]
    if actions:
        done = []
        for r in actions:
            action = str((r.detail or {}).get("action", ""))
            done.append(_(ACTION_NAMES[action]) if action in ACTION_NAMES else action)
        lines.append(_("已采取措施：") + "、".join(dict.fromkeys(done)))
    else:
        lines.append(_("已采取措施：无"))
    if inc.note:
        lines.append(_("备注：") + esc(inc.note))
    lines.append(_("时间线："))
    lines += timeline_text(_, rows, tz, names)
    return "\n".join(lines)
