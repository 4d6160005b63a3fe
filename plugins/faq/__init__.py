"""faq: keyword FAQ auto-reply (Rose-style /filter, /stop, /stopall, /filters; /faqgaps)."""

from __future__ import annotations

from typing import Any

from bot.plugin import N_, Command, Job, Plugin
from plugins.faq import handlers, notes
from plugins.faq.config import FaqConfig
from plugins.faq.runtime import FaqRuntime


def _cli(sub: Any) -> None:
    from plugins.faq.cli import register

    register(sub)


plugin = Plugin(
    name="faq",
    description=N_("关键词自动回复常见问题"),
    config=FaqConfig,
    make_router=handlers.make_router,
    commands=(
        Command(
            "filter", handlers.cmd_filter, N_("添加或更新关键词自动回复"),
            usage=N_("/filter &lt;关键词&gt; &lt;回复&gt;\n"
                     "多个关键词共用一个回复：/filter (发货多久, 几天到) 回复\n"
                     "关键词带空格请加引号：/filter \"怎么 退货\" 回复\n"
                     "匹配方式前缀：exact:（整句）word:（整词）regex:（正则），默认包含即可\n"
                     "按钮：[按钮文字](buttonurl://https://…)；也可以回复一条消息发送 /filter &lt;关键词&gt;"),
            admin=True,
        ),
        Command("stop", handlers.cmd_stop, N_("删除一个关键词自动回复"), usage=N_("/stop &lt;关键词&gt;"), admin=True),
        Command("stopall", handlers.cmd_stopall, N_("删除本群全部自动回复（需确认）"), admin=True),
        Command("filters", handlers.cmd_filters, N_("列出本群的自动回复"), admin=True),
        Command("faqgaps", handlers.cmd_faqgaps, N_("最常见的没人回答的问题"), usage=N_("/faqgaps [clear]"),
                admin=True),
        Command("save", notes.cmd_save, N_("保存笔记（成员发送 #名字 查看）"),
                usage=N_("/save &lt;名字&gt; &lt;内容&gt;，或回复一条消息发送 /save &lt;名字&gt;\n"
                         "按钮：[按钮文字](buttonurl://https://…)"),
                admin=True),
        Command("get", notes.cmd_get, N_("查看笔记（也可以直接发送 #名字）"), usage=N_("/get &lt;名字&gt;")),
        Command("notes", notes.cmd_notes, N_("列出本群的笔记")),
        Command("clear", notes.cmd_clear, N_("删除笔记"), usage=N_("/clear &lt;名字&gt;"), admin=True),
    ),
    jobs=(Job("refresh", handlers.refresh_job, seconds=30),),
    runtime=FaqRuntime,
    on_startup=handlers.on_startup,
    on_shutdown=handlers.on_shutdown,
    flush=handlers.flush,
    cli=_cli,
    settings_keys={"cooldown": N_("冷却秒数"), "ignore_admins": N_("不回复管理员"), "log_gaps": N_("记录未回答问题")},
)
