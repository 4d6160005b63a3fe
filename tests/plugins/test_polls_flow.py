"""End to end through the emulator: /poll, /pk, /lottery, /quiz, their full lives, restarts, bad input."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.services.timers import TimerFire
from plugins.polls import engine
from plugins.polls.models import Contest
from tests.harness import ADMIN, ALICE, BOB, CAROL, CREATOR, DAVE, GROUP, OTHER_GROUP, Harness

POLLS = ["polls"]


async def start(make_harness: Any, **cfg: Any) -> Harness:
    config = {"plugins": {"polls": cfg}} if cfg else None
    return await make_harness(plugins=POLLS, config=config)


async def contests(h: Harness) -> list[Contest]:
    async with h.app.db() as s:
        return list(await s.scalars(select(Contest).order_by(Contest.id)))


def last_bot_message(h: Harness, chat_id: int = GROUP) -> dict[str, Any]:
    messages = h.world.bot_messages(chat_id)
    assert messages, "the bot posted nothing"
    return messages[-1]


def bot_message_with(h: Harness, fragment: str, chat_id: int = GROUP) -> dict[str, Any]:
    for message in reversed(h.world.bot_messages(chat_id)):
        if fragment in (message.get("text") or ""):
            return message
    raise AssertionError(f"no bot message contains {fragment!r}: {h.texts(chat_id)}")


def answer_of(h: Harness, callback_id: str) -> str:
    answer = h.world.callbacks[callback_id]["answer"]
    assert answer is not None, "the callback query was not answered"
    return str(answer["text"])


async def forge_press(h: Harness, chat_id: int, user_id: int, message_id: int, data: str) -> str:
    """A callback_query with any data (forged, or of a button that is gone), as a client could send."""
    message = h.world.message(chat_id, message_id)
    assert message is not None
    query_id = f"forged{len(h.world.callbacks)}"
    h.world.callbacks[query_id] = {
        "created": h.world.now(), "answered": False, "user_id": user_id, "chat_id": chat_id,
        "message_id": message_id, "data": data, "answer": None,
    }
    h.world.push_update({"callback_query": {
        "id": query_id, "from": dict(h.world.users[user_id]), "message": message, "chat_instance": "1", "data": data,
    }})
    await h.deliver()
    return query_id


async def redeliver_last(h: Harness) -> None:
    h.world.push_update(dict(h.world.all_updates[-1]))
    await h.deliver()


async def fire_close_again(h: Harness, contest_id: int) -> None:
    """The close timer firing a second time (at-least-once)."""
    await engine.on_close_timer(h.app, TimerFire(engine.close_key(contest_id), GROUP, {"id": contest_id},
                                                 h.clock.now(), 2))
    await h.app.sender.drain(5)


# ------------------------------------------------------------------------------------------ /poll
async def test_poll_full_life_with_restart(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/poll 30m 下期上新哪款？| 草莓味 | 抹茶味 | 芒果味")
    send = h.calls("sendPoll")[-1]
    assert send.params["question"] == "下期上新哪款？"
    assert [o["text"] for o in send.params["options"]] == ["草莓味", "抹茶味", "芒果味"]
    assert send.params["is_anonymous"] is False
    poll_id = send.result["poll"]["id"]
    assert "投票 #1 已发布" in h.last_text(GROUP)

    h.world.vote_poll(poll_id, ALICE, [0])
    h.world.vote_poll(poll_id, BOB, [1])
    h.world.vote_poll(poll_id, CAROL, [0])
    await h.deliver()
    await redeliver_last(h)
    await h.restart()
    h.world.vote_poll(poll_id, BOB, [0])  # switches after the restart
    await h.deliver()
    await h.advance(10 * 60)
    assert not h.calls("stopPoll"), "closed too early"

    await h.advance(20 * 60)
    stops = h.calls("stopPoll")
    assert len(stops) == 1 and stops[0].ok
    summary = h.last_text(GROUP)
    assert "投票 #1 结果" in summary and "下期上新哪款？" in summary
    assert re.search(r"草莓味\s+\S+ 3 票 \(100%\)", summary), summary
    assert "共 3 人投票" in summary and "得票最多：草莓味" in summary
    [contest] = await contests(h)
    assert contest.status == "closed" and contest.result["counts"] == [3, 0, 0]

    before = len(h.texts(GROUP))
    await fire_close_again(h, contest.id)
    assert len(h.texts(GROUP)) == before and len(h.calls("stopPoll")) == 1


async def test_poll_quiz_mode_names_correct_voters(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/poll quiz=2 1h 1+1=? | 1 | 2 | 3")
    send = h.calls("sendPoll")[-1]
    assert send.params["type"] == "quiz" and send.params["correct_option_id"] == 1
    poll_id = send.result["poll"]["id"]
    h.world.vote_poll(poll_id, ALICE, [1])
    h.world.vote_poll(poll_id, BOB, [0])
    await h.deliver()
    await h.say(GROUP, ADMIN, "/endcontest 1")
    summary = h.last_text(GROUP)
    assert "2 ✅" in summary and "答对 1 人：Alice" in summary
    assert "tg://user?id=1001" in h.calls("sendMessage")[-1].params["text"]


async def test_poll_anonymous_multi_several_at_once_and_deleted(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/poll 匿名 多选 2h 周末活动 | 直播 | 抽奖 | 拼团")
    await h.say(GROUP, ADMIN, "/poll 1d 第二个投票 | 是 | 否")
    first, second = h.calls("sendPoll")[-2:]
    assert first.params["is_anonymous"] is True and first.params["allows_multiple_answers"] is True
    assert second.params["is_anonymous"] is False
    h.world.vote_poll(first.result["poll"]["id"], ALICE, [0, 2])
    await h.deliver()
    await h.advance(2 * 3600)
    assert len(h.calls("stopPoll")) == 1
    assert "周末活动" in h.last_text(GROUP) and "共 1 人投票" in h.last_text(GROUP)
    c1, c2 = await contests(h)
    assert c1.status == "closed" and c2.status == "open"
    h.world.vote_poll(second.result["poll"]["id"], BOB, [1])
    await h.deliver()
    # the poll message is deleted before the close: stopPoll fails, the summary uses the last poll update
    await h.app.bot.delete_message(chat_id=GROUP, message_id=second.result["message_id"])
    await h.advance(22 * 3600)
    summary = h.last_text(GROUP)
    assert "第二个投票" in summary and "共 1 人投票" in summary and "得票最多：否" in summary


# ------------------------------------------------------------------------------------------ /pk
async def test_pk_full_life_votes_switch_arguments_points_restart(make_harness: Any) -> None:
    h = await start(make_harness, pk_participation_points=2, pk_win_bonus=10)
    await h.say(GROUP, ADMIN, "/pk 甜粽子 vs 咸粽子 1h")
    pk = last_bot_message(h)
    mid = pk["message_id"]
    assert "话题PK #1" in pk["text"] and "甜粽子" in pk["text"]
    a_btn, b_btn = (b["callback_data"] for b in h.world.buttons(GROUP, mid))

    q1 = await h.press(GROUP, ALICE, mid, a_btn)
    assert "已投给「甜粽子」" in answer_of(h, q1)
    q2 = await h.press(GROUP, BOB, mid, a_btn)
    q3 = await h.press(GROUP, BOB, mid, b_btn)
    assert "已改投「咸粽子」" in answer_of(h, q3) and answer_of(h, q2)
    q4 = await h.press(GROUP, BOB, mid, b_btn)
    assert "你已经支持「咸粽子」了" in answer_of(h, q4)
    await redeliver_last(h)  # a redelivered press changes nothing

    # arguments: tagged messages and replies to them (buffered, flushed with the batch)
    arg_a = await h.say(GROUP, ALICE, "#A 甜粽子才是正宗，豆沙蜜枣yyds")
    arg_b = await h.say(GROUP, BOB, "[反方] 咸蛋黄鲜肉才好吃")
    await h.say(GROUP, CAROL, "说得对", reply_to=arg_a["message_id"])
    await h.say(GROUP, ALICE, "我自己顶一下", reply_to=arg_a["message_id"])  # self-replies do not count

    await h.restart()  # in the middle: votes, arguments and the timer survive
    await h.say(GROUP, BOB, "不同意", reply_to=arg_a["message_id"])
    await h.say(GROUP, CAROL, "有道理", reply_to=arg_b["message_id"])
    q5 = await h.press(GROUP, CAROL, mid, a_btn)
    assert "已投给" in answer_of(h, q5)
    await h.advance(10)
    live = h.world.message(GROUP, mid)
    assert "2 票" in live["text"] and "共 3 人投票" in live["text"]
    assert [b["text"] for b in h.world.buttons(GROUP, mid)] == ["🔴 甜粽子 (2)", "🔵 咸粽子 (1)"]

    await h.advance(3600)
    result = h.last_text(GROUP)
    assert "话题PK #1 结果" in result and "胜方：甜粽子" in result
    assert "正方最佳论点（2 条回复）" in result and "豆沙蜜枣yyds" in result
    assert "反方最佳论点（1 条回复）" in result and "咸蛋黄鲜肉才好吃" in result
    assert "已结束" in h.world.message(GROUP, mid)["text"] and not h.world.buttons(GROUP, mid)
    balances = {u: await h.app.points.balance(GROUP, u) for u in (ALICE, BOB, CAROL)}
    assert balances == {ALICE: 12, BOB: 2, CAROL: 12}

    # the close timer firing again pays nothing twice and announces nothing twice
    before = len(h.texts(GROUP))
    await fire_close_again(h, 1)
    assert {u: await h.app.points.balance(GROUP, u) for u in (ALICE, BOB, CAROL)} == balances
    assert len(h.texts(GROUP)) == before

    # pressing the button of the closed PK (an old client still shows it)
    late = await forge_press(h, GROUP, BOB, mid, a_btn)
    assert "已经结束" in answer_of(h, late)
    assert await h.app.points.balance(GROUP, BOB) == 2


async def test_pk_live_count_edits_are_coalesced(make_harness: Any) -> None:
    h = await start(make_harness, edit_interval_seconds=3)
    await h.say(GROUP, ADMIN, "/pk 猫派 vs 狗派 1h")
    mid = last_bot_message(h)["message_id"]
    a_btn, b_btn = (b["callback_data"] for b in h.world.buttons(GROUP, mid))
    h.clear()
    for user, button in ((ALICE, a_btn), (BOB, b_btn), (CAROL, a_btn)):
        await h.press(GROUP, user, mid, button)
    assert not h.calls("editMessageText"), "edited within the interval after posting"
    await h.advance(3)
    edits = h.calls("editMessageText")
    assert len(edits) == 1 and "共 3 人投票" in edits[0].params["text"]
    await h.advance(10)
    await h.press(GROUP, BOB, mid, a_btn)  # the interval has passed: edited at once
    assert len(h.calls("editMessageText")) == 2
    await h.press(GROUP, BOB, mid, b_btn)
    await h.press(GROUP, BOB, mid, a_btn)  # back to the same counts: one edit at most, none needed
    await h.advance(5)
    assert len(h.calls("editMessageText")) == 2


async def test_pk_tie_and_only_members_vote(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/pk 早睡 对 熬夜 30m")
    mid = last_bot_message(h)["message_id"]
    a_btn, b_btn = (b["callback_data"] for b in h.world.buttons(GROUP, mid))
    await h.press(GROUP, ALICE, mid, a_btn)
    await h.press(GROUP, BOB, mid, b_btn)
    outsider = await forge_press(h, GROUP, DAVE, mid, a_btn)  # DAVE is not in the group
    assert "只有本群成员" in answer_of(h, outsider)
    await h.join(GROUP, DAVE)
    await h.leave(GROUP, DAVE)
    left = await forge_press(h, GROUP, DAVE, mid, a_btn)
    assert "只有本群成员" in answer_of(h, left)
    await h.advance(1800)
    assert "平局" in h.last_text(GROUP)
    assert await h.app.points.balance(GROUP, ALICE) == 1 and await h.app.points.balance(GROUP, BOB) == 1
    assert await h.app.points.balance(GROUP, DAVE) == 0


async def test_forged_callback_data_is_refused(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/pk A方 vs B方 1h")
    pk_mid = last_bot_message(h)["message_id"]
    await h.say(OTHER_GROUP, ADMIN, "/pk X vs Y 1h")
    other_mid = last_bot_message(h, OTHER_GROUP)["message_id"]
    forged = ("polls:v:999:0", "polls:v:abc", "polls:v:1:7", "polls:j:1", "polls:v:2:0", "polls:",
              "polls:v:" + "9" * 70, "polls:v:1:0:extra")
    for data in forged:
        query = await forge_press(h, GROUP, ALICE, pk_mid, data)
        assert "无效的按钮" in answer_of(h, query), data
    wrong_message = await forge_press(h, OTHER_GROUP, ALICE, other_mid, "polls:v:1:0")
    assert "无效的按钮" in answer_of(h, wrong_message)
    async with h.app.db() as s:
        from plugins.polls import service

        assert await service.side_counts(s, 1) == [0, 0] and await service.side_counts(s, 2) == [0, 0]


# ------------------------------------------------------------------------------------------ /lottery
def _independent_winners(seed: str, entrants: list[int], count: int) -> list[int]:
    pool = sorted(entrants)
    material = seed + ":" + ",".join(map(str, pool))
    winners = []
    for k in range(min(count, len(pool))):
        h = int(hashlib.sha256(f"{material}:{k}".encode()).hexdigest(), 16)
        winners.append(pool.pop(h % len(pool)))
    return winners


async def test_lottery_draw_is_verifiable_and_excludes(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    await h.say(GROUP, ADMIN, "/lottery 口红 2 1h 我要抽奖")
    start_msg = last_bot_message(h)
    mid = start_msg["message_id"]
    promised = re.search(r"\b([0-9a-f]{64})\b", start_msg["text"])
    assert promised, start_msg["text"]
    [join_btn] = (b["callback_data"] for b in h.world.buttons(GROUP, mid))

    q = await h.press(GROUP, ALICE, mid, join_btn)
    assert "参与成功" in answer_of(h, q)
    q = await h.press(GROUP, ALICE, mid, join_btn)
    assert "已经参与过" in answer_of(h, q)
    q = await h.press(GROUP, ADMIN, mid, join_btn)
    assert "管理员不参与" in answer_of(h, q)
    await h.say(GROUP, BOB, "我要抽奖")
    await h.say(GROUP, BOB, "我要抽奖")  # once is enough
    await h.say(GROUP, CAROL, "我 要 抽奖！")  # normalized: spaces and punctuation do not matter
    await h.say(GROUP, CREATOR, "我要抽奖")  # an admin: left out
    await h.say(GROUP, DAVE, "我要抽奖")
    await h.restart()
    await h.leave(GROUP, DAVE)  # left before the draw: excluded
    await h.advance(5)
    assert "已参与：4 人" in h.world.message(GROUP, mid)["text"]

    await h.advance(3600)
    [contest] = await contests(h)
    seed = contest.result["seed"]
    assert hashlib.sha256(seed.encode()).hexdigest() == promised.group(1)
    assert contest.result["eligible"] == [ALICE, BOB, CAROL] and contest.result["excluded"] == 1
    assert contest.result["winners"] == _independent_winners(seed, [ALICE, BOB, CAROL], 2)
    announcement = h.last_text(GROUP)
    assert "抽奖 #1 开奖" in announcement and seed in announcement
    names = {ALICE: "Alice", BOB: "Bob", CAROL: "小红"}
    for uid in contest.result["winners"]:
        assert names[uid] in announcement
        assert f"tg://user?id={uid}" in h.calls("sendMessage")[-1].params["text"]
    assert "已开奖" in h.world.message(GROUP, mid)["text"] and not h.world.buttons(GROUP, mid)

    await h.say(GROUP, ALICE, "/lottery_verify 1")
    verify = h.last_text(GROUP)
    assert "与开始时公布的承诺一致" in verify and "与公布结果一致" in verify and "1001,1002,1003" in verify
    await h.say(ALICE, ALICE, "/lottery_verify 1")  # in a private chat, for members of the group
    assert "与公布结果一致" in h.last_text(ALICE)
    await h.say(DAVE, DAVE, "/lottery_verify 1")  # DAVE left the group
    assert "没有找到抽奖 #1" in h.last_text(DAVE)
    await h.say(GROUP, BOB, "我要抽奖")  # after the draw the keyword does nothing
    async with h.app.db() as s:
        from plugins.polls import service

        assert await service.entrant_ids(s, 1) == [ALICE, BOB, CAROL, DAVE]


async def test_lottery_fewer_entrants_and_nobody(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/lottery 红包 3 30m")
    mid = last_bot_message(h)["message_id"]
    [join_btn] = (b["callback_data"] for b in h.world.buttons(GROUP, mid))
    await h.press(GROUP, ALICE, mid, join_btn)
    await h.say(GROUP, ADMIN, "/lottery 空奖 1 30m 没人说")
    await h.advance(1800)
    texts = h.texts(GROUP)
    assert any("全部有效参与者中奖" in t and "Alice" in t for t in texts)
    assert any("空奖" in t and "作废" in t for t in texts)


# ------------------------------------------------------------------------------------------ /quiz
async def test_quiz_first_right_answer_wins_once(make_harness: Any) -> None:
    h = await start(make_harness)
    cmd = await h.say(GROUP, ADMIN, "/quiz 本店哪年开业？| 2019 | 20 | 10m")
    assert any(c.params.get("message_id") == cmd["message_id"] for c in h.calls("deleteMessage"))
    assert "知识竞赛 #1" in h.last_text(GROUP) and "20 积分" in h.last_text(GROUP)
    assert "2019" not in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "2019")  # the one who set it cannot win
    await h.say(GROUP, ALICE, "2018")
    assert "恭喜" not in h.last_text(GROUP)
    await h.restart()
    win = await h.say(GROUP, BOB, "２０１９")  # full-width digits match
    text = h.last_text(GROUP)
    assert "恭喜 Bob 答对了" in text and "20 积分" in text
    assert h.calls("sendMessage")[-1].params["reply_parameters"]["message_id"] == win["message_id"]
    await h.say(GROUP, CAROL, "2019")
    await redeliver_last(h)
    await h.advance(600)
    assert await h.app.points.balance(GROUP, BOB) == 20
    assert await h.app.points.balance(GROUP, CAROL) == 0
    assert sum("恭喜" in t for t in h.texts(GROUP)) == 1 and not any("时间到" in t for t in h.texts(GROUP))
    await fire_close_again(h, 1)
    assert await h.app.points.balance(GROUP, BOB) == 20


async def test_quiz_normalizes_case_and_spaces_and_times_out(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/quiz 品牌口号？| Hello World / 你好世界 5 5m")
    await h.say(GROUP, ALICE, "hello   WORLD!")
    assert "恭喜 Alice" in h.last_text(GROUP)
    assert await h.app.points.balance(GROUP, ALICE) == 5
    await h.say(GROUP, ADMIN, "/quiz 第二题 | 答案甲 | 5m")
    await h.say(GROUP, ALICE, "答案乙")
    await h.advance(300)
    assert "时间到，没有人答对。正确答案：答案甲" in h.last_text(GROUP)


async def test_quiz_set_in_a_dm_after_connect(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(ADMIN, ADMIN, "/connect -1001")
    await h.say(ADMIN, ADMIN, "/quiz 店长叫什么？| 小王 | 10 | 5m")
    assert "已在群里发布 知识竞赛 #1" in h.last_text(ADMIN)
    assert "店长叫什么？" in h.last_text(GROUP)
    await h.say(GROUP, CAROL, "小王")
    assert "恭喜 小红" in h.last_text(GROUP)
    await h.say(ALICE, ALICE, "/quiz 问题 | 答案")
    assert "/connect" in h.last_text(ALICE)


# ------------------------------------------------------------------------------------------ admin & limits
async def test_several_contests_at_once_list_end_and_cancel(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/pk 红 vs 蓝 2h")
    await h.say(GROUP, ADMIN, "/lottery 周边 1 2h 冲")
    await h.say(GROUP, ADMIN, "/quiz 题目 | 答 | 5 | 2h")
    await h.say(GROUP, ADMIN, "/poll 2h 问题 | 是 | 否")
    await h.say(GROUP, ALICE, "/contests")
    listing = h.last_text(GROUP)
    for fragment in ("#1 话题PK", "#2 抽奖", "#3 知识竞赛", "#4 投票"):
        assert fragment in listing
    await h.say(GROUP, ALICE, "/endcontest 1")
    assert "只有管理员" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/endcontest 1")
    assert "话题PK #1 结果" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/endcontest 1")
    assert "已经结束" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/cancelcontest 2")
    assert "已取消抽奖 #2" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "冲")  # the cancelled lottery's keyword does nothing
    await h.say(GROUP, ADMIN, "/cancelcontest 4")
    assert h.calls("stopPoll")
    await h.say(GROUP, ADMIN, "/endcontest 99")
    assert "没有找到活动 #99" in h.last_text(GROUP)
    await h.say(OTHER_GROUP, ADMIN, "/endcontest 3")  # another chat's contest
    assert "没有找到活动 #3" in h.last_text(OTHER_GROUP)
    statuses = [c.status for c in await contests(h)]
    assert statuses == ["closed", "cancelled", "open", "cancelled"]
    await h.advance(2 * 3600)
    assert [c.status for c in await contests(h)] == ["closed", "cancelled", "closed", "cancelled"]
    assert not any("抽奖 #2 开奖" in t for t in h.texts(GROUP))


async def test_who_may_start_and_open_limit(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ALICE, "/poll 问题 | 是 | 否")
    assert "只有管理员可以发起活动" in h.last_text(GROUP)
    assert not h.calls("sendPoll") and not await contests(h)

    h2 = await start(make_harness, who_can_start="members", max_open_per_chat=1)
    await h2.say(GROUP, ALICE, "/pk 甲 vs 乙")
    assert "话题PK #1" in h2.last_text(GROUP)
    await h2.say(GROUP, BOB, "/pk 丙 vs 丁")
    assert "已达上限（1 个）" in h2.last_text(GROUP)


BAD_INPUT = [
    ("/poll", "用法"),
    ("/poll  | 选项1 | 选项2", "问题不能为空"),
    ("/poll 问题 | 只有一个", "至少需要两个选项"),
    ("/poll 问题 | " + " | ".join(f"选项{i}" for i in range(11)), "选项最多 10 个"),
    ("/poll 问题 | 苹果 | 苹果", "选项重复"),
    ("/poll time=abc 问题 | 是 | 否", "时长格式不对"),
    ("/poll 10年 问题 | 是 | 否", "时长不能超过 30天"),
    ("/poll 10s 问题 | 是 | 否", "时长至少为 1分钟"),
    ("/pk 甜 vs 甜", "不能相同"),
    ("/pk 只有一边", "用法"),
    ("/pk 甜 vs 咸 10 years", "时长不能超过"),
    ("/pk 甜 vs 咸 | abc", "时长格式不对"),
    ("/lottery 口红 1 abc", "开奖时间格式不对"),
    ("/lottery 口红 50 1h", "不能多于可参与的群成员数（4）"),
    ("/lottery 口红 1 10年", "时长不能超过"),
    ("/lottery", "用法"),
    ("/quiz 没有答案", "用法"),
    ("/quiz 问题 | 答案 | abc", "无法识别"),
    ("/quiz 问题 | 答案 | 99999", "积分应在 0 到 1000 之间"),
    ("/endcontest abc", "用法"),
    ("/lottery_verify 5", "没有找到抽奖 #5"),
]


async def test_bad_input_gets_a_clear_answer(make_harness: Any, caplog: Any) -> None:
    h = await start(make_harness)
    caplog.set_level(logging.ERROR)
    for command, fragment in BAD_INPUT:
        await h.say(GROUP, ADMIN, command)
        assert fragment in h.last_text(GROUP), command
    assert not await contests(h) and not h.calls("sendPoll")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert not h.world.internal_errors


async def test_redelivered_command_creates_one_contest(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/pk 豆腐脑 vs 咸豆花 1h")
    raw = next(u for u in reversed(h.world.all_updates) if "message" in u)
    # Same message under a new update id: what a crash before the ledger commit looks like.
    h.world.push_update({"message": raw["message"]})
    await h.deliver()
    assert len(await contests(h)) == 1
    assert sum("话题PK #" in t for t in h.texts(GROUP)) == 1


async def test_timer_close_after_restart_when_time_passed_while_down(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/pk 春 vs 秋 30m")
    mid = last_bot_message(h)["message_id"]
    await h.press(GROUP, ALICE, mid, "polls:v:1:1")
    await h.stop()
    h.clock.advance(timedelta(hours=2))
    await h.start(create_schema=False)
    await h.advance(1)
    assert "胜方：秋" in h.last_text(GROUP)
    assert await h.app.points.balance(GROUP, ALICE) == 1 + 5
