"""analytics end to end through the emulator: collection, exactness across a crash, /stats, /segment,
/cleanup, /wakeup, the weekly report."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.models import User
from bot.runner import RawGetUpdates, parse_updates
from bot.services.events import FaqAnswered, QuestionUnanswered
from plugins.analytics import collector, jobs
from plugins.analytics.collector import CHECKINS, JOINS, MESSAGES, N_MEMBER, REPLIES_RECEIVED, Buffers
from plugins.analytics.models import ChatDay, ChatHour, Cleanup, MemberDay, WeeklyReport
from tests.harness import ADMIN, ALICE, BOB, CAROL, DAVE, GROUP, LOG_CHAT, OTHER_GROUP, Harness

TZ = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 11, 18)


async def rows(h: Harness, chat: int = GROUP) -> dict[int, MemberDay]:
    async with h.app.db() as s:
        return {r.user_id: r for r in (await s.scalars(select(MemberDay).where(MemberDay.chat_id == chat))).all()}


async def chat_day(h: Harness, day: date = TODAY, chat: int = GROUP) -> ChatDay | None:
    async with h.app.db() as s:
        return await s.get(ChatDay, (chat, day))


def last_prompt(h: Harness, chat: int) -> Any:
    """The last sendMessage in ``chat`` that has inline buttons."""
    return next(c for c in reversed(h.calls("sendMessage"))
                if c.params.get("chat_id") == chat and c.params.get("reply_markup"))


def button_data(call: Any) -> list[str]:
    return [b["callback_data"] for row in call.params["reply_markup"]["inline_keyboard"] for b in row
            if "callback_data" in b]


async def raw_press(h: Harness, user: int, message: dict[str, Any], data: str) -> None:
    """A press the emulator would not offer: a stale (edited away) or forged button."""
    h.world.push_update({"callback_query": {"id": str(90_000 + len(h.world.all_updates)), "from": h.world.users[user],
                                            "chat_instance": "1", "message": message, "data": data}})
    await h.deliver()


def edits(h: Harness) -> list[str]:
    return [c.params["text"] for c in h.calls("editMessageText")]


# ---- collection ------------------------------------------------------------------------------------
async def test_collection_through_the_pipeline(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics", "checkin"], config={"plugins": {"analytics": {"sentiment_every": 1}}})
    first = await h.say(GROUP, ALICE, "今天天气真好")
    await h.say(GROUP, BOB, "谢谢分享", reply_to=first["message_id"])
    await h.say(GROUP, CAROL, "@alice 你好")
    await h.say(GROUP, CAROL, "Bob 看这里", entities=[{"type": "text_mention", "offset": 0, "length": 3,
                                                       "user": h.world.users[BOB]}])
    await h.say(GROUP, CAROL, "自己回复自己", reply_to=first["message_id"] + 2)  # CAROL's own: no reply counted
    await h.say(GROUP, BOB, "签到")
    await h.say(GROUP, ADMIN, "匿名管理员的话", sender_chat=True)
    await h.join(GROUP, DAVE)
    await h.leave(GROUP, CAROL)
    await h.app.events.emit(FaqAnswered(chat_id=GROUP, user_id=ALICE, entry_id=3, at=h.app.clock.now()))
    await h.app.events.emit(QuestionUnanswered(chat_id=GROUP, user_id=BOB, text="几点发货？", at=h.app.clock.now()))
    await h.app.flush()
    r = await rows(h)
    assert (r[ALICE].messages, r[ALICE].chars, r[ALICE].replies_received, r[ALICE].mentions_received,
            r[ALICE].thanks_received, r[ALICE].faq_hits) == (1, 6, 1, 1, 1, 1)
    assert (r[BOB].messages, r[BOB].replies_sent, r[BOB].mentions_received, r[BOB].checkins) == (2, 1, 1, 1)
    assert (r[CAROL].messages, r[CAROL].replies_sent, r[CAROL].leaves) == (3, 0, 1)
    assert r[DAVE].joins == 1 and r[DAVE].messages == 0
    assert ADMIN not in r  # an anonymous admin is no member
    day = await chat_day(h)
    assert day is not None
    assert (day.messages, day.active_members, day.replies, day.mentions, day.thanks, day.checkins, day.joins,
            day.leaves, day.faq_hits, day.unanswered) == (7, 3, 1, 2, 1, 1, 1, 1, 1, 1)
    assert day.sentiment_n == 6 and 0 <= day.sentiment_sum <= 6  # every member text (not the anonymous admin)
    async with h.app.db() as s:
        hours = (await s.scalars(select(ChatHour).where(ChatHour.chat_id == GROUP))).all()
    assert [(x.day, x.hour, x.messages) for x in hours] == [(TODAY, 19, 7)]  # 11:06 UTC is 19:06 in Shanghai
    # A redelivered update (already committed) changes nothing.
    h.world.push_update(next(u for u in h.world.all_updates if u.get("message", {}).get("text") == "今天天气真好"))
    await h.deliver()
    assert (await rows(h))[ALICE].messages == 1 and (await chat_day(h)).messages == 7  # type: ignore[union-attr]


async def test_counters_exact_across_a_crash_and_redelivery(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics", "checkin"])
    await h.say(GROUP, ALICE, "早上好")
    for text in ("第一条", "第二条", "签到"):
        h.world.send_message(GROUP, BOB, text)
    raw = await h.app.bot(RawGetUpdates(offset=h.offset, limit=100, timeout=0))
    updates, _ = parse_updates(h.app, raw)
    await h.app.process_batch(updates)  # processed, never flushed nor confirmed
    await h.app.sender.drain(5)
    assert h.app.runtime("analytics").buf.members[(GROUP, BOB, TODAY)][MESSAGES] == 3
    await h.crash()
    await h.start(create_schema=False)
    await h.deliver()  # Telegram delivers the batch again
    r = await rows(h)
    assert r[ALICE].messages == 1 and r[BOB].messages == 3
    day = await chat_day(h)
    assert day is not None and day.messages == 4 and day.active_members == 2
    # The check-in itself was committed by the checkin plugin before the crash; redelivered, it is a duplicate
    # and emits no event, so the count is lost until the hourly repair after the day is over.
    assert r[BOB].checkins == 0
    h.clock.advance(timedelta(days=1))
    await jobs.maintenance(h.app)
    assert (await rows(h))[BOB].checkins == 1 and (await chat_day(h)).checkins == 1  # type: ignore[union-attr]


async def test_a_rolled_back_batch_is_written_again(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"])
    real = h.app.updates.flush
    calls = {"n": 0}

    async def locked_once(session: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            await real(session)
            raise OperationalError("COMMIT", {}, Exception("database is locked"))
        await real(session)

    h.app.updates.flush = locked_once  # type: ignore[method-assign]
    await h.say(GROUP, ALICE, "一")
    await h.say(GROUP, ALICE, "二")
    assert calls["n"] >= 3  # the first batch was retried
    assert (await rows(h))[ALICE].messages == 2
    day = await chat_day(h)
    assert day is not None and day.messages == 2 and day.active_members == 1


# ---- /stats ----------------------------------------------------------------------------------------
async def test_stats_sends_a_text_report_and_a_photo(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"])
    await h.say(GROUP, ADMIN, "/stats")
    assert "还没有统计数据" in h.last_text(GROUP) and not h.calls("sendPhoto")  # a chat with no data yet
    await h.say(GROUP, ALICE, "你好")
    await h.say(GROUP, BOB, "大家好")
    await h.say(GROUP, ALICE, "/stats")
    assert h.last_text(GROUP) == "只有管理员可以使用这个命令。"
    h.clear()
    await h.say(GROUP, ADMIN, "/stats")
    text = h.texts(GROUP)[-2] if "近30天活跃" in h.texts(GROUP)[-1] else h.last_text(GROUP)
    assert "粉丝福利群 数据报告（2026-11-18）" in text
    assert "日活 3 · 周活 3 · 月活 3" in text  # ALICE, BOB and ADMIN's first /stats
    [photo] = h.calls("sendPhoto")
    assert photo.ok and photo.params["chat_id"] == GROUP
    record = h.world.files[photo.result["photo"][-1]["file_id"]]
    assert record.data is not None and record.data[:8] == b"\x89PNG\r\n\x1a\n"


async def test_stats_without_matplotlib_still_reports(make_harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    h = await make_harness(plugins=["analytics"])
    await h.say(GROUP, ALICE, "你好")
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.font_manager"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError, as in a minimal install
    h.clear()
    await h.say(GROUP, ADMIN, "/stats")
    assert not h.calls("sendPhoto")
    text = h.last_text(GROUP)
    assert "日活 1" in text and "图表需要 matplotlib：当前环境未安装" in text


# ---- /segment --------------------------------------------------------------------------------------
async def test_segment_lists_members_with_pages(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"], config={"plugins": {"analytics": {"page_size": 5}}})
    zombies = list(range(5001, 5008))
    for uid in zombies:
        h.world.add_user(uid, f"潜水{uid - 5000}")
        await h.join(GROUP, uid)
    h.world.add_user(5100, "Deleted Account")
    await h.join(GROUP, 5100)
    await h.say(GROUP, ALICE, "我在")
    h.clock.advance(timedelta(days=8))
    await h.say(GROUP, ADMIN, "/segment")
    assert "用法：/segment 分层名" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/segment 外星人")
    assert "没有叫「外星人」的分层" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/segment 僵尸")
    text = h.last_text(GROUP)
    assert text.startswith("👥 僵尸成员：共 8 人（第 1/2 页）")
    assert "1. 潜水1 5001 — 入群 8 天未发言" in text and "潜水6" not in text
    prompt = last_prompt(h, GROUP)
    [next_page] = button_data(prompt)
    assert next_page == f"an:sg:{GROUP}:zombie:1"
    await h.press(GROUP, ALICE, prompt.result["message_id"], next_page)  # not an admin
    answer = h.calls("answerCallbackQuery")[-1]
    assert answer.params.get("show_alert") and "只有管理员" in answer.params["text"]
    await h.press(GROUP, ADMIN, prompt.result["message_id"], next_page)
    page2 = edits(h)[-1]
    assert page2.startswith("👥 僵尸成员：共 8 人（第 2/2 页）") and "8. 已注销账号 <code>5100</code>" in page2
    await h.say(GROUP, ADMIN, "/segment active")
    assert "👥 活跃成员：共 2 人" in h.last_text(GROUP)  # ALICE and ADMIN (spoke by sending commands)
    await h.say(GROUP, ADMIN, "/segment 高价值")
    assert h.last_text(GROUP) == "👥 价值分层「高价值」：没有成员。"
    await h.say(GROUP, ADMIN, "/segment 普通")
    assert "价值分层「普通」：共 10 人" in h.last_text(GROUP)


async def test_forged_segment_button_is_refused(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"], config={"plugins": {"analytics": {"page_size": 5}}})
    for uid in range(5001, 5008):
        h.world.add_user(uid, f"潜水{uid - 5000}")
        await h.join(GROUP, uid)
    await h.say(GROUP, ADMIN, "/segment new")
    prompt = last_prompt(h, GROUP)
    for forged in (f"an:sg:{OTHER_GROUP}:new:0", f"an:sg:{GROUP}:admins:0", f"an:sg:{GROUP}:t9:0", "an:cl:77:y",
                   "an:fg:1001:y", "an:zz", f"an:sg:{GROUP}:new:0:extra"):
        await raw_press(h, ADMIN, prompt.result, forged)
        answer = h.calls("answerCallbackQuery")[-1].params["text"]
        assert "无效的按钮" in answer or "不是你的按钮" in answer, forged
    assert not h.calls("editMessageText")


# ---- /cleanup --------------------------------------------------------------------------------------
async def test_cleanup_zombies_preview_confirm_and_paced_removal(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"], config={"plugins": {"analytics": {
        "cleanup_batch": 2, "cleanup_interval": 10}}})
    zombies = list(range(6001, 6007))
    for uid in zombies:
        h.world.add_user(uid, f"僵尸{uid - 6000}")
        await h.join(GROUP, uid)
    h.clock.advance(timedelta(days=3))
    await h.join(GROUP, DAVE)  # joined 3 days ago: too new
    h.clock.advance(timedelta(days=5))
    await h.say(GROUP, 6001, "我还在")  # spoke: not a zombie
    await h.say(GROUP, ADMIN, "/cleanup")
    assert h.last_text(GROUP).startswith("用法：")
    await h.say(GROUP, ADMIN, "/cleanup zombies 0")
    assert "天数要是 1 到 3650" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/cleanup zombies")
    assert h.last_text(GROUP) == "只有管理员可以使用这个命令。"
    await h.say(GROUP, ADMIN, "/cleanup zombies 30")
    assert "没有符合条件的僵尸成员（入群满 30 天从未发言）" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/cleanup 僵尸")
    preview = h.last_text(GROUP)
    assert "找到 5 名僵尸成员（入群满 7 天从未发言）" in preview and "每 10 秒 2 人" in preview
    prompt = last_prompt(h, GROUP)
    confirm, cancel = button_data(prompt)
    await h.press(GROUP, BOB, prompt.result["message_id"], confirm)  # not an admin
    assert not h.calls("banChatMember")
    await h.press(GROUP, ADMIN, prompt.result["message_id"], confirm)
    assert "正在移出 5 名成员" in edits(h)[-1]
    assert any("确认清理「粉丝福利群」的 5 名成员" in t for t in h.texts(LOG_CHAT))
    h.world.push_update(next(u for u in reversed(h.world.all_updates) if "callback_query" in u))
    await h.deliver()  # the confirmation delivered again: still one run
    await h.advance(0)  # first step: 2 members
    assert len(h.calls("banChatMember")) == 2 and len(h.calls("unbanChatMember")) == 2
    await h.say(GROUP, 6005, "别踢我")  # speaks before its turn: skipped
    for _ in range(3):
        await h.advance(10)
    banned = sorted(c.params["user_id"] for c in h.calls("banChatMember"))
    assert banned == [6002, 6003, 6004, 6006]
    assert all(c.params.get("only_if_banned") for c in h.calls("unbanChatMember"))
    assert edits(h)[-1] == "✅ 清理完成：移出 4 人，跳过 1 人，失败 0 人。"
    assert any("成员清理" in t and "移出 4 人" in t for t in h.texts(LOG_CHAT))
    for uid in banned:
        assert h.world.chats[GROUP]["members"][uid]["status"] == "left"  # kicked, free to come back
    async with h.app.db() as s:
        run = (await s.scalars(select(Cleanup))).one()
    assert (run.status, run.removed, run.skipped, run.failed, run.confirmed_by) == ("done", 4, 1, 0, ADMIN)
    assert (await rows(h))[6002].leaves == 1  # the removals are counted as leaves
    del cancel


async def test_cleanup_cancel_expiry_and_missing_rights(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"])
    for uid in (6001, 6002):
        h.world.add_user(uid, f"僵尸{uid - 6000}")
        await h.join(GROUP, uid)
        await h.join(OTHER_GROUP, uid)
    h.clock.advance(timedelta(days=10))
    await h.say(GROUP, ADMIN, "/cleanup zombies")
    prompt = last_prompt(h, GROUP)
    confirm, cancel = button_data(prompt)
    await h.press(GROUP, ADMIN, prompt.result["message_id"], cancel)
    assert edits(h)[-1] == "🧹 已取消清理。"
    await raw_press(h, ADMIN, prompt.result, confirm)  # the confirm button of the cancelled preview
    assert "已取消" in h.calls("answerCallbackQuery")[-1].params["text"]
    await h.say(GROUP, ADMIN, "/cleanup zombies")
    prompt = last_prompt(h, GROUP)
    confirm, _cancel = button_data(prompt)
    h.clock.advance(timedelta(minutes=16))
    await h.press(GROUP, ADMIN, prompt.result["message_id"], confirm)
    assert edits(h)[-1] == "🧹 预览已过期，请重新发送 /cleanup。"
    await h.advance(60)
    assert not h.calls("banChatMember")
    h.world.set_member(OTHER_GROUP, h.world.bot_id, "administrator", can_restrict_members=False)
    await h.say(OTHER_GROUP, ADMIN, "/cleanup zombies")
    assert h.last_text(OTHER_GROUP) == "机器人需要「封禁成员」管理权限才能清理成员。"


# ---- /wakeup ---------------------------------------------------------------------------------------
async def test_wakeup_mentions_then_dms_at_most_once_per_period(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"], config={"plugins": {"analytics": {"wakeup_batch": 1}}})
    for uid in (ALICE, BOB, CAROL):
        await h.say(GROUP, uid, "在的")
    await h.say(CAROL, CAROL, "/start")
    h.clock.advance(timedelta(days=15))
    await h.say(GROUP, ALICE, "我回来了")
    await h.say(GROUP, ADMIN, "/wakeup")
    assert "可以唤醒 2 名沉默成员，其中 1 人私聊过机器人" in h.last_text(GROUP)
    prompt = last_prompt(h, GROUP)
    mention, dm, _cancel = button_data(prompt)
    h.clear()
    await h.press(GROUP, ADMIN, prompt.result["message_id"], mention)
    sent = [c for c in h.calls("sendMessage") if c.params["chat_id"] == GROUP]
    assert len(sent) == 2  # wakeup_batch = 1: one message per member
    assert all("好久不见" in c.params["text"] and "tg://user?id=" in c.params["text"] for c in sent)
    assert {f"tg://user?id={u}" in " ".join(c.params["text"] for c in sent) for u in (BOB, CAROL)} == {True}
    assert edits(h)[-1] == "📣 已在群里提醒 2 名成员。"
    await h.say(GROUP, ADMIN, "/wakeup")
    assert "没有需要唤醒的成员" in h.last_text(GROUP) and "最近已唤醒过 2 人" in h.last_text(GROUP)
    await raw_press(h, ADMIN, prompt.result, mention)  # the old button again: nobody new
    assert edits(h)[-1] == "😴 没有需要唤醒的成员了。"
    h.clock.advance(timedelta(days=8))
    await h.say(GROUP, ALICE, "还在")
    await h.say(GROUP, ADMIN, "/wakeup")
    prompt = last_prompt(h, GROUP)
    mention, dm, _cancel = button_data(prompt)
    h.clear()
    await h.press(GROUP, ADMIN, prompt.result["message_id"], dm)
    [private] = [c for c in h.calls("sendMessage") if c.params["chat_id"] == CAROL]
    assert "「粉丝福利群」里最近很热闹" in private.params["text"]
    assert edits(h)[-1] == "✉️ 已私信提醒 1 名成员。"
    await raw_press(h, ADMIN, prompt.result, dm)
    assert edits(h)[-1] == "😴 没有可以私信唤醒的成员了。"


# ---- weekly report ---------------------------------------------------------------------------------
async def test_weekly_report_with_week_over_week_change(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"])
    snap = Buffers()

    def row(uid: int, day: date) -> list[int]:
        return snap.members.setdefault((GROUP, uid, day), [0] * N_MEMBER)

    this = [date(2026, 11, 16) + timedelta(days=i) for i in range(7)]  # Mon 11-16 .. Sun 11-22
    prev = [day - timedelta(days=7) for day in this]
    for day in this[:4]:
        row(ALICE, day)[MESSAGES] += 5
    for day in this[:2]:
        row(BOB, day)[MESSAGES] += 5
    row(DAVE, this[1])[JOINS] += 1
    row(5005, this[2])[JOINS] += 1
    row(5005, this[4])[MESSAGES] += 1  # the newcomer comes back: retained on day 1+
    row(CAROL, this[3])[collector.LEAVES] += 1
    row(ALICE, this[2])[REPLIES_RECEIVED] += 4
    for day in this:
        row(ALICE, day)[CHECKINS] += 1
    for day in prev[1:3]:
        row(ALICE, day)[MESSAGES] += 10
    row(CAROL, prev[3])[JOINS] += 1
    async with h.app.db() as s, s.begin():
        await collector.write(s, snap)
        s.add(User(user_id=ALICE, first_name="Alice", updated_at=h.app.clock.now()))
    h.clock.set(datetime(2026, 11, 23, 9, 10, tzinfo=TZ))  # Monday 09:10 in the chat's time zone
    assert await jobs.weekly_reports(h.app) == [GROUP]
    text = h.last_text(LOG_CHAT)
    members = h.world.m_getChatMemberCount({"chat_id": GROUP})
    assert text.splitlines() == [
        "🗓 粉丝福利群 周报（2026-11-16 ~ 2026-11-22）",
        "💬 消息 31（上周 20，+55.0%）",
        "🔥 日均活跃 1（上周 0.3，+233.3%）",
        "👥 周活跃成员 3（上周 1，+200.0%）",
        "➕ 入群 2（上周 1，+100.0%）",
        "➖ 退群 1（上周 0，—）",
        f"📊 净增 +1 · 当前成员 {members}",
        f"✅ 签到率 {7 / (7 * members) * 100:.1f}%（上周 0.0%）",
        "📈 本周新人次日留存 50.0%（1/2）",
        "🙂 情绪均值 —（上周 —）",
        "🌟 本周意见领袖：Alice（4）",
        "🚨 本周没有危机事件",
    ]
    async with h.app.db() as s:
        assert (await s.scalars(select(WeeklyReport))).all()[0].week == date(2026, 11, 16)
    h.clock.advance(timedelta(hours=1))
    assert await jobs.weekly_reports(h.app) == []  # once per week
    h.clock.set(datetime(2026, 11, 30, 8, 59, tzinfo=TZ))  # next Monday, before 09:00: still last week's
    assert await jobs.weekly_reports(h.app) == []


async def test_weekly_report_needs_a_log_chat_and_data(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"], config={"bot": {"log_chat_id": None}})
    await h.say(GROUP, ALICE, "hi")
    h.clock.set(datetime(2026, 11, 23, 10, 0, tzinfo=TZ))
    assert await jobs.weekly_reports(h.app) == []
    h2 = await make_harness(plugins=["analytics"], config={"plugins": {"analytics": {"weekly_report": False}}})
    await h2.say(GROUP, ALICE, "hi")
    h2.clock.set(datetime(2026, 11, 23, 10, 0, tzinfo=TZ))
    assert await jobs.weekly_reports(h2.app) == []
    assert datetime(2026, 11, 23, 10, 0, tzinfo=TZ).astimezone(UTC).weekday() == 0


async def test_a_clean_stop_flushes_and_redelivery_counts_nothing_twice(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"])
    for text in ("一", "二", "三"):
        h.world.send_message(GROUP, ALICE, text)
    raw = await h.app.bot(RawGetUpdates(offset=h.offset, limit=100, timeout=0))
    updates, _ = parse_updates(h.app, raw)
    await h.app.process_batch(updates)  # processed; SIGTERM arrives before the batch is confirmed
    await h.restart()  # App.stop flushes the buffers with the processed ids
    assert (await rows(h))[ALICE].messages == 3
    await h.deliver()  # Telegram delivers the unconfirmed batch again: skipped
    assert (await rows(h))[ALICE].messages == 3
    assert (await chat_day(h)).active_members == 1  # type: ignore[union-attr]


async def test_stats_from_a_private_chat_after_connect(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"], config={"plugins": {"analytics": {"chart": False}}})
    await h.say(GROUP, ALICE, "你好")
    await h.say(ADMIN, ADMIN, f"/connect {GROUP}")
    await h.say(ADMIN, ADMIN, "/stats")
    assert "粉丝福利群 数据报告" in h.last_text(ADMIN) and not h.calls("sendPhoto")
    await h.say(ADMIN, ADMIN, "/export daily")  # the connected chat
    [doc] = [c for c in h.calls("sendDocument") if c.params["chat_id"] == ADMIN]
    assert doc.result["document"]["file_name"].startswith(f"daily-{GROUP}-")


async def test_export_into_the_group_when_configured(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"], config={"plugins": {"analytics": {"export_private": False}}})
    await h.say(GROUP, ALICE, "你好")
    await h.say(GROUP, ADMIN, "/export daily")
    [doc] = h.calls("sendDocument")
    assert doc.params["chat_id"] == GROUP
