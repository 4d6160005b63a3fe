"""Carrying out penalties: the one path every manual command and automatic rule goes through.

``enforce(app, case)`` deletes what must go, counts the warn on the ladder (in one transaction, keyed
by the case's source so a redelivered update does nothing twice), applies the resulting Telegram
effect, deducts points, emits ``PenaltyApplied``, announces in the group and logs to the log chat with
an undo button where undo makes sense.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiogram.methods import (
    BanChatMember,
    BanChatSenderChat,
    DeleteMessage,
    DeleteMessages,
    RestrictChatMember,
    UnbanChatMember,
    UnbanChatSenderChat,
)
from aiogram.types import ChatPermissions, InlineKeyboardButton, InlineKeyboardMarkup

from bot.plugin import N_
from bot.services.events import PenaltyApplied
from bot.services.points import InsufficientPoints
from plugins.moderation import service
from plugins.moderation.models import ActionLog
from plugins.moderation.parsing import Action

if TYPE_CHECKING:
    from bot.app import App
    from bot.chat_config import CoreChatConfig
    from plugins.moderation.config import ModerationConfig
    from plugins.moderation.runtime import ModerationRuntime

log = logging.getLogger(__name__)

PLUGIN = "moderation"
UNDO_PREFIX = "mod:u:"
EXCERPT_CHARS = 200

MUTED = ChatPermissions(**{name: False for name in ChatPermissions.model_fields})
UNMUTED = ChatPermissions(**{name: True for name in ChatPermissions.model_fields})

ACTION_LABELS: dict[str, str] = {
    "notice": N_("警告"), "warn": N_("警告"), "delete": N_("删除消息"), "mute": N_("禁言"), "ban": N_("封禁"),
    "kick": N_("踢出"), "unmute": N_("解除禁言"), "unban": N_("解除封禁"), "rmwarn": N_("撤销警告"),
    "resetwarns": N_("清空警告"), "gban": N_("全网封禁"), "ungban": N_("解除全网封禁"),
    "raid_on": N_("开启防突袭"), "raid_off": N_("关闭防突袭"), "approve": N_("设为信任成员"),
    "unapprove": N_("取消信任成员"), "purge": N_("清理消息"), "pin": N_("置顶"), "unpin": N_("取消置顶"),
}  # fmt: skip
ACTION_ICONS: dict[str, str] = {
    "notice": "⚠️", "warn": "⚠️", "delete": "🧹", "mute": "🔇", "ban": "⛔", "kick": "👢", "unmute": "🔊",
    "unban": "✅", "rmwarn": "↩️", "resetwarns": "↩️", "gban": "🌐", "ungban": "🌐", "raid_on": "🚨",
    "raid_off": "🟢", "approve": "🤝", "unapprove": "🤝", "purge": "🧹", "pin": "📌", "unpin": "📌",
}  # fmt: skip
RULE_LABELS: dict[str, str] = {
    "manual": N_("管理员操作"), "blacklist": N_("违禁词"), "flood": N_("刷屏"), "spam": N_("新成员发广告"),
    "wave": N_("群发广告"), "report": N_("举报"), "raid": N_("防突袭"), "gban": N_("全网封禁"),
    "lock:links": N_("锁定：链接"), "lock:forwards": N_("锁定：转发"), "lock:stickers": N_("锁定：贴纸"),
    "lock:gifs": N_("锁定：动图"), "lock:media": N_("锁定：媒体"), "lock:channel": N_("锁定：频道身份发言"),
    "lock:voice": N_("锁定：语音"), "lock:polls": N_("锁定：投票"), "lock:contacts": N_("锁定：名片和位置"),
    "lock:inline": N_("锁定：内联机器人"), "lock:dice": N_("锁定：骰子"),
}  # fmt: skip


@dataclass
class Case:
    """One penalty to carry out. ``source`` is unique per chat (message, command, button...)."""

    chat_id: int
    user_id: int | None  # None: a message sent as a channel (deletion, or a ban of the channel)
    rule: str
    action: Action  # delete | warn (ladder) | mute | ban | kick (direct)
    source: str
    reason: str = ""
    actor_id: int | None = None  # None: an automatic rule
    excerpt: str | None = None
    detail: str = ""  # shown in the log chat only (e.g. the banned word that matched)
    delete_ids: Sequence[int] = ()
    add_warn: bool = False  # a direct action that also counts on the ladder
    chat_title: str | None = None
    reply_to: int | None = None  # the command message the announcement answers
    announce_chat: int | None = None  # where the command came from (a DM after /connect)
    announce: bool | None = None  # None: per the chat's config (manual actions always answer)
    sender_chat_id: int | None = None  # the channel a message was sent as (user_id is then None)
    sender_chat_title: str | None = None


@dataclass
class Outcome:
    status: str  # done | duplicate | no_rights | failed
    effect: Action | None = None
    warns: int = 0
    ladder_len: int = 0
    until: datetime | None = None
    log_id: int | None = None
    reset: bool = False
    messages: list[str] = field(default_factory=list)


def translator(app: App, chat: CoreChatConfig) -> Callable[[str], str]:
    return lambda text: app.i18n.gettext(chat.language, text)


def excerpt_of(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def format_duration(seconds: int | None, _: Callable[[str], str]) -> str:
    if seconds is None:
        return _("永久")
    for size, unit in ((604800, N_("周")), (86400, N_("天")), (3600, N_("小时")), (60, N_("分钟"))):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{_(unit)}"
    if seconds >= 3600:
        return f"{seconds // 3600}{_('小时')}{(seconds % 3600) // 60}{_('分钟')}"
    if seconds >= 60:
        return f"{seconds // 60}{_('分钟')}{seconds % 60}{_('秒')}"
    return f"{seconds}{_('秒')}"


def rule_label(rule: str, _: Callable[[str], str]) -> str:
    return _(RULE_LABELS.get(rule, rule))


def undo_markup(log_id: int, action: str, has_warn: bool, _: Callable[[str], str]) -> InlineKeyboardMarkup | None:
    label = {"mute": N_("↩️ 解除禁言"), "ban": N_("↩️ 解除封禁")}.get(action)
    if label is None and has_warn and action in ("notice", "kick"):
        label = N_("↩️ 撤销警告")
    if label is None:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=_(label),
                                                                        callback_data=f"{UNDO_PREFIX}{log_id}")]])


# ---- Telegram effects ----------------------------------------------------------------------------


async def _call(app: App, chat_id: int, method: Any) -> bool:
    return await app.call(chat_id, method) is not None


async def restrict(app: App, chat_id: int, user_id: int, until: datetime | None) -> bool:
    return await _call(app, chat_id, RestrictChatMember(chat_id=chat_id, user_id=user_id, permissions=MUTED,
                                                         until_date=until))


async def unrestrict(app: App, chat_id: int, user_id: int) -> bool:
    return await _call(app, chat_id, RestrictChatMember(chat_id=chat_id, user_id=user_id, permissions=UNMUTED))


async def ban(app: App, chat_id: int, user_id: int, until: datetime | None) -> bool:
    return await _call(app, chat_id, BanChatMember(chat_id=chat_id, user_id=user_id, until_date=until))


async def unban(app: App, chat_id: int, user_id: int) -> bool:
    return await _call(app, chat_id, UnbanChatMember(chat_id=chat_id, user_id=user_id, only_if_banned=True))


async def kick(app: App, chat_id: int, user_id: int) -> bool:
    return await ban(app, chat_id, user_id, None) and await unban(app, chat_id, user_id)


async def ban_sender_chat(app: App, chat_id: int, sender_chat_id: int) -> bool:
    """A channel can no longer post in the chat (as any of its owner's channels); Telegram has no term."""
    return await _call(app, chat_id, BanChatSenderChat(chat_id=chat_id, sender_chat_id=sender_chat_id))


async def unban_sender_chat(app: App, chat_id: int, sender_chat_id: int) -> bool:
    return await _call(app, chat_id, UnbanChatSenderChat(chat_id=chat_id, sender_chat_id=sender_chat_id))


def channel_label(sender_chat_id: int, title: str | None, _: Callable[[str], str]) -> str:
    name = html.escape(title) if title else f"<code>{sender_chat_id}</code>"
    return _("频道 {name}").format(name=name)


def delete_messages(app: App, chat_id: int, message_ids: Sequence[int]) -> None:
    """Queue the deletions (fire and forget: a message already gone is fine)."""
    ids = sorted(set(message_ids))
    if len(ids) == 1:
        app.call(chat_id, DeleteMessage(chat_id=chat_id, message_id=ids[0]))
        return
    for i in range(0, len(ids), 100):
        app.call(chat_id, DeleteMessages(chat_id=chat_id, message_ids=ids[i : i + 100]))


async def note_missing_right(app: App, chat_id: int, right: str) -> None:
    """Tell the log chat (at most hourly per chat and right) that the bot cannot act."""
    rt: ModerationRuntime = app.runtime(PLUGIN)
    if not await rt.should_note(chat_id, right):
        return
    chat = await app.chat_config.chat(chat_id)
    log_chat = app.log_chat_for(chat.log_chat_id)
    if log_chat is None:
        return
    _ = translator(app, chat)
    what = _("删除消息") if right == "can_delete_messages" else _("封禁用户")
    text = _("机器人在群 {chat} 没有「{right}」权限，自动管理无法执行。请把机器人设为管理员并打开该权限。")
    app.send_text(log_chat, "⚠️ " + text.format(chat=f"<code>{chat_id}</code>", right=what))


# ---- the one enforcement path --------------------------------------------------------------------


async def enforce(app: App, case: Case) -> Outcome:
    cfg: ModerationConfig = await app.chat_config.get(case.chat_id, PLUGIN)  # type: ignore[assignment]
    chat = await app.chat_config.chat(case.chat_id)
    _ = translator(app, chat)
    now = app.clock.now()
    kind = case.action.kind
    ladder = cfg.ladder_actions()
    counts = case.user_id is not None and (kind == "warn" or (case.add_warn and kind in ("mute", "ban", "kick")))
    # A message sent as a channel: a ban bans the channel (banChatSenderChat, no term); anything
    # milder only deletes, since a channel cannot be warned, muted or kicked.
    channel = case.sender_chat_id if case.user_id is None and kind == "ban" else None
    channel_effect = Action("ban") if channel is not None else Action("delete")
    effect = case.action if case.user_id is not None else channel_effect
    if effect.kind == "warn":
        effect = Action("notice")
    warn_id: int | None = None
    count = 0
    reset = False

    async with app.db() as s, s.begin():
        if counts:
            assert case.user_id is not None
            warn = await service.add_warn(
                s, chat_id=case.chat_id, user_id=case.user_id, source=case.source, rule=case.rule,
                reason=case.reason or None, actor_id=case.actor_id, now=now, expire_days=cfg.warn_expire_days,
            )
            if warn is None:
                return Outcome("duplicate")
            await s.flush()
            warn_id = warn.id
            count = await service.count_active(s, case.chat_id, case.user_id, now)
            step = service.ladder_step(ladder, count)
            effect = step if kind == "warn" else service.stronger(step, case.action)
            if count >= len(ladder) and cfg.reset_warns_at_top:
                await service.revoke_all(s, case.chat_id, case.user_id, None, now)
                reset = True
        until = now + timedelta(seconds=effect.seconds) if effect.kind in ("mute", "ban") and effect.seconds else None
        row = await service.record_action(s, ActionLog(
            # A banned channel is journalled under its (negative) chat id, which the undo button reads.
            chat_id=case.chat_id, user_id=case.user_id if channel is None else channel,
            source=case.source[:128], action=effect.kind,
            rule=case.rule[:32], reason=case.reason or None, actor_id=case.actor_id, excerpt=case.excerpt,
            until=until, warn_id=warn_id, warn_count=count, created_at=now,
        ))
        if row is None and warn_id is None:
            return Outcome("duplicate")
        await s.flush()
        log_id = row.id if row is not None else None

    outcome = Outcome("done", effect, count, len(ladder), until, log_id, reset)

    if case.delete_ids:
        if await app.admins.bot_can(case.chat_id, "can_delete_messages"):
            delete_messages(app, case.chat_id, case.delete_ids)
        else:
            await note_missing_right(app, case.chat_id, "can_delete_messages")

    if case.user_id is not None and effect.kind in ("mute", "ban", "kick"):
        if not await app.admins.bot_can(case.chat_id, "can_restrict_members"):
            outcome.status = "no_rights"
            await note_missing_right(app, case.chat_id, "can_restrict_members")
        else:
            if effect.kind == "mute":
                ok = await restrict(app, case.chat_id, case.user_id, until)
            elif effect.kind == "ban":
                ok = await ban(app, case.chat_id, case.user_id, until)
            else:
                ok = await kick(app, case.chat_id, case.user_id)
            if not ok:
                outcome.status = "failed"
    elif channel is not None:
        if not await app.admins.bot_can(case.chat_id, "can_restrict_members"):
            outcome.status = "no_rights"
            await note_missing_right(app, case.chat_id, "can_restrict_members")
        elif not await ban_sender_chat(app, case.chat_id, channel):
            outcome.status = "failed"

    if warn_id is not None and cfg.warn_points and case.user_id is not None:
        await _deduct_points(app, case, warn_id, cfg.warn_points)

    if case.user_id is not None and outcome.status == "done":
        await app.events.emit(PenaltyApplied(
            chat_id=case.chat_id, user_id=case.user_id, action="warn" if effect.kind == "notice" else effect.kind,
            reason=case.reason or case.rule, at=now, until=until,
        ))

    announce = case.announce if case.announce is not None else cfg.announce
    if announce:
        text = await announcement(app, case, outcome, _)
        target_chat = case.announce_chat if case.announce_chat is not None else case.chat_id
        notice_ttl = chat.notice_ttl if case.actor_id is None and chat.notice_ttl else None
        app.send_text(target_chat, text, reply_to=case.reply_to, delete_after=notice_ttl)
    if cfg.log_actions:
        await log_to_chat(app, case.chat_id, _, chat, action=effect.kind, user_id=case.user_id,
                          actor_id=case.actor_id, rule=case.rule, reason=case.reason, excerpt=case.excerpt,
                          until=until, seconds=effect.seconds, warns=(count, len(ladder)) if warn_id else None,
                          log_id=log_id, has_warn=warn_id is not None, chat_title=case.chat_title,
                          failed=outcome.status != "done", reset=reset, extra=case.detail,
                          sender_chat=(case.sender_chat_id, case.sender_chat_title)
                          if case.sender_chat_id is not None else None)
    return outcome


async def _deduct_points(app: App, case: Case, warn_id: int, points: int) -> None:
    assert case.user_id is not None
    reference = f"moderation:warn:{case.chat_id}:{warn_id}"
    try:
        await app.points.change(case.chat_id, case.user_id, -points, "moderation.warn", reference,
                                note=case.rule, actor_id=case.actor_id)
    except InsufficientPoints as exc:
        if exc.balance > 0:
            with contextlib.suppress(InsufficientPoints):
                await app.points.change(case.chat_id, case.user_id, -exc.balance, "moderation.warn", reference,
                                        note=case.rule, actor_id=case.actor_id)
    except Exception:
        log.exception("moderation: deducting points for warn %s failed", warn_id)


async def announcement(app: App, case: Case, outcome: Outcome, _: Callable[[str], str]) -> str:
    effect = outcome.effect or case.action
    if case.user_id is not None:
        who = await app.members.mention(case.user_id)
    elif case.sender_chat_id is not None:
        who = channel_label(case.sender_chat_id, case.sender_chat_title, _)
    else:
        who = _("频道身份")
    kind = effect.kind
    if kind == "notice":
        line = f"⚠️ {who} {_('被警告')}"
    elif kind == "mute":
        line = f"🔇 {who} {_('被禁言')} {format_duration(effect.seconds, _)}"
    elif kind == "ban":
        span = f" {format_duration(effect.seconds, _)}" if effect.seconds else ""
        line = f"⛔ {who} {_('已被封禁')}{span}"
    elif kind == "kick":
        line = f"👢 {who} {_('已被移出本群')}"
    else:
        line = f"🧹 {_('已删除')} {who} {_('的消息')}"
    notes = [rule_label(case.rule, _)] if case.rule != "manual" else []
    if outcome.warns:
        notes.append(f"{_('警告')} {outcome.warns}/{outcome.ladder_len}")
    if notes:
        line += "（" + "，".join(notes) + "）"
    if case.reason:
        line += f"\n{_('原因')}：{html.escape(case.reason)}"
    if outcome.reset:
        line += "\n" + _("警告已清零。")
    if outcome.status == "no_rights":
        line += "\n" + _("⚠️ 机器人没有「封禁用户」权限，无法执行。")
    elif outcome.status == "failed":
        line += "\n" + _("⚠️ Telegram 拒绝了这个操作。")
    return line


async def log_to_chat(
    app: App, chat_id: int, _: Callable[[str], str], chat: CoreChatConfig, *, action: str, user_id: int | None,
    actor_id: int | None, rule: str, reason: str = "", excerpt: str | None = None, until: datetime | None = None,
    seconds: int | None = None, warns: tuple[int, int] | None = None, log_id: int | None = None,
    has_warn: bool = False, chat_title: str | None = None, failed: bool = False, reset: bool = False,
    extra: str = "", sender_chat: tuple[int, str | None] | None = None,
) -> None:
    log_chat = app.log_chat_for(chat.log_chat_id)
    if log_chat is None:
        return
    icon = ACTION_ICONS.get(action, "•")
    title = html.escape(chat_title) + " " if chat_title else ""
    lines = [f"{icon} <b>{_(ACTION_LABELS.get(action, action))}</b> · {title}(<code>{chat_id}</code>)"]
    if sender_chat is not None:
        lines.append(f"{_('对象')}：{channel_label(sender_chat[0], sender_chat[1], _)} (<code>{sender_chat[0]}</code>)")
    elif user_id is not None:
        lines.append(f"{_('对象')}：{await app.members.mention(user_id)} (<code>{user_id}</code>)")
    lines.append(f"{_('执行')}：" + (await app.members.mention(actor_id) if actor_id is not None else _("自动规则")))
    lines.append(f"{_('规则')}：{rule_label(rule, _)}")
    if reason:
        lines.append(f"{_('原因')}：{html.escape(reason)}")
    if warns is not None:
        lines.append(f"{_('警告')}：{warns[0]}/{warns[1]}" + (f"（{_('已清零')}）" if reset else ""))
    if action in ("mute", "ban"):
        span = format_duration(seconds, _)
        if until is not None:
            span += "，" + _("至") + " " + until.astimezone(chat.tz).strftime("%Y-%m-%d %H:%M")
        lines.append(f"{_('期限')}：{span}")
    if excerpt:
        lines.append(f"{_('摘录')}：<i>{html.escape(excerpt)}</i>")
    if extra:
        lines.append(extra)
    if failed:
        lines.append("⚠️ " + _("执行失败（权限不足或 Telegram 拒绝）。"))
    markup = undo_markup(log_id, action, has_warn, _) if log_id is not None and not failed else None
    app.send_text(log_chat, "\n".join(lines), reply_markup=markup, disable_notification=True)


async def journal(
    app: App, *, chat_id: int, user_id: int | None, action: str, rule: str, source: str, actor_id: int | None,
    reason: str = "", excerpt: str | None = None, chat_title: str | None = None, extra: str = "",
) -> bool:
    """Record and log an action without a ladder (unmute, unban, rmwarn, raid...). False if seen before."""
    now = app.clock.now()
    async with app.db() as s, s.begin():
        row = await service.record_action(s, ActionLog(
            chat_id=chat_id, user_id=user_id, source=source[:128], action=action[:16], rule=rule[:32],
            reason=reason or None, actor_id=actor_id, excerpt=excerpt, created_at=now,
        ))
    if row is None:
        return False
    cfg = await app.chat_config.get(chat_id, PLUGIN)
    if getattr(cfg, "log_actions", True):
        chat = await app.chat_config.chat(chat_id)
        await log_to_chat(app, chat_id, translator(app, chat), chat, action=action, user_id=user_id,
                          actor_id=actor_id, rule=rule, reason=reason, excerpt=excerpt, chat_title=chat_title,
                          extra=extra)
    return True
