"""/disable, /enable, /disabled: switch member commands off in a busy group (Rose's disabling).

A disabled command is ignored when a member sends it (or deleted, with ``/set core.disabled_delete
true``); admins still use it. Only member commands can be disabled: admin and owner commands are
already refused to members. The list is the chat's core setting ``disabled_commands``.
"""

from __future__ import annotations

import html

from aiogram.types import Message

from bot.context import Ctx
from bot.plugin import UsageError

# Commands a group always needs, even when busy.
NEVER_DISABLED = frozenset({"start", "help"})


def _names(ctx: Ctx) -> list[str]:
    names = [n.lstrip("/").split("@", 1)[0].lower() for n in ctx.args.replace("，", " ").split()]
    if not names:
        raise UsageError()
    return list(dict.fromkeys(names))


def disableable(ctx: Ctx) -> list[str]:
    return sorted(e.spec.name for e in ctx.app.commands.entries()
                  if not (e.spec.admin or e.spec.owner) and e.spec.scope != "private"
                  and e.spec.name not in NEVER_DISABLED)


async def _save(ctx: Ctx, names: list[str]) -> None:
    assert ctx.chat_id is not None
    await ctx.app.chat_config.update(ctx.chat_id, "core", {"disabled_commands": sorted(names)}, by=ctx.user_id)


def _codes(names: list[str]) -> str:
    return "、".join(f"<code>/{html.escape(n)}</code>" for n in names)


async def cmd_disable(message: Message, ctx: Ctx) -> None:
    wanted = _names(ctx)
    allowed = set(disableable(ctx))
    refused = [n for n in wanted if n not in allowed]
    if refused:
        raise UsageError(ctx._("不能禁用：{names}。可以禁用的命令：{allowed}").format(
            names=_codes(refused), allowed=_codes(sorted(allowed))))
    current = set(ctx.chat.disabled_commands)
    await _save(ctx, sorted(current | set(wanted)))
    ctx.reply(message, ctx._("已禁用 {names}：成员发送时不再响应，管理员仍可使用。").format(names=_codes(wanted)))


async def cmd_enable(message: Message, ctx: Ctx) -> None:
    wanted = _names(ctx)
    current = set(ctx.chat.disabled_commands)
    missing = [n for n in wanted if n not in current]
    if len(missing) == len(wanted):
        raise UsageError(ctx._("这些命令没有被禁用：{names}").format(names=_codes(missing)))
    await _save(ctx, sorted(current - set(wanted)))
    ctx.reply(message, ctx._("已恢复 {names}。").format(names=_codes([n for n in wanted if n in current])))


async def cmd_disabled(message: Message, ctx: Ctx) -> None:
    current = sorted(ctx.chat.disabled_commands)
    if not current:
        ctx.reply(message, ctx._("本群没有禁用的命令。可以禁用的命令：{allowed}").format(
            allowed=_codes(disableable(ctx))))
        return
    how = ctx._("（成员发送时会被删除）") if ctx.chat.disabled_delete else ""
    ctx.reply(message, ctx._("本群禁用的命令：{names}").format(names=_codes(current)) + how)
