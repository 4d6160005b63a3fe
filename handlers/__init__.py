"""Core commands that belong to no plugin."""

from __future__ import annotations

from aiogram import Router

from bot.plugin import N_, Command
from handlers import admin, common, disabling


def core_commands() -> list[Command]:
    d = common.DESCRIPTIONS
    return [
        Command("start", common.cmd_start, d["start"], scope="any"),
        Command("help", common.cmd_help, d["help"], scope="any"),
        Command("id", common.cmd_id, d["id"], scope="any", menu=False),
        Command("lang", common.cmd_lang, d["lang"], usage=N_("/lang zh_CN 或 /lang en"), admin=True),
        Command("settings", admin.cmd_settings, N_("查看和切换本群各插件"), admin=True),
        Command("set", admin.cmd_set, N_("修改一项设置"), usage=N_("/set 插件.键 值，例如 /set checkin.base_points 10"),
                admin=True),
        Command("connect", admin.cmd_connect, N_("在私聊中连接并管理某个群"), usage=N_("/connect 群ID（私聊中）"),
                scope="any"),
        Command("disconnect", admin.cmd_disconnect, N_("断开私聊管理连接"), scope="private"),
        Command("exportsettings", admin.cmd_exportsettings, N_("导出本群设置为文件"), admin=True),
        Command("importsettings", admin.cmd_importsettings, N_("导入设置（回复设置文件或附上 JSON）"),
                usage=N_("回复一个设置文件并发送 /importsettings，或 /importsettings {JSON}"), admin=True),
        Command("disable", disabling.cmd_disable, N_("在本群禁用成员命令（管理员仍可用）"),
                usage=N_("/disable 命令 [命令…]，例如 /disable top points"), admin=True),
        Command("enable", disabling.cmd_enable, N_("恢复被禁用的命令"), usage=N_("/enable 命令 [命令…]"), admin=True),
        Command("disabled", disabling.cmd_disabled, N_("查看本群禁用的命令"), admin=True),
    ]


def make_router() -> Router:
    router = Router(name="core")
    admin.register(router)
    return router
