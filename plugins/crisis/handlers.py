"""The crisis plugin's aiogram side: the observer, /crisis, the log-chat buttons, jobs and hooks."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message

from bot.plugin import UsageError
from plugins.crisis import render, service
from plugins.crisis.config import CrisisConfig
from plugins.crisis.runtime import NAME, CrisisRuntime

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.app import App
    from bot.context import Ctx

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "crisis:"
HISTORY_LIMIT = 10


def _rt(app: App) -> CrisisRuntime:
    rt = app.runtime(NAME)
    assert isinstance(rt, CrisisRuntime)
    return rt


# ---- hooks -----------------------------------------------------------------------------------------
async def observe(message: Message, ctx: Ctx) -> None:
    await _rt(ctx.app).observe(message, ctx)


async def on_startup(app: App) -> None:
    rt = _rt(app)
    await rt.start()
    # jieba (~1 s) is only needed for negation checks: build it off the event loop now.
    rt.warm_task = asyncio.get_running_loop().create_task(app.nlp.warm_up_async())


async def on_shutdown(app: App) -> None:
    await _rt(app).stop()


async def flush(app: App, session: AsyncSession) -> None:
    await _rt(app).flush(session)


async def tick_job(app: App) -> None:
    await _rt(app).tick()


async def outbox_job(app: App) -> None:
    await _rt(app).retry_outbox()


# ---- /crisis ---------------------------------------------------------------------------------------
async def cmd_crisis(message: Message, ctx: Ctx) -> None:
    parts = ctx.args.split(maxsplit=1)
    sub = parts[0].lower() if parts else "status"
    rest = parts[1].strip() if len(parts) > 1 else ""
    if ctx.chat_id is None:
        raise UsageError()
    if sub in ("status", "状态"):
        await _status(message, ctx)
    elif sub in ("ack", "认领"):
        await _ack(message, ctx)
    elif sub in ("resolve", "解决", "结束"):
        await _resolve(message, ctx, rest)
    elif sub in ("escalate", "升级"):
        await _escalate(message, ctx)
    elif sub in ("history", "历史", "记录"):
        await _history(message, ctx, rest)
    else:
        raise UsageError()


async def _status(message: Message, ctx: Ctx) -> None:
    rt = _rt(ctx.app)
    chat_id = ctx.chat_id
    assert chat_id is not None
    cfg = ctx.cfg
    assert isinstance(cfg, CrisisConfig)
    _ = ctx._
    p = rt.profile(cfg).signal
    sig, inc = await rt.view(chat_id, cfg)
    snap = sig.snapshot(ctx.app.clock.time(), p, 0)
    lines = [_("🛡 <b>危机监测</b> · {chat}").format(chat=render.chat_label(sig.title or message.chat.title or "",
                                                                          chat_id))]
    if inc is None:
        lines.append(_("当前：没有进行中的事件"))
    else:
        since = datetime.fromtimestamp(inc.state.since, UTC)
        opened = datetime.fromtimestamp(inc.opened_at, UTC)
        lines.append(_("当前：事件 #{id} · {level} · {t} 开始，本等级已持续 {d}").format(
            id=inc.id, level=render.level_name(_, inc.state.level), t=render.hm(opened, ctx.tz),
            d=render.duration(_, (ctx.now() - since).total_seconds()),
        ))
        lines.append(_("已认领") if inc.acked else _("尚未认领（/crisis ack）"))
        if inc.state.floor is not None:
            lines.append(_("已人工升级：不会自动降到{level}以下").format(level=render.level_name(_, inc.state.floor)))
    lines.append(_("评分 {score}（三级 ≥{l3}，二级 ≥{l2}，一级 ≥{l1}）").format(
        score=f"{snap.score:.1f}", l3=f"{cfg.level3_score:g}", l2=f"{cfg.level2_score:g}", l1=f"{cfg.level1_score:g}",
    ))
    lines.append(_("近 {w} 分钟：{m} 条消息，{n} 人发言，{r} 人涉及风险词，负面占比 {s}%").format(
        w=f"{cfg.window_minutes:g}", m=snap.messages, n=snap.members, r=snap.risk_members,
        s=round(snap.negative_share * 100),
    ))
    lines.append(_("消息速度：{rate} 条/分钟（平时 {base} 条/分钟）").format(rate=f"{snap.rate:.1f}",
                                                                  base=f"{snap.baseline_rate:.1f}"))
    if snap.by_category:
        cats = sorted(snap.by_category.items(), key=lambda kv: -kv[1])
        lines.append(_("风险类别：") + " · ".join(
            _("{cat} {n} 人").format(cat=render.category_name(_, c), n=n) for c, n in cats))
    async with ctx.db() as s:
        counts = await service.outbox_counts(s, chat_id)
    if counts.get(service.PENDING):
        lines.append(_("⚠️ 有 {n} 条提醒尚未送达日志群，正在重试").format(n=counts[service.PENDING]))
    if counts.get(service.FAILED):
        lines.append(_("⚠️ 有 {n} 条提醒最终发送失败（见数据库 crisis_outbox）").format(n=counts[service.FAILED]))
    ctx.reply(message, "\n".join(lines))


async def _ack(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None and ctx.user_id is not None
    result = await _rt(ctx.app).acknowledge(ctx.chat_id, ctx.user_id)
    _ = ctx._
    text = {"ok": _("已认领当前事件。"), "already": _("这个事件已经有人认领了。"),
            "none": _("现在没有进行中的事件。")}[result]
    ctx.reply(message, text, notice=True)


async def _resolve(message: Message, ctx: Ctx, note: str) -> None:
    assert ctx.chat_id is not None and ctx.user_id is not None
    result = await _rt(ctx.app).resolve(ctx.chat_id, ctx.user_id, note=note or None)
    _ = ctx._
    text = _("事件已结束，总结已发到日志群。") if result == "ok" else _("现在没有进行中的事件。")
    ctx.reply(message, text, notice=True)


async def _escalate(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None and ctx.user_id is not None
    result, level = await _rt(ctx.app).escalate(ctx.chat_id, ctx.user_id)
    _ = ctx._
    if result == "ok":
        text = _("已升级为{level}。").format(level=render.level_name(_, level))
    elif result == "top":
        text = _("已经是最高等级（一级）。")
    else:
        text = _("现在没有进行中的事件。")
    ctx.reply(message, text, notice=True)


async def _history(message: Message, ctx: Ctx, rest: str) -> None:
    assert ctx.chat_id is not None
    _ = ctx._
    rt = _rt(ctx.app)
    token = rest.lstrip("#").strip()
    if token:
        if not token.isdigit():
            raise UsageError()
        async with ctx.db() as s:
            inc = await service.get_incident(s, int(token))
            rows = await service.timeline(s, inc.id) if inc is not None and inc.chat_id == ctx.chat_id else []
        if inc is None or inc.chat_id != ctx.chat_id:
            ctx.reply(message, _("本群没有编号为 #{id} 的事件。").format(id=int(token)), notice=True)
            return
        names = await rt._names({r.actor_id for r in rows if r.actor_id})
        status = _("进行中") if inc.status == "open" else _("已结束")
        lines = [_("事件 #{id} · {status} · 最高{level}").format(id=inc.id, status=status,
                                                          level=render.level_name(_, inc.peak_level))]
        lines += render.timeline_text(_, rows, ctx.tz, names)
        if inc.note:
            lines.append(_("备注：") + render.esc(inc.note))
        ctx.reply(message, "\n".join(lines))
        return
    async with ctx.db() as s:
        incidents = await service.history(s, ctx.chat_id, HISTORY_LIMIT)
    if not incidents:
        ctx.reply(message, _("本群还没有危机事件记录。"), notice=True)
        return
    lines = [_("最近的危机事件（/crisis history 编号 查看时间线）：")]
    for inc in incidents:
        end = inc.closed_at or ctx.now()
        status = _("进行中") if inc.status == "open" else (
            _("自动结束") if inc.close_reason == "auto" else _("已解决"))
        lines.append(_("#{id} {t} · 最高{level} · {d} · {status}").format(
            id=inc.id, t=render.mdhm(inc.opened_at, ctx.tz), level=render.level_name(_, inc.peak_level),
            d=render.duration(_, (end - inc.opened_at).total_seconds()), status=status,
        ))
    ctx.reply(message, "\n".join(lines))


# ---- log-chat buttons ------------------------------------------------------------------------------
async def is_ours(query: CallbackQuery) -> bool:
    return bool(query.data) and query.data.startswith(CALLBACK_PREFIX)  # type: ignore[union-attr]


def parse_callback(data: str | None) -> tuple[str, int] | None:
    if not data:
        return None
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != "crisis" or parts[1] not in ("ack", "res", "esc") or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


async def _answer(query: CallbackQuery, text: str, alert: bool = False) -> None:
    try:
        await query.answer(text, show_alert=alert)
    except TelegramAPIError as exc:
        log.info("answerCallbackQuery failed: %s", exc)


async def on_button(query: CallbackQuery, ctx: Ctx) -> None:
    app = ctx.app
    rt = _rt(app)
    parsed = parse_callback(query.data)
    if parsed is None:
        await _answer(query, ctx._("无效的按钮。"), alert=True)
        return
    action, incident_id = parsed
    async with app.db() as s:
        inc = await service.get_incident(s, incident_id)
    if inc is None:
        await _answer(query, ctx._("无效的按钮。"), alert=True)
        return
    _, _tz = await rt.tr(inc.chat_id)
    user = query.from_user
    app.members.touch(user, None, ctx.now(), spoke=False)  # so the timeline and summary can name them
    if not await app.admins.is_admin(inc.chat_id, user.id):
        await _answer(query, _("只有该群的管理员或机器人所有者可以处理这个事件。"), alert=True)
        return
    if inc.status != "open":
        await _answer(query, _("这个事件已经结束了。"))
        return
    if action == "ack":
        result = await rt.acknowledge(inc.chat_id, user.id, incident_id)
        text = {"ok": _("已认领。"), "already": _("这个事件已经有人认领了。"),
                "none": _("这个事件已经结束了。")}[result]
    elif action == "res":
        result = await rt.resolve(inc.chat_id, user.id, incident_id)
        text = _("已标记解决，总结已发送。") if result == "ok" else _("这个事件已经结束了。")
    else:
        result, level = await rt.escalate(inc.chat_id, user.id, incident_id)
        if result == "ok":
            text = _("已升级为{level}。").format(level=render.level_name(_, level))
        elif result == "top":
            text = _("已经是最高等级（一级）。")
        else:
            text = _("这个事件已经结束了。")
    await _answer(query, text)


def make_router() -> Router:
    router = Router(name=NAME)
    router.callback_query.register(on_button, is_ours)
    return router

