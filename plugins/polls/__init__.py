"""Contests: native polls, two-side PK debates, verifiable lucky draws and quizzes."""

from __future__ import annotations

from bot.plugin import N_, Command, Plugin
from plugins.polls.config import PollsConfig
from plugins.polls.engine import flush, on_close_timer, on_refresh_timer, on_startup
from plugins.polls.handlers import (
    cmd_cancelcontest,
    cmd_contests,
    cmd_endcontest,
    cmd_lottery,
    cmd_lottery_verify,
    cmd_pk,
    cmd_poll,
    cmd_quiz,
    make_router,
    observe,
)
from plugins.polls.runtime import PollsRuntime

plugin = Plugin(
    name="polls",
    description=N_("群活动：投票、话题PK、抽奖、知识竞赛"),
    config=PollsConfig,
    make_router=make_router,
    commands=(
        Command("poll", cmd_poll, N_("发起投票"), scope="any",
                usage=N_("/poll [匿名] [多选] [quiz=正确选项序号] [时长] 问题 | 选项1 | 选项2 ...，"
                         "例如 /poll 2h 下期上新哪款？| 草莓味 | 抹茶味")),
        Command("pk", cmd_pk, N_("发起话题PK"), scope="any",
                usage=N_("/pk 正方观点 vs 反方观点 [时长]，例如 /pk 甜粽子 vs 咸粽子 2h")),
        Command("lottery", cmd_lottery, N_("发起抽奖"), scope="any",
                usage=N_("/lottery 奖品 名额 时长或时间 [口令]，例如 /lottery 口红 3 2h 我要抽奖，"
                         "或 /lottery 口红 1 20:00")),
        Command("quiz", cmd_quiz, N_("发起知识竞赛"), scope="any",
                usage=N_("/quiz 问题 | 答案 [积分] [时长]，例如 /quiz 本店哪年开业？| 2019 | 20 | 10m"
                         "（多个可接受的答案用 / 分隔）")),
        Command("contests", cmd_contests, N_("查看进行中的活动")),
        Command("endcontest", cmd_endcontest, N_("立即结束活动并公布结果"), admin=True,
                usage=N_("/endcontest 活动编号")),
        Command("cancelcontest", cmd_cancelcontest, N_("取消活动（不开奖、不发积分）"), admin=True,
                usage=N_("/cancelcontest 活动编号")),
        Command("lottery_verify", cmd_lottery_verify, N_("复核抽奖结果"), scope="any",
                usage=N_("/lottery_verify 抽奖编号")),
    ),
    observers=(observe,),
    timers={"close": on_close_timer, "refresh": on_refresh_timer},
    runtime=PollsRuntime,
    on_startup=on_startup,
    flush=flush,
    settings_keys={
        "who_can_start": N_("谁可以发起"),
        "pk_participation_points": N_("PK参与积分"),
        "pk_win_bonus": N_("PK胜方奖励"),
        "quiz_default_points": N_("竞赛默认积分"),
        "lottery_exclude_admins": N_("抽奖排除管理员"),
    },
)
