"""polls with two workers (two Apps: two memories) sharing PostgreSQL and Redis behaves like one bot: a
contest opened or closed through one worker is served or stopped by the other, a lottery counts each
member once whichever worker they entered through, a contest closed from both workers at once is paid
and announced once, no acknowledged vote is left out of the result, and the live-count edits of both
workers keep one edit interval."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from plugins.polls import engine
from plugins.polls.models import Contest, Entry
from plugins.polls.runtime import PollsRuntime
from tests.harness import ADMIN, ALICE, BOB, CAROL, DAVE, GROUP, Harness
from tests.scale.support import running_pair, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
async def workers(tmp_path: Path, pg_url: str, redis_prefix: tuple[str, str],
                  shared_nlp: Any) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two workers over one emulated Telegram and one clock; each update goes to the worker we pick."""
    async with running_pair(tmp_path, pg_url, redis_prefix, "polls", nlp=shared_nlp) as (a, b):
        a.world.set_member(GROUP, DAVE, "member")
        yield a, b


def rt(h: Harness) -> PollsRuntime:
    runtime = h.app.runtime("polls")
    assert isinstance(runtime, PollsRuntime)
    return runtime


async def heard(src: Harness, dst: Harness) -> None:
    """``dst`` got ``src``'s invalidation message (in production it rides ahead of the chat's next update)."""
    await src.app.shared.settle()
    await wait_for(lambda: rt(dst).dirty, 5, "the invalidation message")


def answer_of(h: Harness, callback_id: str) -> str:
    answer = h.world.callbacks[callback_id]["answer"]
    assert answer is not None, "the callback query was not answered"
    return str(answer["text"])


def last_bot_message(h: Harness) -> dict[str, Any]:
    return h.world.bot_messages(GROUP)[-1]


async def entrants(h: Harness, contest_id: int) -> list[int]:
    async with h.app.db() as s:
        return sorted(await s.scalars(select(Entry.user_id).where(Entry.contest_id == contest_id)))


async def only_contest(h: Harness) -> Contest:
    async with h.app.db() as s:
        [contest] = list(await s.scalars(select(Contest)))
    return contest


async def test_lottery_opened_on_one_worker_counts_entries_through_both_once(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.say(GROUP, ADMIN, "/lottery 口红 1 1h 我要抽奖")
    mid = last_bot_message(a)["message_id"]
    [join] = (btn["callback_data"] for btn in a.world.buttons(GROUP, mid))
    await heard(a, b)
    await b.say(GROUP, BOB, "我要抽奖")  # the keyword works on the worker that did not open it
    await a.say(GROUP, BOB, "我要抽奖")
    assert "参与成功" in answer_of(b, await b.press(GROUP, ALICE, mid, join))
    assert "已经参与过" in answer_of(a, await a.press(GROUP, ALICE, mid, join))
    assert "已经参与过" in answer_of(b, await b.press(GROUP, BOB, mid, join))
    await a.say(GROUP, CAROL, "我 要 抽奖！")
    contest = await only_contest(a)
    assert await entrants(a, contest.id) == [ALICE, BOB, CAROL]
    await b.advance(10)
    assert "已参与：3 人" in a.world.message(GROUP, mid)["text"]
    await b.advance(3600)  # drawn by the worker that did not open it
    result = a.world.sent_texts(GROUP)[-1]
    assert "开奖" in result and "有效参与 3 人" in result
    # Closed there: a keyword on the other worker is no entry any more.
    await heard(b, a)
    await a.say(GROUP, DAVE, "我要抽奖")
    assert await entrants(a, contest.id) == [ALICE, BOB, CAROL]
    assert not rt(a).keywords and not rt(b).keywords


async def test_quiz_and_poll_opened_on_one_worker_are_answered_on_the_other(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.say(GROUP, ADMIN, "/poll 30m 下期上新哪款？| 草莓味 | 抹茶味")
    poll_id = a.calls("sendPoll")[-1].result["poll"]["id"]
    await a.say(GROUP, ADMIN, "/quiz 本店哪年开业？| 2019 | 20 | 10m")
    await heard(a, b)
    b.world.vote_poll(poll_id, ALICE, [1])
    await b.deliver()  # a poll answer carries no chat: any worker may get it
    await b.say(GROUP, BOB, "２０１９")
    assert "恭喜 Bob 答对了" in b.world.sent_texts(GROUP)[-1]
    assert await b.app.points.balance(GROUP, BOB) == 20
    # Won on B: A stops matching it.
    await heard(b, a)
    await a.say(GROUP, CAROL, "2019")
    assert sum("恭喜" in t for t in a.world.sent_texts(GROUP)) == 1
    await a.say(GROUP, ADMIN, "/endcontest 1")
    assert "抹茶味" in a.world.sent_texts(GROUP)[-1]
    async with a.app.db() as s:
        answers = list(await s.execute(select(Entry.user_id, Entry.choices).where(Entry.contest_id == 1)))
    assert [(u, c) for u, c in answers] == [(ALICE, [1])]


async def test_cancelled_on_one_worker_stops_on_the_other(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.say(GROUP, ADMIN, "/quiz 第一题 | 答案甲 | 5 | 1h")
    await heard(a, b)
    await b.say(GROUP, ALICE, "随便聊聊")  # B serves it now
    assert rt(b).quizzes
    await a.say(GROUP, ADMIN, "/cancelcontest 1")
    await heard(a, b)
    await b.say(GROUP, ALICE, "答案甲")
    assert not any("恭喜" in t for t in b.world.sent_texts(GROUP))
    assert not rt(b).quizzes and (await only_contest(a)).status == "cancelled"


async def test_missed_messages_are_made_up_for_by_a_full_rebuild(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.say(GROUP, ADMIN, "/quiz 第一题 | 答案甲 | 5 | 1h")
    await heard(a, b)
    rt(b).stale.clear()  # as if B's subscription had been down when A opened it ...
    rt(b).dirty = False
    await b.say(GROUP, ALICE, "答案甲")
    assert not any("恭喜" in t for t in b.world.sent_texts(GROUP))
    rt(b).invalidated("*")  # ... and the "drop everything" sent when Redis is back
    await b.say(GROUP, BOB, "答案甲")
    assert "恭喜 Bob 答对了" in b.world.sent_texts(GROUP)[-1]


async def test_closed_from_both_workers_at_once_is_paid_and_announced_once(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.say(GROUP, ADMIN, "/pk 甜粽子 vs 咸粽子 1h")
    mid = last_bot_message(a)["message_id"]
    a_btn, _b_btn = (btn["callback_data"] for btn in a.world.buttons(GROUP, mid))
    await heard(a, b)
    for i, user in enumerate((ALICE, BOB, CAROL)):
        await (a if i % 2 else b).press(GROUP, user, mid, a_btn)
    cid = (await only_contest(a)).id
    # /endcontest on one worker while the close timer fires on the other.
    done = await asyncio.gather(engine.finalize(a.app, cid), engine.finalize(b.app, cid))
    for h in (a, b):
        await h.app.sender.drain(5)
    assert sorted(done) == [False, True]
    results = [t for t in a.world.sent_texts(GROUP) if "结果" in t]
    assert len(results) == 1 and "甜粽子 3 票" in results[0]
    contest = await only_contest(a)
    assert contest.status == "closed" and contest.announced_at is not None


async def test_no_acknowledged_vote_is_left_out_of_the_result(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    fans = list(range(3001, 3031))
    for uid in fans:
        a.world.add_user(uid, f"粉丝{uid}")
        a.world.set_member(GROUP, uid, "member")
    await a.say(GROUP, ADMIN, "/pk 猫派 vs 狗派 1h")
    mid = last_bot_message(a)["message_id"]
    a_btn, b_btn = (btn["callback_data"] for btn in a.world.buttons(GROUP, mid))
    await heard(a, b)
    queries = {uid: a.world.press_button(GROUP, uid, mid, a_btn if uid % 2 else b_btn) for uid in fans}
    cid = (await only_contest(a)).id
    # Members vote through B while A closes the PK (once the first votes are in).
    voting = asyncio.create_task(b.deliver())
    await wait_for(lambda: sum(a.world.callbacks[q]["answer"] is not None for q in queries.values()) >= 5, 10,
                   "the first votes")
    await engine.finalize(a.app, cid)
    await voting
    await a.app.sender.drain(5)
    acknowledged = {uid for uid, q in queries.items() if "已投给" in answer_of(b, q)}
    refused = {uid for uid, q in queries.items() if "已经结束" in answer_of(b, q)}
    assert acknowledged | refused == set(fans)
    contest = await only_contest(a)
    voters = {int(uid) for uid, _side in contest.result["voters"]}
    assert voters == acknowledged, (len(voters), len(acknowledged))
    assert set(await entrants(a, cid)) == acknowledged


async def test_live_count_edits_keep_one_interval_across_workers(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.say(GROUP, ADMIN, "/pk 猫派 vs 狗派 1h")
    mid = last_bot_message(a)["message_id"]
    a_btn, b_btn = (btn["callback_data"] for btn in a.world.buttons(GROUP, mid))
    await heard(a, b)
    a.clear()
    await b.press(GROUP, ALICE, mid, a_btn)
    await a.press(GROUP, BOB, mid, b_btn)
    await b.press(GROUP, CAROL, mid, a_btn)
    assert not a.calls("editMessageText"), "edited within the interval after posting"
    await b.advance(3)
    edits = a.calls("editMessageText")
    assert len(edits) == 1 and "共 3 人投票" in edits[0].params["text"]
    await a.advance(10)
    await b.press(GROUP, BOB, mid, a_btn)  # the interval has passed: edited at once ...
    assert len(a.calls("editMessageText")) == 2
    await a.press(GROUP, BOB, mid, b_btn)  # ... and the other worker waits for the next one
    await b.press(GROUP, BOB, mid, a_btn)  # back to what the message shows: no edit needed
    await a.advance(5)
    assert len(a.calls("editMessageText")) == 2
    assert re.search(r"🔴 猫派 \(3\)", str(a.world.buttons(GROUP, mid)))


async def test_replies_through_the_other_worker_count_for_an_argument(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.say(GROUP, ADMIN, "/pk 甜粽子 vs 咸粽子 1h")
    mid = last_bot_message(a)["message_id"]
    a_btn, _ = (btn["callback_data"] for btn in a.world.buttons(GROUP, mid))
    await heard(a, b)
    await b.press(GROUP, ALICE, mid, a_btn)
    argument = await a.say(GROUP, ALICE, "#A 甜粽子才是正宗，豆沙蜜枣yyds")
    await b.say(GROUP, BOB, "说得对", reply_to=argument["message_id"])
    await b.say(GROUP, CAROL, "同意", reply_to=argument["message_id"])
    await b.say(GROUP, ALICE, "自己顶", reply_to=argument["message_id"])  # self-replies do not count
    await b.advance(3600)
    result = a.world.sent_texts(GROUP)[-1]
    assert "正方最佳论点（2 条回复）" in result and "豆沙蜜枣yyds" in result
