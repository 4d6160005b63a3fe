"""crisis end to end: the real bot against the emulated Telegram, with a FakeClock."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.services.events import CrisisChanged
from plugins.crisis.models import CrisisIncident, CrisisOutbox, CrisisTimeline
from tests.harness import ADMIN, ALICE, GROUP, LOG_CHAT, OTHER_GROUP, OWNER, Harness

ANGRY = [
    "骗子！退款！", "你们就是骗子，赶紧给我退款", "假货！我要退货退款", "我也要退款，这是割韭菜",
    "大家别买了，骗子店铺，我要去12315投诉", "曝光你们！退钱！", "已经报警了，诈骗", "维权群拉起来，骗子跑路了",
    "假货还敢卖这么贵，黑心商家", "我也被骗了，退钱", "挂到网上让大家避雷", "找律师起诉你们",
]  # fmt: skip
ORDINARY = [
    "姐妹们早上好呀", "今天好累", "快递有点慢哈", "签到", "这个颜色好好看", "刚下单了，坐等发货", "哈哈哈哈",
    "今天直播几点开始？", "群主辛苦了", "有没有拼单的", "请问怎么退货", "退款多久到账呀", "这个会过敏吗？",
    "不是骗子吧，大家放心", "周末有活动吗", "👍👍👍", "晚安各位", "質量很好，推薦", "谢谢客服小姐姐", "好评！",
]  # fmt: skip
CRISIS_CONFIG: dict[str, Any] = {"plugins": {"crisis": {}}}


async def start(make_harness: Any, members: int = 12, transport: str = "memory", **crisis: Any) -> Harness:
    h: Harness = await make_harness(plugins=["crisis"], config={"plugins": {"crisis": crisis}}, transport=transport)
    for i in range(members):
        uid = 2001 + i
        h.world.add_user(uid, f"会员{i + 1}")
        h.world.set_member(GROUP, uid, "member")
    return h


def member(i: int) -> int:
    return 2001 + i


def events(h: Harness) -> list[CrisisChanged]:
    seen: list[CrisisChanged] = []

    async def on_event(app: Any, event: CrisisChanged) -> None:
        seen.append(event)

    h.app.events.subscribe(CrisisChanged, "core", on_event)
    return seen


async def tick(h: Harness, seconds: float = 0) -> None:
    """Move the clock, then run the plugin's periodic job (the harness does not run APScheduler)."""
    if seconds:
        await h.advance(seconds)
    await h.app.runtime("crisis").tick()
    await h.app.sender.drain(10)
    await h.deliver()


async def outbox_job(h: Harness) -> None:
    await h.app.runtime("crisis").retry_outbox()
    await h.app.sender.drain(10)


async def pile_on(h: Harness, n: int = 6, spacing: float = 8, start: int = 0) -> None:
    for i in range(n):
        await h.say(GROUP, member(start + i), ANGRY[(start + i) % len(ANGRY)])
        await h.advance(spacing)


async def incidents(h: Harness) -> list[CrisisIncident]:
    async with h.app.db() as s:
        return list(await s.scalars(select(CrisisIncident).order_by(CrisisIncident.id)))


async def timeline(h: Harness, incident_id: int) -> list[CrisisTimeline]:
    async with h.app.db() as s:
        return list(await s.scalars(select(CrisisTimeline).where(CrisisTimeline.incident_id == incident_id)
                                    .order_by(CrisisTimeline.id)))


async def outbox(h: Harness) -> list[CrisisOutbox]:
    async with h.app.db() as s:
        return list(await s.scalars(select(CrisisOutbox).order_by(CrisisOutbox.id)))


def log_messages(h: Harness) -> list[dict[str, Any]]:
    return [m for m in h.world.messages_in(LOG_CHAT) if m.get("from", {}).get("id") == h.world.bot_id]


def buttons(message: dict[str, Any]) -> list[str]:
    return [b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row]


# ---- the done-when scenarios ----------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["memory", "http"])
async def test_six_angry_members_within_a_minute_alert_the_log_chat(make_harness: Any, transport: str) -> None:
    h = await start(make_harness, transport=transport)
    seen = events(h)
    await pile_on(h, 6, spacing=8)
    alerts = log_messages(h)
    assert len(alerts) == 1
    text = alerts[0]["text"]
    assert ("等级 2" in text or "等级 1" in text) and "粉丝福利群" in text and str(GROUP) in text
    assert "（1 最高，3 最低）" in text
    assert "骗子" in text and "会员1" in text  # keywords, evidence and members
    assert buttons(alerts[0]) == ["crisis:ack:1", "crisis:res:1", "crisis:esc:1"]
    [inc] = await incidents(h)
    assert inc.status == "open" and inc.level <= 2 and inc.chat_id == GROUP
    assert seen and seen[0].old_level is None and seen[0].incident_id == inc.id
    assert h.texts(GROUP) == []  # nothing said in the group itself


@pytest.mark.parametrize("transport", ["memory", "http"])
async def test_twenty_ordinary_messages_produce_no_alert(make_harness: Any, transport: str) -> None:
    h = await start(make_harness, transport=transport)
    for i, text in enumerate(ORDINARY):
        await h.say(GROUP, member(i % 12), text)
        await h.advance(3)
    await tick(h, 30)
    assert log_messages(h) == []
    assert await incidents(h) == []
    assert h.calls("setChatPermissions") == []


# ---- levels -----------------------------------------------------------------------------------------
async def test_level3_is_recorded_without_a_ping_and_shown_in_status(make_harness: Any) -> None:
    h = await start(make_harness)
    for i, text in enumerate(["我申请退款一个星期了还没到账", "我也是，退款一直没到", "客服不回消息，有点着急"]):
        await h.say(GROUP, member(i), text)
        await h.advance(60)
    await tick(h, 10)
    [inc] = await incidents(h)
    assert inc.level == 3 and inc.status == "open"
    assert log_messages(h) == []
    await h.say(GROUP, ADMIN, "/crisis status")
    status = h.last_text(GROUP)
    assert "三级" in status and f"#{inc.id}" in status and "尚未认领" in status


async def test_one_high_severity_message_opens_level_2_at_once(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, member(0), "孩子用了你们的面霜全脸过敏，已经送医了！")
    [inc] = await incidents(h)
    assert inc.level == 2 and inc.trigger == "instant"
    [alert] = log_messages(h)
    assert "等级 2" in alert["text"] and "高危组合" in alert["text"]


async def test_level1_pings_owners_and_applies_the_enabled_measures(make_harness: Any) -> None:
    h = await start(make_harness, restrict="media", holding_statement=True)
    h.world.user_starts_bot(OWNER)
    seen = events(h)
    await pile_on(h, 12, spacing=5)
    [inc] = await incidents(h)
    assert inc.level == 1
    texts = [m["text"] for m in log_messages(h)]
    assert any("等级 1" in t for t in texts)
    dms = [c for c in h.calls("sendMessage") if c.params.get("chat_id") == OWNER and c.ok]
    assert len(dms) == 1 and "一级危机" in dms[0].params["text"]
    [perm] = [c for c in h.calls("setChatPermissions") if c.ok]
    assert perm.params["permissions"]["can_send_photos"] is False
    assert perm.params["permissions"]["can_send_messages"] is True  # "media": text still allowed
    assert any("高度重视" in t for t in h.texts(GROUP))  # the holding statement
    assert [e.level for e in seen][-1] == 1
    kinds = [(r.kind, (r.detail or {}).get("action")) for r in await timeline(h, inc.id)]
    assert ("action", "restrict") in kinds and ("action", "statement") in kinds and ("action", "dm_owners") in kinds

    # Calm for longer than the dwell: one step down, and the restriction is lifted.
    await tick(h, 11 * 60)
    [inc] = await incidents(h)
    assert inc.level == 2
    lifts = [c for c in h.calls("setChatPermissions") if c.ok]
    assert len(lifts) == 2 and lifts[-1].params["permissions"]["can_send_photos"] is True
    assert h.world.chats[GROUP]["permissions"]["can_send_photos"] is True
    assert [(e.old_level, e.level) for e in seen][-1] == (1, 2)


async def test_deescalation_and_auto_close_with_a_summary(make_harness: Any) -> None:
    h = await start(make_harness)
    seen = events(h)
    await pile_on(h, 6, spacing=8)
    [inc] = await incidents(h)
    level = inc.level
    assert level == 2
    await tick(h, 5 * 60)
    assert (await incidents(h))[0].level == 2  # within the dwell: holds
    await tick(h, 6 * 60)
    assert (await incidents(h))[0].level == 3
    note = log_messages(h)[-1]
    assert "降为三级" in note["text"] and note.get("reply_markup") is None
    await tick(h, 60)
    await tick(h, 61 * 60)
    [inc] = await incidents(h)
    assert inc.status == "resolved" and inc.close_reason == "auto" and inc.open_chat_id is None
    summary = log_messages(h)[-1]["text"]
    assert "事件总结" in summary and "自动结束" in summary and "二级" in summary and "骗子" in summary
    assert "6 名成员" in summary
    assert [(e.old_level, e.level) for e in seen] == [(None, 3), (3, 2), (2, 3), (3, None)]
    assert len(log_messages(h)) == 3  # alert, step-down note, summary


async def test_a_long_pile_on_makes_one_incident_and_few_alerts(make_harness: Any) -> None:
    h = await start(make_harness, members=30)
    for round_ in range(5):  # twenty minutes of accusations from thirty members
        for i in range(6):
            await h.say(GROUP, member(round_ * 6 + i), ANGRY[(round_ * 6 + i) % len(ANGRY)])
            await h.advance(40)
    await tick(h, 10)
    assert len(await incidents(h)) == 1
    assert 1 <= len(log_messages(h)) <= 3  # a new alert, maybe one escalation


# ---- buttons and commands ---------------------------------------------------------------------------
async def test_ack_and_resolve_from_the_log_chat_buttons(make_harness: Any) -> None:
    h = await start(make_harness)
    seen = events(h)
    await pile_on(h, 6)
    [alert] = log_messages(h)
    mid = alert["message_id"]

    h.world.set_member(LOG_CHAT, ALICE, "member")  # in the log chat, but not an admin of the group
    qid = await h.press(LOG_CHAT, ALICE, mid, "crisis:ack:1")
    assert h.world.callbacks[qid]["answer"]["show_alert"] is True
    assert (await incidents(h))[0].acked_at is None

    qid = await h.press(LOG_CHAT, ADMIN, mid, "crisis:ack:1")
    assert "已认领" in h.world.callbacks[qid]["answer"]["text"]
    inc = (await incidents(h))[0]
    assert inc.acked_by == ADMIN
    edited = h.world.message(LOG_CHAT, mid)
    assert "已认领" in edited["text"] and "crisis:ack:1" not in buttons(edited)
    qid = await h.press(LOG_CHAT, ADMIN, mid, "crisis:res:1")  # the edited message keeps resolve
    assert "总结" in h.world.callbacks[qid]["answer"]["text"]
    [inc] = await incidents(h)
    assert inc.status == "resolved" and inc.resolved_by == ADMIN and inc.close_reason == "manual"
    summary = log_messages(h)[-1]["text"]
    assert "事件总结" in summary and "管理员小王" in summary
    assert seen[-1].level is None
    kinds = [r.kind for r in await timeline(h, inc.id)]
    assert kinds.count("ack") == 1 and kinds.count("resolved") == 1
    assert h.world.message(LOG_CHAT, mid).get("reply_markup") is None  # buttons gone once resolved


async def test_repeated_presses_change_nothing(make_harness: Any) -> None:
    h = await start(make_harness)
    await pile_on(h, 6)
    [alert] = log_messages(h)
    mid = alert["message_id"]
    await h.press(LOG_CHAT, ADMIN, mid, "crisis:ack:1")
    before = await timeline(h, 1)
    # A stale copy of the alert (the original buttons) pressed again, and the ack redelivered.
    h.world.chats[LOG_CHAT]["messages"][mid]["reply_markup"] = alert["reply_markup"]
    qid = await h.press(LOG_CHAT, OWNER, mid, "crisis:ack:1")
    assert "已经有人认领" in h.world.callbacks[qid]["answer"]["text"]
    assert len(await timeline(h, 1)) == len(before)
    assert (await incidents(h))[0].acked_by == ADMIN
    await h.press(LOG_CHAT, OWNER, mid, "crisis:res:1")
    h.world.chats[LOG_CHAT]["messages"][mid]["reply_markup"] = alert["reply_markup"]
    qid = await h.press(LOG_CHAT, OWNER, mid, "crisis:res:1")
    assert "已经结束" in h.world.callbacks[qid]["answer"]["text"]
    assert [m["text"] for m in log_messages(h)].count(log_messages(h)[-1]["text"]) == 1


async def test_escalate_button_pins_the_level(make_harness: Any) -> None:
    h = await start(make_harness)
    h.world.user_starts_bot(OWNER)
    seen = events(h)
    await pile_on(h, 6)
    [alert] = log_messages(h)
    qid = await h.press(LOG_CHAT, ADMIN, alert["message_id"], "crisis:esc:1")
    assert "一级" in h.world.callbacks[qid]["answer"]["text"]
    [inc] = await incidents(h)
    assert inc.level == 1 and inc.floor_level == 1
    assert "人工升级" in log_messages(h)[-1]["text"]
    assert any(c.params.get("chat_id") == OWNER for c in h.calls("sendMessage"))
    assert (seen[-1].old_level, seen[-1].level) == (2, 1)
    await tick(h, 3 * 3600)
    assert (await incidents(h))[0].level == 1  # humans took over: no automatic step-down


async def test_crisis_commands(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ALICE, "/crisis")
    assert "只有管理员" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis")
    assert "没有进行中的事件" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis history")
    assert "还没有" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis frobnicate")
    assert "用法" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis escalate")  # nothing open: a manual incident at level 2
    assert "二级" in h.last_text(GROUP)
    await pile_on(h, 3)
    await h.say(GROUP, ADMIN, "/crisis ack")
    assert "已认领" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis ack")
    assert "已经有人认领" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis status")
    assert "二级" in h.last_text(GROUP) and "已认领" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis resolve 已安排客服逐一退款")
    assert "事件已结束" in h.last_text(GROUP)
    summary = log_messages(h)[-1]["text"]
    assert "已安排客服逐一退款" in summary and "人工升级" in summary
    await h.say(GROUP, ADMIN, "/crisis resolve")
    assert "没有进行中的事件" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis history")
    assert "#1" in h.last_text(GROUP) and "已解决" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis history 1")
    assert "认领" in h.last_text(GROUP) and "已解决" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis history 999")
    assert "没有编号" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/crisis history abc")
    assert "用法" in h.last_text(GROUP)
    await h.say(OTHER_GROUP, ADMIN, "/crisis history 1")  # another chat's incident is not shown
    assert "没有编号" in h.last_text(OTHER_GROUP)


# ---- outbox ----------------------------------------------------------------------------------------
async def test_alerts_survive_an_unreachable_log_chat(make_harness: Any) -> None:
    h = await start(make_harness)
    h.world.set_member(LOG_CHAT, h.world.bot_id, "left")  # the bot is not in the log chat
    await pile_on(h, 6)
    assert log_messages(h) == []
    [row] = await outbox(h)
    assert row.status == "pending" and row.attempts == 1 and "Forbidden" in (row.last_error or "")
    await h.say(GROUP, ADMIN, "/crisis status")
    assert "尚未送达" in h.last_text(GROUP)

    await h.advance(60)
    await outbox_job(h)  # retried, still unreachable: kept, with a longer backoff
    [row] = await outbox(h)
    assert row.status == "pending" and row.attempts == 2
    await outbox_job(h)  # not due yet: nothing happens
    assert (await outbox(h))[0].attempts == 2
    h.world.set_member(LOG_CHAT, h.world.bot_id, "administrator")
    await h.advance(120)
    await outbox_job(h)
    [row] = await outbox(h)
    assert row.status == "sent" and row.message_id is not None
    [alert] = log_messages(h)
    assert "等级 2" in alert["text"] and buttons(alert)


async def test_server_errors_are_retried_in_order(make_harness: Any) -> None:
    h: Harness = await make_harness(plugins=["crisis"], config={"telegram": {"max_retries": 0}})
    for i in range(12):
        h.world.add_user(member(i), f"会员{i + 1}")
        h.world.set_member(GROUP, member(i), "member")
    h.world.faults.next("502", count=50, method="sendMessage")
    await pile_on(h, 6)
    await h.say(GROUP, ADMIN, "/crisis resolve")  # the summary is queued behind the alert
    rows = await outbox(h)
    assert [r.kind for r in rows] == ["alert", "summary"] and all(r.status == "pending" for r in rows)
    h.world.faults.clear()
    await h.advance(700)
    await outbox_job(h)
    rows = await outbox(h)
    assert all(r.status == "sent" for r in rows)
    texts = [m["text"] for m in log_messages(h)]
    assert "危机预警" in texts[0] and "事件总结" in texts[1]


# ---- isolation and bad input -------------------------------------------------------------------------
async def test_log_chat_admins_and_other_chats_do_not_count(make_harness: Any) -> None:
    h = await start(make_harness)
    for i in range(6):
        h.world.set_member(LOG_CHAT, member(i), "member")
        await h.say(LOG_CHAT, member(i), ANGRY[i])  # ops quoting the complaints in the log chat
    for text in ("退款流程：骗子冒充客服的一律不要信", "假货投诉请走官方渠道", "退款已处理，请注意防骗"):
        await h.say(GROUP, ADMIN, text)
    await pile_on(h, 6)
    chats = {inc.chat_id for inc in await incidents(h)}
    assert chats == {GROUP}
    assert h.app.runtime("crisis").signals.get(LOG_CHAT) is None
    assert OTHER_GROUP not in h.app.runtime("crisis").incidents


async def test_bad_input_is_ignored_safely(make_harness: Any) -> None:
    h = await start(make_harness)
    for text in ("", " ", "😀😀😀", "x" * 4096, "骗" * 4096, "this shop is a scam 骗子!!!", "騙子！退款！"):
        h.world.send_message(GROUP, member(0), text or "\u200b")
    h.world.send_message(GROUP, member(1), sticker=True)
    h.world.send_message(GROUP, member(2), photo=True, caption="假货！！")
    await h.deliver()
    await tick(h, 10)
    assert all(inc.level == 3 for inc in await incidents(h))  # two voices: at most a watch
    assert log_messages(h) == []
    assert len(h.app.runtime("crisis").signals[GROUP].records) == 8


async def test_redelivered_updates_change_nothing(make_harness: Any) -> None:
    h = await start(make_harness)
    h.world.send_message(GROUP, member(0), "骗子！退款！")
    raw = [dict(u) for u in h.world.pending_updates()]
    await h.deliver()
    for update in raw:
        h.world.push_update(update)
    await h.deliver()
    sig = h.app.runtime("crisis").signals[GROUP]
    assert len(sig.records) == 1


async def test_open_incident_survives_a_restart(make_harness: Any) -> None:
    h = await start(make_harness)
    await pile_on(h, 6)
    await h.restart()
    rt = h.app.runtime("crisis")
    assert GROUP in rt.incidents and rt.incidents[GROUP].state.level == 2
    assert rt.incidents[GROUP].messages >= 6
    [alert] = log_messages(h)
    await h.press(LOG_CHAT, ADMIN, alert["message_id"], "crisis:ack:1")
    assert (await incidents(h))[0].acked_by == ADMIN


async def test_the_content_calendar_holds_marketing_while_the_incident_is_open(make_harness: Any) -> None:
    """CrisisChanged reaches the content calendar (its pause of marketing posts), and the close releases it."""
    from plugins.content_calendar import service as calendar

    h: Harness = await make_harness(plugins=["crisis", "content_calendar"])
    for i in range(6):
        h.world.add_user(member(i), f"会员{i + 1}")
        h.world.set_member(GROUP, member(i), "member")
    await pile_on(h, 6)
    async with h.app.db() as s:
        assert await calendar.crisis_levels(s, GROUP) == [2]
    await h.say(GROUP, ADMIN, "/crisis resolve")
    async with h.app.db() as s:
        assert await calendar.crisis_levels(s, GROUP) == []


async def test_switching_the_plugin_off_closes_the_open_incident(make_harness: Any) -> None:
    h = await start(make_harness)
    seen = events(h)
    await pile_on(h, 6)
    await h.app.chat_config.update(GROUP, "crisis", {"enabled": False}, by=ADMIN)
    await tick(h, 10)
    [inc] = await incidents(h)
    assert inc.status == "resolved" and inc.close_reason == "disabled"
    assert seen[-1].level is None
    await h.say(GROUP, member(7), "骗子！退款！")  # off: nothing is observed any more
    assert len(h.app.runtime("crisis").signals[GROUP].records) == 6


async def test_an_english_chat_gets_english_alerts(make_harness: Any) -> None:
    h: Harness = await make_harness(plugins=["crisis"], config={"chats": {GROUP: {"language": "en"}}})
    for i in range(6):
        h.world.add_user(member(i), f"m{i}")
        h.world.set_member(GROUP, member(i), "member")
    await pile_on(h, 6)
    [alert] = log_messages(h)
    assert "Crisis alert" in alert["text"] and "Level 2 (1 highest, 3 lowest)" in alert["text"]
    await h.say(GROUP, ADMIN, "/crisis status")
    assert "Crisis monitor" in h.last_text(GROUP)


async def test_admins_extend_the_lexicon_per_chat(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, member(0), "这里面有黑幕")
    assert h.app.runtime("crisis").signals[GROUP].records[-1].weights == {}
    await h.say(GROUP, ADMIN, '/set crisis.extra_words {"fraud": ["黑幕"]}')
    assert "已更新" in h.last_text(GROUP)
    await h.say(GROUP, member(1), "這裡面有黑幕")  # traditional script, normalized like the words
    assert "fraud" in h.app.runtime("crisis").signals[GROUP].records[-1].weights
    await h.say(OTHER_GROUP, ALICE, "这里面有黑幕")  # other chats keep their lexicon
    assert h.app.runtime("crisis").signals[OTHER_GROUP].records[-1].weights == {}
    await h.say(GROUP, ADMIN, "/set crisis.level2_down 99")  # invalid: must stay below level2_score
    assert "设置无效" in h.last_text(GROUP)
