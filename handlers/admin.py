"""Core admin commands: /settings (buttons), /set, /connect, /disconnect, /exportsettings, /importsettings."""

from __future__ import annotations

import html
import json
from typing import Any

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.context import Ctx
from bot.models import Connection
from bot.plugin import UsageError
from bot.settings import ConfigError

TOGGLE_PREFIX = "cfg:t:"


async def _settings_view(ctx: Ctx, chat_id: int) -> tuple[str, InlineKeyboardMarkup]:
    app = ctx.app
    core = await app.chat_config.chat(chat_id)
    lines = [
        "<b>" + ctx._("本群设置") + f"</b> (<code>{chat_id}</code>)",
        ctx._("语言") + f": {core.language} · " + ctx._("时区") + f": {core.timezone}",
    ]
    rows: list[list[InlineKeyboardButton]] = []
    for name, plugin in app.plugins.items():
        cfg = await app.chat_config.get(chat_id, name)
        state = "✅" if cfg.enabled else "⛔"
        details = ", ".join(
            f"{ctx._(label)}={getattr(cfg, key, '?')}" for key, label in plugin.settings_keys.items()
        )
        lines.append(f"{state} <b>{name}</b> — {html.escape(ctx._(plugin.description))}"
                     + (f"\n    {html.escape(details)}" if details else ""))
        rows.append([InlineKeyboardButton(text=f"{state} {name}", callback_data=f"{TOGGLE_PREFIX}{chat_id}:{name}")])
    lines.append(ctx._("修改某项：/set 插件.键 值，例如 /set checkin.base_points 10"))
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def cmd_settings(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    text, markup = await _settings_view(ctx, ctx.chat_id)
    ctx.reply(message, text, reply_markup=markup)


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def cmd_set(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    key, _, raw = ctx.args.partition(" ")
    plugin, _, field = key.partition(".")
    if not plugin or not field or not raw.strip():
        raise UsageError()
    if plugin != "core" and plugin not in ctx.app.plugins:
        raise UsageError(ctx._("没有这个插件：") + html.escape(plugin))
    await ctx.app.chat_config.update(ctx.chat_id, plugin, {field: _parse_value(raw.strip())}, by=ctx.user_id)
    value = getattr(await ctx.app.chat_config.get(ctx.chat_id, plugin), field, raw)
    ctx.reply(message, ctx._("已更新") + f" {html.escape(key)} = <code>{html.escape(str(value))}</code>")


async def cmd_connect(message: Message, ctx: Ctx) -> None:
    if message.chat.type != ChatType.PRIVATE:
        chat_id = message.chat.id
        if not await ctx.app.admins.is_admin(chat_id, ctx.user_id):
            ctx.reply(message, ctx._("只有管理员可以使用这个命令。"), notice=True)
            return
    else:
        arg = ctx.args.strip()
        if not arg.lstrip("-").isdigit():
            raise UsageError()
        chat_id = int(arg)
        if not await ctx.app.admins.is_admin(chat_id, ctx.user_id):
            ctx.reply(message, ctx._("你不是该群的管理员，无法连接。"))
            return
    assert ctx.user_id is not None
    async with ctx.app.db() as s, s.begin():
        row = await s.get(Connection, ctx.user_id)
        if row is None:
            s.add(Connection(user_id=ctx.user_id, chat_id=chat_id, connected_at=ctx.now()))
        else:
            row.chat_id = chat_id
            row.connected_at = ctx.now()
    ctx.reply(message, ctx._("已连接到群") + f" <code>{chat_id}</code>" + ctx._("，现在可以在私聊里管理它。"))


async def cmd_disconnect(message: Message, ctx: Ctx) -> None:
    assert ctx.user_id is not None
    async with ctx.app.db() as s, s.begin():
        row = await s.get(Connection, ctx.user_id)
        if row is not None:
            await s.delete(row)
    ctx.reply(message, ctx._("已断开连接。"))


async def cmd_exportsettings(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    data = await ctx.app.chat_config.export(ctx.chat_id)
    blob = json.dumps({"qunbot_settings": 1, "chat_id": ctx.chat_id, "plugins": data}, ensure_ascii=False, indent=2)
    from aiogram.methods import SendDocument

    ctx.app.call(
        message.chat.id,
        SendDocument(
            chat_id=message.chat.id,
            document=BufferedInputFile(blob.encode(), filename=f"qunbot-settings-{ctx.chat_id}.json"),
            caption=ctx._("本群设置导出，可用 /importsettings 导入到另一个群。"),
        ),
    )


async def _read_settings_blob(message: Message, ctx: Ctx) -> str:
    if ctx.args.strip():
        return ctx.args.strip()
    replied = message.reply_to_message
    if replied is not None and replied.document is not None:
        if (replied.document.file_size or 0) > 512 * 1024:
            raise UsageError(ctx._("文件太大。"))
        buf = await ctx.app.bot.download(replied.document.file_id)
        if buf is None:
            raise UsageError(ctx._("无法下载文件。"))
        return buf.read().decode("utf-8", errors="replace")
    raise UsageError()


async def cmd_importsettings(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    blob = await _read_settings_blob(message, ctx)
    try:
        data = json.loads(blob)
    except ValueError:
        raise UsageError(ctx._("不是有效的设置文件（JSON）。")) from None
    plugins = data.get("plugins", data) if isinstance(data, dict) else None
    if not isinstance(plugins, dict):
        raise UsageError(ctx._("不是有效的设置文件（JSON）。"))
    try:
        applied = await ctx.app.chat_config.import_(ctx.chat_id, plugins, by=ctx.user_id)
    except ConfigError as exc:
        ctx.reply(message, ctx._("导入失败，没有任何改动：") + html.escape(str(exc)))
        return
    ctx.reply(message, ctx._("已导入设置：") + (", ".join(applied) or "-"))


async def on_toggle(query: CallbackQuery, ctx: Ctx) -> None:
    data = (query.data or "")[len(TOGGLE_PREFIX):]
    chat_part, _, plugin = data.partition(":")
    app = ctx.app
    if not chat_part.lstrip("-").isdigit() or plugin not in app.plugins:
        await query.answer(ctx._("无效的按钮。"))
        return
    chat_id = int(chat_part)
    if not await app.admins.is_admin(chat_id, query.from_user.id):
        await query.answer(ctx._("只有管理员可以修改设置。"), show_alert=True)
        return
    current = await app.chat_config.get(chat_id, plugin)
    await app.chat_config.update(chat_id, plugin, {"enabled": not current.enabled}, by=query.from_user.id)
    ctx.chat = await app.chat_config.chat(chat_id)
    text, markup = await _settings_view(ctx, chat_id)
    await query.answer(ctx._("已更新"))
    if isinstance(query.message, Message):
        await app.bot.edit_message_text(text=text, chat_id=query.message.chat.id,
                                        message_id=query.message.message_id, reply_markup=markup)


def register(router: Router) -> None:
    router.callback_query.register(on_toggle, F.data.startswith(TOGGLE_PREFIX))
