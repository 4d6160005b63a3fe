"""Core member commands: /start, /help, /lang, /id."""

from __future__ import annotations

import html

from aiogram.enums import ChatType
from aiogram.types import Message

from bot.context import Ctx
from bot.plugin import N_, UsageError
from bot.services.events import BotStarted
from bot.settings import LANGUAGES


async def cmd_start(message: Message, ctx: Ctx) -> None:
    user = message.from_user
    if message.chat.type == ChatType.PRIVATE and user is not None:
        await ctx.app.members.mark_started(user.id)
        payload = ctx.args.strip()
        await ctx.app.events.emit(BotStarted(chat_id=None, user_id=user.id, payload=payload))
        if payload:
            return
        hello = ctx._("你好！我是社群运营助手 qunbot。把我加进群并设为管理员即可使用。发送 /help 查看命令。")
        ctx.reply(message, hello, quote=False)
    else:
        ctx.reply(message, ctx._("我在这里 👋 发送 /help 查看可用命令。"), notice=True)


async def cmd_help(message: Message, ctx: Ctx) -> None:
    app = ctx.app
    chat_id = message.chat.id if message.chat.type != ChatType.PRIVATE else None
    is_admin = await app.admins.is_admin(chat_id, ctx.user_id, message.sender_chat.id if message.sender_chat else None)
    member_lines: list[str] = []
    admin_lines: list[str] = []
    for entry in app.commands.entries():
        spec = entry.spec
        if entry.plugin != "core" and chat_id is not None and not await app.chat_config.enabled(chat_id, entry.plugin):
            continue
        if spec.owner and not app.admins.is_owner(ctx.user_id):
            continue
        if chat_id is not None and not is_admin and spec.name in ctx.chat.disabled_commands:
            continue  # switched off here for members (/disable)
        names = "/" + spec.name + "".join(f" · {a}" for a in spec.aliases)
        line = f"{html.escape(names)} — {html.escape(ctx._(spec.description))}"
        (admin_lines if spec.admin or spec.owner else member_lines).append(line)
    text = "<b>" + ctx._("成员命令") + "</b>\n" + "\n".join(member_lines)
    if is_admin and admin_lines:
        text += "\n\n<b>" + ctx._("管理员命令") + "</b>\n" + "\n".join(admin_lines)
    ctx.reply(message, text)


async def cmd_lang(message: Message, ctx: Ctx) -> None:
    choice = ctx.args.strip()
    if choice not in LANGUAGES or ctx.chat_id is None:
        raise UsageError()
    await ctx.app.chat_config.update(ctx.chat_id, "core", {"language": choice}, by=ctx.user_id)
    ctx.chat = await ctx.app.chat_config.chat(ctx.chat_id)
    ctx.reply(message, ctx._("语言已设置为简体中文。") if choice == "zh_CN" else ctx._("语言已切换。"))


async def cmd_id(message: Message, ctx: Ctx) -> None:
    target = message.reply_to_message.from_user if message.reply_to_message else message.from_user
    lines = [f"chat_id: <code>{message.chat.id}</code>"]
    if target is not None:
        lines.append(f"user_id: <code>{target.id}</code>")
    ctx.reply(message, "\n".join(lines), notice=True)


DESCRIPTIONS = {
    "start": N_("开始使用机器人"),
    "help": N_("查看可用命令"),
    "lang": N_("设置本群语言（zh_CN 或 en）"),
    "id": N_("查看群和用户的 ID"),
}
