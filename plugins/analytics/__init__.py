"""analytics: activity statistics, member segments and value tiers, reports, cleanup and wake-up
actions, exports and privacy (/mydata, /forgetme)."""

from __future__ import annotations

from typing import Any

from bot.plugin import N_, Command, Job, Plugin
from bot.services.events import (
    ActivityHistogramRequested,
    BotStarted,
    CheckedIn,
    CrisisChanged,
    FaqAnswered,
    MemberJoined,
    MemberLeft,
    QuestionUnanswered,
)
from plugins.analytics import actions, collector, handlers, jobs
from plugins.analytics.config import AnalyticsConfig


def _cli(sub: Any) -> None:
    from plugins.analytics import export

    export.register(sub)


plugin = Plugin(
    name="analytics",
    description=N_("活跃统计、成员分层、数据报告、清理与唤醒、数据导出和隐私"),
    config=AnalyticsConfig,
    make_router=handlers.make_router,
    commands=(
        Command("stats", handlers.cmd_stats, N_("群数据报告（文字 + 图表）"), admin=True),
        Command("segment", handlers.cmd_segment, N_("按分层列出成员"), admin=True,
                usage=N_("/segment new|active|silent|churned|zombie|koc|普通|活跃|忠诚|高价值")),
        Command("cleanup", handlers.cmd_cleanup, N_("清理僵尸或流失成员（先预览，确认后执行）"), admin=True,
                usage=N_("/cleanup zombies [天数] 或 /cleanup churned [天数]")),
        Command("wakeup", handlers.cmd_wakeup, N_("唤醒沉默成员（群内提醒或私信）"), admin=True,
                usage=N_("/wakeup（不带参数）")),
        Command("export", handlers.cmd_export, N_("导出数据为 CSV（管理员）"), scope="any", menu=False,
                usage=N_("/export members|daily|ledger|incidents [群ID]")),
        Command("mydata", handlers.cmd_mydata, N_("获取机器人保存的我的数据"), scope="any"),
        Command("forgetme", handlers.cmd_forgetme, N_("删除我的个人数据"), scope="any"),
    ),
    observers=(collector.observe,),
    jobs=(
        Job("weekly_report", jobs.weekly_reports, cron={"minute": 5}),
        Job("maintenance", jobs.maintenance, cron={"minute": 35}),
    ),
    timers={"cleanup": actions.on_cleanup_timer},
    subscriptions={
        MemberJoined: collector.on_joined,
        MemberLeft: collector.on_left,
        CheckedIn: collector.on_checked_in,
        FaqAnswered: collector.on_faq_answered,
        QuestionUnanswered: collector.on_unanswered,
        CrisisChanged: collector.on_crisis,
        ActivityHistogramRequested: collector.on_histogram,
        BotStarted: handlers.on_bot_started,
    },
    runtime=collector.make_runtime,
    flush=collector.flush,
    cli=_cli,
    settings_keys={
        "weekly_report": N_("每周报告"),
        "silent_days": N_("沉默天数"),
        "churn_days": N_("流失天数"),
        "zombie_days": N_("僵尸天数"),
    },
)
