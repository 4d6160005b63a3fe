"""content_calendar: scheduled posts that know the Chinese holiday and shopping-festival year."""

from __future__ import annotations

from bot.plugin import N_, Command, Plugin
from bot.services.events import ChatSettingsChanged, CheckedIn, CrisisChanged
from plugins.content_calendar import jobs
from plugins.content_calendar.cli import register
from plugins.content_calendar.config import ContentCalendarConfig
from plugins.content_calendar.handlers import USAGE, cmd_schedule

plugin = Plugin(
    name="content_calendar",
    description=N_("内容日历：按节日和时间表定时发布"),
    config=ContentCalendarConfig,
    commands=[
        Command("schedule", cmd_schedule, N_("管理定时发布的内容"), usage=USAGE, admin=True),
    ],
    timers={"fire": jobs.on_fire},
    subscriptions={
        CrisisChanged: jobs.on_crisis,
        CheckedIn: jobs.on_checked_in,
        ChatSettingsChanged: jobs.on_settings_changed,
    },
    runtime=jobs.runtime,
    flush=jobs.flush,
    on_startup=jobs.on_startup,
    cli=register,
    settings_keys={"grace_minutes": N_("补发宽限（分钟）"), "peak_default": N_("默认高峰时间")},
)
