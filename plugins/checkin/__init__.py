"""checkin: daily 签到 with streaks and 补签卡, activity points, levels and badges, leaderboards,
the points shop and invite rewards, all on the core points ledger."""

from __future__ import annotations

from bot.plugin import N_, Command, Job, Plugin
from bot.services.events import BotStarted, MemberJoined, MemberLeft, MemberVerified
from plugins.checkin import activity, admin, handlers, invites, weekly
from plugins.checkin.config import CheckinConfig

plugin = Plugin(
    name="checkin",
    description=N_("签到、积分、等级徽章、排行榜、积分商城和邀请奖励"),
    config=CheckinConfig,
    make_router=admin.make_router,
    commands=(
        Command("checkin", handlers.cmd_checkin, N_("每日签到"), aliases=("签到",)),
        Command("points", handlers.cmd_points, N_("我的积分、等级、连签和徽章"), aliases=("积分", "我的积分")),
        Command("profile", handlers.cmd_profile, N_("查看成员的积分卡（回复他的消息）"),
                usage=N_("回复成员的消息发送 /profile，或 /profile @用户名")),
        Command("top", handlers.cmd_top, N_("排行榜：积分/连签/活跃，本周/本月/总榜"), aliases=("排行榜",),
                usage=N_("/top [points|streak|activity] [week|month|all]，例如 /top streak week 或 /top 活跃 本月")),
        Command("makeup", handlers.cmd_makeup, N_("使用补签卡补上漏签"), aliases=("补签",)),
        Command("shop", handlers.cmd_shop, N_("积分商城"), aliases=("积分商城",)),
        Command("redeem", handlers.cmd_redeem, N_("兑换商品"), usage=N_("/redeem 商品代号，例如 /redeem makeup")),
        Command("invite", handlers.cmd_invite, N_("获取我的专属邀请链接"), aliases=("邀请链接",)),
        Command("invites", handlers.cmd_invites, N_("我的邀请和邀请榜")),
        Command("give", admin.cmd_give, N_("给成员发放积分"), admin=True,
                usage=N_("回复成员的消息：/give 数量 [原因]；或 /give @用户名 数量 [原因]")),
        Command("take", admin.cmd_take, N_("扣除成员积分"), admin=True,
                usage=N_("回复成员的消息：/take 数量 [原因]；或 /take @用户名 数量 [原因]")),
        Command("resetpoints", admin.cmd_resetpoints, N_("清零成员（或全群）积分"), admin=True,
                usage=N_("回复成员的消息发送 /resetpoints，或 /resetpoints @用户名，全群清零：/resetpoints all")),
        Command("ledger", admin.cmd_ledger, N_("导出成员的积分流水"), admin=True,
                usage=N_("回复成员的消息发送 /ledger，或 /ledger @用户名")),
        Command("additem", admin.cmd_additem, N_("上架或修改商城商品"), admin=True,
                usage=N_("/additem 代号 价格 名称 [库存=10] [限购=1] [类型=coupon|badge|title|custom|makeup]")),
        Command("delitem", admin.cmd_delitem, N_("下架商城商品"), admin=True, usage=N_("/delitem 代号")),
        Command("stock", admin.cmd_stock, N_("查看或修改商品库存"), admin=True,
                usage=N_("/stock 查看全部；/stock 代号 数量（如 10、+5、-3、不限）")),
        Command("addcodes", admin.cmd_addcodes, N_("给券码商品添加券码"), admin=True,
                usage=N_("/addcodes 代号 券码1 券码2 …（空格、逗号或换行分隔）")),
        Command("orders", admin.cmd_orders, N_("待人工发放的兑换"), admin=True),
        Command("fulfill", admin.cmd_fulfill, N_("标记兑换已发放"), admin=True, usage=N_("/fulfill 订单编号")),
    ),
    observers=(activity.observe,),
    jobs=(Job("weekly_top", weekly.run, cron={"minute": 7}),),
    timers={"invite": invites.on_timer, "attrib": invites.on_attrib_timer},
    subscriptions={
        MemberJoined: invites.on_joined,
        MemberVerified: invites.on_verified,
        MemberLeft: invites.on_left,
        BotStarted: handlers.on_bot_started,
    },
    runtime=activity.make_runtime,
    flush=activity.flush,
    settings_keys={
        "base_points": N_("签到基础分"),
        "activity_points": N_("发言积分"),
        "invite_points": N_("邀请奖励"),
        "makeup_grace_days": N_("补签天数"),
    },
)
