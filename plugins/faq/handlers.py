"""Commands, the FAQ responder (``FaqMatch`` filter + handler), the /stopall buttons, flush and jobs."""

from __future__ import annotations

import contextlib
import html
import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.commands import GROUP_TYPES
from bot.context import Ctx
from bot.plugin import UsageError
from bot.services.events import FaqAnswered, QuestionUnanswered
from plugins.faq import notes, service
from plugins.faq.answer import answer_source, send_answer
from plugins.faq.config import FaqConfig
from plugins.faq.matcher import REGEX_PREFIX, FaqError, Hit, match_form, prepare_pattern
from plugins.faq.parsing import (
    MODE_LABELS,
    extract_buttons,
    parse_keywords,
    prepare_entry,
)
from plugins.faq.runtime import MAX_GAP_CHARS, MIN_GAP_CHARS, FaqRuntime

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.app import App

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "faq:"
_CALLBACK_RE = re.compile(r"^faq:(sa|no):(-?\d{1,20}):(\d{1,20})$")
_HEAD_RE = re.compile(r"\S+")
LIST_BUDGET = 3500  # characters of /filters output before it is cut


def _rt(ctx: Ctx) -> FaqRuntime:
    rt = ctx.runtime
    assert isinstance(rt, FaqRuntime)
    return rt


def _error_text(ctx: Ctx, exc: FaqError) -> str:
    return ctx._(exc.message) + (html.escape(exc.detail) if exc.detail else "")


def _code_list(keywords: list[str]) -> str:
    return "、".join(f"<code>{html.escape(k)}</code>" for k in keywords)


# ---- the responder -------------------------------------------------------------------------------
class FaqMatch(Filter):
    """Passes ``faq_hit`` when a group message matches an entry that may be answered now.

    Cheap on the common non-matching message: a dict lookup for the chat's cached matcher, one
    normalization, one automaton pass (no DB, no await on I/O). A non-matching question is logged
    for /faqgaps here (an in-memory buffer), since the message then falls through to other routers.
    """

    async def __call__(self, message: Message, ctx: Ctx | None = None) -> bool | dict[str, Any]:
        if ctx is None or message.chat.type not in GROUP_TYPES:
            return False
        text = message.text or message.caption
        if not text or text[0] == "/":
            return False
        user = message.from_user
        sender_chat = message.sender_chat
        if user is None or (user.is_bot and sender_chat is None):
            return False
        cfg = ctx.cfg
        assert isinstance(cfg, FaqConfig)
        rt = _rt(ctx)
        chat_id = message.chat.id
        matcher = rt.cached(chat_id)
        if matcher is None:
            matcher = await rt.matcher(chat_id)
        form, normalized = rt.forms(text)
        hit = matcher.match(form, normalized, rt.word_bounds) if matcher.entries else None
        app = ctx.app
        if hit is None:
            if cfg.log_gaps and MIN_GAP_CHARS <= len(form) <= MAX_GAP_CHARS and app.nlp.is_question(text):
                if cfg.ignore_admins and await self._admin(ctx, message):
                    return False
                now = app.clock.now()
                rt.log_gap(chat_id, form, text, now)
                await app.events.emit(QuestionUnanswered(chat_id=chat_id, user_id=user.id, text=text, at=now))
            return False
        if cfg.cooldown and await rt.cooling(chat_id, hit.entry.id, app.clock.time(), cfg.cooldown):
            return False
        if cfg.ignore_admins and await self._admin(ctx, message):
            return False
        return {"faq_hit": hit}

    @staticmethod
    async def _admin(ctx: Ctx, message: Message) -> bool:
        sender_chat = message.sender_chat.id if message.sender_chat else None
        user_id = message.from_user.id if message.from_user else None
        return await ctx.app.admins.is_admin(message.chat.id, user_id, sender_chat)


async def on_faq_message(message: Message, ctx: Ctx, faq_hit: Hit) -> None:
    app = ctx.app
    rt = _rt(ctx)
    entry = faq_hit.entry
    chat_id = message.chat.id
    await rt.mark_answered(chat_id, entry.id, app.clock.time())
    send_answer(ctx, message, message.message_id, entry.reply_html, entry.buttons, entry.media_type,
                entry.media_file_id)
    now = app.clock.now()
    rt.count_hit(entry.id, now)
    user_id = message.from_user.id if message.from_user else 0
    await app.events.emit(FaqAnswered(chat_id=chat_id, user_id=user_id, entry_id=entry.id, at=now))


# ---- /filter -------------------------------------------------------------------------------------
async def cmd_filter(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    text = message.text or ""
    head = _HEAD_RE.match(text)
    raw = text[head.end():] if head else ""
    if not raw.strip():
        raise UsageError()
    try:
        spec = parse_keywords(raw)
    except FaqError as exc:
        raise UsageError(_error_text(ctx, exc)) from exc
    source = answer_source(message, (head.end() if head else 0) + spec.rest)
    if source is None:
        raise UsageError(html.escape(ctx._("请写上回复内容，或者回复一条消息再发送 /filter <关键词>。")))
    if source.empty:
        raise UsageError(ctx._("这条消息的类型不支持作为自动回复（支持文字、图片、视频、文件、动图、贴纸）。"))
    cfg = ctx.cfg
    assert isinstance(cfg, FaqConfig)
    rt = _rt(ctx)
    try:
        reply_html, inline_buttons = extract_buttons(source.reply_html)
        entry = prepare_entry(spec.keywords, spec.mode, reply_html, rt.normalize,
                              buttons=source.buttons + inline_buttons, media_type=source.media_type,
                              media_file_id=source.media_file_id)
        async with ctx.db() as session, session.begin():
            saved = await service.save_entry(session, ctx.chat_id, entry, by=ctx.user_id, now=ctx.now(),
                                             max_entries=cfg.max_entries, max_regex=cfg.max_regex)
    except FaqError as exc:
        ctx.reply(message, _error_text(ctx, exc))
        return
    rt.invalidate(ctx.chat_id)
    if entry.mode == "word":
        rt.warm_words()
    lead = ctx._("已添加自动回复（{mode}）：") if saved.created else ctx._("已更新自动回复（{mode}）：")
    ctx.reply(message, lead.replace("{mode}", ctx._(MODE_LABELS[entry.mode])) + _code_list(saved.keywords))


# ---- /stop, /stopall -----------------------------------------------------------------------------------
def _stop_candidates(rt: FaqRuntime, args: str) -> list[tuple[str, list[str]]]:
    spec = parse_keywords(args)
    keywords = spec.keywords
    stripped = args.strip()
    if spec.rest < len(args) and stripped[0] not in "\"“「＂『(（":
        # "/stop 怎么 退货" without quotes: the whole text is the keyword.
        keywords = [re.sub(r"^(contains|exact|word|regex|包含|精确|整词|正则|词)[:：]", "", stripped, flags=re.I)]
    out = []
    for kw in keywords:
        kw = kw.strip()
        norms = [match_form(rt.normalize(kw)), REGEX_PREFIX + prepare_pattern(kw, rt.normalize)]
        out.append((kw, [n for n in norms if n and n != REGEX_PREFIX]))
    return out


async def cmd_stop(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    if not ctx.args.strip():
        raise UsageError()
    rt = _rt(ctx)
    try:
        candidates = _stop_candidates(rt, ctx.args)
    except FaqError as exc:
        raise UsageError(_error_text(ctx, exc)) from exc
    async with ctx.db() as session, session.begin():
        results = await service.remove_keywords(session, ctx.chat_id, candidates, ctx.now())
    if any(r.removed for r in results):
        rt.invalidate(ctx.chat_id)
    lines = []
    for r in results:
        if not r.removed:
            lines.append(ctx._("没有这个关键词的自动回复：") + f"<code>{html.escape(r.keyword)}</code>"
                         + ctx._("（用 /filters 查看全部）"))
        elif r.remaining:
            lines.append(ctx._("已删除关键词") + f" <code>{html.escape(r.keyword)}</code>"
                         + ctx._("；这条回复还保留关键词：") + _code_list(r.remaining))
        else:
            lines.append(ctx._("已删除自动回复：") + f"<code>{html.escape(r.keyword)}</code>")
    ctx.reply(message, "\n".join(lines))


async def cmd_stopall(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    async with ctx.db() as session:
        entries = await service.list_entries(session, ctx.chat_id)
    if not entries:
        ctx.reply(message, ctx._("本群还没有自动回复。"))
        return
    # The group and the admin travel in the button (the prompt may sit in a DM after /connect).
    tail = f"{ctx.chat_id}:{ctx.user_id or 0}"
    markup = InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=ctx._("确认全部删除"), callback_data=f"{CALLBACK_PREFIX}sa:{tail}"),
        InlineKeyboardButton(text=ctx._("取消"), callback_data=f"{CALLBACK_PREFIX}no:{tail}"),
    ]])
    question = ctx._("确定要删除本群全部自动回复吗？共 {n} 条，删除后无法恢复。").replace("{n}", str(len(entries)))
    ctx.reply(message, question, reply_markup=markup)


class FaqCallback(Filter):
    async def __call__(self, query: CallbackQuery) -> bool:
        return bool(query.data and query.data.startswith(CALLBACK_PREFIX))


async def _answer(query: CallbackQuery, text: str, show_alert: bool = False) -> None:
    # A late tap ("query is too old") must not stop the action itself.
    with contextlib.suppress(TelegramAPIError):
        await query.answer(text, show_alert=show_alert)


async def _edit(app: App, msg: Message, text: str) -> None:
    with contextlib.suppress(TelegramAPIError):  # e.g. "message is not modified"
        await app.bot.edit_message_text(text=text, chat_id=msg.chat.id, message_id=msg.message_id)


async def on_callback(query: CallbackQuery, ctx: Ctx) -> None:
    m = _CALLBACK_RE.match(query.data or "")
    msg = query.message
    if m is None or not isinstance(msg, Message):
        await _answer(query, ctx._("无效的按钮。"))
        return
    action, chat_id, owner = m.group(1), int(m.group(2)), int(m.group(3))
    if msg.chat.type in GROUP_TYPES and msg.chat.id != chat_id:
        await _answer(query, ctx._("无效的按钮。"))  # a button copied from another group's prompt
        return
    app = ctx.app
    if query.from_user.id != owner or not await app.admins.is_admin(chat_id, query.from_user.id):
        await _answer(query, ctx._("只有发起的管理员可以确认。"), show_alert=True)
        return
    if action == "no":
        await _edit(app, msg, ctx._("已取消，自动回复没有改动。"))
        await _answer(query, ctx._("已取消"))
        return
    async with app.db() as session, session.begin():
        removed = await service.remove_all(session, chat_id, app.clock.now())
    _rt(ctx).invalidate(chat_id)
    text = (ctx._("已删除本群全部 {n} 条自动回复。").replace("{n}", str(removed)) if removed
            else ctx._("本群已经没有自动回复了。"))
    await _edit(app, msg, text)
    await _answer(query, ctx._("已删除"))


# ---- /filters, /faqgaps ----------------------------------------------------------------------------
async def cmd_filters(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    async with ctx.db() as session:
        entries = await service.list_entries(session, ctx.chat_id)
    if not entries:
        ctx.reply(message, html.escape(ctx._("本群还没有自动回复。管理员可以用 /filter <关键词> <回复> 添加。")))
        return
    rt = _rt(ctx)
    lines = [ctx._("本群的自动回复（共 {n} 条）：").replace("{n}", str(len(entries)))]
    size = len(lines[0])
    shown = 0
    for n, e in enumerate(entries, 1):
        hits = e.hits + rt.hits.get(e.id, (0, None))[0]
        extras = [ctx._(MODE_LABELS.get(e.mode, e.mode))]
        if e.media_type:
            extras.append(e.media_type)
        if e.buttons:
            extras.append(ctx._("按钮") + f"×{sum(len(r) for r in e.buttons)}")
        extras.append(ctx._("命中 {n} 次").replace("{n}", str(hits)))
        line = f"{n}. " + " / ".join(f"<code>{html.escape(k)}</code>" for k in e.keywords) + " · " + " · ".join(extras)
        if size + len(line) > LIST_BUDGET:
            break
        lines.append(line)
        size += len(line) + 1
        shown += 1
    if shown < len(entries):
        lines.append(ctx._("……还有 {n} 条没有显示（可用 qunbot faq export 导出全部）。").replace(
            "{n}", str(len(entries) - shown)))
    ctx.reply(message, "\n".join(lines))


async def cmd_faqgaps(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    rt = _rt(ctx)
    arg = ctx.args.strip().lower()
    if arg in ("clear", "清空"):
        async with ctx.db() as session, session.begin():
            await service.clear_gaps(session, ctx.chat_id)
        rt.drop_gaps(ctx.chat_id)
        ctx.reply(message, ctx._("已清空未回答问题的记录。"))
        return
    if arg:
        raise UsageError()
    cfg = ctx.cfg
    assert isinstance(cfg, FaqConfig)
    since = ctx.now() - timedelta(days=cfg.gaps_days)
    async with ctx.db() as session:
        rows = await service.top_gaps(session, ctx.chat_id, since, cfg.gaps_limit * 5)
    merged: dict[str, list[Any]] = {q: [c, s] for q, c, s in rows}
    for q, (c, s) in rt.pending_gaps(ctx.chat_id).items():
        if q in merged:
            merged[q][0] += c
        else:
            merged[q] = [c, s]
    matcher = await rt.matcher(ctx.chat_id)
    open_gaps = []
    for q, (count, sample) in merged.items():
        if matcher.entries and matcher.match(q, rt.normalize(sample), rt.word_bounds) is not None:
            continue  # answered by an entry added since
        open_gaps.append((count, q))
    open_gaps.sort(key=lambda t: (-t[0], t[1]))
    open_gaps = open_gaps[: cfg.gaps_limit]
    if not open_gaps:
        ctx.reply(message, ctx._("最近没有记录到没人回答的问题。"))
        return
    lines = [ctx._("最常见的未回答问题（近 {d} 天）：").replace("{d}", str(cfg.gaps_days))]
    for n, (count, q) in enumerate(open_gaps, 1):
        lines.append(f"{n}. {html.escape(q)} — " + ctx._("{n} 次").replace("{n}", str(count)))
    lines.append(html.escape(ctx._("用 /filter <关键词> <回复> 为它们添加自动回复。")))
    ctx.reply(message, "\n".join(lines))


# ---- wiring ---------------------------------------------------------------------------------------------
def make_router() -> Router:
    router = Router(name="faq")
    # "#name" first: a message asking for a note is not also an FAQ question.
    router.message.register(notes.on_note_request, notes.NoteRequest())
    router.message.register(on_faq_message, FaqMatch())
    router.callback_query.register(on_callback, FaqCallback())
    return router


async def flush(app: App, session: AsyncSession) -> None:
    rt = app.runtime("faq")
    if not isinstance(rt, FaqRuntime) or (not rt.hits and not rt.gaps):
        return
    hits, gaps = rt.take()
    try:
        await service.flush_hits(session, hits)
        await service.flush_gaps(session, gaps)
    except BaseException:
        rt.give_back(hits, gaps)
        raise


async def refresh_job(app: App) -> None:
    rt = app.runtime("faq")
    if isinstance(rt, FaqRuntime):
        await rt.refresh()


async def on_startup(app: App) -> None:
    rt = app.runtime("faq")
    if not isinstance(rt, FaqRuntime):
        return
    rt.listen()
    async with app.db() as session:
        if await service.any_word_entries(session):
            rt.warm_words()


async def on_shutdown(app: App) -> None:
    rt = app.runtime("faq")
    if isinstance(rt, FaqRuntime):
        await rt.wait_warm()

