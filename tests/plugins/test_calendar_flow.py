"""content_calendar driven through the real bot, the emulated Telegram and a FakeClock."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.services.events import ActivityHistogramRequested, CheckedIn, CrisisChanged
from bot.services.timers import TimerFire
from plugins.content_calendar.jobs import CalendarRuntime
from plugins.content_calendar.models import CalendarEntry, Occurrence
from tests.harness import ADMIN, ALICE, BOB, CAROL, GROUP, LOG_CHAT, OTHER_GROUP, OWNER, Harness

NAME = "content_calendar"
# The harness starts at 2026-11-18 11:06:40 UTC = 19:06:40 in Shanghai (a Wednesday), 06:06:40 in New York.


async def start(
    make_harness: Any, tmp_path: Path, calendar: str | None = None, *, chats: dict[int, Any] | None = None,
    **cfg: Any,
) -> Harness:
    plugin_cfg = dict(cfg)
    if calendar is not None:
        path = tmp_path / "calendar.toml"
        path.write_text(calendar, encoding="utf-8")
        plugin_cfg["calendar_file"] = str(path)
    config: dict[str, Any] = {"plugins": {NAME: plugin_cfg}}
    config["chats"] = chats if chats is not None else {GROUP: {"tags": ["fans"]}, OTHER_GROUP: {"tags": ["fans"]}}
    h: Harness = await make_harness(plugins=[NAME], config=config)
    return h


def rt(h: Harness) -> CalendarRuntime:
    runtime = h.app.runtime(NAME)
    assert isinstance(runtime, CalendarRuntime)
    return runtime


def posts(h: Harness, chat: int, method: str = "sendMessage") -> list[Any]:
    return [c for c in h.calls(method) if c.params.get("chat_id") == chat and c.ok]


def texts(h: Harness, chat: int) -> list[str]:
    return [str(c.params.get("text", "")) for c in posts(h, chat)]


async def occurrences(h: Harness, key: str | None = None) -> list[Occurrence]:
    async with h.app.db() as s:
        stmt = select(Occurrence).order_by(Occurrence.id)
        if key is not None:
            stmt = stmt.where(Occurrence.entry_key == key)
        return list((await s.scalars(stmt)).all())


async def pending(h: Harness) -> dict[str, datetime]:
    return {t.key: t.due_at for t in await h.app.timers.pending("content_calendar:")}


def local(h: Harness, tz: str = "Asia/Shanghai") -> datetime:
    from zoneinfo import ZoneInfo

    return h.clock.now().astimezone(ZoneInfo(tz))


async def advance_to(h: Harness, when: datetime, extra: float = 1) -> None:
    await h.advance((when - h.clock.now()).total_seconds() + extra)


# ---- end to end ---------------------------------------------------------------------------------------
SERIES = """
[[entry]]
id = "flash-1"
when = "2026-11-18 19:07"
chat_tags = ["fans"]
tags = ["marketing"]
series = "flash"
pin = true
text = "<b>限时秒杀</b> {date} {weekday}"
buttons = [{ text = "去抢购", url = "https://shop.example.com/flash" }]

[[entry]]
id = "flash-2"
when = "2026-11-18 19:08"
chat_tags = ["fans"]
tags = ["marketing"]
series = "flash"
pin = true
silent = true
text = "第二波秒杀"
"""


async def test_entry_due_in_seconds_is_posted_once_pinned_and_unpins_its_series(make_harness: Any,
                                                                                tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, SERIES)
    armed = await pending(h)
    assert len(armed) == 4  # 2 entries x 2 chats
    assert armed[f"content_calendar:flash-1:{GROUP}:2026-11-18T19:07"] == datetime(2026, 11, 18, 11, 7, tzinfo=UTC)

    await h.advance(10)  # 19:06:50: not yet
    assert posts(h, GROUP) == []
    await h.advance(25)  # 19:07:15
    for chat in (GROUP, OTHER_GROUP):
        sent = posts(h, chat)
        assert len(sent) == 1
        assert "限时秒杀" in sent[0].params["text"] and "11月18日 星期三" in sent[0].params["text"]
        assert sent[0].params["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://shop.example.com/flash"
        pins = posts(h, chat, "pinChatMessage")
        assert [p.params["message_id"] for p in pins] == [sent[0].result["message_id"]]
    assert posts(h, LOG_CHAT) == []  # a chat without the tag gets nothing

    await h.advance(60)  # 19:08:15: the second post of the series
    for chat in (GROUP, OTHER_GROUP):
        sent = posts(h, chat)
        assert len(sent) == 2 and sent[1].params.get("disable_notification") is True
        first_id, second_id = sent[0].result["message_id"], sent[1].result["message_id"]
        assert [p.params["message_id"] for p in posts(h, chat, "pinChatMessage")] == [first_id, second_id]
        assert [p.params["message_id"] for p in posts(h, chat, "unpinChatMessage")] == [first_id]
    rows = await occurrences(h)
    assert sorted((r.entry_key, r.chat_id, r.status, r.pinned) for r in rows) == sorted(
        [("flash-1", GROUP, "sent", False), ("flash-1", OTHER_GROUP, "sent", False),
         ("flash-2", GROUP, "sent", True), ("flash-2", OTHER_GROUP, "sent", True)])

    # Nothing else later, even across a restart.
    await h.restart()
    await h.advance(3600)
    assert len(posts(h, GROUP)) == 2 and len(posts(h, OTHER_GROUP)) == 2


async def test_end_to_end_over_http(make_harness: Any, tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text('[[entry]]\nid = "hi"\nwhen = "2026-11-18 19:07"\nchats = [-1001]\npin = true\ntext = "你好"\n',
                    encoding="utf-8")
    h: Harness = await make_harness(plugins=[NAME], transport="http",
                                    config={"plugins": {NAME: {"calendar_file": str(path)}}})
    await h.advance(30)
    assert texts(h, GROUP) == ["你好"]
    assert len(posts(h, GROUP, "pinChatMessage")) == 1


# ---- exactly once ---------------------------------------------------------------------------------------
DAILY = """
[[entry]]
id = "night"
when = "每天 19:10"
chats = [-1001]
tags = ["greeting"]
text = "晚上好 {date}"
"""


async def test_no_double_post_across_restart_or_a_second_firing(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY)
    key = f"content_calendar:night:{GROUP}:2026-11-18T19:10"
    assert key in await pending(h)
    await h.restart()  # re-arming at start is idempotent
    assert list(await pending(h)) == [key]
    await h.advance(4 * 60)
    assert texts(h, GROUP) == ["晚上好 11月18日"]
    # Tomorrow is armed; today's slot cannot be posted again, even by a second process firing the same timer.
    assert list(await pending(h)) == [f"content_calendar:night:{GROUP}:2026-11-19T19:10"]
    fire = TimerFire(key=key, chat_id=GROUP, payload={"entry": "night", "slot": "2026-11-18T19:10"},
                     due_at=datetime(2026, 11, 18, 11, 10, tzinfo=UTC), attempt=1)
    outcome = await rt(h).fire(fire)
    assert outcome.status == "duplicate"
    await h.restart()
    await h.advance(60)
    assert len(texts(h, GROUP)) == 1
    assert [r.status for r in await occurrences(h)] == ["sent"]


async def test_missed_occurrence_within_grace_is_posted_once(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY)
    await h.stop()
    h.clock.advance(20 * 60)  # down from 19:06 to 19:26: the 19:10 post is 16 minutes late
    await h.start(create_schema=False)
    await h.advance(1)
    assert texts(h, GROUP) == ["晚上好 11月18日"]
    await h.advance(60)
    assert len(texts(h, GROUP)) == 1
    assert f"content_calendar:night:{GROUP}:2026-11-19T19:10" in await pending(h)


async def test_missed_occurrence_beyond_grace_is_skipped_and_logged(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY)
    await h.stop()
    h.clock.advance(2 * 3600)  # back at 17:06: the 19:10 post is almost 2 hours late
    await h.start(create_schema=False)
    await h.advance(1)
    assert texts(h, GROUP) == []
    rows = await occurrences(h)
    assert [(r.slot, r.status) for r in rows] == [("2026-11-18T19:10", "skipped")]
    assert "missed by 116 min" in (rows[0].error or "")
    assert any("已跳过" in t for t in texts(h, LOG_CHAT))
    assert f"content_calendar:night:{GROUP}:2026-11-19T19:10" in await pending(h)
    # The next day posts normally.
    await advance_to(h, datetime(2026, 11, 19, 11, 10, tzinfo=UTC))
    assert texts(h, GROUP) == ["晚上好 11月19日"]


async def test_grace_window_is_configurable(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY, grace_minutes=5)
    await h.stop()
    h.clock.advance(20 * 60)
    await h.start(create_schema=False)
    await h.advance(1)
    assert texts(h, GROUP) == []
    assert [r.status for r in await occurrences(h)] == ["skipped"]


# ---- time zones and peak ------------------------------------------------------------------------------
async def test_each_chat_posts_in_its_own_timezone(make_harness: Any, tmp_path: Path) -> None:
    cal = '[[entry]]\nid = "morning"\nwhen = "每天 09:00"\nchat_tags = ["fans"]\ntext = "早安 {date} {time}"\n'
    h = await start(make_harness, tmp_path, cal,
                    chats={GROUP: {"tags": ["fans"]},
                           OTHER_GROUP: {"tags": ["fans"], "timezone": "America/New_York"}})
    armed = await pending(h)
    assert armed[f"content_calendar:morning:{OTHER_GROUP}:2026-11-18T09:00"] == datetime(2026, 11, 18, 14, 0,
                                                                                           tzinfo=UTC)
    assert armed[f"content_calendar:morning:{GROUP}:2026-11-19T09:00"] == datetime(2026, 11, 19, 1, 0, tzinfo=UTC)
    await advance_to(h, datetime(2026, 11, 18, 14, 0, tzinfo=UTC))
    assert texts(h, OTHER_GROUP) == ["早安 11月18日 09:00"] and texts(h, GROUP) == []
    await advance_to(h, datetime(2026, 11, 19, 1, 0, tzinfo=UTC))
    assert texts(h, GROUP) == ["早安 11月19日 09:00"]


async def test_peak_uses_the_default_without_activity_data(make_harness: Any, tmp_path: Path) -> None:
    cal = '[[entry]]\nid = "p"\nwhen = "每天 peak"\nchats = [-1001]\ntext = "高峰好物"\n'
    h = await start(make_harness, tmp_path, cal, peak_default="21:30")
    assert await pending(h) == {f"content_calendar:p:{GROUP}:2026-11-18Tpeak": datetime(2026, 11, 18, 13, 30,
                                                                                         tzinfo=UTC)}


async def test_peak_asks_the_activity_histogram_and_rearms(make_harness: Any, tmp_path: Path) -> None:
    cal = '[[entry]]\nid = "p"\nwhen = "每天 peak"\nchats = [-1001]\ntext = "高峰好物"\n'
    h = await start(make_harness, tmp_path, cal, peak_min_messages=10)

    async def analytics(app: Any, event: ActivityHistogramRequested) -> None:  # what analytics would answer
        event.hours.update({9: 5, 22: 40, 13: 12})

    h.app.events.subscribe(ActivityHistogramRequested, "core", analytics)
    rt(h)._peak.clear()
    await rt(h).arm_all()
    key = f"content_calendar:p:{GROUP}:2026-11-18Tpeak"
    assert await pending(h) == {key: datetime(2026, 11, 18, 14, 0, tzinfo=UTC)}  # 22:00 local
    await advance_to(h, datetime(2026, 11, 18, 14, 0, tzinfo=UTC))
    assert texts(h, GROUP) == ["高峰好物"]
    # Posted at today's peak: even if the peak hour moves later, today is not posted again.
    h.app.events._subs[ActivityHistogramRequested].clear()

    async def later(app: Any, event: ActivityHistogramRequested) -> None:
        event.hours.update({23: 100})

    h.app.events.subscribe(ActivityHistogramRequested, "core", later)
    rt(h)._peak.clear()
    await rt(h).arm_all()
    assert list(await pending(h)) == [f"content_calendar:p:{GROUP}:2026-11-19Tpeak"]
    await h.advance(3 * 3600)
    assert len(texts(h, GROUP)) == 1


async def test_peak_sql_fallback_and_broken_query(make_harness: Any, tmp_path: Path) -> None:
    from sqlalchemy import text

    cal = '[[entry]]\nid = "p"\nwhen = "每天 peak"\nchats = [-1001]\ntext = "x"\n'
    query = "SELECT hour, messages FROM fake_hourly WHERE chat_id = :chat_id AND day >= :since"
    h = await start(make_harness, tmp_path, cal, peak_query=query, peak_min_messages=1)
    runtime = rt(h)
    core = await h.app.chat_config.chat(GROUP)
    cfg = await runtime.cfg(GROUP)
    runtime._peak.clear()
    peak, source = await runtime.peak_time(GROUP, cfg, core.tz)  # the table does not exist: default
    assert (peak.hour, source) == (20, "default")
    async with h.app.db() as s, s.begin():
        await s.execute(text("CREATE TABLE fake_hourly (chat_id INTEGER, day TIMESTAMP, hour INTEGER,"
                             " messages INTEGER)"))
        await s.execute(text("INSERT INTO fake_hourly VALUES (-1001, '2026-11-17', 19, 30),"
                             " (-1001, '2026-11-17', 21, 9), (-1002, '2026-11-17', 7, 99)"))
    runtime._peak.clear()
    peak, source = await runtime.peak_time(GROUP, cfg, core.tz)
    assert (peak.hour, source) == (19, "query")


# ---- crisis -------------------------------------------------------------------------------------------
CRISIS = """
[[entry]]
id = "sale"
when = "每天 19:10"
chats = [-1001]
tags = ["marketing"]
text = "今晚大促"

[[entry]]
id = "tips"
when = "每天 19:10"
chats = [-1001]
tags = ["knowledge"]
text = "护肤小知识"
"""


async def crisis(h: Harness, level: int | None, old: int | None, incident: int = 7) -> None:
    await h.app.events.emit(CrisisChanged(chat_id=GROUP, incident_id=incident, level=level, old_level=old,
                                          at=h.clock.now()))


async def test_crisis_holds_marketing_and_drops_on_close_by_default(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, CRISIS)
    await crisis(h, 2, None)
    await h.advance(4 * 60)
    assert texts(h, GROUP) == ["护肤小知识"]  # knowledge still posts
    held = [r for r in await occurrences(h, "sale")]
    assert [(r.status, r.slot) for r in held] == [("held", "2026-11-18T19:10")]
    assert any("暂缓发布 sale" in t for t in texts(h, LOG_CHAT))
    await crisis(h, None, 2)
    await h.advance(5)
    assert texts(h, GROUP) == ["护肤小知识"]
    assert [r.status for r in await occurrences(h, "sale")] == ["dropped"]
    # The next day the sale posts normally.
    await advance_to(h, datetime(2026, 11, 19, 11, 10, tzinfo=UTC))
    assert texts(h, GROUP).count("今晚大促") == 1


async def test_crisis_release_posts_held_when_configured(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, CRISIS, release={"marketing": "post"})
    await crisis(h, 1, None)
    await h.advance(4 * 60)
    assert "今晚大促" not in texts(h, GROUP)
    await crisis(h, 3, 1)  # downgraded to level 3: no longer a hold, so it is released
    await h.advance(1)
    assert texts(h, GROUP).count("今晚大促") == 1
    assert [r.status for r in await occurrences(h, "sale")] == ["sent"]
    await crisis(h, None, 3)
    await h.advance(60)
    assert texts(h, GROUP).count("今晚大促") == 1


async def test_crisis_hold_survives_restart_and_level_three_does_not_hold(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, CRISIS)
    await crisis(h, 3, None, incident=1)
    await crisis(h, 2, None, incident=2)
    await h.restart()
    await h.advance(4 * 60)
    assert "今晚大促" not in texts(h, GROUP)
    await crisis(h, None, 2, incident=2)  # incident 1 (level 3) is still open but does not hold
    await h.advance(1)
    assert [r.status for r in await occurrences(h, "sale")] == ["dropped"]


# ---- reliability ----------------------------------------------------------------------------------------
async def test_transient_failures_are_retried_then_posted(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY)
    runtime = rt(h)
    real = runtime.call
    failures = {"left": 1}

    async def flaky(chat_id: int, method: Any) -> tuple[Any, BaseException | None]:
        if failures["left"] and type(method).__name__ == "SendMessage":
            failures["left"] -= 1
            return None, ConnectionError("network down")
        return await real(chat_id, method)

    runtime.call = flaky  # type: ignore[method-assign]
    await h.advance(4 * 60)
    rows = await occurrences(h)
    assert [(r.status, r.attempts) for r in rows] == [("retry", 1)] and "network down" in (rows[0].error or "")
    assert texts(h, GROUP) == []
    await h.advance(10)  # the timer service retries after its backoff
    assert texts(h, GROUP) == ["晚上好 11月18日"]
    assert [(r.status, r.attempts) for r in await occurrences(h)] == [("sent", 2)]


async def test_persistent_failure_is_bounded_and_recorded(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY, max_attempts=2)
    runtime = rt(h)

    async def down(chat_id: int, method: Any) -> tuple[Any, BaseException | None]:
        return None, ConnectionError("still down")

    runtime.call = down  # type: ignore[method-assign]
    await h.advance(4 * 60)
    await h.advance(10)
    await h.advance(20)
    rows = await occurrences(h)
    assert [(r.status, r.attempts) for r in rows] == [("failed", 2)]
    assert "still down" in (rows[0].error or "")
    timer = await h.app.timers.get(f"content_calendar:night:{GROUP}:2026-11-18T19:10")
    assert timer is not None and timer.status == "done"


async def test_bot_removed_fails_at_once_with_the_reason(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY)
    h.world.set_member(GROUP, h.world.bot_id, "left")
    await h.advance(4 * 60)
    rows = await occurrences(h)
    assert [(r.status, r.attempts) for r in rows] == [("failed", 1)]
    assert "Forbidden" in (rows[0].error or "") or "Bad" in (rows[0].error or "")
    assert any("未能发到群" in t for t in texts(h, LOG_CHAT))


# ---- content ------------------------------------------------------------------------------------------
async def test_variables_media_silent_and_auto_delete(make_harness: Any, tmp_path: Path) -> None:
    cal = '''
[[entry]]
id = "weekly-top"
when = "每天 19:10"
chats = [-1001]
tags = ["greeting"]
silent = true
delete_after_hours = 2
text = """{date}{weekday} 群成员 {member_count} 人
本周榜：
{top_members}
连签：
{streak_leaders}
下一个节日：{next_festival}（{days_to_next_festival} 天）"""

[[entry]]
id = "pic"
when = "每天 19:11"
chats = [-1001]
photo = "https://img.example.com/sale.jpg"
text = "今日好物"
'''
    h = await start(make_harness, tmp_path, cal)
    await h.app.points.change(GROUP, ALICE, 30, "test", "t1")
    await h.app.points.change(GROUP, BOB, 50, "test", "t2")
    await h.app.points.change(OTHER_GROUP, CAROL, 99, "test", "t3")
    await h.app.events.emit(CheckedIn(chat_id=GROUP, user_id=CAROL, at=h.clock.now(), streak=12, points=5))
    await h.app.events.emit(CheckedIn(chat_id=GROUP, user_id=ALICE, at=h.clock.now(), streak=3, points=5))
    await h.say(GROUP, ALICE, "大家好")  # names are learned from messages
    await h.say(GROUP, BOB, "嗨")
    await h.say(GROUP, CAROL, "早")
    await h.advance(4 * 60)
    sent = posts(h, GROUP)
    assert len(sent) == 1
    text = sent[0].params["text"]
    assert text.startswith("11月18日星期三 群成员 ")
    count = await h.world.call("getChatMemberCount", chat_id=GROUP)
    assert count >= 5 and f"群成员 {count} 人" in text
    assert "1. Bob 50分\n2. Alice 30分" in text and "小红" not in text.split("连签")[0]
    assert "1. 小红 12天\n2. Alice 3天" in text
    assert "下一个节日：双十二（24 天）" in text
    assert sent[0].params.get("disable_notification") is True
    assert posts(h, GROUP, "sendPhoto") == []
    await h.advance(60)
    photo = posts(h, GROUP, "sendPhoto")
    assert len(photo) == 1 and photo[0].params["caption"] == "今日好物"
    message_id = sent[0].result["message_id"]
    await h.advance(2 * 3600)
    deletes = [c.params["message_id"] for c in posts(h, GROUP, "deleteMessage")]
    assert message_id in deletes


async def test_placeholders_when_data_is_missing(make_harness: Any, tmp_path: Path) -> None:
    cal = '[[entry]]\nid = "e"\nwhen = "每天 19:10"\nchats = [-1001]\ntext = "{top_members}|{streak_leaders}"\n'
    h = await start(make_harness, tmp_path, cal)
    await h.advance(4 * 60)
    assert texts(h, GROUP) == ["本周还没有人上榜|还没有连续签到记录"]


async def test_double_eleven_countdown_posts_each_day_with_days_left(make_harness: Any, tmp_path: Path) -> None:
    cal = ('[[entry]]\nid = "d11"\nwhen = "双十一倒计时3天 20:00"\nchats = [-1001]\ntags = ["marketing"]\npin = true\n'
           'text = "距{festival}还有{days_to_festival}天"\n')
    h = await start(make_harness, tmp_path, cal)
    # 双十一 2026 is over: the next countdown is 2027's.
    assert list(await pending(h)) == [f"content_calendar:d11:{GROUP}:2027-11-08T20:00"]
    for day in (8, 9, 10):
        await advance_to(h, datetime(2027, 11, day, 12, 0, tzinfo=UTC))
    assert texts(h, GROUP) == ["距双十一还有3天", "距双十一还有2天", "距双十一还有1天"]
    assert len(posts(h, GROUP, "pinChatMessage")) == 3 and len(posts(h, GROUP, "unpinChatMessage")) == 2
    assert list(await pending(h)) == [f"content_calendar:d11:{GROUP}:2028-11-08T20:00"]


async def test_english_chat_gets_english_dates_and_placeholders(make_harness: Any, tmp_path: Path) -> None:
    cal = ('[[entry]]\nid = "e"\nwhen = "每天 19:10"\nchats = [-1001]\n'
           'text = "{date} {weekday}: {top_members} / {next_festival}"\n')
    h = await start(make_harness, tmp_path, cal, chats={GROUP: {"language": "en"}})
    await h.advance(4 * 60)
    assert texts(h, GROUP) == ["11/18 Wednesday: Nobody on this week's board yet / Double 12"]


# ---- file reloads -------------------------------------------------------------------------------------
async def test_broken_file_keeps_previous_entries_and_reload_applies_changes(make_harness: Any,
                                                                              tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY)
    path = tmp_path / "calendar.toml"
    path.write_text(DAILY.replace("晚上好 {date}", "晚上好 {nope}"), encoding="utf-8")
    await h.say(GROUP, OWNER, "/schedule reload")
    reply = h.last_text(GROUP)
    assert "1 个错误" in reply and "nope" in reply
    assert any("日历文件有错误" in t for t in texts(h, LOG_CHAT))
    await h.advance(4 * 60)
    assert "晚上好 11月18日" in texts(h, GROUP)  # the last good version still posts

    path.write_text(DAILY.replace("每天 19:10", "每天 20:00").replace("晚上好", "新文案"), encoding="utf-8")
    await h.say(GROUP, ADMIN, "/schedule reload")  # only owners may reload
    assert "所有者" in h.last_text(GROUP)
    await h.say(GROUP, OWNER, "/schedule reload")
    assert "已重新加载日历：1 条" in h.last_text(GROUP)
    assert list(await pending(h)) == [f"content_calendar:night:{GROUP}:2026-11-18T20:00"]
    await advance_to(h, datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    assert "新文案 11月18日" in texts(h, GROUP)

    path.write_text("", encoding="utf-8")  # an entry removed from the file stops
    await h.say(GROUP, OWNER, "/schedule reload")
    assert await pending(h) == {}
    async with h.app.db() as s:
        row = await s.scalar(select(CalendarEntry).where(CalendarEntry.key == "night"))
    assert row is not None and not row.active


async def test_plugin_switched_off_in_a_chat_skips_it_and_resumes_when_back_on(make_harness: Any,
                                                                              tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY)
    await h.app.chat_config.update(GROUP, NAME, {"enabled": False})
    await h.advance(4 * 60)
    assert texts(h, GROUP) == [] and await occurrences(h) == []
    assert list(await pending(h)) == [f"content_calendar:night:{GROUP}:2026-11-19T19:10"]
    await h.app.chat_config.update(GROUP, NAME, {"enabled": True})
    await advance_to(h, datetime(2026, 11, 19, 11, 10, tzinfo=UTC))
    assert texts(h, GROUP) == ["晚上好 11月19日"]


async def test_a_send_interrupted_by_a_crash_is_never_resent_but_made_visible(make_harness: Any,
                                                                              tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path, DAILY)
    runtime = rt(h)

    class Killed(BaseException):
        """Not an Exception: nothing catches it, like a SIGKILL in the middle of the send."""

    async def crash(chat_id: int, method: Any) -> tuple[Any, BaseException | None]:
        raise Killed

    runtime.call = crash  # type: ignore[method-assign]
    with pytest.raises(Killed):
        await h.advance(4 * 60)
    assert [r.status for r in await occurrences(h)] == ["sending"]
    await h.crash()
    await h.start(create_schema=False)
    await h.advance(15 * 60)  # the timer's claim expired: it fires again
    assert texts(h, GROUP) == []
    rows = await occurrences(h)
    assert [r.status for r in rows] == ["failed"] and "interrupted" in (rows[0].error or "")


@pytest.mark.skipif(importlib.util.find_spec("plugins.analytics") is None, reason="analytics plugin not installed")
async def test_peak_from_the_real_analytics_plugin(make_harness: Any, tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text('[[entry]]\nid = "p"\nwhen = "每天 peak"\nchats = [-1001]\ntext = "x"\n', encoding="utf-8")
    h: Harness = await make_harness(plugins=["analytics", NAME], config={
        "plugins": {NAME: {"calendar_file": str(path), "peak_min_messages": 10}}})
    for i in range(12):  # at 19:06 local
        await h.say(GROUP, ALICE if i % 2 else BOB, f"消息 {i}")
    await h.app.flush()
    rt(h)._peak.clear()
    await rt(h).arm_all()
    # 19:00 today has passed: tomorrow at 19:00 (not the 20:00 default).
    assert await pending(h) == {f"content_calendar:p:{GROUP}:2026-11-19Tpeak": datetime(2026, 11, 19, 11, 0,
                                                                                         tzinfo=UTC)}


async def test_streaks_are_written_by_the_batch_flush_and_pending_ones_count_before_it(
    make_harness: Any, tmp_path: Path
) -> None:
    from plugins.content_calendar import service as svc
    from plugins.content_calendar.models import Streak

    cal = '[[entry]]\nid = "e"\nwhen = "每天 19:10"\nchats = [-1001]\ntext = "{streak_leaders}"\n'
    h = await start(make_harness, tmp_path, cal)
    await h.say(GROUP, ALICE, "大家好")
    await h.say(GROUP, BOB, "嗨")
    event = CheckedIn(chat_id=GROUP, user_id=ALICE, at=h.clock.now(), streak=3, points=5)
    await h.app.events.emit(event)
    await h.app.events.emit(event)  # delivered twice: one row
    await h.app.events.emit(CheckedIn(chat_id=GROUP, user_id=BOB, at=h.clock.now(), streak=5, points=5))
    async with h.app.db() as s:
        assert (await s.execute(select(Streak))).all() == []  # no commit per 签到
    await h.app.flush()
    async with h.app.db() as s:
        rows = {(r.user_id, r.streak) for r in (await s.scalars(select(Streak))).all()}
    assert rows == {(ALICE, 3), (BOB, 5)}
    # A newer check-in not flushed yet wins over the stored row.
    await h.app.events.emit(CheckedIn(chat_id=GROUP, user_id=ALICE, at=h.clock.now(), streak=9, points=5))
    rt = h.app.runtime("content_calendar")
    assert rt.pending_streaks == {(GROUP, ALICE): (9, h.clock.now())}
    async with h.app.db() as s:
        leaders = await svc.streak_leaders(s, GROUP, h.clock.now() - timedelta(days=1), 5, rt.pending_streaks)
    assert leaders == [(ALICE, 9), (BOB, 5)]


async def test_a_streak_buffered_when_the_bot_crashed_is_written_on_redelivery(
    make_harness: Any, tmp_path: Path
) -> None:
    from bot.runner import RawGetUpdates, parse_updates
    from plugins.content_calendar.models import Streak

    h = await make_harness(plugins=["checkin", "content_calendar", "analytics"])
    h.world.send_message(GROUP, ALICE, "签到")
    raw = await h.app.bot(RawGetUpdates(offset=h.offset, limit=100, timeout=0))
    updates, _highest = parse_updates(h.app, raw)
    await h.app.process_batch(updates)  # the 签到 commits; its streak is only buffered
    assert h.app.runtime("content_calendar").pending_streaks
    await h.crash()  # before the batch flush and the confirmation
    await h.start(create_schema=False)
    await h.deliver()  # Telegram delivers the update again
    async with h.app.db() as s:
        rows = [(r.user_id, r.streak) for r in (await s.scalars(select(Streak))).all()]
    assert rows == [(ALICE, 1)]
    await h.deliver()  # nothing more to deliver: still one row
    async with h.app.db() as s:
        assert len((await s.scalars(select(Streak))).all()) == 1
