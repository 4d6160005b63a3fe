"""moderation: Rose-style manual actions, a warn ladder, banned words, anti-flood, anti-spam, anti-raid,
locks, reports and network bans, all logged to the log chat."""

from __future__ import annotations

from bot.plugin import N_, Command, CommandHandler, Plugin
from bot.services.events import MemberJoined
from plugins.moderation import handlers as h
from plugins.moderation.config import ModerationConfig
from plugins.moderation.guards import guard
from plugins.moderation.runtime import ModerationRuntime


def _admin(name: str, handler: CommandHandler, description: str, usage: str = "") -> Command:
    return Command(name, handler, description, usage=usage, admin=True)


plugin = Plugin(
    name="moderation",
    description=N_("群管理：警告阶梯、违禁词、防刷屏、防广告、防突袭、锁定、举报、全网封禁"),
    config=ModerationConfig,
    make_router=h.make_router,
    commands=[
        _admin("warn", h.cmd_warn, N_("警告成员（按阶梯自动升级处罚）"),
               N_("/warn [原因]（回复某人的消息，或 /warn @用户名 [原因]）")),
        _admin("warns", h.cmd_warns, N_("查看成员的有效警告"),
               N_("/warns（回复某人的消息，或 /warns @用户名）")),
        _admin("rmwarn", h.cmd_rmwarn, N_("撤销成员最近的一次警告"),
               N_("/rmwarn（回复某人的消息，或 /rmwarn @用户名）")),
        _admin("resetwarns", h.cmd_resetwarns, N_("清空成员的全部警告"),
               N_("/resetwarns（回复某人的消息，或 /resetwarns @用户名）")),
        _admin("mute", h.cmd_mute, N_("禁言成员"),
               N_("/mute [时长] [原因]（回复某人的消息，或 /mute @用户名 [时长]）；时长如 10m、2h、1d、10分钟、1天")),
        _admin("unmute", h.cmd_unmute, N_("解除禁言"),
               N_("/unmute（回复某人的消息，或 /unmute @用户名）")),
        _admin("ban", h.cmd_ban, N_("封禁成员"),
               N_("/ban [时长] [原因]（回复某人的消息，或 /ban @用户名 [时长]）；"
                  "回复频道身份的消息或 /ban -100频道ID 封禁该频道")),
        _admin("unban", h.cmd_unban, N_("解除封禁"), N_("/unban @用户名、/unban 用户ID 或 /unban -100频道ID")),
        _admin("kick", h.cmd_kick, N_("踢出成员（可重新加入）"),
               N_("/kick [原因]（回复某人的消息，或 /kick @用户名）")),
        _admin("del", h.cmd_del, N_("删除回复的消息"), N_("回复要删除的消息发送 /del")),
        _admin("purge", h.cmd_purge, N_("清理消息：从回复的那条到这条命令之间的全部消息"),
               N_("回复要清理的第一条消息发送 /purge（最多 1000 条）")),
        _admin("pin", h.cmd_pin, N_("置顶回复的消息"), N_("回复要置顶的消息发送 /pin（加 loud 会通知全员）")),
        _admin("unpin", h.cmd_unpin, N_("取消置顶"),
               N_("/unpin：回复某条置顶消息取消它；不回复则取消最近的置顶；/unpin all 取消全部")),
        _admin("addblacklist", h.cmd_addblacklist, N_("添加违禁词"),
               N_("/addblacklist 词1 词2 … [action=delete|warn|mute:1d|ban|kick]")),
        _admin("rmblacklist", h.cmd_rmblacklist, N_("删除违禁词"), N_("/rmblacklist 词1 词2 …")),
        _admin("blacklist", h.cmd_blacklist, N_("查看违禁词")),
        _admin("approve", h.cmd_approve, N_("设为信任成员（不受防刷屏、防广告和锁定限制）"),
               N_("/approve（回复某人的消息，或 /approve @用户名）")),
        _admin("unapprove", h.cmd_unapprove, N_("取消信任成员"),
               N_("/unapprove（回复某人的消息，或 /unapprove @用户名）")),
        _admin("approved", h.cmd_approved, N_("查看信任成员")),
        _admin("raid", h.cmd_raid, N_("防突袭模式：开启或关闭"), N_("/raid on [时长] 或 /raid off")),
        _admin("lock", h.cmd_lock, N_("锁定某类消息"),
               N_("/lock 类型 [delete|warn|mute 1h|ban|kick]；类型：links forwards stickers gifs media channel "
                  "voice polls contacts inline dice")),
        _admin("unlock", h.cmd_unlock, N_("解除锁定"), N_("/unlock 类型（/locks 查看全部类型）")),
        _admin("locks", h.cmd_locks, N_("查看本群锁定")),
        Command("report", h.cmd_report, N_("举报消息给管理员（回复那条消息）"),
                usage=N_("回复要举报的消息发送 /report"), aliases=("举报", "@admin", "@admins")),
        Command("gban", h.cmd_gban, N_("全网封禁（所有由本机器人管理的群）"),
                usage=N_("/gban @用户名|用户ID [原因]，或回复某人的消息"), owner=True, scope="any"),
        Command("ungban", h.cmd_ungban, N_("解除全网封禁"), usage=N_("/ungban @用户名|用户ID"),
                owner=True, scope="any"),
    ],
    guards=[guard],
    timers={h.RAID_TIMER: h.on_raid_timer},
    subscriptions={MemberJoined: h.on_member_joined},
    runtime=ModerationRuntime,
    on_startup=h.on_startup,
    order=10,
    settings_keys={
        "ladder": N_("警告阶梯"),
        "blacklist_enabled": N_("违禁词"),
        "flood_enabled": N_("防刷屏"),
        "spam_enabled": N_("防广告"),
        "raid_enabled": N_("防突袭"),
    },
)
