"""welcome: greetings, captcha (button / math / question), raid merge, rules."""

from __future__ import annotations

from bot.plugin import N_, Command, Plugin
from bot.services.events import MemberJoined, MemberLeft, RaidModeChanged
from plugins.welcome import handlers
from plugins.welcome.config import WelcomeConfig
from plugins.welcome.service import WelcomeRuntime

plugin = Plugin(
    name="welcome",
    description=N_("入群欢迎、入群验证和群规"),
    config=WelcomeConfig,
    make_router=handlers.make_router,
    commands=(
        Command("setwelcome", handlers.cmd_setwelcome, N_("设置欢迎语"), usage=handlers.USAGE_SETWELCOME,
                admin=True),
        Command("resetwelcome", handlers.cmd_resetwelcome, N_("恢复默认欢迎语"), admin=True),
        Command("setrules", handlers.cmd_setrules, N_("设置群规"), usage=handlers.USAGE_SETRULES, admin=True),
        Command("resetrules", handlers.cmd_resetrules, N_("清除群规"), admin=True),
        Command("rules", handlers.cmd_rules, N_("查看群规"), aliases=("群规",)),
        Command("welcome", handlers.cmd_welcome, N_("查看和修改入群欢迎与验证设置"), usage=handlers.USAGE_WELCOME,
                admin=True),
    ),
    timers={"greet": handlers.on_greet_timer, "deadline": handlers.on_deadline_timer},
    subscriptions={
        MemberJoined: handlers.on_member_joined,
        MemberLeft: handlers.on_member_left,
        RaidModeChanged: handlers.on_raid_mode,
    },
    runtime=lambda app: WelcomeRuntime(),
    settings_keys={"greet": N_("欢迎语"), "captcha": N_("验证方式"), "captcha_timeout": N_("验证时限（秒）")},
)
