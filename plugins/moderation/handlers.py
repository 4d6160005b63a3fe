"""Commands, log-chat buttons, join events and timers of the moderation plugin."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.methods import PinChatMessage, UnpinAllChatMessages, UnpinChatMessage
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, TelegramObject

from bot.context import Ctx
from bot.dispatcher import is_service
from bot.plugin import N_, UsageError
from bot.services.events import MemberJoined, RaidModeChanged
from plugins.moderation import service
from plugins.moderation.config import LOCK_TYPES, RULE_KINDS
from plugins.moderation.enforce import (
    ACTION_LABELS,
    PLUGIN,
    UNDO_PREFIX,
    Case,
    ban,
    channel_label,
    delete_messages,
    enforce,
    excerpt_of,
    format_duration,
    journal,
    restrict,
    translator,
    unban,
    unban_sender_chat,
    unrestrict,
)
from plugins.moderation.guards import judge
from plugins.moderation.matcher import word_key
from plugins.moderation.models import ActionLog, Report
from plugins.moderation.parsing import Action, ParseError, looks_like_duration, parse_action, parse_duration

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from bot.app import App
    from bot.services.timers import TimerFire
    from plugins.moderation.config import ModerationConfig
    from plugins.moderation.runtime import ModerationRuntime

REPORT_PREFIX = "mod:r:"
RAID_TIMER = "raid_off"
LOCK_ALIASES: dict[str, str] = {
    **{t: t for t in LOCK_TYPES},
    "link": "links", "url": "links", "链接": "links", "网址": "links",
    "forward": "forwards", "转发": "forwards",
    "sticker": "stickers", "贴纸": "stickers", "表情包": "stickers",
    "gif": "gifs", "动图": "gifs",
    "photo": "media", "photos": "media", "媒体": "media", "图片": "media", "视频": "media", "文件": "media",
    "channels": "channel", "频道": "channel",
    "语音": "voice", "video_note": "voice", "poll": "polls", "投票": "polls",
    "contact": "contacts", "location": "contacts", "名片": "contacts", "位置": "contacts",
    "via": "inline", "内联": "inline", "game": "dice", "骰子": "dice",
}  # fmt: skip
LOCK_LABELS: dict[str, str] = {
    "links": N_("链接"), "forwards": N_("转发"), "stickers": N_("贴纸"), "gifs": N_("动图"),
    "media": N_("媒体（图片、视频、文件、语音）"), "channel": N_("以频道身份发言"),
    "voice": N_("语音和视频消息"), "polls": N_("投票"), "contacts": N_("名片和位置"),
    "inline": N_("内联机器人发的消息"), "dice": N_("骰子和小游戏"),
}  # fmt: skip
ACTION_TOKEN_RE = re.compile(r"^(?:action|动作)[=:：](.+)$", re.IGNORECASE)
WORD_SPLIT_RE = re.compile(r"[\s,，、;；]+")
MAX_WORD_CHARS = 100
ACTION_HELP = N_("动作不对：可用 delete、warn、mute、ban、kick，禁言和封禁可带时长，如 action=mute:1d。")


# ---- helpers -------------------------------------------------------------------------------------


def _cfg(ctx: Ctx) -> ModerationConfig:
    return ctx.cfg  # type: ignore[return-value]


def _rt(ctx: Ctx) -> ModerationRuntime:
    return ctx.runtime  # type: ignore[no-any-return]


def _chat(ctx: Ctx) -> int:
    if ctx.chat_id is None:
        raise UsageError(ctx._("这个命令请在群里使用。"))
    return ctx.chat_id


def _source(message: Message) -> str:
    return f"cmd:{message.chat.id}:{message.message_id}"


def action_label(action: Action, _: Any) -> str:
    base = {"warn": _("删除并警告"), "delete": _("删除"), "kick": _("删除并踢出")}.get(action.kind)
    if base is not None:
        return base
    label = _("删除并禁言") if action.kind == "mute" else _("删除并封禁")
    return f"{label} {format_duration(action.seconds, _)}"


@dataclass
class Target:
    user_id: int  # negative: a channel that posts in the group (only with ``channels=True``)
    rest: str
    replied: Message | None
    channel_title: str | None = None

    @property
    def is_channel(self) -> bool:
        return self.user_id < 0


CHANNEL_ID_PREFIX = "-100"


async def get_target(message: Message, ctx: Ctx, *, channels: bool = False) -> Target:
    """The member a command is about: the replied message's author, or @username / id as first argument.

    With ``channels`` (/ban, /unban), a message sent as a channel, or a ``-100…`` id, names the channel."""
    replied = message.reply_to_message if ctx.chat_id is not None and message.chat.id == ctx.chat_id else None
    if replied is not None:
        if is_service(replied):
            raise UsageError(ctx._("请回复成员发的普通消息，而不是系统消息。"))
        sender_chat = replied.sender_chat
        if sender_chat is not None and sender_chat.id != message.chat.id and sender_chat.type == "channel":
            if not channels:
                raise UsageError(ctx._("这条消息是以频道身份发的：频道只能用 /ban 封禁或 /unban 解除封禁。"))
            return Target(sender_chat.id, ctx.args.strip(), replied, sender_chat.title)
        if sender_chat is not None or replied.from_user is None:
            raise UsageError(ctx._("这条消息是以频道或匿名管理员身份发的，无法对其操作。"))
        uid, rest = replied.from_user.id, ctx.args
    else:
        token, _sep, rest = ctx.args.strip().partition(" ")
        if not token or not (token.startswith("@") or token.lstrip("-").isdigit()):
            raise UsageError()
        if channels and token.startswith(CHANNEL_ID_PREFIX) and token[1:].isdigit():
            return Target(int(token), rest.strip(), None)
        found = await ctx.app.members.resolve(token)
        if found is None:
            raise UsageError(ctx._("找不到用户 {name}：TA 需要先在群里发过言，或者改用数字 ID。")
                             .format(name=html.escape(token)))
        if found <= 0:
            raise UsageError(ctx._("用户 ID 不对。"))
        uid = found
    if uid == ctx.app.bot.id:
        raise UsageError(ctx._("不能对我自己执行这个操作。"))
    return Target(uid, rest.strip(), replied)


async def refuse_admin(ctx: Ctx, user_id: int) -> None:
    if await ctx.app.admins.is_admin(_chat(ctx), user_id):
        raise UsageError(ctx._("不能对管理员执行这个操作。"))


async def member_status(app: App, chat_id: int, user_id: int) -> str | None:
    """"member", "restricted", "left", "kicked"...; None when Telegram does not know the user."""
    try:
        member = await app.bot.get_chat_member(chat_id, user_id)
    except TelegramAPIError:
        return None
    status = str(getattr(member.status, "value", member.status))
    if status == "restricted" and not getattr(member, "is_member", True):
        return "left"
    return status


async def require_present(ctx: Ctx, user_id: int) -> str:
    status = await member_status(ctx.app, _chat(ctx), user_id)
    if status is None:
        raise UsageError(ctx._("找不到这个用户。"))
    if status in ("left", "kicked"):
        raise UsageError(ctx._("该用户已不在群里。"))
    return status


async def require_right(ctx: Ctx, right: str) -> None:
    if await ctx.app.admins.bot_can(_chat(ctx), right):
        return
    if right == "can_delete_messages":
        raise UsageError(ctx._("我没有「删除消息」权限，无法执行。请在群管理里把机器人设为管理员并打开该权限。"))
    if right == "can_pin_messages":
        raise UsageError(ctx._("我没有「置顶消息」权限，无法执行。请在群管理里把机器人设为管理员并打开该权限。"))
    raise UsageError(ctx._("我没有「封禁用户」权限，无法执行。请在群管理里把机器人设为管理员并打开该权限。"))


def split_duration(ctx: Ctx, rest: str) -> tuple[int | None, str]:
    """An optional leading duration, then the reason. A malformed duration is a usage error."""
    token, _sep, tail = rest.partition(" ")
    if not token or not looks_like_duration(token):
        return None, rest
    try:
        return int(parse_duration(token).total_seconds()), tail.strip()
    except ParseError as exc:
        if exc.code == "range":
            raise UsageError(ctx._("时长超出范围：最短 30 秒，最长 366 天。")) from None
        raise UsageError(ctx._("时长格式不对，例如 30s、10m、2h、1d、1w 或 10分钟、2小时、1天。")) from None


def _replied_excerpt(target: Target) -> str | None:
    if target.replied is None:
        return None
    return excerpt_of(target.replied.text or target.replied.caption)


def _manual_case(message: Message, ctx: Ctx, target: Target, action: Action, reason: str) -> Case:
    return Case(
        chat_id=_chat(ctx), user_id=None if target.is_channel else target.user_id, rule="manual", action=action,
        source=_source(message), reason=reason, actor_id=ctx.user_id, excerpt=_replied_excerpt(target),
        reply_to=message.message_id, announce_chat=message.chat.id, announce=True,
        chat_title=message.chat.title if message.chat.id == ctx.chat_id else None,
        sender_chat_id=target.user_id if target.is_channel else None, sender_chat_title=target.channel_title,
    )


# ---- manual actions ------------------------------------------------------------------------------


async def cmd_warn(message: Message, ctx: Ctx) -> None:
    target = await get_target(message, ctx)
    await refuse_admin(ctx, target.user_id)
    await require_present(ctx, target.user_id)
    await enforce(ctx.app, _manual_case(message, ctx, target, Action("warn"), target.rest))


async def cmd_mute(message: Message, ctx: Ctx) -> None:
    target = await get_target(message, ctx)
    await refuse_admin(ctx, target.user_id)
    seconds, reason = split_duration(ctx, target.rest)
    await require_right(ctx, "can_restrict_members")
    await require_present(ctx, target.user_id)
    await enforce(ctx.app, _manual_case(message, ctx, target, Action("mute", seconds), reason))


async def cmd_ban(message: Message, ctx: Ctx) -> None:
    target = await get_target(message, ctx, channels=True)
    if target.is_channel:
        if target.user_id == _chat(ctx):
            raise UsageError(ctx._("这是本群自己的 ID（匿名管理员以本群身份发言），不能封禁。"))
        seconds, reason = split_duration(ctx, target.rest)
        if seconds is not None:
            raise UsageError(ctx._("频道只能永久封禁，不能设时长。"))
        await require_right(ctx, "can_restrict_members")
        await enforce(ctx.app, _manual_case(message, ctx, target, Action("ban"), reason))
        return
    await refuse_admin(ctx, target.user_id)
    seconds, reason = split_duration(ctx, target.rest)
    await require_right(ctx, "can_restrict_members")
    if await member_status(ctx.app, _chat(ctx), target.user_id) is None:
        raise UsageError(ctx._("找不到这个用户。"))
    await enforce(ctx.app, _manual_case(message, ctx, target, Action("ban", seconds), reason))


async def cmd_kick(message: Message, ctx: Ctx) -> None:
    target = await get_target(message, ctx)
    await refuse_admin(ctx, target.user_id)
    await require_right(ctx, "can_restrict_members")
    await require_present(ctx, target.user_id)
    await enforce(ctx.app, _manual_case(message, ctx, target, Action("kick"), target.rest))


async def _lift(
    message: Message,
    ctx: Ctx,
    target: Target,
    *,
    action: str,
    from_status: str,
    not_in_status: str,
    lift: Callable[[App, int, int], Awaitable[bool]],
    icon: str,
    done: str,
    failed: str,
) -> None:
    """/unmute and /unban: check the member is in ``from_status``, journal once, lift, report."""
    chat_id = _chat(ctx)
    await require_right(ctx, "can_restrict_members")
    status = await member_status(ctx.app, chat_id, target.user_id)
    if status is None:
        raise UsageError(ctx._("找不到这个用户。"))
    if status != from_status:
        raise UsageError(not_in_status)
    if not await journal(ctx.app, chat_id=chat_id, user_id=target.user_id, action=action, rule="manual",
                         source=_source(message), actor_id=ctx.user_id, reason=target.rest):
        return
    ok = await lift(ctx.app, chat_id, target.user_id)
    who = await ctx.app.members.mention(target.user_id)
    ctx.reply(message, f"{icon} {who} " + (done if ok else failed))


async def cmd_unmute(message: Message, ctx: Ctx) -> None:
    await _lift(message, ctx, await get_target(message, ctx), action="unmute", from_status="restricted",
                not_in_status=ctx._("TA 现在没有被禁言。"), lift=unrestrict, icon="🔊", done=ctx._("已解除禁言。"),
                failed=ctx._("解除禁言失败。"))


async def cmd_unban(message: Message, ctx: Ctx) -> None:
    target = await get_target(message, ctx, channels=True)
    if target.is_channel:
        await _unban_channel(message, ctx, target)
        return
    await _lift(message, ctx, target, action="unban", from_status="kicked", not_in_status=ctx._("TA 现在没有被封禁。"),
                lift=unban, icon="✅", done=ctx._("已解除封禁，可以重新加入了。"), failed=ctx._("解除封禁失败。"))


async def _unban_channel(message: Message, ctx: Ctx, target: Target) -> None:
    chat_id = _chat(ctx)
    await require_right(ctx, "can_restrict_members")
    if not await journal(ctx.app, chat_id=chat_id, user_id=target.user_id, action="unban", rule="manual",
                         source=_source(message), actor_id=ctx.user_id, reason=target.rest):
        return
    ok = await unban_sender_chat(ctx.app, chat_id, target.user_id)
    who = channel_label(target.user_id, target.channel_title, ctx._)
    ctx.reply(message, f"✅ {who} " + (ctx._("已解除封禁，可以重新发言了。") if ok else ctx._("解除封禁失败。")))


async def cmd_warns(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    target = await get_target(message, ctx)
    cfg = _cfg(ctx)
    async with ctx.db() as s:
        warns = await service.active_warns(s, chat_id, target.user_id, ctx.now())
    who = await ctx.app.members.mention(target.user_id)
    if not warns:
        ctx.reply(message, f"{who} " + ctx._("目前没有有效的警告。"))
        return
    lines = [f"{who} " + ctx._("有 {n} 次有效警告（上限 {m}）：").format(n=len(warns), m=len(cfg.ladder))]
    for i, w in enumerate(warns, 1):
        when = w.created_at.astimezone(ctx.tz).strftime("%m-%d %H:%M")
        rule = ctx._(_rule_name(w.rule))
        reason = f" — {html.escape(w.reason)}" if w.reason else ""
        expires = ""
        if w.expires_at is not None:
            expires = " · " + ctx._("到期") + " " + w.expires_at.astimezone(ctx.tz).strftime("%m-%d")
        lines.append(f"{i}. {when} {rule}{reason}{expires}")
    ctx.reply(message, "\n".join(lines))


def _rule_name(rule: str) -> str:
    from plugins.moderation.enforce import RULE_LABELS

    return RULE_LABELS.get(rule, rule)


async def cmd_rmwarn(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    target = await get_target(message, ctx)
    async with ctx.db() as s:
        count = await service.count_active(s, chat_id, target.user_id, ctx.now())
    who = await ctx.app.members.mention(target.user_id)
    if count == 0:
        ctx.reply(message, f"{who} " + ctx._("目前没有有效的警告。"))
        return
    if not await journal(ctx.app, chat_id=chat_id, user_id=target.user_id, action="rmwarn", rule="manual",
                         source=_source(message), actor_id=ctx.user_id, reason=target.rest):
        return
    async with ctx.db() as s, s.begin():
        await service.revoke_latest(s, chat_id, target.user_id, ctx.user_id, ctx.now())
    ctx.reply(message, "↩️ " + ctx._("已撤销 {who} 最近的一次警告（剩余 {n}/{m}）。").format(
        who=who, n=count - 1, m=len(_cfg(ctx).ladder)))


async def cmd_resetwarns(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    target = await get_target(message, ctx)
    who = await ctx.app.members.mention(target.user_id)
    if not await journal(ctx.app, chat_id=chat_id, user_id=target.user_id, action="resetwarns", rule="manual",
                         source=_source(message), actor_id=ctx.user_id, reason=target.rest):
        return
    async with ctx.db() as s, s.begin():
        n = await service.revoke_all(s, chat_id, target.user_id, ctx.user_id, ctx.now())
    ctx.reply(message, "↩️ " + ctx._("已清空 {who} 的 {n} 次警告。").format(who=who, n=n))


async def cmd_del(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    replied = message.reply_to_message if message.chat.id == chat_id else None
    if replied is None:
        raise UsageError()
    await require_right(ctx, "can_delete_messages")
    user_id = replied.from_user.id if replied.from_user and replied.sender_chat is None else None
    if not await journal(ctx.app, chat_id=chat_id, user_id=user_id, action="delete", rule="manual",
                         source=_source(message), actor_id=ctx.user_id, reason=ctx.args,
                         excerpt=excerpt_of(replied.text or replied.caption), chat_title=message.chat.title):
        return
    delete_messages(ctx.app, chat_id, [replied.message_id, message.message_id])


PURGE_LIMIT = 1000  # messages per /purge (ten deleteMessages calls)
LOUD = frozenset({"loud", "notify", "通知", "提醒"})


def _replied_here(message: Message, ctx: Ctx) -> Message:
    """The replied message of a command that must be used by replying in the group itself."""
    replied = message.reply_to_message if message.chat.id == _chat(ctx) else None
    if replied is None:
        raise UsageError()
    return replied


async def cmd_purge(message: Message, ctx: Ctx) -> None:
    """Rose's /purge: delete every message from the replied one up to the command itself."""
    chat_id = _chat(ctx)
    replied = _replied_here(message, ctx)
    count = message.message_id - replied.message_id + 1
    if count > PURGE_LIMIT:
        raise UsageError(ctx._("一次最多清理 {n} 条消息，请回复更近的一条。").format(n=PURGE_LIMIT))
    await require_right(ctx, "can_delete_messages")
    done = ctx._("已清理 {n} 条消息。").format(n=count)
    if not await journal(ctx.app, chat_id=chat_id, user_id=None, action="purge", rule="manual",
                         source=_source(message), actor_id=ctx.user_id, reason=ctx.args.strip(),
                         chat_title=message.chat.title, extra=done):
        return
    # Message ids of a group are consecutive: the range is every message in between, whoever sent it.
    delete_messages(ctx.app, chat_id, range(replied.message_id, message.message_id + 1))
    ctx.app.send_text(chat_id, f"🧹 {done}", delete_after=ctx.chat.notice_ttl or None)


async def cmd_pin(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    replied = _replied_here(message, ctx)
    option = ctx.args.strip().lower()
    if option and option not in LOUD:
        raise UsageError()
    await require_right(ctx, "can_pin_messages")
    if not await journal(ctx.app, chat_id=chat_id, user_id=None, action="pin", rule="manual",
                         source=_source(message), actor_id=ctx.user_id,
                         excerpt=excerpt_of(replied.text or replied.caption), chat_title=message.chat.title):
        return
    pinned = await ctx.app.call(chat_id, PinChatMessage(chat_id=chat_id, message_id=replied.message_id,
                                                         disable_notification=option not in LOUD))
    if pinned is None:
        ctx.reply(message, "⚠️ " + ctx._("置顶失败（消息可能已被删除）。"), notice=True)


async def cmd_unpin(message: Message, ctx: Ctx) -> None:
    """Unpin the replied message, else the latest pin; ``/unpin all`` unpins everything."""
    chat_id = _chat(ctx)
    option = ctx.args.strip().lower()
    if option not in ("", "all", "全部"):
        raise UsageError()
    replied = message.reply_to_message if message.chat.id == chat_id else None
    await require_right(ctx, "can_pin_messages")
    if not await journal(ctx.app, chat_id=chat_id, user_id=None, action="unpin", rule="manual",
                         source=_source(message), actor_id=ctx.user_id, chat_title=message.chat.title):
        return
    if option:
        method: Any = UnpinAllChatMessages(chat_id=chat_id)
        done = ctx._("已取消全部置顶。")
    elif replied is not None:
        method = UnpinChatMessage(chat_id=chat_id, message_id=replied.message_id)
        done = ctx._("已取消置顶。")
    else:
        method = UnpinChatMessage(chat_id=chat_id)
        done = ctx._("已取消最近的置顶。")
    ok = await ctx.app.call(chat_id, method) is not None
    ctx.reply(message, f"📌 {done}" if ok else "⚠️ " + ctx._("取消置顶失败（那条消息可能没有置顶）。"), notice=True)


# ---- banned words --------------------------------------------------------------------------------


def _parse_words(ctx: Ctx) -> tuple[list[str], Action | None]:
    words: list[str] = []
    action: Action | None = None
    for token in WORD_SPLIT_RE.split(ctx.args.strip()):
        if not token:
            continue
        m = ACTION_TOKEN_RE.match(token)
        if m is not None:
            try:
                action = parse_action(m.group(1), allowed=RULE_KINDS)
            except ParseError:
                raise UsageError(ctx._(ACTION_HELP)) from None
            continue
        if token not in words:
            words.append(token)
    return words, action


async def _reload_words(ctx: Ctx, chat_id: int) -> None:
    async with ctx.db() as s:
        pairs = await service.word_pairs(s, chat_id)
    rt = _rt(ctx)
    rt.set_chat_words(chat_id, pairs)
    rt.publish(f"words:{chat_id}")


async def cmd_addblacklist(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    cfg = _cfg(ctx)
    words, action = _parse_words(ctx)
    if not words:
        raise UsageError()
    action = action or parse_action(cfg.blacklist_action, allowed=RULE_KINDS)
    normalizer = _rt(ctx).normalizer
    pairs: list[tuple[str, str]] = []
    invalid: list[str] = []
    seen: set[str] = set()
    for word in words:
        key = word_key(normalizer, word) if len(word) <= MAX_WORD_CHARS else ""
        if not key:
            invalid.append(word)
            continue
        if key not in seen:
            seen.add(key)
            pairs.append((word, key))
    async with ctx.db() as s, s.begin():
        change = await service.add_words(s, chat_id, pairs, str(action), ctx.user_id, ctx.now(),
                                         cfg.blacklist_max_words)
    await _reload_words(ctx, chat_id)
    esc = lambda items: "、".join(html.escape(w) for w in items[:50]) + ("…" if len(items) > 50 else "")  # noqa: E731
    lines = []
    if change.added:
        lines.append("✅ " + ctx._("已添加 {n} 个违禁词（{action}）：").format(
            n=len(change.added), action=action_label(action, ctx._)) + esc(change.added))
    if change.existing:
        lines.append(ctx._("已在黑名单中（动作已更新）：") + esc(change.existing))
    if change.over_limit:
        lines.append("⚠️ " + ctx._("黑名单已满（上限 {max} 个），未添加：").format(max=cfg.blacklist_max_words)
                     + esc(change.over_limit))
    if invalid:
        lines.append("⚠️ " + ctx._("无效（太长或为空）：") + esc(invalid))
    ctx.reply(message, "\n".join(lines) or ctx._("没有添加任何词。"))


async def cmd_rmblacklist(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    words, _action = _parse_words(ctx)
    if not words:
        raise UsageError()
    normalizer = _rt(ctx).normalizer
    keys = {}
    for w in words:
        key = word_key(normalizer, w)
        if key:
            keys[key] = w
    async with ctx.db() as s, s.begin():
        present = await service.word_keys(s, chat_id, keys)
        removed = [k for k in keys if k in present]
        await service.remove_words(s, chat_id, removed)
    await _reload_words(ctx, chat_id)
    missing = [w for k, w in keys.items() if k not in present]
    lines = []
    if removed:
        lines.append("✅ " + ctx._("已删除 {n} 个违禁词。").format(n=len(removed)))
    if missing:
        lines.append(ctx._("不在本群黑名单中：") + "、".join(html.escape(w) for w in missing[:50]))
    ctx.reply(message, "\n".join(lines) or ctx._("没有删除任何词。"))


async def cmd_blacklist(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    cfg = _cfg(ctx)
    rt = _rt(ctx)
    await rt.ensure_loaded()
    entries = rt.words.get(chat_id, [])
    lines = ["<b>" + ctx._("本群违禁词") + f"</b>（{len(entries)}）"]
    if not cfg.blacklist_enabled:
        lines.append("⛔ " + ctx._("违禁词检查在本群已关闭。"))
    size = 0
    for i, e in enumerate(entries):
        line = f"• {html.escape(e.word)} — {action_label(e.action, ctx._)}"
        size += len(line)
        if size > 3000:
            lines.append(ctx._("…还有 {n} 个未显示。").format(n=len(entries) - i))
            break
        lines.append(line)
    if not entries:
        lines.append(ctx._("（空）用 /addblacklist 词1 词2 添加。"))
    if cfg.blacklist_words:
        lines.append(ctx._("另有配置文件中的 {n} 个词。").format(n=len(cfg.blacklist_words)))
    if cfg.blacklist_file:
        lines.append(ctx._("另有运营词库文件：") + f"<code>{html.escape(cfg.blacklist_file)}</code>")
    if cfg.blacklist_pinyin:
        lines.append(ctx._("拼音匹配：开"))
    ctx.reply(message, "\n".join(lines))


# ---- approvals -----------------------------------------------------------------------------------


async def cmd_approve(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    target = await get_target(message, ctx)
    async with ctx.db() as s, s.begin():
        added = await service.approve(s, chat_id, target.user_id, ctx.user_id, ctx.now())
    rt = _rt(ctx)
    await rt.ensure_loaded()
    rt.approved.setdefault(chat_id, set()).add(target.user_id)
    who = await ctx.app.members.mention(target.user_id)
    if not added:
        ctx.reply(message, f"{who} " + ctx._("已经是信任成员。"))
        return
    rt.publish(f"approved:{chat_id}")
    await journal(ctx.app, chat_id=chat_id, user_id=target.user_id, action="approve", rule="manual",
                  source=_source(message), actor_id=ctx.user_id)
    ctx.reply(message, "🤝 " + ctx._("{who} 已设为信任成员：不受防刷屏、防广告和锁定限制。").format(who=who))


async def cmd_unapprove(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    target = await get_target(message, ctx)
    async with ctx.db() as s, s.begin():
        removed = await service.unapprove(s, chat_id, target.user_id)
    rt = _rt(ctx)
    await rt.ensure_loaded()
    rt.approved.get(chat_id, set()).discard(target.user_id)
    who = await ctx.app.members.mention(target.user_id)
    if not removed:
        ctx.reply(message, f"{who} " + ctx._("不是信任成员。"))
        return
    rt.publish(f"approved:{chat_id}")
    await journal(ctx.app, chat_id=chat_id, user_id=target.user_id, action="unapprove", rule="manual",
                  source=_source(message), actor_id=ctx.user_id)
    ctx.reply(message, "🤝 " + ctx._("{who} 已不再是信任成员。").format(who=who))


async def cmd_approved(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    async with ctx.db() as s:
        ids = sorted(await service.approved_ids(s, chat_id))
    if not ids:
        ctx.reply(message, ctx._("本群还没有信任成员。用 /approve 回复某人的消息来添加。"))
        return
    names = [await ctx.app.members.mention(uid) for uid in ids[:100]]
    more = "\n" + ctx._("…还有 {n} 人。").format(n=len(ids) - 100) if len(ids) > 100 else ""
    ctx.reply(message, "<b>" + ctx._("信任成员") + f"</b>（{len(ids)}）\n" + "\n".join(f"• {n}" for n in names) + more)


# ---- raids ---------------------------------------------------------------------------------------


async def start_raid(app: App, chat_id: int, *, by: int | None, seconds: int, chat_title: str | None = None) -> Any:
    rt: ModerationRuntime = app.runtime(PLUGIN)
    now = app.clock.now()
    until = now + timedelta(seconds=seconds)
    async with rt.raid_lock(chat_id):
        async with app.db() as s, s.begin():
            await service.set_raid(s, chat_id, now, until, by)
        await rt.store_raid(chat_id, until)
    await app.timers.schedule(f"moderation:raid:{chat_id}:{int(until.timestamp())}", f"{PLUGIN}.{RAID_TIMER}",
                              until, chat_id=chat_id, payload={"until": until.timestamp()})
    await app.events.emit(RaidModeChanged(chat_id=chat_id, on=True, until=until))
    chat = await app.chat_config.chat(chat_id)
    cfg: ModerationConfig = await app.chat_config.get(chat_id, PLUGIN)  # type: ignore[assignment]
    _ = translator(app, chat)
    local = until.astimezone(chat.tz).strftime("%H:%M")
    how = _("禁言到防突袭结束") if cfg.raid_action == "mute" else _("临时封禁 {d}").format(
        d=format_duration(cfg.raid_ban_minutes * 60, _))
    app.send_text(chat_id, "🚨 " + _("防突袭模式已开启，至 {t}：新加入的成员将被{how}。").format(t=local, how=how))
    reason = _("短时间内大量成员加入") if by is None else _("管理员手动开启")
    await journal(app, chat_id=chat_id, user_id=None, action="raid_on", rule="raid",
                  source=f"raid_on:{int(now.timestamp())}", actor_id=by, reason=reason, chat_title=chat_title,
                  extra=_("结束时间") + "：" + until.astimezone(chat.tz).strftime("%Y-%m-%d %H:%M"))
    return until


async def end_raid(app: App, chat_id: int, *, by: int | None) -> bool:
    rt: ModerationRuntime = app.runtime(PLUGIN)
    await rt.raid_state(chat_id)  # compared with the database once, before taking the lock
    async with rt.raid_lock(chat_id):
        until = await rt.raid_value(chat_id)
        if until is None:
            return False  # already off (maybe turned off by another worker a moment ago)
        caught = await rt.raid_caught(chat_id, until)
        await rt.store_raid(chat_id, None)
        await rt.windows.reset_joins(chat_id)
        async with app.db() as s, s.begin():
            await service.clear_raid(s, chat_id)
    await app.events.emit(RaidModeChanged(chat_id=chat_id, on=False, until=None))
    chat = await app.chat_config.chat(chat_id)
    _ = translator(app, chat)
    app.send_text(chat_id, "🟢 " + _("防突袭模式已关闭。"))
    now = app.clock.now()
    await journal(app, chat_id=chat_id, user_id=None, action="raid_off", rule="raid",
                  source=f"raid_off:{int(now.timestamp())}", actor_id=by,
                  extra=_("期间处理的新成员") + f"：{caught}")
    return True


async def on_raid_timer(app: App, fire: TimerFire) -> None:
    rt: ModerationRuntime = app.runtime(PLUGIN)
    await rt.ensure_loaded()
    chat_id = fire.chat_id
    if chat_id is None:
        return
    until = await rt.raid_state(chat_id)
    if until is None or abs(until.timestamp() - float(fire.payload.get("until", 0))) > 1:
        return  # turned off by hand, or extended (a later timer ends it)
    await end_raid(app, chat_id, by=None)


async def cmd_raid(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    rt = _rt(ctx)
    await rt.ensure_loaded()
    cfg = _cfg(ctx)
    arg, _sep, rest = ctx.args.strip().partition(" ")
    arg = arg.lower()
    until = await rt.raid_until(chat_id, ctx.now())
    if not arg:
        state = ctx._("关闭")
        if until is not None:
            state = ctx._("开启，至") + " " + until.astimezone(ctx.tz).strftime("%Y-%m-%d %H:%M")
        ctx.reply(message, ctx._("防突袭模式：") + state + "\n" + ctx._("自动触发：{n} 秒内超过 {m} 人加入。").format(
            n=int(cfg.raid_seconds), m=cfg.raid_joins) + "\n" + ctx._("用法：/raid on [时长] 或 /raid off"))
        return
    if arg in ("on", "开", "开启"):
        seconds = cfg.raid_minutes * 60
        if rest.strip():
            try:
                seconds = int(parse_duration(rest.strip()).total_seconds())
            except ParseError:
                raise UsageError(ctx._("时长格式不对，例如 30m、2h 或 30分钟。")) from None
        await start_raid(ctx.app, chat_id, by=ctx.user_id, seconds=seconds, chat_title=message.chat.title)
        return
    if arg in ("off", "关", "关闭"):
        if not await end_raid(ctx.app, chat_id, by=ctx.user_id):
            ctx.reply(message, ctx._("防突袭模式本来就是关闭的。"))
        return
    raise UsageError()


async def on_member_joined(app: App, event: MemberJoined) -> None:
    chat_id = event.chat_id
    if chat_id is None or event.user_id == app.bot.id:
        return
    rt: ModerationRuntime = app.runtime(PLUGIN)
    await rt.ensure_loaded()
    await rt.note_join(chat_id, event.user_id, event.at)
    cfg: ModerationConfig = await app.chat_config.get(chat_id, PLUGIN)  # type: ignore[assignment]
    if await app.admins.is_admin(chat_id, event.user_id):
        return
    stamp = event.update_id if event.update_id is not None else int(event.at.timestamp())
    if cfg.gban_enforce and event.user_id in rt.gbans:
        chat = await app.chat_config.chat(chat_id)
        await enforce(app, Case(chat_id=chat_id, user_id=event.user_id, rule="gban", action=Action("ban"),
                                source=f"gban:join:{event.user_id}:{stamp}", chat_title=event.chat_title,
                                reason=translator(app, chat)("全网封禁名单")))
        return
    now = app.clock.now()
    tripped = cfg.raid_enabled and await rt.windows.join(chat_id, app.clock.time(), cfg.raid_joins,
                                                          cfg.raid_seconds)
    until = await rt.raid_until(chat_id, now)
    if until is None and tripped:
        until = await start_raid(app, chat_id, by=None, seconds=cfg.raid_minutes * 60, chat_title=event.chat_title)
    if until is None:
        return
    if not await app.admins.bot_can(chat_id, "can_restrict_members"):
        from plugins.moderation.enforce import note_missing_right

        await note_missing_right(app, chat_id, "can_restrict_members")
        return
    if cfg.raid_action == "ban":
        await ban(app, chat_id, event.user_id, now + timedelta(minutes=cfg.raid_ban_minutes))
    else:
        await restrict(app, chat_id, event.user_id, until)
    await rt.count_raid_join(chat_id, until)


# ---- locks ---------------------------------------------------------------------------------------


def _lock_type(ctx: Ctx, token: str) -> str:
    lock = LOCK_ALIASES.get(token.lower())
    if lock is None:
        raise UsageError(ctx._("没有这种锁：{t}。可用：{all}").format(t=html.escape(token), all=", ".join(LOCK_TYPES)))
    return lock


async def cmd_lock(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    token, _sep, rest = ctx.args.strip().partition(" ")
    if not token:
        raise UsageError()
    lock = _lock_type(ctx, token)
    action = Action("delete")
    if rest.strip():
        try:
            action = parse_action(rest.strip(), allowed=RULE_KINDS)
        except ParseError:
            raise UsageError(ctx._("动作不对：可用 delete、warn、mute 1h、ban、kick。")) from None
    locks = dict(_cfg(ctx).locks)
    locks[lock] = str(action)
    await ctx.app.chat_config.update(chat_id, PLUGIN, {"locks": locks}, by=ctx.user_id)
    ctx.reply(message, "🔒 " + ctx._("已锁定{what}：{action}。").format(
        what=ctx._(LOCK_LABELS[lock]), action=action_label(action, ctx._)))


async def cmd_unlock(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    token = ctx.args.strip().split(" ")[0]
    if not token:
        raise UsageError()
    lock = _lock_type(ctx, token)
    locks = dict(_cfg(ctx).locks)
    if lock not in locks:
        ctx.reply(message, ctx._("{what}本来就没有锁定。").format(what=ctx._(LOCK_LABELS[lock])))
        return
    del locks[lock]
    await ctx.app.chat_config.update(chat_id, PLUGIN, {"locks": locks}, by=ctx.user_id)
    ctx.reply(message, "🔓 " + ctx._("已解锁{what}。").format(what=ctx._(LOCK_LABELS[lock])))


async def cmd_locks(message: Message, ctx: Ctx) -> None:
    locks = _cfg(ctx).locks
    lines = ["<b>" + ctx._("本群锁定") + "</b>"]
    for lock in LOCK_TYPES:
        spec = locks.get(lock)
        if spec is None:
            lines.append(f"🔓 {ctx._(LOCK_LABELS[lock])} (<code>{lock}</code>)")
        else:
            try:
                label = action_label(parse_action(spec, allowed=RULE_KINDS), ctx._)
            except ParseError:
                label = spec
            lines.append(f"🔒 {ctx._(LOCK_LABELS[lock])} (<code>{lock}</code>) — {label}")
    lines.append(ctx._("用法：/lock 类型 [动作]，/unlock 类型"))
    ctx.reply(message, "\n".join(lines))


# ---- reports -------------------------------------------------------------------------------------


def message_link(chat_id: int, username: str | None, message_id: int) -> str:
    if username:
        return f"https://t.me/{username}/{message_id}"
    raw = str(chat_id)
    internal = raw[4:] if raw.startswith("-100") else raw.lstrip("-")
    return f"https://t.me/c/{internal}/{message_id}"


def report_markup(chat_id: int, user_id: int, report_id: int, _: Any) -> InlineKeyboardMarkup:
    base = f"{REPORT_PREFIX}{chat_id}:{user_id}:{report_id}:"
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text="⚠️ " + _("警告"), callback_data=base + "w"),
         InlineKeyboardButton(text="🔇 " + _("禁言1天"), callback_data=base + "m"),
         InlineKeyboardButton(text="⛔ " + _("封禁"), callback_data=base + "b")],
        [InlineKeyboardButton(text=_("忽略"), callback_data=base + "d")],
    ])


async def cmd_report(message: Message, ctx: Ctx) -> None:
    chat_id = _chat(ctx)
    cfg = _cfg(ctx)
    if not cfg.reports_enabled:
        ctx.reply(message, ctx._("本群没有开启举报功能。"), notice=True)
        return
    replied = message.reply_to_message
    reporter = ctx.user_id
    if replied is None or reporter is None:
        raise UsageError()
    if is_service(replied):
        raise UsageError(ctx._("请回复要举报的那条消息（系统消息不能举报）。"))
    if replied.sender_chat is not None or replied.from_user is None:
        raise UsageError(ctx._("以频道或匿名身份发的消息无法举报，请直接联系管理员。"))
    target = replied.from_user.id
    if target == ctx.app.bot.id:
        raise UsageError(ctx._("不能举报机器人自己的消息。"))
    if target == reporter:
        raise UsageError(ctx._("不能举报自己。"))
    if await ctx.is_admin(target):
        ctx.reply(message, ctx._("管理员的消息不能举报。"), notice=True)
        return
    now = ctx.now()
    excerpt = excerpt_of(replied.text or replied.caption)
    async with ctx.db() as s, s.begin():
        existing = await service.find_report(s, chat_id, replied.message_id, reporter)
        if existing is not None:
            if existing.command_message_id == message.message_id:
                return  # the same /report delivered again
            ctx.reply(message, ctx._("你已经举报过这条消息了，管理员会处理。"), notice=True)
            return
        recent = await service.reports_since(s, chat_id, reporter, now - timedelta(hours=1))
        if recent >= cfg.report_limit_per_hour:
            ctx.reply(message, ctx._("你一小时内的举报次数已达上限（{n} 次），请稍后再试。").format(
                n=cfg.report_limit_per_hour), notice=True)
            return
        report = Report(chat_id=chat_id, message_id=replied.message_id, reporter_id=reporter, target_id=target,
                        command_message_id=message.message_id, excerpt=excerpt, created_at=now, status="open")
        s.add(report)
        await s.flush()
        report_id = report.id
    log_chat = ctx.app.log_chat_for(ctx.chat.log_chat_id) or chat_id
    link = message_link(chat_id, message.chat.username, replied.message_id)
    title = html.escape(message.chat.title or "")
    lines = [
        f"📣 <b>{ctx._('举报')}</b> · {title} (<code>{chat_id}</code>)",
        f"{ctx._('举报人')}：{await ctx.app.members.mention(reporter)}",
        f"{ctx._('被举报')}：{await ctx.app.members.mention(target)} (<code>{target}</code>)",
    ]
    if excerpt:
        lines.append(f"{ctx._('摘录')}：<i>{html.escape(excerpt)}</i>")
    lines.append(f"{ctx._('链接')}：{link}")
    ctx.app.send_text(log_chat, "\n".join(lines), reply_markup=report_markup(chat_id, target, report_id, ctx._))
    ctx.reply(message, "✅ " + ctx._("已通知管理员，谢谢你的举报。"), notice=True)


# ---- network bans --------------------------------------------------------------------------------


async def _gban_target(message: Message, ctx: Ctx) -> Target:
    target = await get_target(message, ctx)
    if ctx.app.admins.is_owner(target.user_id):
        raise UsageError(ctx._("不能对机器人的所有者执行这个操作。"))
    return target


async def _network_chats(app: App) -> list[int]:
    async with app.db() as s:
        return await service.managed_chats(s, app.chat_config.configured_chats())


async def cmd_gban(message: Message, ctx: Ctx) -> None:
    target = await _gban_target(message, ctx)
    app = ctx.app
    rt = _rt(ctx)
    await rt.ensure_loaded()
    async with ctx.db() as s, s.begin():
        added = await service.add_gban(s, target.user_id, target.rest or None, ctx.user_id, ctx.now())
    rt.gbans.add(target.user_id)
    who = await app.members.mention(target.user_id)
    if not added:
        ctx.reply(message, f"{who} " + ctx._("已在全网封禁名单中。"))
        return
    rt.publish("gbans")
    chats = await _network_chats(app)
    results = await asyncio.gather(*(_gban_one(app, c, target.user_id) for c in chats))
    done = sum(1 for r in results if r)
    ctx.reply(message, "🌐 " + ctx._("已全网封禁 {who}：在 {n}/{m} 个群执行，之后加入任何群都会被封禁。").format(
        who=who, n=done, m=len(chats)))
    await _log_network(app, "gban", target.user_id, ctx.user_id, target.rest, done, len(chats))


async def _gban_one(app: App, chat_id: int, user_id: int) -> bool:
    if await app.admins.is_admin(chat_id, user_id):
        return False
    if not await app.admins.bot_can(chat_id, "can_restrict_members"):
        return False
    return await ban(app, chat_id, user_id, None)


async def cmd_ungban(message: Message, ctx: Ctx) -> None:
    target = await get_target(message, ctx)
    app = ctx.app
    rt = _rt(ctx)
    await rt.ensure_loaded()
    async with ctx.db() as s, s.begin():
        removed = await service.remove_gban(s, target.user_id)
    rt.gbans.discard(target.user_id)
    who = await app.members.mention(target.user_id)
    if not removed:
        ctx.reply(message, f"{who} " + ctx._("不在全网封禁名单中。"))
        return
    rt.publish("gbans")
    chats = await _network_chats(app)

    async def one(chat_id: int) -> bool:
        if not await app.admins.bot_can(chat_id, "can_restrict_members"):
            return False
        return await unban(app, chat_id, target.user_id)

    done = sum(1 for r in await asyncio.gather(*(one(c) for c in chats)) if r)
    ctx.reply(message, "🌐 " + ctx._("已解除 {who} 的全网封禁（{n}/{m} 个群）。").format(who=who, n=done, m=len(chats)))
    await _log_network(app, "ungban", target.user_id, ctx.user_id, target.rest, done, len(chats))


async def _log_network(app: App, action: str, user_id: int, actor_id: int | None, reason: str, done: int,
                       total: int) -> None:
    log_chat = app.settings.bot.log_chat_id
    if log_chat is None:
        return
    chat = await app.chat_config.chat(log_chat)
    _ = translator(app, chat)
    lines = [
        f"🌐 <b>{_(ACTION_LABELS[action])}</b>",
        f"{_('对象')}：{await app.members.mention(user_id)} (<code>{user_id}</code>)",
        f"{_('执行')}：{await app.members.mention(actor_id) if actor_id else _('自动规则')}",
        f"{_('群数')}：{done}/{total}",
    ]
    if reason:
        lines.append(f"{_('原因')}：{html.escape(reason)}")
    app.send_text(log_chat, "\n".join(lines), disable_notification=True)


# ---- log chat buttons ----------------------------------------------------------------------------


class ModButton(Filter):
    """Async filter for this plugin's callback data (no sync F filter on the hot path)."""

    async def __call__(self, event: TelegramObject) -> bool:
        return isinstance(event, CallbackQuery) and bool(event.data) and event.data.startswith("mod:")


async def _append_to_card(app: App, query: CallbackQuery, line: str) -> None:
    msg = query.message
    if not isinstance(msg, Message):
        return
    base = msg.html_text if (msg.text or msg.caption) else ""
    with contextlib.suppress(TelegramAPIError):
        await app.bot.edit_message_text(text=(base + "\n" + line)[:4096], chat_id=msg.chat.id,
                                        message_id=msg.message_id, reply_markup=None)


async def on_button(query: CallbackQuery, ctx: Ctx) -> None:
    data = query.data or ""
    ctx.app.members.touch(query.from_user, None, ctx.now(), spoke=False)  # so the log names the presser
    try:
        if data.startswith(UNDO_PREFIX):
            await _on_undo(query, ctx, data[len(UNDO_PREFIX):])
        elif data.startswith(REPORT_PREFIX):
            await _on_report_button(query, ctx, data[len(REPORT_PREFIX):])
        else:
            await query.answer(ctx._("无效的按钮。"))
    except TelegramAPIError:
        pass


async def _on_undo(query: CallbackQuery, ctx: Ctx, raw: str) -> None:
    app = ctx.app
    if not raw.isdigit():
        await query.answer(ctx._("无效的按钮。"))
        return
    async with app.db() as s:
        row = await s.get(ActionLog, int(raw))
    if row is None:
        await query.answer(ctx._("找不到这条记录。"))
        return
    presser = query.from_user.id
    if not await app.admins.is_admin(row.chat_id, presser):
        await query.answer(ctx._("只有该群的管理员可以撤销。"), show_alert=True)
        return
    now = app.clock.now()
    async with app.db() as s, s.begin():
        claimed = await service.claim_undo(s, row.id, presser, now)
        if claimed and row.warn_id is not None:
            await service.revoke_warn(s, row.warn_id, presser, now)
    if not claimed:
        await query.answer(ctx._("已经撤销过了。"), show_alert=True)
        return
    ok = True
    if row.user_id is not None and row.user_id < 0:
        if row.action == "ban":  # a channel (see enforce)
            ok = await unban_sender_chat(app, row.chat_id, row.user_id)
    elif row.user_id is not None:
        if row.action == "mute":
            ok = await unrestrict(app, row.chat_id, row.user_id)
        elif row.action == "ban":
            ok = await unban(app, row.chat_id, row.user_id)
    chat = await app.chat_config.chat(row.chat_id)
    _ = translator(app, chat)
    label = {"mute": _("解除禁言"), "ban": _("解除封禁")}.get(row.action, _("撤销警告"))
    who = await app.members.mention(presser)
    await _append_to_card(app, query, f"↩️ {who} {_('已撤销')}：{label}" + ("" if ok else " ⚠️"))
    await query.answer(_("已撤销。"))


async def _on_report_button(query: CallbackQuery, ctx: Ctx, raw: str) -> None:
    app = ctx.app
    parts = raw.split(":")
    if len(parts) != 4 or parts[3] not in ("w", "m", "b", "d") or not all(
        p.lstrip("-").isdigit() for p in parts[:3]
    ):
        await query.answer(ctx._("无效的按钮。"))
        return
    chat_id, user_id, report_id, op = int(parts[0]), int(parts[1]), int(parts[2]), parts[3]
    presser = query.from_user.id
    if not await app.admins.is_admin(chat_id, presser):
        await query.answer(ctx._("只有被举报群的管理员可以处理。"), show_alert=True)
        return
    async with app.db() as s:
        report = await s.get(Report, report_id)
    if report is None or report.chat_id != chat_id or report.target_id != user_id:
        await query.answer(ctx._("找不到这条举报。"))
        return
    status = {"w": "warn", "m": "mute", "b": "ban", "d": "dismissed"}[op]
    if op != "d" and await app.admins.is_admin(chat_id, user_id):
        await query.answer(ctx._("对方是管理员，无法处理。"), show_alert=True)
        return
    async with app.db() as s, s.begin():
        claimed = await service.claim_report(s, report_id, status, presser, app.clock.now())
    if not claimed:
        await query.answer(ctx._("这条举报已经处理过了。"), show_alert=True)
        return
    chat = await app.chat_config.chat(chat_id)
    _ = translator(app, chat)
    if op != "d":
        action = {"w": Action("warn"), "m": Action("mute", 86400), "b": Action("ban")}[op]
        await enforce(app, Case(
            chat_id=chat_id, user_id=user_id, rule="report", action=action, source=f"report:{report_id}",
            reason=_("举报属实"), actor_id=presser, excerpt=report.excerpt, delete_ids=[report.message_id],
        ))
    label = {"w": _("警告"), "m": _("禁言1天"), "b": _("封禁"), "d": _("忽略")}[op]
    who = await app.members.mention(presser)
    await _append_to_card(app, query, f"✅ {who} {_('已处理')}：{label}")
    await query.answer(_("已处理。"))


class EditedViolation(Filter):
    """An edited group message that now breaks a rule (banned word, lock, newcomer spam).

    A filter rather than a catch-all handler, so edits that break nothing fall through to other plugins.
    """

    async def __call__(self, event: TelegramObject, ctx: Ctx | None = None) -> bool | dict[str, Any]:
        if ctx is None or not isinstance(event, Message) or event.chat.type not in ("group", "supergroup"):
            return False
        cases = await judge(event, ctx, edited=True)
        return {"cases": cases} if cases else False


async def on_edited(message: Message, ctx: Ctx, cases: list[Case]) -> None:
    for case in cases:
        await enforce(ctx.app, case)


def make_router() -> Router:
    router = Router(name=PLUGIN)
    router.callback_query.register(on_button, ModButton())
    router.edited_message.register(on_edited, EditedViolation())
    return router


# ---- lifecycle -----------------------------------------------------------------------------------


async def on_startup(app: App) -> None:
    rt: ModerationRuntime = app.runtime(PLUGIN)
    await rt.load()
