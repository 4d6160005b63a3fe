"""/schedule: add | list | agenda | preview | pause | resume | rm | reload (admins; reload: owners)."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from aiogram.enums import ChatType
from aiogram.types import Message

from bot.context import Ctx
from bot.plugin import N_, UsageError
from plugins.content_calendar import service as svc
from plugins.content_calendar.entries import Entry, compile_entry, summarize
from plugins.content_calendar.jobs import TIMER_PREFIX, WEEKDAYS, CalendarRuntime, build_method, describe
from plugins.content_calendar.when import normalize

USAGE = N_(
    "/schedule add 时间 [#标签] [置顶] [静音] [删除=24h] | 内容\n"
    "例如：/schedule add 每天 20:00 | 晚安，今天是{weekday}\n"
    "/schedule list · agenda [天数] · preview 编号 · pause 编号 · resume 编号 · rm 编号 · reload"
)
BUTTON_RE = re.compile(r"\[([^\[\]]{1,64})\]\(((?:https?|tg)://[^\s()]+)\)")
BUTTON_LINE_RE = re.compile(r"^\s*(?:\[[^\[\]]{1,64}\]\((?:https?|tg)://[^\s()]+\)\s*)+$")
PIN_WORDS = frozenset({"置顶", "pin"})
SILENT_WORDS = frozenset({"静音", "silent"})
STATUS_ICON = MappingProxyType(
    {"sent": "✅", "failed": "❌", "held": "⏸", "skipped": "⏭", "dropped": "🗑", "retry": "🔁", "sending": "📤"}
)
MAX_AGENDA_DAYS = 60


def _rt(ctx: Ctx) -> CalendarRuntime:
    rt = ctx.runtime
    assert isinstance(rt, CalendarRuntime)
    return rt


def fmt_local(dt: datetime, ctx: Ctx) -> str:
    local = dt.astimezone(ctx.tz)
    return f"{local:%Y-%m-%d} {ctx._(WEEKDAYS[local.weekday()])} {local:%H:%M}"


# ---- /schedule add parsing ----------------------------------------------------------------------------
@dataclasses.dataclass
class AddRequest:
    when: str
    text: str
    tags: list[str]
    pin: bool = False
    silent: bool = False
    delete_after_hours: float | None = None
    series: str | None = None
    photo: str | None = None
    video: str | None = None
    buttons: list[list[dict[str, str]]] = dataclasses.field(default_factory=list)


def split_pipe(text: str) -> tuple[str, str] | None:
    m = re.search(r"[|｜]", text)
    if m is None:
        return None
    return text[: m.start()], text[m.end():]


def parse_add(args_plain: str, content_html: str, now_local: datetime) -> AddRequest:
    """Split ``时间 [选项…] | 内容``; ``content_html`` is the part after the pipe with Telegram formatting."""
    parts = split_pipe(args_plain)
    if parts is None:
        raise ValueError("缺少 |：时间和内容之间用 | 分开")
    left = normalize(parts[0])
    tags: list[str] = []
    words: list[str] = []
    req = AddRequest(when="", text="", tags=tags)
    for token in left.split(" "):
        low = token.lower()
        if not token:
            continue
        if token.startswith("#") and len(token) > 1:
            tags.append(token[1:])
        elif low in PIN_WORDS:
            req.pin = True
        elif low in SILENT_WORDS:
            req.silent = True
        elif m := re.fullmatch(r"(?:删除|delete)=?(\d+(?:\.\d+)?)(h|小时)?", low):
            req.delete_after_hours = float(m[1])
        elif m := re.fullmatch(r"(?:系列|series)=(\S+)", token):
            req.series = m[1]
        elif m := re.fullmatch(r"(?:图片|photo)=(\S+)", token):
            req.photo = m[1]
        elif m := re.fullmatch(r"(?:视频|video)=(\S+)", token):
            req.video = m[1]
        else:
            words.append(token)
    when = " ".join(words)
    # 今天/明天/后天 become the date, so the stored entry means the same thing tomorrow.
    rel = re.match(r"^(今天|明天|后天)\s*", when)
    if rel:
        days = {"今天": 0, "明天": 1, "后天": 2}[rel[1]]
        when = f"{(now_local + timedelta(days=days)).date().isoformat()} {when[rel.end():]}".strip()
    req.when = when
    lines = content_html.strip().split("\n")
    while lines and BUTTON_LINE_RE.match(html.unescape(lines[-1])):
        row = [{"text": html.unescape(t).strip(), "url": html.unescape(u)}
               for t, u in BUTTON_RE.findall(html.unescape(lines.pop()))]
        req.buttons.insert(0, row)
    req.text = "\n".join(lines).strip()
    return req


def _media_of(message: Message) -> tuple[str | None, str | None, str]:
    reply = message.reply_to_message
    if reply is None:
        return None, None, ""
    caption = reply.html_text if (reply.caption or reply.text) else ""
    if reply.photo:
        return reply.photo[-1].file_id, None, caption
    if reply.video:
        return None, reply.video.file_id, caption
    return None, None, ""


def _content_html(message: Message, ctx: Ctx) -> str:
    """The text after the first pipe, keeping the admin's Telegram formatting as HTML."""
    try:
        source = message.html_text
    except Exception:
        source = html.escape(message.text or "")
    parts = split_pipe(source)
    return parts[1] if parts else ""


async def _add(message: Message, ctx: Ctx, rest: str) -> None:
    rt = _rt(ctx)
    assert ctx.chat_id is not None
    if split_pipe(rest) is None:
        raise UsageError(ctx._("用法：/schedule add 时间 | 内容，例如 /schedule add 每天 20:00 | 晚安"))
    try:
        req = parse_add(rest, _content_html(message, ctx), ctx.local_now())
    except ValueError as exc:
        raise UsageError(ctx._(str(exc))) from None
    photo, video, caption = _media_of(message)
    req.photo = req.photo or photo
    req.video = req.video or video
    text = req.text or caption
    key = f"chat-{abs(ctx.chat_id)}-{message.message_id}"
    if message.chat.id != ctx.chat_id:  # sent from a DM after /connect: message ids are per chat
        key = f"chat-{abs(ctx.chat_id)}-u{abs(message.chat.id)}-{message.message_id}"
    spec: dict[str, Any] = {"id": key, "when": req.when, "text": text, "chats": [ctx.chat_id], "tags": req.tags}
    for name in ("pin", "silent"):
        if getattr(req, name):
            spec[name] = True
    for name in ("delete_after_hours", "series", "photo", "video"):
        if getattr(req, name) is not None:
            spec[name] = getattr(req, name)
    if req.buttons:
        spec["buttons"] = req.buttons
    check = dataclasses.replace(
        rt.checker(past_is_error=True, require_targets=False, check_chat_tags=False), default_tz=ctx.tz
    )
    entry, problems = compile_entry(spec, check, source="chat", owner_chat_id=ctx.chat_id, label=req.when or "?")
    if entry is None:
        lines = [html.escape(p.text(ctx._)) for p in problems if p.level == "error"]
        ctx.reply(message, ctx._("没有添加：") + "\n" + "\n".join(f"• {line}" for line in lines), notice=True)
        return
    async with ctx.db() as s, s.begin():
        row, _created = await svc.add_chat_entry(s, key, ctx.chat_id, dict(entry.raw), ctx.user_id, ctx.now())
    compiled = rt.compile_row(row) or entry
    occ = await rt.arm(compiled, ctx.chat_id)
    nxt = fmt_local(occ.local, ctx) if occ else ctx._("（没有下一次）")
    ctx.reply(
        message,
        ctx._("已添加 #{id}：{when}\n下次发布：{next}\n预览：/schedule preview {id}").format(
            id=row.id, when=html.escape(entry.when.text), next=nxt
        ),
    )


# ---- looking entries up -------------------------------------------------------------------------------
async def _resolve(ctx: Ctx, ref: str) -> Entry:
    rt = _rt(ctx)
    ref = ref.strip().split(" ")[0].lstrip("#") if ref.strip() else ""
    if not ref:
        raise UsageError(ctx._("请给出条目编号，例如 /schedule pause 12（编号见 /schedule list）"))
    async with ctx.db() as s:
        if ref.isdigit() and len(ref) < 12:
            row = await svc.entry_by_id(s, int(ref))
        else:
            row = await svc.entry_row(s, ref)
    entry = rt.compile_row(row) if row is not None and row.active else None
    if entry is None or ctx.chat_id not in rt.targets(entry):
        raise UsageError(ctx._("本群没有这个条目：{ref}（见 /schedule list）").format(ref=html.escape(ref[:48])))
    return entry


def _label(entry: Entry) -> str:
    return f"#{entry.db_id} <code>{html.escape(entry.key)}</code>"


async def _list(message: Message, ctx: Ctx, rest: str) -> None:
    rt = _rt(ctx)
    assert ctx.chat_id is not None
    entries = await rt.entries_for(ctx.chat_id)
    if not entries:
        ctx.reply(message, ctx._("本群还没有定时内容。添加：/schedule add 每天 20:00 | 内容"))
        return
    async with ctx.db() as s:
        paused = await svc.paused_keys(s, ctx.chat_id)
        recent = await svc.recent(s, ctx.chat_id, 5)
    lines = ["<b>" + ctx._("本群的定时内容") + "</b>"]
    for entry in entries[:40]:
        state = ""
        if entry.key in paused:
            state = " · ⏸ " + ctx._("已暂停")
            nxt = None
        elif not entry.enabled:
            state = " · " + ctx._("已停用")
            nxt = None
        else:
            nxt = await rt.next_occurrence(entry, ctx.chat_id)
        tags = " ".join(f"#{html.escape(t)}" for t in entry.tags)
        source = ctx._("文件") if entry.source == "file" else ctx._("群内")
        when = html.escape(entry.when.text)
        line = f"{_label(entry)} · {when} · {source}{(' · ' + tags) if tags else ''}{state}"
        if nxt is not None:
            line += "\n    " + ctx._("下次") + ": " + fmt_local(nxt.local, ctx)
        lines.append(line)
    if len(entries) > 40:
        lines.append(ctx._("……共 {n} 条").format(n=len(entries)))
    if recent:
        lines.append("<b>" + ctx._("最近") + "</b>")
        for occ in recent:
            icon = STATUS_ICON.get(occ.status, occ.status)
            lines.append(f"{icon} <code>{html.escape(occ.entry_key)}</code> {html.escape(occ.slot)}"
                         + (f" — {html.escape((occ.error or '')[:80])}" if occ.status in ("failed", "skipped") else ""))
    ctx.reply(message, "\n".join(lines))


async def _agenda(message: Message, ctx: Ctx, rest: str) -> None:
    rt = _rt(ctx)
    assert ctx.chat_id is not None
    days = 7
    if rest.strip():
        if not rest.strip().isdigit() or not 1 <= int(rest.strip()) <= MAX_AGENDA_DAYS:
            raise UsageError(ctx._("天数应为 1-{max}，例如 /schedule agenda 14").format(max=MAX_AGENDA_DAYS))
        days = int(rest.strip())
    items = await rt.chat_agenda(ctx.chat_id, days)
    if not items:
        ctx.reply(message, ctx._("接下来 {days} 天没有安排。").format(days=days))
        return
    lines = ["<b>" + ctx._("接下来 {days} 天的安排").format(days=days) + "</b>"]
    for item in items[:60]:
        fest = f" · {html.escape(item.occurrence.festival.name)}" if item.occurrence.festival else ""
        lines.append(f"{fmt_local(item.local, ctx)} · {_label(item.entry)}{fest}")
    ctx.reply(message, "\n".join(lines))


async def _rm(message: Message, ctx: Ctx, rest: str) -> None:
    entry = await _resolve(ctx, rest)
    if entry.source == "file" or entry.owner_chat_id != ctx.chat_id:
        raise UsageError(ctx._("{entry} 来自日历文件，不能在群里删除；可以用 /schedule pause 暂停本群的发布。").format(
            entry=_label(entry)))
    async with ctx.db() as s, s.begin():
        await svc.deactivate(s, entry.key, ctx.now())
    await ctx.app.timers.cancel_prefix(f"{TIMER_PREFIX}{entry.key}:")
    ctx.reply(message, ctx._("已删除 {entry}。").format(entry=_label(entry)))


async def _pause(message: Message, ctx: Ctx, rest: str) -> None:
    entry = await _resolve(ctx, rest)
    assert ctx.chat_id is not None
    async with ctx.db() as s, s.begin():
        await svc.pause(s, entry.key, ctx.chat_id, ctx.user_id, ctx.now())
    await _rt(ctx).arm(entry, ctx.chat_id)  # paused: cancels the armed timer
    ctx.reply(message, ctx._("已暂停本群的 {entry}。恢复：/schedule resume {id}").format(
        entry=_label(entry), id=entry.db_id))


async def _resume(message: Message, ctx: Ctx, rest: str) -> None:
    entry = await _resolve(ctx, rest)
    assert ctx.chat_id is not None
    async with ctx.db() as s, s.begin():
        await svc.resume(s, entry.key, ctx.chat_id)
    occ = await _rt(ctx).arm(entry, ctx.chat_id)
    nxt = fmt_local(occ.local, ctx) if occ else ctx._("（没有下一次）")
    ctx.reply(message, ctx._("已恢复 {entry}，下次发布：{next}").format(entry=_label(entry), next=nxt))


async def _preview(message: Message, ctx: Ctx, rest: str) -> None:
    rt = _rt(ctx)
    entry = await _resolve(ctx, rest)
    assert ctx.chat_id is not None
    occ = await rt.next_occurrence(entry, ctx.chat_id)
    if occ is None:
        ctx.reply(message, ctx._("{entry} 没有下一次发布。").format(entry=_label(entry)), notice=True)
        return
    cfg = await rt.cfg(ctx.chat_id)
    values = await rt.values(entry, ctx.chat_id, occ, ctx.chat.language, cfg, ctx.tz)
    from plugins.content_calendar.entries import render

    body = render(entry.text, values)
    flags = [ctx._("置顶") if entry.pin else "", ctx._("静音") if entry.silent else "",
             ctx._("{h} 小时后删除").format(h=f"{entry.delete_after_hours:g}") if entry.delete_after_hours else ""]
    flags_s = " · ".join(f for f in flags if f)
    header = ctx._("👀 预览（不会发到群里）{entry}\n下次：{next}").format(
        entry=_label(entry), next=fmt_local(occ.local, ctx))
    if flags_s:
        header += f" · {flags_s}"
    text = f"{header}\n\n{body}"
    private = message.chat.type == ChatType.PRIVATE
    dest = message.chat.id if private else (ctx.user_id if ctx.user_id and await ctx.app.members.has_started(
        ctx.user_id) else None)
    if dest is not None:
        _result, error = await rt.call(dest, build_method(entry, dest, text, silent=True))
        if error is None:
            if not private:
                ctx.reply(message, ctx._("预览已私信发给你。"), notice=True)
            return
        if private:
            ctx.reply(message, ctx._("预览发送失败：{reason}").format(reason=html.escape(describe(error))))
            return
    # The admin has not started the bot: answer here, as a reply marked as a preview (never pinned).
    _result, error = await rt.call(
        message.chat.id, build_method(entry, message.chat.id, text, silent=True, reply_to=message.message_id)
    )
    if error is not None:
        ctx.reply(message, ctx._("预览发送失败：{reason}").format(reason=html.escape(describe(error))), notice=True)


async def _reload(message: Message, ctx: Ctx, rest: str) -> None:
    rt = _rt(ctx)
    if not ctx.app.admins.is_owner(ctx.user_id):
        ctx.reply(message, ctx._("只有机器人的所有者可以重新加载日历文件。"), notice=True)
        return
    result = await rt.load_file()
    if result is None:
        ctx.reply(message, ctx._("没有配置日历文件（[plugins.content_calendar] calendar_file）。"), notice=True)
        return
    problems = [html.escape(line) for line in summarize(result.problems[:20], ctx._)]
    if not result.ok:
        await rt.notify_load(result)
        ctx.reply(message, ctx._("日历文件有 {n} 个错误，未加载（仍使用上次的版本）：").format(n=len(result.errors))
                  + "\n" + "\n".join(f"• {p}" for p in problems))
        return
    armed = await rt.arm_all()
    text = ctx._("已重新加载日历：{n} 条，已安排 {armed} 次发布。").format(n=len(result.entries), armed=armed)
    if problems:
        text += "\n" + "\n".join(f"• {p}" for p in problems)
    ctx.reply(message, text)


SUBCOMMANDS: Mapping[str, Any] = MappingProxyType({
    "add": _add, "添加": _add,
    "list": _list, "ls": _list, "列表": _list,
    "agenda": _agenda, "日程": _agenda,
    "rm": _rm, "remove": _rm, "del": _rm, "删除": _rm,
    "pause": _pause, "暂停": _pause,
    "resume": _resume, "恢复": _resume,
    "preview": _preview, "预览": _preview,
    "reload": _reload, "重新加载": _reload,
})


async def cmd_schedule(message: Message, ctx: Ctx) -> None:
    m = re.match(r"\s*(\S+)\s*(.*)", ctx.args or "", re.S)
    if m is None:
        raise UsageError()
    handler = SUBCOMMANDS.get(m[1].lower())
    if handler is None:
        raise UsageError()
    await handler(message, ctx, m[2])
