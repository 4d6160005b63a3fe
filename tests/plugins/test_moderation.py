"""moderation end to end: the real bot against the emulated Telegram (harness)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.services.events import PenaltyApplied, RaidModeChanged
from plugins.moderation import service
from plugins.moderation.enforce import Case, enforce
from plugins.moderation.parsing import Action
from tests.harness import ADMIN, ALICE, BOB, CAROL, CREATOR, DAVE, GROUP, LOG_CHAT, OTHER_GROUP, OWNER, Harness

MOD = ["moderation"]
HOUR, DAY = 3600, 86400


async def start(make_harness: Any, **config: Any) -> Harness:
    h: Harness = await make_harness(plugins=MOD, config={"plugins": {"moderation": config}} if config else None)
    return h


def ok(h: Harness, *methods: str) -> list[Any]:
    return [c for c in h.calls(*methods) if c.ok]


def now(h: Harness) -> int:
    return int(h.clock.time())


async def active_warns(h: Harness, user_id: int, chat_id: int = GROUP) -> int:
    async with h.app.db() as s:
        return await service.count_active(s, chat_id, user_id, h.app.clock.now())


def punitive(h: Harness) -> list[Any]:
    return ok(h, "restrictChatMember", "banChatMember", "unbanChatMember", "deleteMessage", "deleteMessages")


def collect(h: Harness, event_type: type) -> list[Any]:
    seen: list[Any] = []

    async def on(_app: Any, event: Any) -> None:
        seen.append(event)

    h.app.events.subscribe(event_type, "core", on)
    return seen


# ---- banned words --------------------------------------------------------------------------------


async def test_banned_word_deletes_and_warns_once(make_harness: Any) -> None:
    h = await start(make_harness)
    penalties = collect(h, PenaltyApplied)
    await h.say(GROUP, ADMIN, "/addblacklist 骗子 刷单")
    assert "已添加 2 个违禁词" in h.last_text(GROUP)
    h.clear()
    msg = await h.say(GROUP, ALICE, "你是騙 子吧")
    deletes = ok(h, "deleteMessage")
    assert [(c["chat_id"], c["message_id"]) for c in deletes] == [(GROUP, msg["message_id"])]
    assert await active_warns(h, ALICE) == 1
    assert penalties and penalties[0].action == "warn" and penalties[0].user_id == ALICE
    assert "被警告" in h.last_text(GROUP) and "1/4" in h.last_text(GROUP)
    log = h.last_text(LOG_CHAT)
    assert "Alice" in log and "违禁词" in log and "骗子" in log and "騙 子" in log

    # A redelivered update changes nothing.
    raw = next(u for u in h.world.all_updates if u.get("message", {}).get("message_id") == msg["message_id"])
    before = len(h.world.calls)
    h.world.push_update(raw)
    await h.deliver()
    assert not [c for c in h.world.calls[before:] if c.method not in ("getUpdates",)]
    assert await active_warns(h, ALICE) == 1


async def test_same_source_never_warns_twice(make_harness: Any) -> None:
    h = await start(make_harness)
    case = Case(chat_id=GROUP, user_id=ALICE, rule="blacklist", action=Action("warn"), source="msg:77")
    first = await enforce(h.app, case)
    second = await enforce(h.app, case)
    assert first.status == "done" and second.status == "duplicate"
    assert await active_warns(h, ALICE) == 1


async def test_admin_message_is_exempt(make_harness: Any) -> None:
    h = await start(make_harness, blacklist_words=["骗子"])
    h.clear()
    await h.say(GROUP, ADMIN, "谁是骗子")
    await h.say(GROUP, CREATOR, "骗子")
    assert punitive(h) == []
    await h.say(GROUP, BOB, "骗子")  # the same words from a member are caught (config words work)
    assert len(ok(h, "deleteMessage")) == 1


async def test_blacklist_commands_and_bad_input(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/addblacklist a.*b (.*) 代购 action=mute:1d")
    text = h.last_text(GROUP)
    assert "已添加 3 个违禁词" in text and "禁言" in text
    await h.say(GROUP, ADMIN, "/addblacklist 代购 action=explode")
    assert "动作不对" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/addblacklist")
    assert "用法" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/blacklist")
    assert "a.*b" in h.last_text(GROUP) and "代购" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, BOB, "axxb 和 ab")  # a regex-looking word is literal
    assert punitive(h) == []
    await h.say(GROUP, BOB, "找我代购")
    mutes = ok(h, "restrictChatMember")
    assert len(mutes) == 1 and mutes[0]["until_date"] == now(h) + DAY
    await h.say(GROUP, ADMIN, "/rmblacklist 代购 不存在的词")
    assert "已删除 1 个" in h.last_text(GROUP) and "不存在的词" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, CAROL, "找我代购")
    assert punitive(h) == []


async def test_blacklist_limit(make_harness: Any) -> None:
    h = await start(make_harness, blacklist_max_words=10_000)
    from sqlalchemy import insert

    from plugins.moderation.models import BannedWord

    at = h.app.clock.now()
    rows = [{"chat_id": GROUP, "word": f"词{i}", "key": f"词{i}", "action": "warn", "added_by": ADMIN,
             "added_at": at} for i in range(10_000)]
    async with h.app.db() as s, s.begin():
        await s.execute(insert(BannedWord), rows)
    await h.app.runtime("moderation").load()
    await h.say(GROUP, ADMIN, "/addblacklist 再来一个")
    assert "黑名单已满" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, BOB, "这里有 词9999 呢")
    assert len(ok(h, "deleteMessage")) == 1


async def test_pinyin_evasion_end_to_end(make_harness: Any) -> None:
    h = await start(make_harness, blacklist_words=["骗子"], blacklist_pinyin=True, blacklist_action="delete")
    h.clear()
    await h.say(GROUP, BOB, "他是个 Pian Zi")
    assert len(ok(h, "deleteMessage")) == 1
    assert await active_warns(h, BOB) == 0  # the action was delete only


# ---- the ladder ----------------------------------------------------------------------------------


async def test_ladder_four_warns_four_tiers(make_harness: Any) -> None:
    h = await start(make_harness)
    target = await h.say(GROUP, ALICE, "我来捣乱")
    tiers = []
    for i in range(4):
        h.clear()
        await h.say(GROUP, ADMIN, f"/warn 第{i + 1}次", reply_to=target["message_id"])
        tiers.append([(c.method, c.get("until_date")) for c in ok(h, "restrictChatMember", "banChatMember")])
    t = now(h)
    assert tiers == [
        [],
        [("restrictChatMember", t + HOUR)],
        [("restrictChatMember", t + DAY)],
        [("banChatMember", None)],
    ]
    assert h.world.member(GROUP, ALICE)["status"] == "kicked"
    assert await active_warns(h, ALICE) == 0  # reset once the top of the ladder was applied


async def test_third_banned_word_mutes_for_a_day(make_harness: Any) -> None:
    h = await start(make_harness, blacklist_words=["刷单"])
    await h.say(GROUP, ALICE, "刷单1")
    await h.say(GROUP, ALICE, "刷单2")
    assert ok(h, "restrictChatMember")[-1]["until_date"] == now(h) + HOUR
    await h.advance(HOUR + 60)  # the 1 h mute lapses
    h.clear()
    await h.say(GROUP, ALICE, "刷单3")
    mutes = ok(h, "restrictChatMember")
    assert len(mutes) == 1 and mutes[0]["until_date"] == now(h) + DAY
    assert mutes[0]["permissions"]["can_send_messages"] is False
    assert len(ok(h, "deleteMessage")) == 1


async def test_warns_expire_by_the_clock(make_harness: Any) -> None:
    h = await start(make_harness, warn_expire_days=30)
    target = await h.say(GROUP, ALICE, "hi")
    await h.say(GROUP, ADMIN, "/warn", reply_to=target["message_id"])
    assert await active_warns(h, ALICE) == 1
    await h.advance(29 * DAY)
    assert await active_warns(h, ALICE) == 1
    await h.advance(2 * DAY)
    assert await active_warns(h, ALICE) == 0
    h.clear()
    await h.say(GROUP, ADMIN, "/warn", reply_to=target["message_id"])
    assert ok(h, "restrictChatMember") == []  # counted as the first warn again: a notice
    assert "1/4" in h.last_text(GROUP)


async def test_warn_commands(make_harness: Any) -> None:
    h = await start(make_harness, warn_points=5)
    await h.app.points.change(GROUP, ALICE, 7, "test", "seed")
    target = await h.say(GROUP, ALICE, "hi")
    await h.say(GROUP, ADMIN, "/warn 广告", reply_to=target["message_id"])
    assert await h.app.points.balance(GROUP, ALICE) == 2
    await h.say(GROUP, ADMIN, "/warns", reply_to=target["message_id"])
    assert "1 次有效警告" in h.last_text(GROUP) and "广告" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/warn 又发广告", reply_to=target["message_id"])
    assert await h.app.points.balance(GROUP, ALICE) == 0  # deducted down to zero, never below
    await h.say(GROUP, ADMIN, "/rmwarn", reply_to=target["message_id"])
    assert await active_warns(h, ALICE) == 1 and "剩余 1/4" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/resetwarns @alice")
    assert await active_warns(h, ALICE) == 0
    await h.say(GROUP, ADMIN, "/warns 1001")
    assert "没有有效的警告" in h.last_text(GROUP)


# ---- flood and spam ------------------------------------------------------------------------------


async def test_flood_mutes_via_the_ladder(make_harness: Any) -> None:
    h = await start(make_harness)
    penalties = collect(h, PenaltyApplied)
    for i in range(8):
        await h.say(GROUP, BOB, f"消息{i}")
    assert punitive(h) == []  # eight in ten seconds is fine
    h.clear()
    await h.say(GROUP, BOB, "第九条")
    mutes = ok(h, "restrictChatMember")
    assert len(mutes) == 1 and mutes[0]["user_id"] == BOB and mutes[0]["until_date"] == now(h) + HOUR
    deleted = ok(h, "deleteMessages")
    assert deleted and len(deleted[0]["message_ids"]) == 9
    assert await active_warns(h, BOB) == 1  # the flood counts on the ladder
    assert penalties[-1].action == "mute"
    assert "刷屏" in h.last_text(LOG_CHAT)


async def test_slow_chatter_is_not_a_flood(make_harness: Any) -> None:
    h = await start(make_harness)
    for i in range(20):
        await h.say(GROUP, BOB, f"慢慢聊{i}")
        h.clock.advance(2)
    assert punitive(h) == []


async def test_spam_wave(make_harness: Any) -> None:
    h = await start(make_harness)
    a = await h.say(GROUP, ALICE, "加微信领取福利红包名额有限 123")
    b = await h.say(GROUP, BOB, "加微信领取福利红包名额有限 456")
    assert punitive(h) == []
    c = await h.say(GROUP, CAROL, "加微信 领取福利红包 名额有限!!")
    deleted = {c_["message_id"] for c_ in ok(h, "deleteMessage")}
    assert deleted == {a["message_id"], b["message_id"], c["message_id"]}
    muted = {c_["user_id"] for c_ in ok(h, "restrictChatMember")}
    assert muted == {ALICE, BOB, CAROL}


async def test_innocent_repeats_are_not_a_wave(make_harness: Any) -> None:
    h = await start(make_harness)
    for uid in (ALICE, BOB, CAROL):
        await h.say(GROUP, uid, "今天直播几点开始呀大家知道吗")
    for i, uid in enumerate((ALICE, BOB, CAROL)):
        await h.say(GROUP, uid, "接龙\n" + "\n".join(f"{n + 1}. 买家{n}" for n in range(i + 3)))
    assert punitive(h) == []


async def test_newcomer_links_and_forwards(make_harness: Any) -> None:
    h = await start(make_harness, allowed_domains=["taobao.com"])
    await h.join(GROUP, DAVE)
    h.clear()
    await h.say(GROUP, DAVE, "看这里 http://cheap.xyz/deal")
    await h.say(GROUP, DAVE, "进群 t.me/+AbCdEf123")
    await h.say(GROUP, DAVE, "转发", forward_origin={"type": "channel", "chat": {"id": -100777, "type": "channel",
                                                                               "title": "广告频道"},
                                                    "message_id": 5, "date": now(h)})
    await h.say(GROUP, DAVE, "关注 @some_other_group")
    assert len(ok(h, "deleteMessage")) == 4
    assert ok(h, "restrictChatMember") == []  # spam_action is delete
    h.clear()
    await h.say(GROUP, DAVE, "淘宝链接 https://item.taobao.com/123")  # allowlisted domain
    await h.say(GROUP, ALICE, "老成员发链接 http://cheap.xyz/deal")  # not a newcomer
    assert ok(h, "deleteMessage") == []
    await h.advance(25 * HOUR)
    h.clear()
    await h.say(GROUP, DAVE, "现在可以发 http://cheap.xyz/deal")
    assert ok(h, "deleteMessage") == []


async def test_approved_members_are_exempt(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    await h.say(GROUP, DAVE, "hello")
    await h.say(GROUP, ADMIN, "/approve 1004")
    assert "信任成员" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, DAVE, "http://cheap.xyz")
    for i in range(12):
        await h.say(GROUP, DAVE, f"刷{i}")
    assert punitive(h) == []
    await h.say(GROUP, ADMIN, "/approved")
    assert "大卫" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/unapprove 1004")
    h.clear()
    await h.say(GROUP, DAVE, "http://cheap.xyz")
    assert len(ok(h, "deleteMessage")) == 1


# ---- manual actions ------------------------------------------------------------------------------


async def test_mute_ban_kick_by_admin(make_harness: Any) -> None:
    h = await start(make_harness)
    bob = await h.say(GROUP, BOB, "hi")
    h.clear()
    await h.say(GROUP, ADMIN, "/mute 10m 刷屏", reply_to=bob["message_id"])
    mutes = ok(h, "restrictChatMember")
    assert len(mutes) == 1 and mutes[0]["user_id"] == BOB and mutes[0]["until_date"] == now(h) + 600
    assert "10分钟" in h.last_text(GROUP) and "刷屏" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ADMIN, "/unmute", reply_to=bob["message_id"])
    assert ok(h, "restrictChatMember")[0]["permissions"]["can_send_messages"] is True
    h.clear()
    await h.say(GROUP, ADMIN, "/kick", reply_to=bob["message_id"])
    assert [c.method for c in ok(h, "banChatMember", "unbanChatMember")] == ["banChatMember", "unbanChatMember"]
    assert h.world.member(GROUP, BOB)["status"] == "left"
    h.clear()
    await h.say(GROUP, ADMIN, "/ban 1002 2d 骗人")
    bans = ok(h, "banChatMember")
    assert len(bans) == 1 and bans[0]["user_id"] == BOB and bans[0]["until_date"] == now(h) + 2 * DAY
    h.clear()
    await h.say(GROUP, ADMIN, "/unban 1002")
    unbans = ok(h, "unbanChatMember")
    assert len(unbans) == 1 and unbans[0]["only_if_banned"] is True
    assert "解除封禁" in h.last_text(LOG_CHAT)


async def test_mute_by_username_and_chinese_duration(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, CAROL, "hi")  # the bot learns @carol
    h.clear()
    await h.say(GROUP, ADMIN, "/mute @carol 2小时")
    mutes = ok(h, "restrictChatMember")
    assert len(mutes) == 1 and mutes[0]["user_id"] == CAROL and mutes[0]["until_date"] == now(h) + 2 * HOUR


ADMIN_COMMANDS = [
    "/warn", "/warns", "/rmwarn", "/resetwarns", "/mute 10m", "/unmute", "/ban", "/unban", "/kick", "/del",
    "/addblacklist 词", "/rmblacklist 词", "/blacklist", "/approve", "/unapprove", "/approved", "/raid on",
    "/lock links", "/unlock links", "/locks",
]


async def test_admin_only_guard_on_every_command(make_harness: Any) -> None:
    h = await start(make_harness)
    bob = await h.say(GROUP, BOB, "hi")
    h.clear()
    for command in ADMIN_COMMANDS:
        await h.say(GROUP, ALICE, command, reply_to=bob["message_id"])
        assert "只有管理员" in h.last_text(GROUP), command
        h.clock.advance(5)  # keep ALICE under the flood limit
    assert punitive(h) == []
    assert h.world.member(GROUP, BOB)["status"] == "member"
    async with h.app.db() as s:
        assert await service.list_words(s, GROUP) == []
    await h.say(GROUP, ALICE, "/gban 1002")
    assert "所有者" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/gban 1002")  # a chat admin is not an owner either
    assert "所有者" in h.last_text(GROUP)
    assert punitive(h) == []


async def test_targets_that_are_refused(make_harness: Any) -> None:
    h = await start(make_harness)
    admin_msg = await h.say(GROUP, ADMIN, "hello")
    await h.say(GROUP, CREATOR, f"/ban {ADMIN}")
    assert "不能对管理员" in h.last_text(GROUP)
    await h.say(GROUP, CREATOR, "/mute 1h", reply_to=admin_msg["message_id"])
    assert "不能对管理员" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, f"/kick {h.app.bot.id}")
    assert "我自己" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/warn @nobody_here")
    assert "找不到用户" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/ban")
    assert "用法" in h.last_text(GROUP)
    assert punitive(h) == []


async def test_bad_input(make_harness: Any) -> None:
    h = await start(make_harness)
    bob = await h.say(GROUP, BOB, "hi")
    await h.say(GROUP, ADMIN, "/mute 10x", reply_to=bob["message_id"])
    assert "时长格式不对" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/mute 999d", reply_to=bob["message_id"])
    assert "时长超出范围" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/mute 0m", reply_to=bob["message_id"])
    assert "时长超出范围" in h.last_text(GROUP)
    await h.join(GROUP, DAVE)
    join_msg = max(h.world.messages_in(GROUP), key=lambda m: m["message_id"])
    assert "new_chat_members" in join_msg
    await h.say(GROUP, ADMIN, "/warn", reply_to=join_msg["message_id"])
    assert "系统消息" in h.last_text(GROUP)
    await h.say(GROUP, CAROL, "bye")
    await h.leave(GROUP, CAROL)
    await h.say(GROUP, ADMIN, f"/mute 1h {CAROL}")
    assert "用法" in h.last_text(GROUP)  # the target comes first
    await h.say(GROUP, ADMIN, f"/mute {CAROL} 1h")
    assert "已不在群里" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, f"/unmute {BOB}")
    assert "没有被禁言" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, f"/unban {BOB}")
    assert "没有被封禁" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/raid maybe")
    assert "用法" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/lock emoji")
    assert "没有这种锁" in h.last_text(GROUP)
    assert punitive(h) == []


async def test_bot_without_rights_says_so(make_harness: Any) -> None:
    h = await start(make_harness, blacklist_words=["骗子"])
    bot_id = h.app.bot.id
    h.world.set_member(GROUP, bot_id, "administrator", can_restrict_members=False, can_delete_messages=False)
    h.app.admins.invalidate(GROUP)
    bob = await h.say(GROUP, BOB, "hi")
    h.clear()
    await h.say(GROUP, ADMIN, "/mute 1h", reply_to=bob["message_id"])
    assert "封禁用户" in h.last_text(GROUP) and "权限" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/del", reply_to=bob["message_id"])
    assert "删除消息" in h.last_text(GROUP)
    await h.say(GROUP, BOB, "骗子")  # the rule fires, the bot cannot delete: ops are told once
    await h.say(GROUP, BOB, "又是骗子")
    assert sum("没有「删除消息」权限" in t for t in h.texts(LOG_CHAT)) == 1
    assert [c for c in h.calls("restrictChatMember", "deleteMessage", "banChatMember")] == []


async def test_del_deletes_the_replied_message(make_harness: Any) -> None:
    h = await start(make_harness)
    bob = await h.say(GROUP, BOB, "不该发的")
    h.clear()
    cmd = await h.say(GROUP, ADMIN, "/del", reply_to=bob["message_id"])
    deleted = ok(h, "deleteMessages")
    assert deleted and set(deleted[0]["message_ids"]) == {bob["message_id"], cmd["message_id"]}


# ---- reports -------------------------------------------------------------------------------------


def _buttons(h: Harness, chat_id: int) -> tuple[int, list[str]]:
    msg = h.world.last_message(chat_id)
    assert msg is not None
    return msg["message_id"], [b["callback_data"] for b in h.world.buttons(chat_id, msg["message_id"])]


async def test_report_acted_on_from_the_log_chat(make_harness: Any) -> None:
    h = await start(make_harness)
    bad = await h.say(GROUP, BOB, "加我私聊买便宜货")
    await h.say(GROUP, ALICE, "/report", reply_to=bad["message_id"])
    assert "已通知管理员" in h.last_text(GROUP)
    card = h.last_text(LOG_CHAT)
    assert "举报" in card and "加我私聊买便宜货" in card and f"https://t.me/c/1/{bad['message_id']}" in card
    card_id, datas = _buttons(h, LOG_CHAT)
    assert len(datas) == 4 and all(d.startswith(f"mod:r:{GROUP}:{BOB}:") for d in datas)
    mute = next(d for d in datas if d.endswith(":m"))

    # A member of the log chat who is not an admin of the group cannot act.
    h.world.set_member(LOG_CHAT, ALICE, "member")
    h.clear()
    qid = await h.press(LOG_CHAT, ALICE, card_id, mute)
    assert "管理员" in h.world.callbacks[qid]["answer"]["text"]
    assert punitive(h) == []

    # Two admins press at once: the first acts, the second is refused.
    q1 = h.world.press_button(LOG_CHAT, ADMIN, card_id, mute)
    q2 = h.world.press_button(LOG_CHAT, CREATOR, card_id, datas[0])
    await h.deliver()
    mutes = ok(h, "restrictChatMember")
    assert len(mutes) == 1 and mutes[0]["user_id"] == BOB and mutes[0]["until_date"] == now(h) + DAY
    assert [c["message_id"] for c in ok(h, "deleteMessage")] == [bad["message_id"]]
    assert "已处理" in h.world.callbacks[q1]["answer"]["text"]
    assert "已经处理过" in h.world.callbacks[q2]["answer"]["text"]
    edited = h.world.message(LOG_CHAT, card_id)
    assert edited is not None and "管理员小王" in edited["text"] and "已处理" in edited["text"]
    assert not h.world.buttons(LOG_CHAT, card_id)
    async with h.app.db() as s:
        report = (await s.scalars(__import__("sqlalchemy").select(service.Report))).one()
    assert report.status == "mute" and report.handled_by == ADMIN


async def test_at_admin_reports_like_report(make_harness: Any) -> None:
    h = await start(make_harness)
    bad = await h.say(GROUP, BOB, "加微信领红包")
    await h.say(GROUP, ALICE, "@admin", reply_to=bad["message_id"])
    assert "已通知管理员" in h.last_text(GROUP)
    assert "加微信领红包" in h.last_text(LOG_CHAT)
    h.clear()
    await h.say(GROUP, CAROL, "@admin 在吗")  # longer than the alias: an ordinary message
    assert h.calls("sendMessage") == []


async def test_report_limits_and_bad_input(make_harness: Any) -> None:
    h = await start(make_harness, report_limit_per_hour=2)
    msgs = [await h.say(GROUP, BOB, f"消息{i}") for i in range(4)]
    await h.say(GROUP, ALICE, "/report")
    assert "用法" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/report", reply_to=msgs[0]["message_id"])
    await h.say(GROUP, ALICE, "/report", reply_to=msgs[0]["message_id"])
    assert "已经举报过" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/report", reply_to=msgs[1]["message_id"])
    await h.say(GROUP, ALICE, "/report", reply_to=msgs[2]["message_id"])
    assert "上限" in h.last_text(GROUP)
    cards = [t for t in h.texts(LOG_CHAT) if "举报" in t]
    assert len(cards) == 2
    mine = await h.say(GROUP, ALICE, "我自己")
    await h.say(GROUP, CAROL, "/report", reply_to=mine["message_id"])  # another member still can
    await h.advance(HOUR + 1)
    await h.say(GROUP, ALICE, "/report", reply_to=msgs[3]["message_id"])
    assert "已通知管理员" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/report", reply_to=mine["message_id"])
    assert "不能举报自己" in h.last_text(GROUP)
    admin = await h.say(GROUP, ADMIN, "公告")
    await h.say(GROUP, ALICE, "/report", reply_to=admin["message_id"])
    assert "管理员的消息不能举报" in h.last_text(GROUP)


async def test_report_dismiss_and_undo_buttons(make_harness: Any) -> None:
    h = await start(make_harness)
    bad = await h.say(GROUP, BOB, "嗯")
    await h.say(GROUP, ALICE, "/report", reply_to=bad["message_id"])
    card_id, datas = _buttons(h, LOG_CHAT)
    h.clear()
    await h.press(LOG_CHAT, ADMIN, card_id, next(d for d in datas if d.endswith(":d")))
    assert punitive(h) == []
    assert "忽略" in (h.world.message(LOG_CHAT, card_id) or {})["text"]

    # Undo from the log chat: a mute is lifted and its warn revoked.
    await h.say(GROUP, ADMIN, "/warn", reply_to=bad["message_id"])
    await h.say(GROUP, ADMIN, "/warn", reply_to=bad["message_id"])  # the second warn mutes for 1 h
    assert await active_warns(h, BOB) == 2
    log_id, undo = _buttons(h, LOG_CHAT)
    assert undo and undo[0].startswith("mod:u:")
    h.clear()
    qid = await h.press(LOG_CHAT, ADMIN, log_id, undo[0])
    assert ok(h, "restrictChatMember")[0]["permissions"]["can_send_messages"] is True
    assert await active_warns(h, BOB) == 1
    assert "已撤销" in h.world.callbacks[qid]["answer"]["text"]
    assert "已撤销" in (h.world.message(LOG_CHAT, log_id) or {})["text"]


# ---- channels posting in the group ---------------------------------------------------------------

CHANNEL = {"id": -100888, "type": "channel", "title": "搬运频道"}


async def test_ban_a_channel_by_reply_and_undo_it(make_harness: Any) -> None:
    h = await start(make_harness)
    post = await h.say(GROUP, BOB, "来看我的频道", sender_chat=dict(CHANNEL))
    h.clear()
    await h.say(GROUP, ADMIN, "/ban 搬运广告", reply_to=post["message_id"])
    bans = ok(h, "banChatSenderChat")
    assert [(c.params["chat_id"], c.params["sender_chat_id"]) for c in bans] == [(GROUP, CHANNEL["id"])]
    assert ok(h, "banChatMember") == []  # the member behind the channel keeps their own account
    assert h.world.sender_chat_banned(GROUP, CHANNEL["id"])
    assert "频道 搬运频道" in h.last_text(GROUP) and "已被封禁" in h.last_text(GROUP)
    card = h.last_text(LOG_CHAT)
    assert "搬运频道" in card and str(CHANNEL["id"]) in card and "搬运广告" in card

    # Delivered again: nothing twice.
    h.world.push_update(dict(h.world.all_updates[-1]))
    await h.deliver()
    assert len(ok(h, "banChatSenderChat")) == 1

    log_id, undo = _buttons(h, LOG_CHAT)
    assert undo and undo[0].startswith("mod:u:")
    h.clear()
    await h.press(LOG_CHAT, ADMIN, log_id, undo[0])
    assert [c.params["sender_chat_id"] for c in ok(h, "unbanChatSenderChat")] == [CHANNEL["id"]]
    assert not h.world.sender_chat_banned(GROUP, CHANNEL["id"])
    assert "已撤销" in (h.world.message(LOG_CHAT, log_id) or {})["text"]


async def test_unban_a_channel_by_id_and_bad_channel_commands(make_harness: Any) -> None:
    h = await start(make_harness)
    post = await h.say(GROUP, BOB, "频道发言", sender_chat=dict(CHANNEL))
    await h.say(GROUP, ADMIN, f"/ban {CHANNEL['id']}")
    assert h.world.sender_chat_banned(GROUP, CHANNEL["id"])
    await h.say(GROUP, ADMIN, f"/unban {CHANNEL['id']}")
    assert not h.world.sender_chat_banned(GROUP, CHANNEL["id"])
    assert "已解除封禁，可以重新发言了" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ADMIN, "/ban 1d", reply_to=post["message_id"])
    assert "频道只能永久封禁" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/mute 1h", reply_to=post["message_id"])
    assert "频道只能用 /ban 封禁" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/warn", reply_to=post["message_id"])
    assert "频道只能用 /ban 封禁" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/ban", reply_to=post["message_id"])  # not an admin
    assert "只有管理员" in h.last_text(GROUP)
    assert ok(h, "banChatSenderChat", "banChatMember", "restrictChatMember") == []
    assert not h.world.sender_chat_banned(GROUP, CHANNEL["id"])
    await h.say(GROUP, ADMIN, "/ban -5")  # a negative id that is no channel: a user id is expected
    assert "用户 ID 不对" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, f"/ban {GROUP}")
    assert "本群自己的 ID" in h.last_text(GROUP)
    assert ok(h, "banChatSenderChat") == []


async def test_rules_ban_a_channel_only_when_their_action_is_ban(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/addblacklist 刷单 action=ban")
    await h.say(GROUP, ADMIN, "/addblacklist 代购")
    other = {"id": -100999, "type": "channel", "title": "代购频道"}
    h.clear()
    await h.say(GROUP, BOB, "代购便宜", sender_chat=dict(other))  # the default action (warn): deleted only
    assert len(ok(h, "deleteMessage")) == 1 and ok(h, "banChatSenderChat") == []
    await h.say(GROUP, BOB, "刷单兼职", sender_chat=dict(CHANNEL))
    assert [c.params["sender_chat_id"] for c in ok(h, "banChatSenderChat")] == [CHANNEL["id"]]
    assert len(ok(h, "deleteMessage")) == 2
    assert ok(h, "banChatMember", "restrictChatMember") == []
    assert await active_warns(h, BOB) == 0


# ---- purge and pins ------------------------------------------------------------------------------


async def test_purge_deletes_from_the_replied_message_to_the_command_once(make_harness: Any) -> None:
    h = await start(make_harness, flood_enabled=False)
    before = await h.say(GROUP, BOB, "这条留着")
    first = await h.say(GROUP, BOB, "刷屏 1")
    for i in range(2, 151):
        await h.say(GROUP, ALICE if i % 2 else BOB, f"刷屏 {i}")
    h.clear()
    await h.say(GROUP, ADMIN, "/purge 刷屏", reply_to=first["message_id"])
    command_id = h.world.all_updates[-1]["message"]["message_id"]
    deleted = sorted(i for c in ok(h, "deleteMessages") for i in c.params["message_ids"])
    assert deleted == list(range(first["message_id"], command_id + 1))  # 151 messages, in two calls
    assert len(ok(h, "deleteMessages")) == 2
    assert before["message_id"] not in deleted
    assert "已清理 151 条消息" in h.last_text(GROUP)
    assert "清理消息" in h.last_text(LOG_CHAT) and "刷屏" in h.last_text(LOG_CHAT)
    h.world.push_update(dict(h.world.all_updates[-1]))  # delivered again: nothing twice
    h.clear()
    await h.deliver()
    assert ok(h, "deleteMessages", "deleteMessage") == []
    assert [c for c in ok(h, "sendMessage") if "已清理" in c.params["text"]] == []


async def test_purge_refusals(make_harness: Any) -> None:
    h = await start(make_harness)
    old = await h.say(GROUP, BOB, "很久以前")
    await h.say(GROUP, ADMIN, "/purge")
    assert "/purge" in h.last_text(GROUP)  # usage: it needs a reply
    h.world._chat(GROUP)["next_message_id"] += 1000  # a thousand messages later
    await h.say(GROUP, ADMIN, "/purge", reply_to=old["message_id"])
    assert "最多清理 1000 条" in h.last_text(GROUP)
    await h.say(GROUP, BOB, "/purge", reply_to=old["message_id"])
    assert "只有管理员" in h.last_text(GROUP)
    assert ok(h, "deleteMessages") == []


async def test_pin_and_unpin(make_harness: Any) -> None:
    h = await start(make_harness)
    notice = await h.say(GROUP, ADMIN, "今晚八点直播")
    other = await h.say(GROUP, ADMIN, "新品预告")
    h.clear()
    await h.say(GROUP, ADMIN, "/pin", reply_to=notice["message_id"])
    pins = ok(h, "pinChatMessage")
    assert len(pins) == 1 and pins[0].params["message_id"] == notice["message_id"]
    assert pins[0].params.get("disable_notification") is True
    await h.say(GROUP, ADMIN, "/pin loud", reply_to=other["message_id"])
    assert not ok(h, "pinChatMessage")[-1].params.get("disable_notification")
    assert h.world._chat(GROUP)["pinned"] == [notice["message_id"], other["message_id"]]
    await h.say(GROUP, ADMIN, "/pin 随便", reply_to=other["message_id"])
    assert "/pin" in h.last_text(GROUP)  # a wrong option: usage
    await h.say(GROUP, ADMIN, "/unpin", reply_to=notice["message_id"])
    assert "已取消置顶" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/unpin")
    assert "已取消最近的置顶" in h.last_text(GROUP)
    assert h.world._chat(GROUP)["pinned"] == []
    await h.say(GROUP, ADMIN, "/pin", reply_to=notice["message_id"])
    await h.say(GROUP, ADMIN, "/unpin all")
    assert h.world._chat(GROUP)["pinned"] == [] and "已取消全部置顶" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/pin", reply_to=other["message_id"])
    assert "只有管理员" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/pin")
    assert "/pin" in h.last_text(GROUP)


# ---- network bans --------------------------------------------------------------------------------


async def test_network_ban(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, BOB, "hi")
    await h.say(OTHER_GROUP, BOB, "hi")
    h.clear()
    await h.say(OWNER, OWNER, "/gban 1002 诈骗")
    bans = ok(h, "banChatMember")
    assert {c["chat_id"] for c in bans} == {GROUP, OTHER_GROUP} and all(c["user_id"] == BOB for c in bans)
    assert "2/2" in h.last_text(OWNER)
    assert "全网封禁" in h.last_text(LOG_CHAT)

    # Banned at once in every known chat, even where not a member yet; and in a chat the bot only
    # gets to know later, a gbanned user is banned on join.
    await h.say(OWNER, OWNER, "/gban 1004")
    assert h.world.member(GROUP, DAVE)["status"] == "kicked"
    new_chat = -1003
    h.world.add_chat(new_chat, "新群")
    h.clear()
    await h.join(new_chat, DAVE)
    bans = ok(h, "banChatMember")
    assert [(c["chat_id"], c["user_id"]) for c in bans] == [(new_chat, DAVE)]

    await h.say(OWNER, OWNER, "/gban 999")
    assert "所有者" in h.last_text(OWNER)
    h.clear()
    await h.say(OWNER, OWNER, "/ungban 1002")
    assert {c["chat_id"] for c in ok(h, "unbanChatMember")} == {GROUP, OTHER_GROUP, new_chat}
    await h.say(OWNER, OWNER, "/ungban 1002")
    assert "不在全网封禁名单" in h.last_text(OWNER)


# ---- raids and locks -----------------------------------------------------------------------------


async def test_anti_raid(make_harness: Any) -> None:
    h = await start(make_harness, raid_joins=10, raid_seconds=60, raid_minutes=30)
    changes = collect(h, RaidModeChanged)
    raiders = list(range(5001, 5015))
    for uid in raiders:
        h.world.add_user(uid, f"Raider{uid}")
    for uid in raiders[:10]:
        await h.join(GROUP, uid)
        h.clock.advance(2)
    assert ok(h, "restrictChatMember") == [] and changes == []
    h.clear()
    for uid in raiders[10:]:
        await h.join(GROUP, uid)
    assert [c.on for c in changes] == [True]
    assert changes[0].until is not None and int(changes[0].until.timestamp()) == now(h) + 30 * 60
    restricted = ok(h, "restrictChatMember")
    assert {c["user_id"] for c in restricted} == set(raiders[10:])
    assert all(c["until_date"] == int(changes[0].until.timestamp()) for c in restricted)
    assert sum("开启防突袭" in t for t in h.texts(LOG_CHAT)) == 1  # admins alerted once
    await h.advance(31 * 60)
    assert [c.on for c in changes] == [True, False]
    assert "防突袭模式已关闭" in h.last_text(GROUP)
    h.clear()
    await h.join(GROUP, DAVE)
    assert ok(h, "restrictChatMember") == []


async def test_raid_by_hand(make_harness: Any) -> None:
    h = await start(make_harness, raid_action="ban", raid_ban_minutes=60)
    changes = collect(h, RaidModeChanged)
    await h.say(GROUP, ADMIN, "/raid on 10m")
    assert "防突袭模式已开启" in h.last_text(GROUP)
    h.clear()
    await h.join(GROUP, DAVE)
    bans = ok(h, "banChatMember")
    assert len(bans) == 1 and bans[0]["until_date"] == now(h) + HOUR
    await h.say(GROUP, ADMIN, "/raid")
    assert "开启" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/raid off")
    await h.say(GROUP, ADMIN, "/raid off")
    assert "本来就是关闭" in h.last_text(GROUP)
    assert [c.on for c in changes] == [True, False]
    await h.advance(11 * 60)  # the old timer finds raid mode already off
    assert [c.on for c in changes] == [True, False]


async def test_locks(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/lock stickers")
    await h.say(GROUP, ADMIN, "/lock 链接 warn")
    await h.say(GROUP, ADMIN, "/lock channel")
    await h.say(GROUP, ADMIN, "/locks")
    assert "🔒 贴纸" in h.last_text(GROUP) and "🔓 转发" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, BOB, None, sticker=True)
    await h.say(GROUP, BOB, "链接 https://example.com")
    await h.say(GROUP, BOB, "频道身份", sender_chat={"id": -100888, "type": "channel", "title": "某频道"})
    assert len(ok(h, "deleteMessage")) == 3
    assert await active_warns(h, BOB) == 1  # the link lock warns
    await h.say(GROUP, ADMIN, "/unlock stickers")
    h.clear()
    await h.say(GROUP, BOB, None, sticker=True)
    await h.say(GROUP, ADMIN, None, sticker=True)
    assert ok(h, "deleteMessage") == []


async def test_rules_can_be_switched_off_per_chat(make_harness: Any) -> None:
    h = await start(make_harness, blacklist_words=["骗子"])
    await h.say(GROUP, ADMIN, "/set moderation.blacklist_enabled false")
    await h.say(GROUP, ADMIN, "/set moderation.flood_enabled false")
    h.clear()
    await h.say(GROUP, BOB, "骗子")
    for i in range(12):
        await h.say(GROUP, BOB, f"{i}")
    assert punitive(h) == []
    await h.say(OTHER_GROUP, BOB, "骗子")  # the other chat keeps its rules
    assert len(ok(h, "deleteMessage")) == 1


@pytest.mark.parametrize("ladder", [["mute 10m", "ban 1d"]])
async def test_custom_ladder(make_harness: Any, ladder: list[str]) -> None:
    h = await start(make_harness, ladder=ladder)
    bob = await h.say(GROUP, BOB, "hi")
    h.clear()
    await h.say(GROUP, ADMIN, "/warn", reply_to=bob["message_id"])
    assert ok(h, "restrictChatMember")[0]["until_date"] == now(h) + 600
    await h.say(GROUP, ADMIN, "/warn", reply_to=bob["message_id"])
    assert ok(h, "banChatMember")[0]["until_date"] == now(h) + DAY


async def test_edited_message_is_judged_too(make_harness: Any) -> None:
    h = await start(make_harness, blacklist_words=["骗子"])
    msg = await h.say(GROUP, BOB, "正常的话")
    h.clear()
    h.world.edit_message(GROUP, msg["message_id"], "其实你是骗子")
    await h.deliver()
    assert [c["message_id"] for c in ok(h, "deleteMessage")] == [msg["message_id"]]
    assert await active_warns(h, BOB) == 1
    clean = await h.say(GROUP, CAROL, "hello")
    h.clear()
    h.world.edit_message(GROUP, clean["message_id"], "hello again")
    await h.deliver()
    assert punitive(h) == []


async def test_ops_word_file(make_harness: Any, tmp_path: Any) -> None:
    path = tmp_path / "words.txt"
    path.write_text("# 运营词库\n刷单\n假货 | ban\n", encoding="utf-8")
    h = await start(make_harness, blacklist_file=str(path))
    h.clear()
    await h.say(GROUP, BOB, "有人刷单吗")
    assert len(ok(h, "deleteMessage")) == 1 and await active_warns(h, BOB) == 1
    await h.say(GROUP, CAROL, "卖假货")
    assert [c["user_id"] for c in ok(h, "banChatMember")] == [CAROL]
    await h.say(GROUP, ADMIN, "/blacklist")
    assert "运营词库文件" in h.last_text(GROUP)

    # Ops edit the file: the running bot picks it up within 30 s.
    import os

    path.write_text("新词\n", encoding="utf-8")
    st = os.stat(path)
    os.utime(path, (st.st_atime, st.st_mtime + 5))
    await h.advance(31)
    h.clear()
    await h.say(GROUP, ALICE, "刷单")
    await h.say(GROUP, ALICE, "一个新词")
    assert len(ok(h, "deleteMessage")) == 1

async def test_english_chat(make_harness: Any) -> None:
    h = await start(make_harness, blacklist_words=["骗子"])
    await h.say(GROUP, ADMIN, "/lang en")
    await h.say(GROUP, BOB, "骗子")
    assert "was warned" in h.last_text(GROUP) and "banned words" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/mute 10x 1002")
    assert "as a reply, or /mute @username" in h.last_text(GROUP)


async def test_admin_from_a_private_chat_after_connect(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/connect")
    h.clear()
    await h.say(ADMIN, ADMIN, f"/mute {BOB} 10m 私聊操作")
    mutes = ok(h, "restrictChatMember")
    assert len(mutes) == 1 and mutes[0]["chat_id"] == GROUP and mutes[0]["until_date"] == now(h) + 600
    assert "10分钟" in h.last_text(ADMIN)
    await h.say(ADMIN, ADMIN, "/addblacklist 私聊加的词")
    h.clear()
    await h.say(GROUP, CAROL, "私聊加的词")
    assert len(ok(h, "deleteMessage")) == 1


async def test_raid_mode_survives_a_restart(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/raid on 1h")
    await h.restart()
    h.clear()
    await h.join(GROUP, DAVE)
    assert [c["user_id"] for c in ok(h, "restrictChatMember")] == [DAVE]


async def test_locks_on_voice_polls_contacts_inline_and_dice(make_harness: Any) -> None:
    h = await start(make_harness)
    for lock in ("语音", "投票", "位置", "内联", "骰子"):
        await h.say(GROUP, ADMIN, f"/lock {lock}")
    await h.say(GROUP, ADMIN, "/locks")
    locked = h.last_text(GROUP)
    assert all(f"🔒 {label}" in locked for label in ("语音和视频消息", "投票", "名片和位置", "骰子和小游戏"))
    h.clear()
    await h.say(GROUP, BOB, None, voice=True)
    await h.say(GROUP, BOB, None, poll={
        "id": "p1", "question": "选哪个", "total_voter_count": 0, "is_closed": False, "is_anonymous": True,
        "options": [{"persistent_id": str(i), "text": t, "voter_count": 0} for i, t in enumerate("AB")],
        "type": "regular", "allows_multiple_answers": False, "allows_revoting": True, "members_only": False})
    await h.say(GROUP, BOB, None, location={"latitude": 31.23, "longitude": 121.47})
    await h.say(GROUP, BOB, "找我买", via_bot={"id": 999001, "is_bot": True, "first_name": "InlineShop",
                                            "username": "inline_shop_bot"})
    await h.say(GROUP, BOB, None, dice={"emoji": "🎲", "value": 6})
    assert len(ok(h, "deleteMessage")) == 5
    h.clear()
    await h.say(GROUP, BOB, "普通消息")
    await h.say(GROUP, BOB, None, photo=True)  # media is not locked
    assert ok(h, "deleteMessage") == []
    await h.say(GROUP, ADMIN, "/unlock 投票")
    assert "已解锁投票" in h.last_text(GROUP)
