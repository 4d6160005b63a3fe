"""Notes (Rose's /save, #name, /get, /notes, /clear): answers members ask for by name.

A note holds what an FAQ answer holds (formatted text, URL buttons, or a photo, video, file, GIF or
sticker) but is never matched on its own: it is sent when a message starts with ``#name`` or on
``/get name``, as a reply to the message the asker replied to (so an admin can answer a member with
``#发货`` under their question). Names are compared in normalized lower case (全角/半角, 繁/简), so
``#发货`` and ``#發貨`` are the same note. Each chat's notes are cached with its FAQ matcher and
dropped with it on every change (in every worker).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from aiogram.filters import Filter
from aiogram.types import Message

from bot.commands import GROUP_TYPES
from bot.context import Ctx
from bot.plugin import UsageError
from plugins.faq.answer import answer_source, send_answer
from plugins.faq.matcher import EXACT, FaqError
from plugins.faq.models import FaqChat, FaqNote
from plugins.faq.parsing import Buttons, extract_buttons, prepare_entry
from plugins.faq.service import bump_revision

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from plugins.faq.runtime import FaqRuntime

MAX_NAME_CHARS = 32
MAX_NOTES = 500  # per chat
LIST_BUDGET = 3500  # characters of /notes before it is cut (a message holds 4,096)
# A name: letters, digits, CJK and _ - (what Telegram's own #hashtags allow, plus the dash).
_NAME_RE = re.compile(r"[\w\-]{1,32}")
_ARGS_RE = re.compile(r"\S+\s+(\S+)")  # the command, then the name
_REQUEST_RE = re.compile(r"#([\w\-]{1,32})(?![\w\-])")  # "#name" opening a message


@dataclass(frozen=True, slots=True)
class NoteData:
    name: str
    reply_html: str
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()
    media_type: str | None = None
    media_file_id: str | None = None


def name_key(name: str, normalize: Any) -> str | None:
    """The lookup form of a note name, or None when it is no valid name."""
    name = name.strip().lstrip("#")
    if not _NAME_RE.fullmatch(name):
        return None
    return str(normalize(name)).lower()[:64] or None


# ---- storage -------------------------------------------------------------------------------------
async def load_notes(session: AsyncSession, chat_id: int) -> tuple[dict[str, NoteData], int]:
    """The chat's notes by lookup name, and the chat's FAQ revision (read together)."""
    revision = await session.scalar(sa.select(FaqChat.revision).where(FaqChat.chat_id == chat_id))
    rows = (await session.execute(sa.select(FaqNote).where(FaqNote.chat_id == chat_id))).scalars().all()
    return {r.name_key: NoteData(
        name=r.name, reply_html=r.reply_html,
        buttons=tuple(tuple((str(b["text"]), str(b["url"])) for b in row if isinstance(b, dict))
                      for row in r.buttons or () if row),
        media_type=r.media_type, media_file_id=r.media_file_id,
    ) for r in rows}, int(revision or 0)


async def save_note(session: AsyncSession, chat_id: int, key: str, name: str, reply_html: str, buttons: Buttons,
                    media_type: str | None, media_file_id: str | None, *, by: int | None, now: datetime) -> bool:
    """Create or replace a note; True when it is new. Raises FaqError past ``MAX_NOTES``.

    Bumps the chat's revision, so every worker's cache of it is renewed even without the invalidation
    message (and ``qunbot faq import`` reaches the running bot)."""
    await bump_revision(session, chat_id, now)
    row = await session.get(FaqNote, (chat_id, key))
    if row is None:
        count = await session.scalar(sa.select(sa.func.count()).select_from(FaqNote).where(FaqNote.chat_id == chat_id))
        if int(count or 0) >= MAX_NOTES:
            raise FaqError("本群笔记已达上限（500 条），请先用 /clear 删除一些。")
        session.add(FaqNote(chat_id=chat_id, name_key=key, name=name, reply_html=reply_html, buttons=buttons,
                            media_type=media_type, media_file_id=media_file_id, created_by=by, created_at=now,
                            updated_at=now))
        return True
    row.name, row.reply_html, row.buttons = name, reply_html, buttons
    row.media_type, row.media_file_id, row.updated_at = media_type, media_file_id, now
    return False


async def delete_note(session: AsyncSession, chat_id: int, key: str, now: datetime) -> bool:
    result = await session.execute(sa.delete(FaqNote).where(FaqNote.chat_id == chat_id, FaqNote.name_key == key))
    deleted = bool(getattr(result, "rowcount", 0))
    if deleted:
        await bump_revision(session, chat_id, now)
    return deleted


async def delete_all_notes(session: AsyncSession, chat_id: int) -> int:
    result = await session.execute(sa.delete(FaqNote).where(FaqNote.chat_id == chat_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def list_notes(session: AsyncSession, chat_id: int) -> list[FaqNote]:
    return list((await session.execute(
        sa.select(FaqNote).where(FaqNote.chat_id == chat_id).order_by(FaqNote.name_key))).scalars().all())


# ---- asking for a note ---------------------------------------------------------------------------
class NoteRequest(Filter):
    """Passes ``faq_note`` for a group message that starts with ``#name`` of a saved note."""

    async def __call__(self, message: Message, ctx: Ctx | None = None) -> bool | dict[str, Any]:
        text = message.text or message.caption
        if ctx is None or not text or text[0] != "#" or message.chat.type not in GROUP_TYPES:
            return False
        asked = _REQUEST_RE.match(text)
        if asked is None:
            return False
        note = await _lookup(ctx.runtime, message.chat.id, asked.group(1))
        return {"faq_note": note} if note is not None else False


async def _lookup(rt: FaqRuntime, chat_id: int, name: str) -> NoteData | None:
    key = name_key(name, rt.normalize)
    if key is None:
        return None
    return (await rt.notes(chat_id)).get(key)


async def on_note_request(message: Message, ctx: Ctx, faq_note: NoteData) -> None:
    # "#发货" under a member's question answers that member ({first} and the like are theirs too).
    target = message.reply_to_message or message
    send_answer(ctx, target, target.message_id, faq_note.reply_html, faq_note.buttons, faq_note.media_type,
                faq_note.media_file_id)


async def cmd_get(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    name = ctx.args.strip().split(maxsplit=1)[0] if ctx.args.strip() else ""
    if not name:
        raise UsageError()
    note = await _lookup(ctx.runtime, ctx.chat_id, name)
    if note is None:
        raise UsageError(ctx._("没有叫 {name} 的笔记，用 /notes 查看全部。").format(name=html.escape(name)))
    await on_note_request(message, ctx, note)


# ---- admins --------------------------------------------------------------------------------------
async def cmd_save(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    text = message.text or ""
    head = _ARGS_RE.match(text)
    if head is None:
        raise UsageError()
    rt: FaqRuntime = ctx.runtime
    name = head.group(1).lstrip("#")
    key = name_key(name, rt.normalize)
    if key is None:
        raise UsageError(ctx._("笔记名只能用文字、数字、_ 和 -，最多 32 个字符。"))
    source = answer_source(message, head.end())
    if source is None:
        raise UsageError(html.escape(ctx._("请写上笔记内容，或者回复一条消息再发送 /save <名字>。")))
    if source.empty:
        raise UsageError(ctx._("这条消息的类型不支持作为笔记（支持文字、图片、视频、文件、动图、贴纸）。"))
    try:
        reply_html, inline_buttons = extract_buttons(source.reply_html)
        # The same checks as an FAQ answer (length, HTML, buttons, media).
        entry = prepare_entry([name], EXACT, reply_html, rt.normalize, buttons=source.buttons + inline_buttons,
                              media_type=source.media_type, media_file_id=source.media_file_id)
        async with ctx.db() as session, session.begin():
            created = await save_note(session, ctx.chat_id, key, name, entry.reply_html, entry.buttons,
                                      entry.media_type, entry.media_file_id, by=ctx.user_id, now=ctx.now())
    except FaqError as exc:
        ctx.reply(message, ctx._(exc.message) + (html.escape(exc.detail) if exc.detail else ""))
        return
    rt.invalidate(ctx.chat_id)
    done = ctx._("已保存笔记 {name}，发送 #{name} 即可查看。") if created else ctx._("已更新笔记 {name}。")
    ctx.reply(message, done.format(name=html.escape(name)))


async def cmd_notes(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    notes = await ctx.runtime.notes(ctx.chat_id)
    if not notes:
        ctx.reply(message, html.escape(ctx._("本群还没有笔记。管理员可以用 /save <名字> <内容> 添加。")))
        return
    lines = [ctx._("本群的笔记（发送 #名字 查看）：")]
    names = sorted(n.name for n in notes.values())
    for shown, name in enumerate(names):
        if sum(len(line) for line in lines) > LIST_BUDGET:
            lines.append(ctx._("……还有 {n} 条").format(n=len(names) - shown))
            break
        lines.append(f"• <code>#{html.escape(name)}</code>")
    ctx.reply(message, "\n".join(lines))


async def cmd_clear(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    name = ctx.args.strip().split(maxsplit=1)[0] if ctx.args.strip() else ""
    rt: FaqRuntime = ctx.runtime
    key = name_key(name, rt.normalize) if name else None
    if key is None:
        raise UsageError()
    async with ctx.db() as session, session.begin():
        deleted = await delete_note(session, ctx.chat_id, key, ctx.now())
    if not deleted:
        ctx.reply(message, ctx._("没有叫 {name} 的笔记。").format(name=html.escape(name.lstrip("#"))))
        return
    rt.invalidate(ctx.chat_id)
    ctx.reply(message, ctx._("已删除笔记 {name}。").format(name=html.escape(name.lstrip("#"))))
