"""checkin end to end through the emulated Telegram: 签到 twice, 积分, 排行榜, /shop and /redeem with
code delivery, invites paid after the wait (and the anti-fraud rules), admin commands, redelivery."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.models import PointsEntry
from bot.runner import ALLOWED_UPDATES, RawGetUpdates, parse_updates
from bot.services.events import CheckedIn
from plugins.checkin.admin import reset_points
from plugins.checkin.models import Invite
from tests.harness import ADMIN, ALICE, BOB, CAROL, CREATOR, DAVE, GROUP, LOG_CHAT, Harness

LINK = re.compile(r"https://t\.me/\+[\w-]+")


async def start(make_harness: Any, plugins: tuple[str, ...] = ("checkin",), **cfg: Any) -> Harness:
    h: Harness = await make_harness(plugins=list(plugins),
                                    config={"plugins": {"checkin": {"lucky_chance": 0, **cfg}}})
    h.world.allowed_updates = list(ALLOWED_UPDATES)  # chat_member updates carry the invite link
    return h


async def entries(h: Harness, user_id: int) -> int:
    async with h.app.db() as s:
        return int(await s.scalar(select(func.count()).select_from(PointsEntry)
                                  .where(PointsEntry.user_id == user_id)) or 0)


def dm_texts(h: Harness, user_id: int) -> list[str]:
    return h.texts(user_id) if user_id in h.world.chats else []


def replies_to(h: Harness, message_id: int) -> list[Any]:
    return [c for c in h.calls("sendMessage")
            if (c.params.get("reply_parameters") or {}).get("message_id") == message_id]


async def test_checkin_twice_points_and_leaderboard(make_harness: Any) -> None:
    h = await start(make_harness)
    seen: list[CheckedIn] = []

    async def spy(app: Any, event: CheckedIn) -> None:
        seen.append(event)

    h.app.events.subscribe(CheckedIn, "core", spy)
    await h.say(GROUP, ALICE, "签到")
    first = h.last_text(GROUP)
    assert "签到成功" in first and "今天第 1 位签到" in first and "获得 5 积分" in first
    assert "连续签到 1 天" in first and "总积分 5" in first and "初来乍到" in first
    await h.say(GROUP, BOB, "/checkin")
    assert "今天第 2 位签到" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "签到")
    assert "已经签到过" in h.last_text(GROUP) and "总积分 5" in h.last_text(GROUP)
    assert await entries(h, ALICE) == 1
    assert [(e.user_id, e.streak, e.points) for e in seen] == [(ALICE, 1, 5), (BOB, 1, 5)]

    await h.say(GROUP, ALICE, "积分")
    card = h.last_text(GROUP)
    assert "积分：5" in card and "萌新" in card and "距「活跃」还差 95 积分" in card and "连续签到 1 天" in card

    h.clock.advance(86_400)
    await h.say(GROUP, BOB, "签到")
    assert "连续签到 2 天" in h.last_text(GROUP) and "获得 6 积分" in h.last_text(GROUP)
    await h.say(GROUP, CAROL, "排行榜")
    board = h.last_text(GROUP).splitlines()
    assert board[1:3] == ["🥇 Bob — 11 分", "🥈 Alice — 5 分"]
    assert board[-1] == "你还没有上榜。"
    await h.say(GROUP, ALICE, "/top streak")
    assert h.last_text(GROUP).splitlines()[1:2] == ["🥇 Bob — 2 天"]
    await h.say(GROUP, ALICE, "/top sideways")
    assert h.last_text(GROUP).startswith("用法：")


async def test_board_ties_and_own_rank_outside_the_top(make_harness: Any) -> None:
    h = await start(make_harness, top_size=2)
    for uid, pts in ((BOB, 10), (ALICE, 10), (CREATOR, 30), (CAROL, 5)):
        await h.app.points.change(GROUP, uid, pts, "checkin", f"seed-{uid}")
    await h.app.points.change(GROUP, CAROL, 40, "activity", "act")
    await h.app.points.change(GROUP, CAROL, -40, "redeem", "buy")
    await h.say(GROUP, BOB, "/top")
    lines = h.last_text(GROUP).splitlines()
    assert lines[1:] == ["🥇 店长 — 30 分", "🥈 Alice — 10 分", "你的排名：第 3 名（10 分）"]
    await h.say(GROUP, BOB, "/top 积分 本周")  # earned this week: CAROL's spending does not count
    assert h.last_text(GROUP).splitlines()[1] == "🥇 小红 — 45 分"
    await h.say(GROUP, BOB, "/top activity month")
    assert h.last_text(GROUP).splitlines()[1:] == ["🥇 小红 — 40 分", "你还没有上榜。"]


async def test_redelivered_checkin_after_a_crash_changes_nothing(make_harness: Any) -> None:
    h = await start(make_harness)
    message = h.world.send_message(GROUP, ALICE, "签到")
    raw = await h.app.bot(RawGetUpdates(offset=None, limit=100, timeout=0))
    updates, _ = parse_updates(h.app, raw)
    await h.app.process_batch(updates)  # processed, but the batch is never flushed or confirmed
    await h.app.sender.drain(5)
    await h.crash()
    await h.start(create_schema=False)
    await h.deliver()  # Telegram delivers the same update again
    assert await entries(h, ALICE) == 1
    assert len(replies_to(h, message["message_id"])) == 1
    # A plain redelivery (the update id already confirmed) is dropped by the core.
    h.world.push_update(next(u for u in h.world.all_updates if u.get("message", {}).get("text") == "签到"))
    await h.deliver()
    assert await entries(h, ALICE) == 1 and len(replies_to(h, message["message_id"])) == 1


async def test_shop_redeem_and_code_delivery(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/additem card10 20 十元券 库存=5 类型=coupon")
    assert "已上架" in h.last_text(GROUP) and "/addcodes" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/addcodes card10 CODE-AAA1, CODE-BBB2")
    assert "新增 2 个券码" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/additem x 1 y")
    assert "只有管理员" in h.last_text(GROUP)
    for uid in (ALICE, BOB, CAROL):
        await h.app.points.change(GROUP, uid, 25, "checkin", f"seed-{uid}")

    await h.say(GROUP, ALICE, "/shop")
    listing = h.last_text(GROUP)
    assert "十元券" in listing and "20 积分" in listing and "剩 2 件" in listing and "补签卡" in listing

    await h.say(GROUP, ALICE, "/redeem card10")  # ALICE never started the bot: a deep link
    reply = h.calls("sendMessage")[-2] if h.calls("sendMessage")[-1].params["chat_id"] == LOG_CHAT else None
    assert reply is not None and "兑换成功" in reply.params["text"] and "CODE" not in reply.params["text"]
    url = reply.params["reply_markup"]["inline_keyboard"][0][0]["url"]
    assert url.startswith("https://t.me/") and url.endswith("?start=codes")
    log = h.last_text(LOG_CHAT)
    assert "兑换 #1" in log and "十元券" in log and "CODE-AAA1" not in log
    assert dm_texts(h, ALICE) == []
    await h.say(ALICE, ALICE, "/start codes")
    assert "CODE-AAA1" in h.last_text(ALICE)
    await h.say(ALICE, ALICE, "/start codes")  # delivered once
    assert sum("CODE-AAA1" in t for t in dm_texts(h, ALICE)) == 1

    await h.say(BOB, BOB, "/start")
    await h.say(GROUP, BOB, "/redeem 十元券")
    assert "已私信" in h.last_text(GROUP) or "已私信" in h.texts(GROUP)[-1]
    assert "CODE-BBB2" in h.last_text(BOB)
    await h.say(GROUP, CAROL, "/redeem card10")
    assert "已经兑完" in h.last_text(GROUP)
    await h.say(GROUP, CAROL, "/redeem makeup")
    assert "积分不足" in h.last_text(GROUP) and "需要 50 积分" in h.last_text(GROUP)
    await h.say(GROUP, CAROL, "/redeem 不存在的东西")
    assert "没有这个商品" in h.last_text(GROUP)
    await h.say(GROUP, CAROL, "/redeem")
    assert h.last_text(GROUP).startswith("用法：")
    assert await h.app.points.balance(GROUP, CAROL) == 25 == await h.app.points.ledger_sum(GROUP, CAROL)


async def test_custom_item_is_fulfilled_by_an_admin(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/additem poster 10 签名海报 限购=1")
    await h.app.points.change(GROUP, ALICE, 100, "checkin", "seed")
    await h.say(GROUP, ALICE, "/redeem poster")
    assert "订单号 #1" in h.texts(GROUP)[-1] or "订单号 #1" in h.last_text(GROUP)
    assert "/fulfill 1" in h.last_text(LOG_CHAT)
    await h.say(GROUP, ALICE, "/redeem poster")
    assert "每人限兑 1 件" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/orders")
    assert "#1 签名海报" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/fulfill 1")
    assert "已发放" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/fulfill 1")
    assert "没有编号为 #1" in h.last_text(GROUP)
    assert await h.app.points.balance(GROUP, ALICE) == 90


async def test_invite_link_join_and_reward_after_the_wait(make_harness: Any) -> None:
    h = await start(make_harness, invite_hold_hours=24)
    await h.say(GROUP, ALICE, "/invite")
    link = LINK.search(h.last_text(GROUP))
    assert link is not None
    [create] = h.calls("createChatInviteLink")
    assert "Alice" in create.params["name"]
    await h.say(GROUP, ALICE, "邀请链接")  # the same link again, no second link
    assert link.group(0) in h.last_text(GROUP) and len(h.calls("createChatInviteLink")) == 1

    await h.join(GROUP, DAVE, invite_link=link.group(0))
    async with h.app.db() as s:
        invite = await s.get(Invite, (GROUP, DAVE))
    assert invite is not None and invite.inviter_id == ALICE and invite.status == "pending"
    await h.advance(23 * 3600)
    assert await h.app.points.balance(GROUP, ALICE) == 0
    await h.advance(3600 + 5)
    assert await h.app.points.balance(GROUP, ALICE) == 30
    assert "邀请的" in h.last_text(GROUP) and "获得 30 积分" in h.last_text(GROUP)
    await h.advance(3600)  # the timer does not pay twice
    assert await h.app.points.balance(GROUP, ALICE) == 30
    await h.say(GROUP, BOB, "/invites")
    assert "🥇 Alice — 1 人" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/invites")
    assert "你已成功邀请 1 人" in h.last_text(GROUP) and "排名第 1" in h.last_text(GROUP)


async def test_invite_anti_fraud(make_harness: Any) -> None:
    h = await start(make_harness, invite_hold_hours=1)
    await h.say(GROUP, ALICE, "/invite")
    link = LINK.search(h.last_text(GROUP)).group(0)  # type: ignore[union-attr]
    h.world.add_user(5001, "SpamBot", username="spam_bot", is_bot=True)
    h.world.add_user(5002, "来去匆匆")
    h.world.add_user(5003, "捣乱的人")
    await h.join(GROUP, 5001, invite_link=link)  # a bot
    await h.leave(GROUP, BOB)
    await h.join(GROUP, BOB, invite_link=link)  # was a member before
    await h.join(GROUP, 5002, invite_link=link)
    await h.leave(GROUP, 5002)  # left before the wait was over
    await h.join(GROUP, 5003, invite_link=link)
    await h.app.bot.ban_chat_member(GROUP, 5003)  # banned
    await h.deliver()
    await h.join(GROUP, 5002, invite_link=link)  # and came back: attributed once, never paid
    await h.advance(2 * 3600)
    assert await h.app.points.balance(GROUP, ALICE) == 0
    async with h.app.db() as s:
        rows = {i.invitee_id: (i.status, i.reason) for i in await s.scalars(select(Invite))}
    assert rows == {5001: ("rejected", "bot"), BOB: ("rejected", "rejoined"), 5002: ("rejected", "left"),
                    5003: ("rejected", "banned")}


async def test_invite_link_arriving_with_the_second_join_signal(make_harness: Any) -> None:
    from aiogram.types import User

    from bot.services.events import MemberJoined

    h = await start(make_harness, invite_hold_hours=1)
    await h.say(GROUP, ALICE, "/invite")
    link = LINK.search(h.last_text(GROUP)).group(0)  # type: ignore[union-attr]
    user = User(id=5041, is_bot=False, first_name="后到的链接")
    now = h.clock.now()
    # The new_chat_members message first (no link): the core emits MemberJoined without it ...
    await h.app.members.record_join(GROUP, user, now)
    await h.app.events.emit(MemberJoined(chat_id=GROUP, user_id=5041, first_name="后到的链接", username=None,
                                         is_bot=False, at=now))
    # ... then the chat_member update, which only fills core_members.invite_link.
    await h.app.members.record_join(GROUP, user, now, invite_link=link)
    await h.advance(61)
    async with h.app.db() as s:
        invite = await s.get(Invite, (GROUP, 5041))
    assert invite is not None and invite.inviter_id == ALICE and invite.status == "pending"
    await h.advance(3600)
    assert await h.app.points.balance(GROUP, ALICE) == 30


async def test_invite_daily_cap(make_harness: Any) -> None:
    h = await start(make_harness, invite_hold_hours=0, invite_daily_cap=1)
    await h.say(GROUP, ALICE, "/invite")
    link = LINK.search(h.last_text(GROUP)).group(0)  # type: ignore[union-attr]
    for uid in (5011, 5012):
        h.world.add_user(uid, f"新人{uid}")
        await h.join(GROUP, uid, invite_link=link)
    await h.advance(5)
    assert await h.app.points.balance(GROUP, ALICE) == 30
    async with h.app.db() as s:
        assert (await s.get(Invite, (GROUP, 5012))).reason == "daily_cap"  # type: ignore[union-attr]


async def test_invite_waits_for_the_captcha(make_harness: Any) -> None:
    pytest.importorskip("plugins.welcome")
    h = await start(make_harness, plugins=("checkin", "welcome"), invite_hold_hours=1)
    await h.say(GROUP, ALICE, "/invite")
    link = LINK.search(h.last_text(GROUP)).group(0)  # type: ignore[union-attr]
    h.world.add_user(5021, "认真验证")
    await h.join(GROUP, DAVE, invite_link=link)  # never answers the captcha: kicked after 120 s
    await h.advance(5)
    await h.join(GROUP, 5021, invite_link=link)
    await h.advance(5)
    captcha = [c for c in h.calls("sendMessage") if c.ok and c.params.get("reply_markup")
               and "5021" in c.params["text"]]
    assert captcha, "the welcome plugin should have asked 5021 for the captcha"
    data = captcha[-1].params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await h.press(GROUP, 5021, captcha[-1].result["message_id"], data)
    await h.advance(2 * 3600)
    await h.advance(60)
    assert await h.app.points.balance(GROUP, ALICE) == 30
    async with h.app.db() as s:
        assert (await s.get(Invite, (GROUP, DAVE))).status == "rejected"  # type: ignore[union-attr]
        assert (await s.get(Invite, (GROUP, 5021))).status == "rewarded"  # type: ignore[union-attr]


async def test_admin_give_take_and_bad_amounts(make_harness: Any) -> None:
    h = await start(make_harness, max_admin_amount=1000)
    msg = await h.say(GROUP, ALICE, "求积分")
    await h.say(GROUP, ADMIN, "/give 120 活动奖励", reply_to=msg["message_id"])
    assert "已给 Alice 发放 120 积分" in h.texts(GROUP)[-2] or "已给 Alice 发放 120 积分" in h.last_text(GROUP)
    assert any("升级为「活跃」" in t for t in h.texts(GROUP))
    await h.say(GROUP, BOB, "我也想要")  # the bot knows @bob once he has spoken
    await h.say(GROUP, ADMIN, "/give @bob 10 发言积极")
    assert "已给 Bob 发放 10 积分" in h.last_text(GROUP) and "发言积极" in h.last_text(GROUP)
    for bad, expected in (("/give -5", "正整数"), ("/give abc", "正整数"), ("/give 99999999999", "一次最多 1000"),
                          ("/give 0", "大于 0"), ("/give 1.5", "正整数")):
        await h.say(GROUP, ADMIN, bad, reply_to=msg["message_id"])
        assert expected in h.last_text(GROUP), bad
    await h.say(GROUP, ADMIN, "/give")
    assert h.last_text(GROUP).startswith("用法：")
    await h.say(GROUP, ADMIN, "/give @nobody_here 5")
    assert "找不到这个成员" in h.last_text(GROUP)
    await h.say(GROUP, BOB, "/give 100", reply_to=msg["message_id"])
    assert "只有管理员" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/take 500", reply_to=msg["message_id"])
    assert "只有 120 积分" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/take 20 违规", reply_to=msg["message_id"])
    assert "现有 100 积分" in h.last_text(GROUP)
    assert await h.app.points.balance(GROUP, ALICE) == 100 == await h.app.points.ledger_sum(GROUP, ALICE)


async def test_resetpoints_with_confirm_and_ledger_export(make_harness: Any) -> None:
    h = await start(make_harness)
    msg = await h.say(GROUP, ALICE, "hi")
    for i in range(20):
        await h.app.points.change(GROUP, ALICE, 3, "checkin", f"seed-{i}")
    await h.say(GROUP, ADMIN, "/ledger", reply_to=msg["message_id"])
    assert any("Alice 的积分流水（余额 60，共 20 条）" in t for t in h.texts(GROUP))
    [doc] = h.calls("sendDocument")
    assert doc.ok
    await h.say(GROUP, ADMIN, "/resetpoints", reply_to=msg["message_id"])
    prompt = h.calls("sendMessage")[-1]
    confirm = prompt.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await h.press(GROUP, BOB, prompt.result["message_id"], confirm)  # not an admin
    assert await h.app.points.balance(GROUP, ALICE) == 60
    await h.press(GROUP, ADMIN, prompt.result["message_id"], confirm)
    h.world.push_update(next(u for u in reversed(h.world.all_updates) if "callback_query" in u))
    await h.deliver()  # the press delivered again
    # Even past the core's dedup, the same confirmation resets nothing twice.
    assert await reset_points(h.app, GROUP, ALICE, f"m{prompt.result['message_id']}", ADMIN) == 0
    assert await h.app.points.balance(GROUP, ALICE) == 0 == await h.app.points.ledger_sum(GROUP, ALICE)
    assert await entries(h, ALICE) == 21
    assert any("已清零" in (c.params.get("text") or "") for c in h.calls("editMessageText"))
    await h.say(GROUP, ALICE, "积分")
    assert "累计获得 0 积分" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/resetpoints")
    assert h.last_text(GROUP).startswith("用法：")


async def test_profile_set_and_makeup_alias(make_harness: Any) -> None:
    h = await start(make_harness)
    msg = await h.say(GROUP, BOB, "我是 Bob")
    await h.say(GROUP, ALICE, "/profile", reply_to=msg["message_id"])
    assert "Bob 的积分卡" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/profile")
    assert h.last_text(GROUP).startswith("用法：")
    await h.say(GROUP, ADMIN, "/set checkin.base_points 10")
    await h.say(GROUP, ALICE, "签到")
    assert "获得 10 积分" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/set checkin.base_points -3")
    assert "设置无效" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "补签")
    assert "没有需要补签" in h.last_text(GROUP)
