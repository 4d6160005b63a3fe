"""crisis: sentiment and risk-word crisis early warning with tiered incidents (levels 1-3), log-chat
alerts with ack/resolve/escalate buttons, level-1 measures and post-incident summaries."""

from __future__ import annotations

from bot.plugin import N_, Command, Job, Plugin
from plugins.crisis import handlers
from plugins.crisis.config import CrisisConfig
from plugins.crisis.runtime import NAME, CrisisRuntime

plugin = Plugin(
    name=NAME,
    description=N_("危机预警：负面情绪与风险词监测、分级事件、日志群提醒"),
    config=CrisisConfig,
    make_router=handlers.make_router,
    commands=(
        Command(
            "crisis", handlers.cmd_crisis, N_("危机事件：状态、认领、解决、升级、历史"),
            usage=N_("/crisis [status | ack | resolve [备注] | escalate | history [编号]]"),
            admin=True,
        ),
    ),
    observers=(handlers.observe,),
    jobs=(
        Job("tick", handlers.tick_job, seconds=10),
        Job("outbox", handlers.outbox_job, seconds=30),
    ),
    runtime=CrisisRuntime,
    on_startup=handlers.on_startup,
    on_shutdown=handlers.on_shutdown,
    flush=handlers.flush,
    order=200,
    # Negation checks near risk words need jieba: load it at start, never on a member's message.
    uses_nlp=True,
    settings_keys={
        "restrict": N_("一级时限制发言（off/media/all）"),
        "holding_statement": N_("一级时发布安抚声明"),
        "dm_owners": N_("一级时私信所有者"),
        "alert_level": N_("提醒日志群的最低等级"),
    },
)
