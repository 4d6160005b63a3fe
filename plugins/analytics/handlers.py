"""Commands and buttons: /stats, /segment, /cleanup, /wakeup, /export, /mydata, /forgetme.

Buttons carry ``an:<action>:...`` callback data, parsed strictly (``parse_callback``); every action is
checked again on press (the presser is an admin of the chat the data names, or the member a /forgetme
belongs to), so a forged or stale button changes nothing.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import EditMessageText, SendDocument, SendPhoto
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.context import Ctx
from bot.plugin import UsageError
from bot.services.events import BotStarted
from plugins.analytics import actions, chart, export, privacy, report, service
from plugins.analytics.config import AnalyticsConfig

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

NAME = "analytics"
PREFIX = "an"
MYDATA_PAYLOAD = "mydata"

LIFECYCLE_ALIASES = {
    "new": "new", "新人": "new", "新成员": "new", "新": "new",
    "active": "active", "活跃成员": "active",
    "silent": "silent", "沉默": "silent", "沉默成员": "silent",
    "churned": "churned", "churn": "churned", "流失": "churned", "流失成员": "churned",
    "zombie": "zombie", "zombies": "zombie", "僵尸": "zombie", "僵尸粉": "zombie",
    "koc": "koc", "kol": "koc", "leaders": "koc", "意见领袖": "koc",
}  # fmt: skip
SEGMENT_TITLES = {"new": "新人", "active": "活跃成员", "silent": "沉默成员", "churned": "流失成员",
                  "zombie": "僵尸成员", "koc": "意见领袖"}


def cfg_of(ctx: Ctx) -> AnalyticsConfig:
    cfg = ctx.cfg
    assert isinstance(cfg, AnalyticsConfig)
    return cfg


async def cfg_for(app: App, chat_id: int) -> AnalyticsConfig:
    cfg = await app.chat_config.get(chat_id, NAME)
    assert isinstance(cfg, AnalyticsConfig)
    return cfg


def tr(app: App, language: str) -> Any:
    return lambda s: app.i18n.gettext(language, s)


def buttons(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=label, callback_data=data) for label, data in row] for row in rows if row
    ])


def private(message: Message) -> bool:
    return message.chat.type == ChatType.PRIVATE


# ---- /stats ----------------------------------------------------------------------------------------
async def cmd_stats(message: Message, ctx: Ctx) -> None:
    if ctx.chat_id is None:
        return
    cfg = cfg_of(ctx)
    r = await report.gather(ctx.app, ctx.chat_id, cfg, ctx.tz, ctx._)
    text = report.render_stats(r, cfg, ctx._)
    png: bytes | None = None
    if r.has_data and cfg.chart:
        try:
            png = await asyncio.to_thread(_draw, ctx.app, r, ctx.chat.language)
        except ImportError:
            text += "\n\n" + ctx._("（图表需要 matplotlib：当前环境未安装，只发送文字报告。）")
        except Exception:
            log.exception("stats chart failed for chat %s", ctx.chat_id)
            text += "\n\n" + ctx._("（图表生成失败，只发送文字报告。）")
    ctx.reply(message, text)
    if png is not None:
        ctx.app.call(message.chat.id, SendPhoto(
            chat_id=message.chat.id, photo=BufferedInputFile(png, filename=f"stats-{r.today.isoformat()}.png"),
            caption=ctx._("{title} · 近30天活跃、成员分层与留存").format(title=html.escape(r.title))[:1000],
        ))


def _draw(app: App, r: report.StatsReport, language: str) -> bytes:
    """Runs in a worker thread: matplotlib is slow and must not block the event loop."""
    font = chart.cjk_font()
    # Without a CJK font Chinese labels would be boxes: draw them in English then.
    lang = language if font or language != "zh_CN" else "en"
    return chart.render_png(report.chart_data(r, tr(app, lang), plain_title=font is None), font)


# ---- /segment --------------------------------------------------------------------------------------
def parse_segment(arg: str, cfg: AnalyticsConfig) -> str | None:
    """A lifecycle key, "koc", or "t<index>" of a tier (tiers sorted by min_score, lowest first)."""
    word = arg.strip()
    tiers = sorted(cfg.tiers, key=lambda t: t.min_score)
    for i, tier in enumerate(tiers):
        if word in (tier.name, tier.name + "粉丝", f"tier:{tier.name}"):
            return f"t{i}"
    return LIFECYCLE_ALIASES.get(word.lower())


def segment_title(key: str, cfg: AnalyticsConfig, _: Any) -> str:
    if key.startswith("t"):
        tiers = sorted(cfg.tiers, key=lambda t: t.min_score)
        return _("价值分层「{name}」").format(name=html.escape(tiers[int(key[1:])].name))
    return _(SEGMENT_TITLES[key])


def segment_usage(cfg: AnalyticsConfig, _: Any) -> str:
    tiers = " | ".join(html.escape(t.name) for t in sorted(cfg.tiers, key=lambda t: t.min_score))
    return _("用法：/segment 分层名\n生命周期：new 新人 | active 活跃成员 | silent 沉默 | churned 流失 | zombie 僵尸\n"
             "意见领袖：koc\n价值分层：{tiers}").format(tiers=tiers)


async def cmd_segment(message: Message, ctx: Ctx) -> None:
    if ctx.chat_id is None:
        return
    cfg = cfg_of(ctx)
    if not ctx.args.strip():
        raise UsageError(segment_usage(cfg, ctx._))
    key = parse_segment(ctx.args, cfg)
    if key is None:
        raise UsageError(ctx._("没有叫「{name}」的分层。").format(name=html.escape(ctx.args.strip()[:32])) + "\n"
                         + segment_usage(cfg, ctx._))
    text, markup = await segment_page(ctx.app, ctx.chat_id, key, 0, cfg, ctx.tz, ctx._)
    ctx.reply(message, text, reply_markup=markup)


async def segment_page(app: App, chat_id: int, key: str, page: int, cfg: AnalyticsConfig, tz: Any, _: Any
                       ) -> tuple[str, InlineKeyboardMarkup | None]:
    now = app.clock.now()
    today = service.local_day(now, tz)
    async with app.db() as s:
        seg = await service.segment(s, chat_id, now, tz, cfg)
        if key.startswith("t"):
            tiers = sorted(cfg.tiers, key=lambda t: t.min_score)
            members = seg.members(tiers[int(key[1:])].name)
        else:
            members = seg.members(key)
        pages = max(1, -(-len(members) // cfg.page_size))
        page = min(max(0, page), pages - 1)
        shown = members[page * cfg.page_size:(page + 1) * cfg.page_size]
        names = await report.names_of(s, shown, _)
    title = segment_title(key, cfg, _)
    if not members:
        return _("👥 {title}：没有成员。").format(title=title), None
    lines = [_("👥 {title}：共 {n} 人（第 {page}/{pages} 页）").format(title=title, n=len(members), page=page + 1,
                                                                 pages=pages)]
    koc = dict(seg.koc)
    for i, uid in enumerate(shown, start=page * cfg.page_size + 1):
        lines.append(f"{i}. {html.escape(names[uid])} <code>{uid}</code> — "
                     + _member_detail(seg, key, uid, koc, now, today, tz, _))
    nav: list[tuple[str, str]] = []
    if page > 0:
        nav.append(("◀️ " + _("上一页"), f"{PREFIX}:sg:{chat_id}:{key}:{page - 1}"))
    if page + 1 < pages:
        nav.append((_("下一页") + " ▶️", f"{PREFIX}:sg:{chat_id}:{key}:{page + 1}"))
    return "\n".join(lines), buttons(nav) if nav else None


def _member_detail(seg: service.Segmentation, key: str, uid: int, koc: dict[int, service.Activity], now: Any,
                   today: Any, tz: Any, _: Any) -> str:
    m = seg.facts[uid]
    if key == "koc":
        a = koc[uid]
        return _("回复 {replies} · 提及 {mentions}").format(replies=a.replies_received, mentions=a.mentions_received)
    if key.startswith("t"):
        return _("价值分 {score}").format(score=seg.scores[uid].total)
    if not m.present:
        return _("已退群")
    if key == "new":
        return _("入群 {days} 天").format(days=(today - service.local_day(m.since, tz)).days)
    if key == "zombie" or m.last_message_at is None or not m.spoke:
        return _("入群 {days} 天未发言").format(days=(today - service.local_day(m.since, tz)).days)
    idle = (today - service.local_day(m.last_message_at, tz)).days
    return _("今天发过言") if idle == 0 else _("{days} 天未发言").format(days=idle)


# ---- /cleanup --------------------------------------------------------------------------------------
async def cmd_cleanup(message: Message, ctx: Ctx) -> None:
    if ctx.chat_id is None:
        return
    cfg = cfg_of(ctx)
    parts = ctx.args.split()
    if not parts or parts[0].lower() not in actions.KINDS or len(parts) > 2:
        raise UsageError()
    kind = actions.KINDS[parts[0].lower()]
    days = cfg.zombie_days if kind == "zombies" else cfg.churn_days
    if len(parts) == 2:
        if not parts[1].isdigit() or not 1 <= int(parts[1]) <= 3650:
            raise UsageError(ctx._("天数要是 1 到 3650 之间的整数。"))
        days = int(parts[1])
    app = ctx.app
    if not await app.admins.bot_can(ctx.chat_id, "can_restrict_members"):
        ctx.reply(message, ctx._("机器人需要「封禁成员」管理权限才能清理成员。"))
        return
    run, total = await actions.preview_cleanup(app, ctx.chat_id, kind, days, ctx.user_id, cfg)
    if kind == "zombies":
        what = ctx._("僵尸成员（入群满 {days} 天从未发言）").format(days=days)
    else:
        what = ctx._("流失成员（{days} 天以上没有发言）").format(days=days)
    if run is None:
        ctx.reply(message, ctx._("🧹 没有符合条件的{what}。").format(what=what))
        return
    n = len(run.targets)
    async with app.db() as s:
        names = await report.names_of(s, [int(u) for u in run.targets[:5]], ctx._)
    sample = "、".join(html.escape(names[int(u)]) for u in run.targets[:5]) + (ctx._(" 等") if n > 5 else "")
    lines = [ctx._("🧹 清理预览：找到 {n} 名{what}。").format(n=total, what=what)]
    if total > n:
        lines.append(ctx._("本次最多清理 {n} 人，其余的可以之后再运行一次。").format(n=n))
    lines.append(ctx._("例如：{sample}").format(sample=sample))
    lines.append(ctx._("确认后按每 {interval} 秒 {batch} 人的速度移出（踢出后仍可重新加入），管理员不受影响。").format(
        interval=int(cfg.cleanup_interval), batch=cfg.cleanup_batch))
    lines.append(ctx._("此预览 {minutes} 分钟内有效。").format(minutes=cfg.cleanup_confirm_minutes))
    markup = buttons([(ctx._("✅ 确认移出 {n} 人").format(n=n), f"{PREFIX}:cl:{run.id}:y"),
                      (ctx._("取消"), f"{PREFIX}:cl:{run.id}:n")])
    ctx.reply(message, "\n".join(lines), reply_markup=markup)


async def announce_cleanup_done(app: App, run_id: int) -> None:
    run = await actions.get_run(app, run_id)
    if run is None:
        return
    core = await app.chat_config.chat(run.chat_id)
    _ = tr(app, core.language)
    text = _("✅ 清理完成：移出 {removed} 人，跳过 {skipped} 人，失败 {failed} 人。").format(
        removed=run.removed, skipped=run.skipped, failed=run.failed)
    if run.message_chat_id is not None and run.message_id is not None:
        app.call(run.message_chat_id, EditMessageText(chat_id=run.message_chat_id, message_id=run.message_id,
                                                      text=text))
    log_chat = app.log_chat_for(core.log_chat_id)
    if log_chat is not None:
        title = await report.chat_title(app, run.chat_id)
        who = await app.members.mention(run.confirmed_by) if run.confirmed_by else "?"
        app.send_text(log_chat, _("🧹 「{title}」成员清理 #{id}（{kind}，{days} 天，确认人 {who}）：{result}").format(
            title=html.escape(title), id=run.id, kind=run.kind, days=run.days, who=who, result=text))


# ---- /wakeup ---------------------------------------------------------------------------------------
async def cmd_wakeup(message: Message, ctx: Ctx) -> None:
    if ctx.chat_id is None:
        return
    if ctx.args.strip():
        raise UsageError()
    cfg = cfg_of(ctx)
    plan = await actions.plan_wakeup(ctx.app, ctx.chat_id, cfg)
    if not plan.targets:
        text = ctx._("😴 没有需要唤醒的成员（每人每 {days} 天最多唤醒一次）。").format(days=cfg.wakeup_period_days)
        if plan.recent:
            text += "\n" + ctx._("最近已唤醒过 {n} 人。").format(n=plan.recent)
        ctx.reply(message, text)
        return
    lines = [ctx._("😴 可以唤醒 {n} 名沉默成员，其中 {m} 人私聊过机器人。").format(
        n=len(plan.targets), m=len(plan.started))]
    if plan.recent:
        lines.append(ctx._("另有 {n} 人最近 {days} 天内已唤醒过，这次跳过。").format(n=plan.recent,
                                                                            days=cfg.wakeup_period_days))
    lines.append(ctx._("群内提醒会分批 @ 他们（每条 {batch} 人）；私信只发给私聊过机器人的成员。").format(
        batch=cfg.wakeup_batch))
    row = [(ctx._("📣 群内提醒 {n} 人").format(n=len(plan.targets)), f"{PREFIX}:wk:{ctx.chat_id}:m")]
    if plan.started:
        row.append((ctx._("✉️ 私信 {n} 人").format(n=len(plan.started)), f"{PREFIX}:wk:{ctx.chat_id}:d"))
    markup = buttons(row, [(ctx._("取消"), f"{PREFIX}:wk:{ctx.chat_id}:x")])
    ctx.reply(message, "\n".join(lines), reply_markup=markup)


# ---- /export ---------------------------------------------------------------------------------------
async def cmd_export(message: Message, ctx: Ctx) -> None:
    app = ctx.app
    parts = ctx.args.split()
    if not parts or parts[0].lower() not in export.WHAT or len(parts) > 2:
        raise UsageError()
    what = parts[0].lower()
    chat_id = ctx.chat_id
    if len(parts) == 2:
        if not re.fullmatch(r"-?\d{1,20}", parts[1]):
            raise UsageError(ctx._("群 ID 是一串数字，例如 -1001234567890。"))
        chat_id = int(parts[1])
    if chat_id is None:
        if private(message):
            from bot.commands import connected_chat

            chat_id = await connected_chat(app, ctx.user_id)
        if chat_id is None:
            raise UsageError(ctx._("请在群里发送，或在私聊里写上群 ID：/export daily -1001234567890"))
    sender_chat = message.sender_chat.id if message.sender_chat else None
    if not await app.admins.is_admin(chat_id, ctx.user_id, sender_chat):
        ctx.reply(message, ctx._("只有该群的管理员可以导出它的数据。"))
        return
    if not await app.chat_config.enabled(chat_id, NAME):
        ctx.reply(message, ctx._("这个群没有开启数据统计。"))
        return
    data = await export.export_bytes(app, chat_id, what, "csv")
    day = ctx.local_now().date().isoformat()
    document = BufferedInputFile(data, filename=f"{what}-{chat_id}-{day}.csv")
    caption = ctx._("{what} 导出 · 群 {chat}").format(what=what, chat=chat_id)
    cfg = await cfg_for(app, chat_id)
    if private(message) or not cfg.export_private:
        app.call(message.chat.id, SendDocument(chat_id=message.chat.id, document=document, caption=caption))
        return
    if ctx.user_id is None or not await app.members.has_started(ctx.user_id):
        ctx.reply(message, ctx._("导出文件会私信发给你：请先私聊机器人发送 /start，再回来发送 /export。"),
                  reply_markup=_start_button(app, ctx._, ""))
        return
    sent = await app.call(ctx.user_id, SendDocument(chat_id=ctx.user_id, document=document, caption=caption))
    ctx.reply(message, ctx._("📤 已私信发送给你。") if sent else
              ctx._("私信发送失败：请先私聊机器人发送 /start，再回来发送 /export。"), notice=True)


def _start_button(app: App, _: Any, payload: str) -> InlineKeyboardMarkup | None:
    if not app.bot_username:
        return None
    url = f"https://t.me/{app.bot_username}" + (f"?start={payload}" if payload else "")
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=_("私聊机器人"), url=url)]])


# ---- /mydata, /forgetme ----------------------------------------------------------------------------
async def send_mydata(app: App, user_id: int, _: Any) -> bool:
    data = privacy.user_data_file(await privacy.user_data(app, user_id))
    sent = await app.call(user_id, SendDocument(
        chat_id=user_id, document=BufferedInputFile(data, filename=f"mydata-{user_id}.json"),
        caption=_("这是机器人保存的关于你的全部数据。发送 /forgetme 可以删除。"),
    ))
    return bool(sent)


async def cmd_mydata(message: Message, ctx: Ctx) -> None:
    uid = message.from_user.id if message.from_user and not message.sender_chat else None
    if uid is None:
        return
    app = ctx.app
    if private(message):
        await send_mydata(app, uid, ctx._)
        return
    if await app.members.has_started(uid) and await send_mydata(app, uid, ctx._):
        ctx.reply(message, ctx._("📬 你的数据已私信发送给你。"), notice=True)
        return
    ctx.reply(message, ctx._("为了保护隐私，数据只私信发送：请点按钮私聊机器人，开始后会自动收到你的数据。"),
              reply_markup=_start_button(app, ctx._, MYDATA_PAYLOAD))


async def on_bot_started(app: App, event: BotStarted) -> None:
    if event.payload != MYDATA_PAYLOAD:
        return
    await send_mydata(app, event.user_id, tr(app, app.settings.bot.language))


async def cmd_forgetme(message: Message, ctx: Ctx) -> None:
    uid = message.from_user.id if message.from_user and not message.sender_chat else None
    if uid is None:
        return
    text = "\n".join([
        ctx._("⚠️ 确定要删除你的个人数据吗？"),
        ctx._("将删除：你的名字记录、每日活跃统计、唤醒记录；你的积分流水会匿名化，积分余额随之清零。"),
        ctx._("各群的匿名汇总数据（每天的消息总数等）会保留。此操作无法撤销。"),
    ])
    markup = buttons([(ctx._("确认删除"), f"{PREFIX}:fg:{uid}:y"), (ctx._("取消"), f"{PREFIX}:fg:{uid}:n")])
    ctx.reply(message, text, reply_markup=markup)


# ---- buttons ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Press:
    action: str  # sg | cl | wk | fg
    ident: int  # chat id (sg, wk), run id (cl), user id (fg)
    arg: str  # segment key (sg), y/n (cl, fg), m/d/x (wk)
    page: int = 0


_CALLBACK = re.compile(
    r"an:(?:(?P<sg>sg):(?P<sg_chat>-?\d{1,20}):(?P<seg>new|active|silent|churned|zombie|koc|t\d):(?P<page>\d{1,5})"
    r"|(?P<cl>cl):(?P<run>\d{1,18}):(?P<cl_arg>[yn])"
    r"|(?P<wk>wk):(?P<wk_chat>-?\d{1,20}):(?P<wk_arg>[mdx])"
    r"|(?P<fg>fg):(?P<uid>\d{1,20}):(?P<fg_arg>[yn]))"
)


def parse_callback(data: str | None) -> Press | None:
    if not data or len(data) > 64:
        return None
    m = _CALLBACK.fullmatch(data)
    if m is None:
        return None
    if m["sg"]:
        return Press("sg", int(m["sg_chat"]), m["seg"], int(m["page"]))
    if m["cl"]:
        return Press("cl", int(m["run"]), m["cl_arg"])
    if m["wk"]:
        return Press("wk", int(m["wk_chat"]), m["wk_arg"])
    return Press("fg", int(m["uid"]), m["fg_arg"])


async def is_ours(query: CallbackQuery) -> bool:
    return bool(query.data) and query.data.startswith(PREFIX + ":")  # type: ignore[union-attr]


async def _answer(query: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    try:
        await query.answer(text, show_alert=alert)
    except TelegramAPIError as exc:
        log.info("answerCallbackQuery failed: %s", exc)


def _edit(app: App, query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    message = query.message
    if message is None:
        return
    app.call(message.chat.id, EditMessageText(chat_id=message.chat.id, message_id=message.message_id, text=text,
                                              reply_markup=markup))


async def on_button(query: CallbackQuery, ctx: Ctx) -> None:
    app = ctx.app
    press = parse_callback(query.data)
    message = query.message
    if press is None or message is None:
        await _answer(query, ctx._("无效的按钮。"), alert=True)
        return
    uid = query.from_user.id
    if press.action == "fg":
        await _on_forget(app, query, ctx, press, uid)
        return
    if press.action == "cl":
        run = await actions.get_run(app, press.ident)
        chat_id = run.chat_id if run is not None else None
    else:
        chat_id = press.ident
    if chat_id is None or (message.chat.type != ChatType.PRIVATE and message.chat.id != chat_id):
        await _answer(query, ctx._("无效的按钮。"), alert=True)
        return
    if not await app.admins.is_admin(chat_id, uid):
        await _answer(query, ctx._("只有管理员可以使用这个按钮。"), alert=True)
        return
    cfg = await cfg_for(app, chat_id)
    core = await app.chat_config.chat(chat_id)
    _ = tr(app, core.language)
    if press.action == "sg":
        if press.arg.startswith("t") and int(press.arg[1:]) >= len(cfg.tiers):
            await _answer(query, _("无效的按钮。"), alert=True)
            return
        text, markup = await segment_page(app, chat_id, press.arg, press.page, cfg, core.tz, _)
        _edit(app, query, text, markup)
        await _answer(query)
    elif press.action == "cl":
        await _on_cleanup(app, query, press, uid, message, cfg, _)
    else:
        await _on_wakeup(app, query, press, chat_id, cfg, _)


async def _on_cleanup(app: App, query: CallbackQuery, press: Press, uid: int, message: Any, cfg: AnalyticsConfig,
                      _: Any) -> None:
    if press.arg == "n":
        status = await actions.cancel_cleanup(app, press.ident)
        if status == "cancelled":
            _edit(app, query, _("🧹 已取消清理。"))
        await _answer(query, _("已取消。") if status == "cancelled" else _("这次清理已经无法取消。"))
        return
    status = await actions.confirm_cleanup(app, press.ident, uid, message.chat.id, message.message_id, cfg)
    if status == "running":
        run = await actions.get_run(app, press.ident)
        n = len(run.targets) if run else 0
        who = await app.members.mention(uid)
        _edit(app, query, _("⏳ 正在移出 {n} 名成员（确认人 {who}）…完成后会在这里更新。").format(n=n, who=who))
        await _answer(query, _("开始清理。"))
        core = await app.chat_config.chat(run.chat_id if run else message.chat.id)
        log_chat = app.log_chat_for(core.log_chat_id)
        if log_chat is not None and run is not None:
            title = await report.chat_title(app, run.chat_id)
            app.send_text(log_chat, _("🧹 {who} 确认清理「{title}」的 {n} 名成员（{kind}，{days} 天）。").format(
                who=who, title=html.escape(title), n=n, kind=run.kind, days=run.days))
        return
    replies = {"busy": _("清理正在进行中。"), "done": _("这次清理已经完成。"), "cancelled": _("这次清理已取消。"),
               "expired": _("预览已过期，请重新发送 /cleanup。"), "missing": _("无效的按钮。")}
    if status == "expired":
        _edit(app, query, _("🧹 预览已过期，请重新发送 /cleanup。"))
    await _answer(query, replies.get(status, _("无效的按钮。")), alert=True)


async def _on_wakeup(app: App, query: CallbackQuery, press: Press, chat_id: int, cfg: AnalyticsConfig, _: Any) -> None:
    if press.arg == "x":
        _edit(app, query, _("😴 已取消唤醒。"))
        await _answer(query)
        return
    if press.arg == "m":
        n = await actions.wake_by_mention(app, chat_id, cfg)
        text = _("📣 已在群里提醒 {n} 名成员。").format(n=n) if n else _("😴 没有需要唤醒的成员了。")
    else:
        title = await report.chat_title(app, chat_id)
        n = await actions.wake_by_dm(app, chat_id, title, cfg)
        text = _("✉️ 已私信提醒 {n} 名成员。").format(n=n) if n else _("😴 没有可以私信唤醒的成员了。")
    _edit(app, query, text)
    await _answer(query)
    core = await app.chat_config.chat(chat_id)
    log_chat = app.log_chat_for(core.log_chat_id)
    if n and log_chat is not None:
        title = await report.chat_title(app, chat_id)
        app.send_text(log_chat, _("😴 {who} 在「{title}」唤醒了 {n} 名成员（{via}）。").format(
            who=await app.members.mention(query.from_user.id), title=html.escape(title), n=n,
            via=_("群内提醒") if press.arg == "m" else _("私信")))


async def _on_forget(app: App, query: CallbackQuery, ctx: Ctx, press: Press, uid: int) -> None:
    if press.ident != uid:
        await _answer(query, ctx._("这不是你的按钮。"), alert=True)
        return
    if press.arg == "n":
        _edit(app, query, ctx._("已取消，你的数据没有变化。"))
        await _answer(query)
        return
    done = await privacy.forget_user(app, uid)
    log.info("forgot user %s: %d day rows, %d ledger entries", uid, done.day_rows, done.ledger_rows)
    _edit(app, query, ctx._("✅ 已删除你的个人数据（统计 {days} 条，积分流水 {ledger} 条已匿名化）。").format(
        days=done.day_rows, ledger=done.ledger_rows))
    await _answer(query, ctx._("已删除。"))


def make_router() -> Router:
    router = Router(name=NAME)
    router.callback_query.register(on_button, is_ours)
    return router

