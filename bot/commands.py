"""One lookup table for every command and keyword alias (DESIGN.md Part 3: no filter chains).

``/warn@qunbot_bot reason`` and "签到" both resolve with one dict lookup; the table also applies the
per-chat plugin switch, the admin check, the chat-type scope and the usage reply.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram.enums import ChatType
from aiogram.methods import DeleteMessage
from aiogram.types import BotCommand, Message

from bot.context import Ctx
from bot.plugin import Command, UsageError
from bot.settings import ConfigError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

GROUP_TYPES = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})


@dataclass(frozen=True)
class Entry:
    plugin: str
    spec: Command


@dataclass(frozen=True)
class Invocation:
    entry: Entry
    name: str
    args: str


class CommandTable:
    def __init__(self, app: App) -> None:
        from handlers import core_commands

        self._app = app
        self.by_name: dict[str, Entry] = {}
        self.by_alias: dict[str, Entry] = {}
        sources: list[tuple[str, list[Command]]] = [("core", list(core_commands()))]
        sources += [(p.name, list(p.commands)) for p in app.plugins.values()]
        for plugin, commands in sources:
            for spec in commands:
                entry = Entry(plugin, spec)
                name = spec.name.lower()
                if name in self.by_name:
                    raise ConfigError(
                        f"command /{name} is defined by both {self.by_name[name].plugin} and {plugin}"
                    )
                self.by_name[name] = entry
                for alias in spec.aliases:
                    if alias in self.by_alias:
                        raise ConfigError(
                            f"keyword {alias!r} is claimed by both {self.by_alias[alias].plugin} and {plugin}"
                        )
                    self.by_alias[alias] = entry

    def entries(self) -> list[Entry]:
        return list(self.by_name.values())

    def parse(self, message: Message) -> Invocation | None:
        text = message.text
        if not text:
            return None
        if text[0] == "/":
            head, _, rest = text[1:].partition(" ")
            if "\n" in head:
                head, _, more = head.partition("\n")
                rest = more + (" " + rest if rest else "")
            name, _, target = head.partition("@")
            if target and self._app.bot_username and target.lower() != self._app.bot_username.lower():
                return None  # addressed to another bot in the group
            entry = self.by_name.get(name.lower())
            return Invocation(entry, name.lower(), rest.strip()) if entry else None
        if len(text) <= 12:
            entry = self.by_alias.get(text.strip())
            if entry is not None:
                return Invocation(entry, entry.spec.name, "")
        return None

    async def dispatch(self, message: Message, inv: Invocation, update_id: int | None) -> None:
        app = self._app
        spec = inv.entry.spec
        chat = message.chat
        in_group = chat.type in GROUP_TYPES
        user_id = message.from_user.id if message.from_user else None
        target_chat: int | None = chat.id if in_group else None
        core_cfg = await app.chat_config.chat(chat.id)
        _ = lambda s: app.i18n.gettext(core_cfg.language, s)  # noqa: E731

        if not in_group:
            if spec.scope == "group":
                connected = await connected_chat(app, user_id) if (spec.admin or spec.owner) else None
                if connected is None:
                    app.send_text(chat.id, _("这个命令请在群里使用。"), reply_to=message.message_id)
                    return
                target_chat = connected
                core_cfg = await app.chat_config.chat(connected)
        elif spec.scope == "private":
            app.send_text(chat.id, _("这个命令请私聊机器人使用。"), reply_to=message.message_id,
                          delete_after=core_cfg.notice_ttl or None)
            return

        if target_chat is not None and not await app.chat_config.enabled(target_chat, inv.entry.plugin):
            return
        sender_chat = message.sender_chat.id if message.sender_chat else None
        if (in_group and spec.name in core_cfg.disabled_commands
                and not await app.admins.is_admin(target_chat, user_id, sender_chat)):
            # Switched off here for members (/disable): silence, or the command message removed.
            if core_cfg.disabled_delete and await app.admins.bot_can(chat.id, "can_delete_messages"):
                app.call(chat.id, DeleteMessage(chat_id=chat.id, message_id=message.message_id))
            return
        if spec.owner and not app.admins.is_owner(user_id):
            app.send_text(chat.id, _("只有机器人的所有者可以使用这个命令。"), reply_to=message.message_id,
                          delete_after=core_cfg.notice_ttl or None)
            return
        if spec.admin and not await app.admins.is_admin(target_chat, user_id, sender_chat):
            app.send_text(chat.id, _("只有管理员可以使用这个命令。"), reply_to=message.message_id,
                          delete_after=core_cfg.notice_ttl or None)
            return

        cfg = await app.chat_config.get(target_chat, inv.entry.plugin)
        ctx = Ctx(app=app, plugin=inv.entry.plugin, cfg=cfg, chat=core_cfg, chat_id=target_chat,
                  user_id=user_id, update_id=update_id, command=inv.name, args=inv.args)
        try:
            await spec.handler(message, ctx)
        except UsageError as exc:
            # Usage strings are plain text (they contain <placeholders>), unlike messages plugins pass.
            text = exc.message or (_("用法：") + html.escape(_(spec.usage)) if spec.usage else _("参数不对。"))
            ctx.reply(message, text, notice=True)
        except ConfigError as exc:
            ctx.reply(message, _("设置无效：") + str(exc), notice=True)
        except Exception:
            log.exception("command /%s of plugin %s failed (update %s)", inv.name, inv.entry.plugin, update_id)

    def menu(self, language: str, enabled: set[str] | None = None) -> list[BotCommand]:
        out = []
        for entry in self.by_name.values():
            if not entry.spec.menu or entry.spec.admin or entry.spec.owner:
                continue
            if enabled is not None and entry.plugin not in enabled and entry.plugin != "core":
                continue
            desc = self._app.i18n.gettext(language, entry.spec.description)[:256] or entry.spec.name
            out.append(BotCommand(command=entry.spec.name, description=desc))
        return out


async def connected_chat(app: App, user_id: int | None) -> int | None:
    if user_id is None:
        return None
    from bot.models import Connection

    async with app.db() as s:
        row = await s.get(Connection, user_id)
    if row is None:
        return None
    # The connection only holds while the user is still an admin there.
    return row.chat_id if await app.admins.is_admin(row.chat_id, user_id) else None
